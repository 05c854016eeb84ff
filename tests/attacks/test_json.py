"""JSON attacks on the body the tool ACL judges: duplicate keys, escapes,
encodings, nesting, numbers, batches, notifications, id types. The ACL and
the server must read the same tool name; when they could disagree, the
gateway refuses (nothing reaches the upstream)."""

from __future__ import annotations

import json

import pytest

from attacks.support import DENIED, AttackGateway, refused

pytestmark = pytest.mark.timeout(60)

D = DENIED
CALL = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"code":"1"}}}'


def attack(atk: AttackGateway, raw: bytes | str, path: str = "/mcp", key: str = "gw-demo-sentinel-1",
           headers: dict[str, str] | None = None) -> None:
    """Send `raw`; the denied tool must not run and no body naming it may reach the upstream."""
    data = raw.encode() if isinstance(raw, str) else raw
    w = atk.watch()
    r = atk.post(path, data, key=key, headers=headers)
    w.never_ran()
    assert refused(r.status_code, r.content), (r.status_code, r.text[:500])


# --------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize("raw", [
    # the name: an allowed one first or last
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_patterns","name":"%s"}}' % D,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","name":"search_patterns"}}' % D,
    # the method
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"%s"}}' % D,
    # params twice
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_patterns"},"params":{"name":"%s"}}' % D,
    # jsonrpc and id twice
    '{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s"}}' % D,
    '{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"%s"}}' % D,
    # an escaped spelling of the same key
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_patterns","n\\u0061me":"%s"}}' % D,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","m\\u0065thod":"tools/list","params":{"name":"%s"}}' % D,
], ids=["name-allowed-first", "name-denied-first", "method", "params", "jsonrpc", "id", "escaped-name-key",
        "escaped-method-key"])
def test_duplicate_keys_are_refused(atk: AttackGateway, raw: str) -> None:
    w = atk.watch()
    r = atk.post("/mcp", raw.encode())
    assert r.status_code == 400, r.text
    w.nothing()


def test_duplicate_keys_deep_in_arguments_are_refused(atk: AttackGateway) -> None:
    raw = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_patterns",'
           '"arguments":{"query":"map","o":{"a":{"b":1,"b":2}}}}}')
    w = atk.watch()
    r = atk.post("/mcp", raw.encode())
    assert r.status_code == 400, r.text
    w.nothing()


# --------------------------------------------------------------------------- escapes / encodings


@pytest.mark.parametrize("name", [
    "\\u0065xecute_code", "execute\\u005fcode", "\\u0065\\u0078\\u0065\\u0063\\u0075\\u0074\\u0065_code",
    "execute_code\\u0000", "execute_code\\n", "execute_code",
], ids=["u0065", "u005f", "all-escaped", "nul-suffix", "newline-suffix", "plain"])
def test_escaped_tool_names_are_judged_after_decoding(atk: AttackGateway, name: str) -> None:
    attack(atk, CALL % name)


def test_escaped_method_is_judged(atk: AttackGateway) -> None:
    attack(atk, '{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"%s"}}' % D)


def test_unicode_escaped_method(atk: AttackGateway) -> None:
    attack(atk, '{"jsonrpc":"2.0","id":1,"method":"\\u0074ools/call","params":{"name":"%s"}}' % D)


def test_lone_surrogate_escape_in_name(atk: AttackGateway) -> None:
    attack(atk, CALL % (D + "\\ud800"))


def test_invalid_utf8_in_body_is_refused(atk: AttackGateway) -> None:
    attack(atk, (CALL % D).encode().replace(b'"code":"1"', b'"code":"\xff\xfe"'))


def test_overlong_utf8_in_tool_name(atk: AttackGateway) -> None:
    # 0xC1 0xA5 is an overlong 'e': a lenient decoder reads execut(e)_code
    attack(atk, (CALL % "execut@_code").encode().replace(b"@", b"\xc1\xa5"))


@pytest.mark.parametrize("enc", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_bodies_are_refused(atk: AttackGateway, enc: str) -> None:
    attack(atk, (CALL % D).encode(enc))


def test_utf8_bom_prefix(atk: AttackGateway) -> None:
    attack(atk, b"\xef\xbb\xbf" + (CALL % D).encode())


def test_utf16_body_declared_as_utf16(atk: AttackGateway) -> None:
    attack(atk, (CALL % D).encode("utf-16"), headers={"content-type": "application/json; charset=utf-16"})


# --------------------------------------------------------------------------- shapes


def test_deep_nesting_is_refused_without_crash(atk: AttackGateway) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    attack(atk, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"x":%s}}}'
           % (D, deep))


