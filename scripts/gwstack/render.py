"""Rendering an Envoy config for a run: ports, upstreams, certificates,
absolute Wasm paths, per-test filter configurations."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .layout import FOUR_MODULES, GATEWAY_VM, ROOT, WASM_DIR
from .one_module import four_module_config, one_module_config
from .yamltree import load_config, walk_dicts, wasm_filters

# How render_config deploys the chain: "one" (gateway.wasm), "four" (the four
# filters), "as-is" (the form the config was written in: validation). None:
# the harness's deployment, one module unless GW_FOUR_MODULES=1.
DEPLOYMENTS = ("one", "four", "as-is")


def harness_deployment() -> str:
    return "four" if FOUR_MODULES else "one"


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
    deployment: str | None = None,
) -> dict[str, Any]:
    """Return a patched copy of an Envoy config.

    ports:          {"admin": p, "<listener name>": p}
    upstreams:      {"<cluster name>": port | (host, port)}: rewrites the cluster's endpoints
    certs:          {"cert": path, "key": path} (from generate_certs)
    wasm_dir:       where the .wasm files are (default dist/wasm)
    filter_configs: {"gw_identity": "yaml text" | dict}: replaces that filter's configuration
    patch:          last-chance callback that edits the dict in place
    deployment:     "one" | "four" | "as-is" (DEPLOYMENTS); default: the harness's

    filter_configs and patch always address the four filters (gw_audit,
    gw_identity, gw_tool_acl, gw_rate_limit, gw_audit_sender): a one-module
    config is rewritten as four first, and back as one at the end.
    """
    deployment = deployment or harness_deployment()
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"deployment {deployment!r}: expected one of {DEPLOYMENTS}")
    cfg = copy.deepcopy(src) if isinstance(src, dict) else load_config(src)
    if deployment == "as-is":
        deployment = "one" if GATEWAY_VM in wasm_filters(cfg) else "four"
    cfg = four_module_config(cfg)
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
            if vm_id not in plugins:
                raise KeyError(f"no wasm filter with vm_id {vm_id!r} in config (have {sorted(plugins)})")
            text = conf if isinstance(conf, str) else yaml.safe_dump(conf, sort_keys=False)
            plugins[vm_id]["configuration"] = {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": text,
            }

    if patch:
        patch(cfg)
    if deployment == "one":
        # last: the callers' filter_configs and patches address the four filters
        cfg = one_module_config(cfg)
    return cfg


def write_config(cfg: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
