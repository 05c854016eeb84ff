//! Heap of one VM's configuration of the one module (`gateway.wasm`), on the
//! host: the shipped `gw_gateway` configuration (envoy/gateway.yaml)
//! plus N generated static agents, split into sections and each section
//! loaded as the chain does at `on_configure`. Prints the peak heap while
//! loading (a Wasm VM's linear memory grows to its peak and never shrinks)
//! and what stays allocated afterwards. Each VM (main thread + one per
//! worker) does this once. Asserts nothing.
//!
//! Run: `cargo run --release -p gw-core --example config_memory [agents...]`

use gw_core::audit::config::{AuditConfig, AuditConfigSpec};
use gw_core::config::load;
use gw_core::gateway::{sections, Stage};
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use serde_yaml_ng::Value as Yaml;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The `gw_gateway` filter's configuration text, with `agents` more static
/// agents in its identity section's `apiKey` method.
fn configuration(agents: usize) -> Result<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../envoy/gateway.yaml");
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let marker = "name: gw_gateway";
    let at = text.find(marker).ok_or("no gw_gateway filter")?;
    // The filter's `configuration.value` is the first `value:` after its name.
    let doc: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    let value = find_value(&doc).ok_or_else(|| format!("no configuration value after {at}"))?;
    let mut conf: Yaml = serde_yaml_ng::from_str(&value).map_err(|e| e.to_string())?;
    let methods = conf
        .get_mut("identity")
        .and_then(|i| i.get_mut("authMethods"))
        .and_then(Yaml::as_sequence_mut)
        .ok_or("no identity.authMethods")?;
    let api_key = methods
        .iter_mut()
        .find(|m| m.get("type").and_then(Yaml::as_str) == Some("apiKey"))
        .ok_or("no apiKey method")?;
    let list = api_key
        .get_mut("agents")
        .and_then(Yaml::as_sequence_mut)
        .ok_or("no agents")?;
    for i in 0..agents {
        let id = format!("sentinel-bench-{i:05}");
        let key = gw_core::identity::api_key::key_sha256(&format!("bench-agent-key-{i:05}"));
        let agent = format!("{{id: {id}, name: {id}, owner: bench, keySha256: {key}}}");
        list.push(serde_yaml_ng::from_str(&agent).map_err(|e| e.to_string())?);
    }
    serde_yaml_ng::to_string(&conf).map_err(|e| e.to_string())
}

fn find_value(node: &Yaml) -> Option<String> {
    match node {
        Yaml::Mapping(map) => {
            if map.get("name").and_then(Yaml::as_str) == Some("gw_gateway") {
                return map
                    .get("configuration")?
                    .get("value")?
                    .as_str()
                    .map(String::from);
            }
            map.values().find_map(find_value)
        }
        Yaml::Sequence(items) => items.iter().find_map(find_value),
        _ => None,
    }
}

/// What one VM keeps: the runtime configurations (held, not read).
#[allow(dead_code)]
enum Loaded {
    Audit(Box<AuditConfig>),
    Identity(Box<IdentityConfig>),
    ToolAcl(Box<ToolAclConfig>),
    RateLimit(Box<RateLimitConfig>),
}

fn configure(bytes: &[u8]) -> Result<Vec<Loaded>, String> {
    let mut out = Vec::new();
    let base = LIVE.load(Ordering::Relaxed);
    let split = sections(bytes).map_err(|e| e.to_string())?;
    let split_peak = PEAK.load(Ordering::Relaxed) - base;
    let split_kept = LIVE.load(Ordering::Relaxed) - base;
    eprintln!(
        "  sections(): peak {:.2} MiB, section texts {:.2} MiB",
        split_peak as f64 / 1048576.0,
        split_kept as f64 / 1048576.0
    );
    for (stage, json) in split {
        let e = |e: gw_core::config::ConfigError| format!("{}: {e}", stage.key());
        out.push(match stage {
            Stage::Audit => Loaded::Audit(Box::new(
                load::<AuditConfigSpec, AuditConfig>(&json).map_err(e)?,
            )),
            Stage::Identity => Loaded::Identity(Box::new(
                load::<IdentitySpec, IdentityConfig>(&json).map_err(e)?,
            )),
            Stage::ToolAcl => Loaded::ToolAcl(Box::new(
                load::<ToolAclSpec, ToolAclConfig>(&json).map_err(e)?,
            )),
            Stage::RateLimit => Loaded::RateLimit(Box::new(
                load::<RateLimitConfigSpec, RateLimitConfig>(&json).map_err(e)?,
            )),
        });
    }
    Ok(out)
}

fn main() -> Result<(), String> {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
        .collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() {
        vec![0, 2_000]
    } else {
        counts
    };
    println!("| static agents added | config text | peak heap while loading | kept after |");
    println!("|---:|---:|---:|---:|");
    for n in counts {
        let text = configuration(n)?;
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let loaded = configure(text.as_bytes())?;
        let peak = PEAK.load(Ordering::Relaxed) - before;
        let kept = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "| {n} | {:.0} KiB | {:.2} MiB | {:.2} MiB |",
            text.len() as f64 / 1024.0,
            peak as f64 / 1048576.0,
            kept as f64 / 1048576.0
        );
        drop(loaded);
    }
    Ok(())
}
