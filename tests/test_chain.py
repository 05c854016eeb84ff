"""The four filters as one chain: what one filter learns, the others reuse.

The request body is parsed once per request, by the first filter that reads
it (audit), and the tool ACL and rate limit reuse the facts it published as
filter state. The counters `wasmcustom.gw.body.parsed` / `.facts_reused` are
shared by every filter VM, so they count for the whole chain.
"""

from __future__ import annotations

import pytest

from conftest import Gateway

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _body_counters(gateway: Gateway) -> dict[str, int]:
    text = gateway.admin("/stats?filter=^wasmcustom\\.gw\\.body\\.")
    counters = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        counters[name.strip().rsplit(".", 1)[-1]] = int(value.strip() or 0)
    return counters


@pytest.mark.timeout(60)
def test_each_tool_call_body_is_parsed_once_for_the_whole_chain(gateway: Gateway) -> None:
    calls = 5
    before = _body_counters(gateway)
    with gateway.http(MCP_HEADERS) as c:
        for i in range(calls):
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                     "params": {"name": "read_config", "arguments": {"key": "region"}}})
            assert r.status_code == 200, r.text
    after = _body_counters(gateway)
    # audit parses; tool ACL and rate limit (both judge tools/call) reuse.
    assert after.get("parsed", 0) - before.get("parsed", 0) == calls
    assert after.get("facts_reused", 0) - before.get("facts_reused", 0) == 2 * calls
