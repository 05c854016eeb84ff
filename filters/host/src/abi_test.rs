//! Unit tests of the ABI bindings (their host-side parts: map encoding,
//! status mapping, the stubs used off wasm).
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use super::*;

const PAIRS: &[(&str, &str)] = &[
    (":method", "GET"),
    (":path", "/bytes/1"),
    (":authority", "httpbin.org"),
    ("Powered-By", "proxy-wasm"),
];

#[rustfmt::skip]
const SERIALIZED: &[u8] = &[
    4, 0, 0, 0,
    7, 0, 0, 0, 3, 0, 0, 0,
    5, 0, 0, 0, 8, 0, 0, 0,
    10, 0, 0, 0, 11, 0, 0, 0,
    10, 0, 0, 0, 10, 0, 0, 0,
    b':', b'm', b'e', b't', b'h', b'o', b'd', 0, b'G', b'E', b'T', 0,
    b':', b'p', b'a', b't', b'h', 0, b'/', b'b', b'y', b't', b'e', b's', b'/', b'1', 0,
    b':', b'a', b'u', b't', b'h', b'o', b'r', b'i', b't', b'y', 0,
    b'h', b't', b't', b'p', b'b', b'i', b'n', b'.', b'o', b'r', b'g', 0,
    b'P', b'o', b'w', b'e', b'r', b'e', b'd', b'-', b'B', b'y', 0,
    b'p', b'r', b'o', b'x', b'y', b'-', b'w', b'a', b's', b'm', 0,
];

fn as_bytes(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn serializes_like_the_sdk() {
    assert_eq!(serialize_map(PAIRS).unwrap(), SERIALIZED);
    assert_eq!(serialize_map(&[]).unwrap(), [0, 0, 0, 0]);
}

#[test]
fn deserializes_what_it_serializes() {
    assert_eq!(deserialize_map(SERIALIZED).unwrap(), as_bytes(PAIRS));
    let odd = [("a", ""), ("", "b"), ("x-\u{e9}", "v\u{e9}")];
    let bytes = serialize_map(&odd).unwrap();
    assert_eq!(deserialize_map(&bytes).unwrap(), as_bytes(&odd));
}

#[test]
fn empty_maps() {
    assert_eq!(deserialize_map(&[]).unwrap(), vec![]);
    assert_eq!(deserialize_map(&[0, 0, 0, 0]).unwrap(), vec![]);
}

#[test]
fn non_utf8_values_are_kept_as_bytes() {
    for b in 0x80..=0xffu8 {
        let src = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'c', 0, b, 0];
        assert_eq!(deserialize_map(&src).unwrap(), vec![(vec![b'c'], vec![b])]);
    }
}

#[test]
fn every_truncation_is_an_error() {
    for len in 1..SERIALIZED.len() {
        assert_eq!(
            deserialize_map(&SERIALIZED[..len]),
            Err(Status::ParseFailure),
            "truncated to {len}"
        );
    }
}

#[test]
fn inconsistent_sizes_are_errors() {
    // Count far beyond the data (would overflow or over-allocate).
    assert!(deserialize_map(&[0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(deserialize_map(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
    // A key length running past the end.
    let src = [
        1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, b'c', 0, b'v', 0,
    ];
    assert!(deserialize_map(&src).is_err());
    // Missing NUL terminators.
    let src = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'c', b'x', b'v', 0];
    assert!(deserialize_map(&src).is_err());
    let src = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'c', 0, b'v'];
    assert!(deserialize_map(&src).is_err());
    // Fewer than four bytes of count.
    assert!(deserialize_map(&[1, 0]).is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic fuzz: every result is Ok or Err, never a panic.
    let mut seed: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let len = (seed % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (seed.rotate_left(i as u32) & 0x0f) as u8)
            .collect();
        let _ = deserialize_map(&bytes);
    }
}

#[test]
fn property_paths_join_with_nul() {
    assert_eq!(serialize_path(&[]), b"");
    assert_eq!(serialize_path(&["response", "code"]), b"response\0code");
}

#[test]
fn unknown_host_statuses_map_to_internal_failure() {
    assert_eq!(status(0), Status::Ok);
    assert_eq!(status(8), Status::CasMismatch);
    for raw in [5, 6, 9, 11, 12, 99, u32::MAX] {
        assert_eq!(status(raw), Status::InternalFailure);
    }
}

#[test]
fn host_stubs_fail_softly() {
    assert_eq!(
        get_buffer(BufferType::HttpRequestBody, 0, 10),
        Err(Status::InternalFailure)
    );
    assert_eq!(
        get_map_value_bytes(MapType::HttpRequestHeaders, ":path"),
        Err(Status::InternalFailure)
    );
    assert_eq!(
        get_map_pairs(MapType::HttpRequestHeaders),
        Err(Status::InternalFailure)
    );
    assert!(get_current_time().is_err());
}
