"""Rendering an Envoy config for a run: ports, upstreams, certificates,
absolute Wasm paths, per-test filter configurations."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .layout import GATEWAY_SECTIONS, GATEWAY_VM, ONE_MODULE, ROOT, WASM_DIR
from .one_module import _indent, one_module_config
from .yamltree import load_config, walk_dicts, wasm_filters


def render_config(
    src: str | Path | dict[str, Any],
    *,
    ports: Mapping[str, int] | None = None,
    upstreams: Mapping[str, tuple[str, int] | int] | None = None,
    certs: Mapping[str, Path] | None = None,
    wasm_dir: Path | None = None,
    filter_configs: Mapping[str, str | dict[str, Any]] | None = None,
    reuse_port: bool = False,
    patch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Return a patched copy of an Envoy config.

    ports:          {"admin": p, "<listener name>": p}
    upstreams:      {"<cluster name>": port | (host, port)}: rewrites the cluster's endpoints
    certs:          {"cert": path, "key": path} (from generate_certs)
    wasm_dir:       where the .wasm files are (default dist/wasm)
    filter_configs: {"gw_identity": "yaml text" | dict}: replaces that filter's configuration
    patch:          last-chance callback that edits the dict in place
    """
    cfg = copy.deepcopy(src) if isinstance(src, dict) else load_config(src)
    ports = dict(ports or {})
    wasm_dir = Path(wasm_dir or WASM_DIR)

    if "admin" in ports:
        cfg["admin"]["address"]["socket_address"]["port_value"] = int(ports["admin"])

    for listener in cfg.get("static_resources", {}).get("listeners", []):
        name = listener.get("name")
        if name in ports:
            listener["address"]["socket_address"]["port_value"] = int(ports[name])
        if not reuse_port:
            listener["enable_reuse_port"] = False

    for cluster in cfg.get("static_resources", {}).get("clusters", []):
        target = (upstreams or {}).get(cluster.get("name"))
        if target is None:
            continue
        host, port = ("127.0.0.1", target) if isinstance(target, int) else target
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                sa = ep["endpoint"]["address"]["socket_address"]
                sa["address"], sa["port_value"] = host, int(port)

    def fix_files(d: dict[str, Any]) -> None:
        fn = d.get("filename")
        if not isinstance(fn, str):
            return
        if fn.startswith("dist/wasm/"):
            d["filename"] = str(wasm_dir / fn[len("dist/wasm/") :])
        elif certs and fn.endswith("tls.crt"):
            d["filename"] = str(certs["cert"])
        elif certs and fn.endswith("tls.key"):
            d["filename"] = str(certs["key"])
        elif not os.path.isabs(fn) and not fn.startswith("/dev/"):
            d["filename"] = str(ROOT / fn)

    walk_dicts(cfg, fix_files)

    if filter_configs:
        plugins = wasm_filters(cfg)
        for vm_id, conf in filter_configs.items():
            if vm_id not in plugins and vm_id in GATEWAY_SECTIONS and GATEWAY_VM in plugins:
                # one-module config: replace that filter's section
                gateway = plugins[GATEWAY_VM]["configuration"]
                doc = yaml.safe_load(gateway["value"])
                doc[GATEWAY_SECTIONS[vm_id]] = yaml.safe_load(conf) if isinstance(conf, str) else conf
                gateway["value"] = yaml.safe_dump(doc, sort_keys=False)
                continue
            if vm_id not in plugins:
                raise KeyError(f"no wasm filter with vm_id {vm_id!r} in config (have {sorted(plugins)})")
            text = conf if isinstance(conf, str) else yaml.safe_dump(conf, sort_keys=False)
            plugin = plugins[vm_id]
            if plugin.get("vm_config", {}).get("vm_id") == GATEWAY_VM and vm_id == "gw_audit_sender":
                text = f"audit:\n{_indent(text)}"
            plugin["configuration"] = {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": text,
            }

    if patch:
        patch(cfg)
    if ONE_MODULE:
        # last: the callers' filter_configs and patches address the four filters
        cfg = one_module_config(cfg)
    return cfg


def write_config(cfg: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