def test_deep_nesting_before_the_name(atk: AttackGateway) -> None:
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    attack(atk, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":%s,"name":"%s"}}' % (deep, D))


@pytest.mark.parametrize("id_", ["1e400", "123456789012345678901234567890", "-0", "1.5", "null", "{}", "[]", "true",
                                 '"' + "i" * 300 + '"'])
def test_odd_ids_with_a_denied_call(atk: AttackGateway, id_: str) -> None:
    attack(atk, '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s"}}' % (id_, D))


def test_notification_of_a_denied_call_runs_nothing(atk: AttackGateway) -> None:
    """tools/call without id: a notification still executes on a lax server."""
    w = atk.watch()
    r = atk.post("/mcp", b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"%s","arguments":{}}}' % D.encode())
    w.never_ran()
    assert r.status_code >= 200, r


@pytest.mark.parametrize("raw", [
    "[]",
    "[%s]" % (CALL % D),
    "[%s,%s]" % (CALL % "search_patterns", CALL % D),
    "[%s,%s]" % (CALL % D, CALL % "search_patterns"),
    '[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"%s"}}]' % D,
    "[[%s]]" % (CALL % D),
    "[1,%s]" % (CALL % D),
    "[%s]" % ",".join([CALL % "read_config"] * 40 + [CALL % D]),
], ids=["empty", "one-denied", "allowed-then-denied", "denied-then-allowed", "notification", "nested",
        "junk-element", "denied-41st"])
def test_batches_with_a_denied_call_run_nothing(atk: AttackGateway, raw: str) -> None:
    w = atk.watch()
    r = atk.post("/mcp", raw.encode())
    w.nothing("(batch)")
    # a batch of notifications only has no answer (202), as JSON-RPC says
    assert r.status_code in (200, 202, 400), r.text


def test_concatenated_json_values(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ((CALL % "search_patterns") + (CALL % D)).encode())
    assert r.status_code == 400, r.text
    w.nothing()


@pytest.mark.parametrize("raw", [
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s",}}' % D,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call",/*c*/"params":{"name":"%s"}}' % D,
    "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'%s'}}" % D,
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s"}' % D,
    '{"jsonrpc":"2.0","id":NaN,"method":"tools/call","params":{"name":"%s"}}' % D,
], ids=["trailing-comma", "comment", "single-quotes", "truncated", "nan"])
def test_lax_json_is_refused(atk: AttackGateway, raw: str) -> None:
    w = atk.watch()
    r = atk.post("/mcp", raw.encode())
    assert r.status_code == 400, r.text
    w.nothing()


@pytest.mark.parametrize("params", [
    '["%s"]' % D, '{"name":["%s"]}' % D, '{"name":{"name":"%s"}}' % D, '{"name":null,"tool":"%s"}' % D,
    '"%s"' % D,
], ids=["array", "name-array", "name-object", "name-null", "string"])
def test_tools_call_without_a_string_name_is_refused(atk: AttackGateway, params: str) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":%s}' % params).encode())
    assert r.status_code == 400, r.text
    w.nothing()


@pytest.mark.parametrize("envelope", [
    '{"id":1,"method":"tools/call","params":{"name":"%s"}}',
    '{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"%s"}}',
    '{"jsonrpc":2.0,"id":1,"method":"tools/call","params":{"name":"%s"}}',
], ids=["no-jsonrpc", "jsonrpc-1.0", "jsonrpc-number"])
def test_malformed_envelopes_run_nothing(atk: AttackGateway, envelope: str) -> None:
    attack(atk, envelope % D)


def test_method_case_variant_runs_nothing(atk: AttackGateway) -> None:
    """`Tools/Call` is not `tools/call` for the ACL; the server must not run it either."""
    w = atk.watch()
    atk.post("/mcp", ('{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"%s"}}' % D).encode())
    assert D not in w.tool_runs()


def test_huge_tool_name_is_judged(atk: AttackGateway) -> None:
    attack(atk, CALL % (D + "x" * 200_000))


def test_canary_arguments_of_an_allowed_call_reach_upstream_unchanged(atk: AttackGateway) -> None:
    """Control for the JSON cases: an allowed call with unusual but valid JSON
    (escapes, unicode, big numbers) reaches the upstream byte for byte."""
    raw = ('{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"s\\u0065arch_patterns",'
           '"arguments":{"query":"m\\u00e4p \\ud83d\\ude00 \\"q\\""}}}').encode()
    w = atk.watch()
    r = atk.post("/mcp", raw)
    assert r.status_code == 200 and not refused(r.status_code, r.content), r.text
    w.only("search_patterns")
    (rec,) = w.records()
    assert rec["body"].encode("latin-1") == raw
    assert json.loads(raw)["params"]["name"] == "search_patterns"
