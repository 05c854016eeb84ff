"""The one-module chain (gateway.wasm): the four filters' configurations
as sections of one gw.gateway configuration."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .layout import GATEWAY_SECTIONS, GATEWAY_VM
from .yamltree import walk_dicts


def _indent(text: str, n: int = 2) -> str:
    return "".join((" " * n + line) if line.strip() else line for line in text.splitlines(True))


def one_module_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same gateway with the four gw.* Wasm filters as one (gateway.wasm):
    each filter's configuration becomes a section of the gw.gateway filter's
    configuration, verbatim, and the audit sender runs in the gateway's VM."""
    cfg = copy.deepcopy(cfg)

    def visit(d: dict[str, Any]) -> None:
        filters = d.get("http_filters")
        if not isinstance(filters, list):
            return
        ours = [f for f in filters
                if f.get("typed_config", {}).get("config", {}).get("vm_config", {}).get("vm_id") in GATEWAY_SECTIONS]
        if not ours:
            return
        # next to the filters' modules (render_config may have moved them)
        module = str(Path(ours[0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"])
                     .with_name("gateway.wasm"))
        sections = []
        for f in ours:
            plugin = f["typed_config"]["config"]
            key = GATEWAY_SECTIONS[plugin["vm_config"]["vm_id"]]
            text = plugin.get("configuration", {}).get("value", "")
            sections.append(f"{key}:\n{_indent(text)}" if text.strip() else f"{key}: {{}}\n")
        gateway = {"name": "gw.gateway", "typed_config": {
            "@type": ours[0]["typed_config"]["@type"],
            "config": {
                "name": GATEWAY_VM, "root_id": GATEWAY_VM,
                "vm_config": {"vm_id": GATEWAY_VM, "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": module}}},
                "failure_policy": "FAIL_CLOSED",
                # the tool ACL and rate limit stages hold headers until they
                # have judged the body (holdRequestHeaders)
                "allow_on_headers_stop_iteration": True,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": "".join(sections)},
            }}}
        # Where the last of ours was: a filter a test put between two of
        # ours (e.g. set_filter_state standing in for identity) runs first.
        at = filters.index(ours[-1]) - (len(ours) - 1)
        rest = [f for f in filters if f not in ours]
        d["http_filters"] = rest[:at] + [gateway] + rest[at:]

    walk_dicts(cfg, visit)
    for ext in cfg.get("bootstrap_extensions", []):
        plugin = ext.get("typed_config", {}).get("config", {})
        if plugin.get("vm_config", {}).get("vm_id") in GATEWAY_SECTIONS:
            section = GATEWAY_SECTIONS[plugin["vm_config"]["vm_id"]]
            plugin["root_id"] = plugin["vm_config"]["vm_id"] = GATEWAY_VM
            local = plugin["vm_config"]["code"]["local"]
            local["filename"] = str(Path(local["filename"]).with_name("gateway.wasm"))
            text = plugin["configuration"]["value"]
            plugin["configuration"]["value"] = f"{section}:\n{_indent(text)}"
    return cfg
