//! Per-request cost on the host (not in Envoy) of every pure-policy step one
//! proxied MCP `tools/call` goes through in the four filters, with their
//! configurations loaded exactly as shipped (envoy/four-modules/gateway.yaml:
//! `envoy/gateway.yaml`'s sections, one filter each).
//!
//! Each line calls the `gw_core` functions the filter adapter calls
//! (filters/{audit,identity,tool-acl,rate-limit}/src, filters/host/src), in
//! chain order audit -> identity -> tool ACL -> rate limit. Host calls
//! (header maps, filter state, shared data, the audit queue) are not
//! measured: only what runs in the filters' own code. The total weighs each
//! step by how often one request runs it (`x2`: two filters do it).
//! Prints numbers; asserts nothing.
//!
//! Run: `cargo run --release -p gw-core --example chain_bench`

use gw_core::audit::config::{normalize_path, AuditConfig, AuditConfigSpec};
use gw_core::audit::event::{
    build_event, capture_request, RequestBody, RequestRecord, ResponseRecord,
};
use gw_core::audit::response_capture::{CapturePlan, ResponseCapture};
use gw_core::config::load;
use gw_core::identity::api_key::key_sha256;
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_core::identity::policy::{Begin, Verdict as IdentityVerdict};
use gw_core::identity::protected_resource::RequestInfo;
use gw_core::protocol::jsonrpc;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use gw_core::rate_limit::admission::{self, MemorySlots, SlotStore};
use gw_core::rate_limit::bill::{self, Bill, Charge, OperationCall};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_core::rate_limit::headers::{self, LimitStatus};
use gw_core::rate_limit::sliding_window::{self, Admissions, WindowPolicy};
use gw_core::rate_limit::window_table::{self, KeyId, SlotAnswer};
use gw_core::tool_acl::authorize::{self, Verdict as AclVerdict};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_core::tool_acl::list_plan::{self, ResponsePlan};
use gw_core::tool_acl::request_guard;
use gw_core::tool_acl::rules::TargetKind;
use serde_yaml_ng::Value as Yaml;
use std::hint::black_box;
use std::time::Instant;

/// scripts/bench_chain.py BODY (json.dumps with separators=(",", ":")).
const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_config","arguments":{"key":"region","path":"/etc/gateway/services/billing/config.yaml","fields":["region","zone","replicas","owner","tier"],"reason":"capacity review for the quarterly report, read-only access requested by agent"},"_meta":{"progressToken":"bench-0001"}}}"#;
/// The upstream's answer (a small JSON-RPC result).
const RESPONSE: &[u8] = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"eu-west-1"}],"isError":false}}"#;
const API_KEY: &str = "gw-demo-admin-1";
/// A fixed clock (ms since the epoch), so runs are comparable.
const NOW_MS: u64 = 1_764_000_000_000;

#[path = "support/per_op.rs"]
mod support;
use support::per_op;

/// Like [`per_op`] for a step that consumes its input: inputs are made in
/// batches outside the timed loop.
fn per_op_owned<T>(label: &str, n: u32, mut make: impl FnMut() -> T, mut f: impl FnMut(T)) -> f64 {
    const BATCH: u32 = 1_000;
    for _ in 0..(n / 10).max(1) {
        f(make());
    }
    let mut timed = std::time::Duration::ZERO;
    let mut done = 0;
    while done < n {
        let inputs: Vec<T> = (0..BATCH.min(n - done)).map(|_| make()).collect();
        done += inputs.len() as u32;
        let start = Instant::now();
        for input in inputs {
            f(input);
        }
        timed += start.elapsed();
    }
    let ns = timed.as_nanos() as f64 / f64::from(n);
    println!("{label:<62} {ns:>9.0} ns/op  ({:>10.0} ops/s)", 1e9 / ns);
    ns
}

/// Every item of every `http_filters` list in the Envoy config.
fn http_filters<'a>(node: &'a Yaml, out: &mut Vec<&'a Yaml>) {
    match node {
        Yaml::Mapping(map) => {
            for (key, value) in map {
                if key.as_str() == Some("http_filters") {
                    if let Some(items) = value.as_sequence() {
                        out.extend(items.iter());
                    }
                } else {
                    http_filters(value, out);
                }
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|i| http_filters(i, out)),
        _ => {}
    }
}

