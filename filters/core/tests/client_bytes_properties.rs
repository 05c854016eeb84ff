//! Property tests over bytes a client or an upstream controls. A panic in a
//! filter kills its worker's Wasm VM, so every parser that reads such bytes
//! must return, whatever the input; and an SSE stream must mean the same
//! events however the network splits it into chunks.

use gw_core::protocol::jsonrpc;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::protocol::sse::{SseEvent, SseParser};
use gw_core::tool_acl::request_guard;
use proptest::prelude::*;

/// JSON-RPC-looking bytes: fragments of real messages glued at random, so
/// the parser gets deep into valid prefixes rather than failing at byte 0.
fn jsonrpc_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"jsonrpc\"",
        "\"2.0\"",
        "\"id\"",
        "7",
        "-1",
        "1e999",
        "\"method\"",
        "\"tools/call\"",
        "\"message/send\"",
        "\"params\"",
        "\"name\"",
        "\"\\u0065xecute_code\"",
        "\"\\ud800\"",
        "null",
        "true",
        "\"parts\"",
        "\"kind\"",
        " ",
    ]);
    prop::collection::vec(pieces, 0..64).prop_map(|p| p.concat().into_bytes())
}

fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}",
        "data:",
        "data",
        "event: message",
        "id: 1",
        "id: \u{0}",
        "retry: 100",
        "retry: x",
        ": comment",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "é",
        "x",
    ]);
    prop::collection::vec(pieces, 0..48).prop_map(|p| p.concat().into_bytes())
}

fn events(stream: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::new(1 << 16);
    let mut out = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    for point in points.into_iter().chain([stream.len()]) {
        if let Some(chunk) = stream.get(start..point) {
            parser.feed(chunk, |e| out.push(e));
            start = point;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn jsonrpc_inspection_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = jsonrpc::parse(&body);
        let _ = RequestFacts::inspect(&body);
    }

    #[test]
    fn jsonrpc_inspection_never_panics_on_near_valid_bodies(body in jsonrpc_like()) {
        if let Ok((_, facts)) = RequestFacts::inspect(&body) {
            // What is handed on through filter state reads back the same.
            prop_assert_eq!(RequestFacts::from_json(facts.to_json().as_bytes()), Some(facts));
        }
    }

    #[test]
    fn sse_events_do_not_depend_on_chunking(stream in sse_stream(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(events(&stream, &cuts), events(&stream, &[]));
    }

    #[test]
    fn request_guards_never_panic(path in ".{0,64}", header in ".{0,64}", size in any::<usize>()) {
        let canonical = request_guard::canonical_path(&path);
        let _ = request_guard::is_under(&canonical, "/mcp");
        let _ = request_guard::path_operation(&canonical, "/mcp");
        let _ = request_guard::check_content_type(Some(&header));
        let _ = request_guard::check_content_encoding(Some(&header));
        let _ = request_guard::decode_header_value(&header);
        let _ = request_guard::check_body_size(size, 1 << 20);
    }
}
