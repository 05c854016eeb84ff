"""The two deployments of the same chain, and the rewrites between them.

One module (gateway.wasm, the shipped default, envoy/gateway.yaml): one
gw.gateway filter whose configuration has a section per filter, each
preceded by its comments at column 0:

    # The recipe's policies/agent-audit-log.yaml ...
    audit:
      logDestination: ...
    # ...
    identity:
      authMethods: ...

Four modules (envoy/four-modules/*): gw.audit, gw.identity, gw.tool_acl,
gw.rate_limit, each with its section as its whole configuration, the
section's comments first. The two rewrites are inverse: the comments travel
with their section, so that `one_module_config(four_module_config(cfg)) ==
cfg` for every shipped config (tests/test_envoy_configs.py checks it). For
that a section's body must not begin with a comment (put it above the key).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from .layout import GATEWAY_SECTIONS, GATEWAY_VM
from .yamltree import load_config, walk_dicts, wasm_filters

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
# Filters that may hold request headers (identity while it calls out; the tool
# ACL and the rate limit with holdRequestHeaders) and so need Envoy's
# allow_on_headers_stop_iteration for their body callbacks to run. The
# gateway needs it as soon as one of its stages does.
HOLDS_HEADERS = ("gw_identity", "gw_tool_acl", "gw_rate_limit")

_SECTION_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9]*):\s*(\{\})?\s*$")


def _indent(text: str, n: int = 2) -> str:
    return "".join((" " * n + line) if line.strip() else line for line in text.splitlines(True))


def _dedent(text: str, n: int = 2) -> str:
    return "".join(line[n:] if line[:n] == " " * n else line for line in text.splitlines(True))


def _is_preamble(line: str) -> bool:
    return not line.strip() or line.startswith("#")


def _as_section(key: str, text: str) -> str:
    """A filter's configuration as a section: its leading comments (and blank
    lines) above the key, the rest indented under it."""
    lines = text.splitlines(True)
    n = 0
    while n < len(lines) and _is_preamble(lines[n]):
        n += 1
    head, body = "".join(lines[:n]), "".join(lines[n:])
    return head + (f"{key}:\n{_indent(body)}" if body.strip() else f"{key}: {{}}\n")


def sections_of(text: str) -> dict[str, str]:
    """The gateway's configuration -> {section key: that filter's configuration}
    (the inverse of _as_section, in the order written)."""
    out: dict[str, str] = {}
    pending: list[str] = []
    current: str | None = None
    for line in text.splitlines(True):
        m = _SECTION_KEY.match(line)
        if m:
            current = m.group(1)
            out[current] = "".join(pending)
            pending = []
        elif _is_preamble(line) and not line.startswith(" "):
            pending.append(line)  # a comment at column 0: the next section's
        elif current is None:
            raise ValueError(f"gateway configuration: {line.rstrip()!r} before the first section")
        else:
            out[current] += "".join(pending) + _dedent(line)
            pending = []
    if pending and current is not None:
        out[current] += "".join(pending)
    return out


def one_module_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same gateway with the four gw.* Wasm filters as one (gateway.wasm):
    each filter's configuration becomes a section of the gw.gateway filter's
    configuration, verbatim, and the audit sender runs in the gateway's VM.
    A config without the four filters is returned unchanged."""
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
            sections.append(_as_section(key, plugin.get("configuration", {}).get("value", "")))
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
                "configuration": {"@type": STRING_VALUE, "value": "".join(sections)},
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
            plugin["configuration"]["value"] = _as_section(section, plugin["configuration"]["value"])
    return cfg


def four_module_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The inverse of one_module_config: the gw.gateway filter as one Wasm
    filter per section (gw.<module>, dist/wasm/<module>.wasm next to
    gateway.wasm), in the sections' order, and a bootstrap service of the
    gateway's VM as the service of the module its one section names.
    A config without gw.gateway is returned unchanged."""
    cfg = copy.deepcopy(cfg)
    vm_of = {section: vm_id for vm_id, section in GATEWAY_SECTIONS.items()}

    def module_vm(section: str) -> str:
        if section not in vm_of:
            raise ValueError(f"gateway configuration: unknown section {section!r} (have {sorted(vm_of)})")
        return vm_of[section]

    def visit(d: dict[str, Any]) -> None:
        filters = d.get("http_filters")
        if not isinstance(filters, list):
            return
        at = next((i for i, f in enumerate(filters)
                   if f.get("typed_config", {}).get("config", {}).get("vm_config", {}).get("vm_id") == GATEWAY_VM),
                  None)
        if at is None:
            return
        gateway = filters[at]["typed_config"]
        plugin = gateway["config"]
        gateway_wasm = Path(plugin["vm_config"]["code"]["local"]["filename"])
        ours = []
        for section, text in sections_of(plugin.get("configuration", {}).get("value", "")).items():
            vm_id = module_vm(section)
            config: dict[str, Any] = {
                "name": vm_id, "root_id": vm_id,
                "vm_config": {"vm_id": vm_id, "runtime": plugin["vm_config"]["runtime"],
                              "code": {"local": {"filename": str(gateway_wasm.with_name(vm_id[len("gw_"):] + ".wasm"))}}},
                "failure_policy": plugin["failure_policy"],
            }
            if vm_id in HOLDS_HEADERS and plugin.get("allow_on_headers_stop_iteration"):
                config["allow_on_headers_stop_iteration"] = True
            config["configuration"] = {"@type": STRING_VALUE, "value": text}
            ours.append({"name": "gw." + vm_id[len("gw_"):],
                         "typed_config": {"@type": gateway["@type"], "config": config}})
        d["http_filters"] = filters[:at] + ours + filters[at + 1:]

    walk_dicts(cfg, visit)
    for ext in cfg.get("bootstrap_extensions", []):
        plugin = ext.get("typed_config", {}).get("config", {})
        if plugin.get("vm_config", {}).get("vm_id") == GATEWAY_VM:
            [(section, text)] = sections_of(plugin["configuration"]["value"]).items()
            vm_id = module_vm(section)
            plugin["root_id"] = plugin["vm_config"]["vm_id"] = vm_id
            local = plugin["vm_config"]["code"]["local"]
            local["filename"] = str(Path(local["filename"]).with_name(vm_id[len("gw_"):] + ".wasm"))
            plugin["configuration"]["value"] = text
    return cfg


def filter_configuration(src: str | Path | dict[str, Any], vm_id: str) -> str:
    """The configuration text of one filter (gw_identity, gw_audit_sender, ...)
    in a config of either deployment: its section, for a one-module config."""
    cfg = src if isinstance(src, dict) else load_config(src)
    plugins = wasm_filters(four_module_config(cfg))
    if vm_id not in plugins:
        raise KeyError(f"no wasm filter {vm_id!r} in config (have {sorted(plugins)})")
    return str(plugins[vm_id]["configuration"]["value"])