/// `typed_config.config.configuration.value` of the filter named `name`.
fn filter_configuration(gateway: &Yaml, name: &str) -> Result<String, String> {
    let mut filters = Vec::new();
    http_filters(gateway, &mut filters);
    filters
        .into_iter()
        .filter_map(|f| f.get("typed_config")?.get("config"))
        .find(|c| c.get("name").and_then(Yaml::as_str) == Some(name))
        .and_then(|c| c.get("configuration")?.get("value")?.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no http filter `{name}` with a configuration value"))
}

fn load_filter<Spec, Runtime>(gateway: &Yaml, name: &str) -> Result<Runtime, String>
where
    Spec: serde::de::DeserializeOwned,
    Runtime: TryFrom<Spec, Error = gw_core::config::ConfigError>,
{
    let text = filter_configuration(gateway, name)?;
    load::<Spec, Runtime>(text.as_bytes()).map_err(|e| format!("{name}: {e}"))
}

/// A slot value holding one agent's log of `timestamps`, built with the
/// store's own admit path (as the filter would have written it).
fn slot_with_log(id: &KeyId, policy: &WindowPolicy, timestamps: &[u64]) -> Result<Vec<u8>, String> {
    let mut value = window_table::EMPTY_SLOT.to_vec();
    for &t in timestamps {
        match window_table::admit(&value, id, policy, t, 1, 32).0 {
            SlotAnswer::Admitted { value: v, .. } => value = v,
            other => return Err(format!("building the slot: refused at {t}: {other:?}")),
        }
    }
    Ok(value)
}

/// The history of admissions at `timestamps`.
fn history_of(policy: &WindowPolicy, timestamps: &[u64]) -> Vec<Admissions> {
    let mut history = Vec::new();
    for &t in timestamps {
        sliding_window::decide(policy, &mut history, t, 1);
    }
    history
}

/// `count` admissions evenly spread over the `span_ms` before `NOW_MS`.
fn spread(count: u64, span_ms: u64) -> Vec<u64> {
    (0..count)
        .map(|i| NOW_MS - span_ms + i * span_ms / count)
        .collect()
}

struct Total {
    ns: f64,
    steps: Vec<(String, f64)>,
}

impl Total {
    /// Count a step `times` per request.
    fn add(&mut self, label: &str, ns: f64, times: u32) {
        self.ns += ns * f64::from(times);
        self.steps
            .push((format!("{label} x{times}"), ns * f64::from(times)));
    }
}

fn main() -> Result<(), String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../envoy/four-modules/gateway.yaml"
    );
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let gateway: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let audit: AuditConfig = load_filter::<AuditConfigSpec, AuditConfig>(&gateway, "gw_audit")?;
    let identity: IdentityConfig =
        load_filter::<IdentitySpec, IdentityConfig>(&gateway, "gw_identity")?;
    let acl: ToolAclConfig = load_filter::<ToolAclSpec, ToolAclConfig>(&gateway, "gw_tool_acl")?;
    let rate: RateLimitConfig =
        load_filter::<RateLimitConfigSpec, RateLimitConfig>(&gateway, "gw_rate_limit")?;

    let content_length = BODY.len().to_string();
    let headers: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "localhost:8443"),
        (":scheme", "https"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("x-agent-api-key", API_KEY),
        ("x-request-id", "9b2f4c1e-6a7d-4e8b-a1f0-3c5d7e9f1a2b"),
        ("user-agent", "wrk"),
        ("content-length", &content_length),
        // What Envoy adds with use_remote_address before the filters run.
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "https"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let info = RequestInfo {
        method: "POST",
        path: "/mcp",
        scheme: "https",
        authority: "localhost:8443",
    };
    println!(
        "tools/call read_config on /mcp, body {} bytes, {} request headers, config {path}",
        BODY.len(),
        headers.len()
    );
    let mut total = Total {
        ns: 0.0,
        steps: Vec::new(),
    };

    // ------------------------------------------------------------ identity
    println!("\n-- identity (on_http_request_headers)");
    let ns = per_op("headers_to_strip", 200_000, || {
        black_box(identity.headers_to_strip(black_box(&headers)));
    });
    total.add("identity: headers_to_strip", ns, 1);
    let ns = per_op(
        "begin: static key (2 SHA-256, claims, 3+3 templates)",
        60_000,
        || {
            black_box(identity.begin(&info, black_box(&headers), NOW_MS / 1000));
        },
    );
    total.add("identity: begin", ns, 1);
    per_op("  (of which: one SHA-256 hex of the key)", 200_000, || {
        black_box(key_sha256(black_box(API_KEY)));
    });
    let verified = match identity.begin(&info, &headers, NOW_MS / 1000) {
        Begin::Verdict(IdentityVerdict::Allow(allowed)) => allowed.identity,
        other => return Err(format!("identity did not allow the demo key: {other:?}")),
    };
    let ns = per_op("VerifiedIdentity::to_json (publish)", 500_000, || {
        black_box(black_box(&verified).to_json());
    });
    total.add("identity: to_json", ns, 1);

    // ---------------------------------------------------- tool ACL headers
    println!("\n-- tool ACL (on_http_request_headers)");
    let ns = per_op(
        "header lookups + canonical_path + content checks",
        200_000,
        || {
            let all = black_box(&headers);
            let header = |name: &str| gw_core::protocol::http::joined_header(all, name);
            let path = header(":path").unwrap_or_default();
            let canonical = request_guard::canonical_path(&path);
            let endpoint = acl
                .endpoints
                .iter()
                .find(|e| request_guard::is_under(&canonical, e));
            let op = endpoint.and_then(|e| request_guard::path_operation(&canonical, e));
            let enc = request_guard::check_content_encoding(header("content-encoding").as_deref());
            let ct = request_guard::check_content_type(header("content-type").as_deref());
            let size = header("content-length")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map(|d| request_guard::check_body_size(d, acl.max_body_bytes));
            black_box((
                op,
                enc.is_ok(),
                ct.is_ok(),
                size.map(|r| r.is_ok()),
                header("mcp-method"),
                header("mcp-name"),
                header("mcp-protocol-version"),
                header("accept"),
            ));
        },
    );
    total.add("tool ACL: header checks", ns, 1);

    // ---------------------------------------------------------------- body
    println!("\n-- body (gw_host::body / state, shared by the filters)");
    let ns = per_op(
        "RequestFacts::inspect (strict parse, audit: first)",
        60_000,
        || {
            black_box(RequestFacts::inspect(black_box(BODY)).ok());
        },
    );
    total.add("body: RequestFacts::inspect", ns, 1);
    let (parsed, facts) = RequestFacts::inspect(BODY).map_err(|e| e.to_string())?;
    let facts_json = facts.to_json();
    let ns = per_op("facts.to_json (publish)", 500_000, || {
        black_box(black_box(&facts).to_json());
    });
    total.add("body: facts.to_json", ns, 1);
    let ns = per_op(
        "RequestFacts::from_json (tool ACL, rate limit)",
        500_000,
        || {
            black_box(RequestFacts::from_json(black_box(facts_json.as_bytes())));
        },
    );
    total.add("body: RequestFacts::from_json", ns, 2);
    let identity_json = verified.to_json();
    let ns = per_op(
        "VerifiedIdentity::from_json (tool ACL, rate limit, audit)",
        500_000,
        || {
            black_box(VerifiedIdentity::from_json(black_box(
                identity_json.as_bytes(),
            )));
        },
    );
    total.add("body: VerifiedIdentity::from_json", ns, 3);
    per_op(
        "jsonrpc::parse (audit re-parse; not run: audit is first)",
        60_000,
        || {
            black_box(jsonrpc::parse(black_box(BODY)).ok());
        },
    );

    // ------------------------------------------------------- tool ACL body
    println!("\n-- tool ACL (on_http_request_body)");
    let ns = per_op(
        "check_mcp_headers + authorize (admin-1, read_config)",
        500_000,
        || {
            let facts = black_box(&facts);
            let id = facts.single().and_then(|m| m.id.clone());
            let shape = request_guard::check_mcp_headers(None, None, facts);
            let verdict = authorize::authorize(&acl, facts, || Some(verified.clone()), false);
            // what the adapter's prepare_tools_list and response_headers decide
            let list_ids = list_plan::filtered_list_ids(&acl, facts);
            let cache = list_plan::cache_candidate(&acl, facts, None, BODY, false);
            let plan = ResponsePlan::choose(Some("application/json"), None, !list_ids.is_empty());
            black_box((
                id,
                shape.is_ok(),
                matches!(verdict, AclVerdict::Allow),
                list_ids,
                cache,
                plan,
            ));
        },
    );
    total.add("tool ACL: authorize", ns, 1);
    per_op("  (of which: acl.decide alone)", 1_000_000, || {
        black_box(acl.acl.decide(
            black_box(Some(gw_core::tool_acl::rules::Agent {
                id: &verified.agent_id,
                name: &verified.agent_name,
            })),
            TargetKind::Tool,
            black_box("read_config"),
        ));
    });

    // ----------------------------------------------------------- rate limit
    println!("\n-- rate limit (on_http_request_body, local store)");
    let ns = per_op(
        "OperationCall::from_facts + bill::bill (1 SHA-256 KeyId)",
        200_000,
        || {
            let calls = OperationCall::from_facts(black_box(&facts));
            black_box(bill::bill(&rate, Some(black_box(&verified)), &calls));
        },
    );
    total.add("rate limit: bill", ns, 1);
    let calls = OperationCall::from_facts(&facts);
    let charge: Charge = match bill::bill(&rate, Some(&verified), &calls) {
        Bill::Charges { charges, .. } => {
            charges.into_iter().next().ok_or("the bill has no charge")?
        }
        other => return Err(format!("tools/call is not charged: {other:?}")),
    };
    let limit = rate.limits.get(charge.limit).ok_or("no limit")?;
    let shipped = limit.policy;
    let raised = WindowPolicy::new(10_000, 1, 10_000);
    let cases = [
        (
            "60/60s+10, log of 70",
            shipped,
            spread(70, 119_000),
            Some("shipped"),
        ),
        (
            "10000/1s+10000, log of 1,400",
            raised,
            spread(1_400, 1_000),
            Some("raised"),
        ),
        (
            "10000/1s+10000, log of 2,800",
            raised,
            spread(2_800, 2_000),
            None,
        ),
    ];
    let (mut admit_shipped, mut admit_raised) = (0.0, 0.0);
    for (name, policy, log, role) in cases {
        let value = slot_with_log(&charge.id, &policy, &log)?;
        println!("   slot value {} bytes ({name})", value.len());
        // ~10 M log entries decoded per case, at most 100,000 decisions.
        let iterations = (10_000_000 / log.len() as u32).min(100_000);
        let ns = per_op(
            &format!("slot_key + window_table::admit ({name})"),
            iterations,
            || {
                let key = window_table::slot_key(charge.id.slot(rate.local.slots));
                black_box((
                    key,
                    window_table::admit(
                        black_box(&value),
                        &charge.id,
                        &policy,
                        NOW_MS,
                        charge.slots,
                        rate.local.keys_per_slot,
                    ),
                ));
            },
        );
        match role {
            Some("shipped") => admit_shipped = ns,
            Some("raised") => admit_raised = ns,
            _ => {}
        }
        let history = history_of(&policy, &log);
        per_op(
            "  (of which: sliding_window::decide on a Vec clone)",
            iterations,
            || {
                let mut history = black_box(&history).clone();
                black_box(sliding_window::decide(&policy, &mut history, NOW_MS, 1));
            },
        );
    }
    let windows = match window_table::admit(
        &slot_with_log(&charge.id, &shipped, &spread(70, 119_000))?,
        &charge.id,
        &shipped,
        NOW_MS,
        1,
        rate.local.keys_per_slot,
    )
    .0
    {
        SlotAnswer::Admitted { answer, .. } => answer.windows,
        other => return Err(format!("not admitted: {other:?}")),
    };
    total.add(
        "rate limit: admit (shipped limit, log of 70)",
        admit_shipped,
        1,
    );
    // The filter's own decision path (gw_core::rate_limit::admission, CAS
    // loop included) over in-memory slots; the filter's store is Envoy
    // shared data, two host calls not counted here.
    let charges = match bill::bill(&rate, Some(&verified), &calls) {
        Bill::Charges { charges, .. } => charges,
        other => return Err(format!("not charged: {other:?}")),
    };
    let slot = charges
        .first()
        .map(|c| window_table::slot_key(c.id.slot(rate.local.slots)))
        .unwrap_or_default();
    per_op_owned(
        "  (admission::decide on in-memory slots, an empty window)",
        100_000,
        || {
            let mut slots = MemorySlots::default();
            let _ = slots.write(&slot, window_table::EMPTY_SLOT, None);
            slots
        },
        |mut slots| {
            let _ = black_box(
                admission::decide(&mut slots, &rate, &charges, NOW_MS).map(|a| a.admitted),
            );
        },
    );

    let ns = per_op("RateLimit-Policy / RateLimit headers", 200_000, || {
        let statuses = vec![LimitStatus {
            name: limit.name.clone(),
            windows: black_box(&windows).clone(),
        }];
        black_box(headers::headers(&statuses));
    });
    total.add("rate limit: headers", ns, 1);

    // ---------------------------------------------------------------- audit
    println!("\n-- audit");
    let request_path = normalize_path("/mcp").to_string();
    let lookup = |_: &str| -> Option<String> { None };
    let ns = per_op(
        "capture_request (protocolMethod, toolName)",
        300_000,
        || {
            black_box(capture_request(
                &audit,
                &request_path,
                lookup,
                Some((black_box(&facts), Some(black_box(&parsed)))),
            ));
        },
    );
    total.add("audit: capture_request", ns, 1);
    let ns = per_op("CapturePlan::new + ResponseCapture::new", 500_000, || {
        let plan = CapturePlan::new(&audit.response_captures, &request_path, Some(&facts));
        black_box(ResponseCapture::new(
            plan,
            audit.max_response_body_bytes,
            audit.max_capture_chars,
        ));
    });
    total.add("audit: CapturePlan", ns, 1);
    let plan = CapturePlan::new(&audit.response_captures, &request_path, Some(&facts));
    let ns = per_op_owned(
        "response capture: on_headers + feed (toolError) + take",
        100_000,
        || {
            ResponseCapture::new(
                plan.clone(),
                audit.max_response_body_bytes,
                audit.max_capture_chars,
            )
        },
        |mut rc| {
            rc.on_headers(Some("application/json"));
            rc.feed(&audit.response_captures, black_box(RESPONSE), true);
            black_box(rc.take_values());
        },
    );
    total.add("audit: response capture", ns, 1);
    let request = RequestRecord {
        start_unix_ms: NOW_MS,
        request_id: Some("9b2f4c1e-6a7d-4e8b-a1f0-3c5d7e9f1a2b".into()),
        path: request_path.clone(),
        http_method: "POST".into(),
        captured: capture_request(&audit, &request_path, lookup, Some((&facts, Some(&parsed)))),
        body: RequestBody::Parsed(facts.clone()),
    };
    let mut rc = ResponseCapture::new(
        plan.clone(),
        audit.max_response_body_bytes,
        audit.max_capture_chars,
    );
    rc.on_headers(Some("application/json"));
    rc.feed(&audit.response_captures, RESPONSE, true);
    let response = ResponseRecord {
        end_unix_ms: NOW_MS + 3,
        status: Some(200),
        code_details: Some("via_upstream".into()),
        decision_state: None,
        identity: Some(verified.clone()),
        captured: rc.take_values(),
    };
    let ns = per_op_owned(
        "build_event (+ fallback id)",
        100_000,
        || (request.clone(), response.clone()),
        |(request, response)| {
            let fallback = format!("{:x}-{}-{:x}", request.start_unix_ms, "1f2e3d", 42);
            black_box(build_event(&audit, request, response, &fallback));
        },
    );
    total.add("audit: build_event", ns, 1);
    let event = build_event(&audit, request.clone(), response.clone(), "x");
    println!("   event {} bytes", event.to_json().len());
    let ns = per_op("event.to_json", 200_000, || {
        black_box(black_box(&event).to_json());
    });
    total.add("audit: to_json", ns, 1);
    // The same bytes through serde, as the event was written before the
    // fixed-shape writer (audit::event_json): the pair shows its saving in
    // one run, whatever the machine's load.
    let _ = per_op(
        "  (event via serde + one-line pass, before)",
        200_000,
        || {
            black_box(gw_core::audit::bounds::to_one_line_json(
                serde_json::to_string(black_box(&event)).unwrap_or_default(),
            ));
        },
    );

    // ---------------------------------------------------------------- total
    println!("\n-- per request (each step x times it runs in the chain)");
    for (label, ns) in &total.steps {
        println!("{label:<62} {ns:>9.0} ns");
    }
    println!(
        "{:<62} {:>9.0} ns  (= {:.1} µs of pure policy per request)",
        "total",
        total.ns,
        total.ns / 1000.0
    );
    let raised_total = total.ns - admit_shipped + admit_raised;
    println!(
        "{:<62} {:>9.0} ns  (= {:.1} µs)",
        "total with bench_chain's raised limit (log of 1,400)",
        raised_total,
        raised_total / 1000.0
    );
    Ok(())
}
