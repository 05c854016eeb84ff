"""Loading Envoy configs and walking them: the Wasm plugins by vm_id."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from .layout import ROOT


def load_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_absolute():
        p = ROOT / p
    with open(p) as f:
        return yaml.safe_load(f)


def walk_dicts(node: Any, fn: Callable[[dict[str, Any]], None]) -> None:
    """Call `fn` on every mapping of a loaded config, depth first (it may edit them)."""
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            walk_dicts(v, fn)
    elif isinstance(node, list):
        for v in node:
            walk_dicts(v, fn)


def wasm_filters(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """vm_id or plugin name -> the Wasm `config` (PluginConfig) dict, for HTTP
    filters and bootstrap services.

    Several plugins may share a vm_id (the audit HTTP filter and its sender
    service both use "gw_audit"): the vm_id key then means the plugin whose
    `name` equals the vm_id (the HTTP filter), and every plugin is also
    reachable by its own `name` (e.g. "gw_audit_sender")."""
    plugins: list[dict[str, Any]] = []

    def visit(d: dict[str, Any]) -> None:
        vm = d.get("vm_config")
        if isinstance(vm, dict) and "vm_id" in vm:
            plugins.append(d)

    walk_dicts(cfg, visit)
    found: dict[str, dict[str, Any]] = {}
    for d in plugins:
        vm_id = d["vm_config"]["vm_id"]
        if d.get("name") == vm_id or vm_id not in found:
            found[vm_id] = d
    for d in plugins:
        name = d.get("name")
        if isinstance(name, str):
            found.setdefault(name, d)
    return found
