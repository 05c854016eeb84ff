"""The generated configs (`./dev envoy-split`): MCP-only, A2A-only,
docker-compose and four-module variants of envoy/gateway.yaml.

envoy/gateway.yaml (one module, gateway.wasm) is the one hand-written source:
the shipped default, whose comments document the recipe's policies, is the
file people read and edit. The four-module files are a mechanical rewrite of
it (one_module.four_module_config: one filter per section, the section's
comments with it), so they need no second source to keep in step.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .layout import ENVOY_DIR
from .one_module import four_module_config, one_module_config
from .yamltree import load_config, walk_dicts, wasm_filters


def split_config(cfg: dict[str, Any], keep: str) -> dict[str, Any]:
    """Derive a single-protocol instance ('mcp' or 'a2a') from gateway.yaml."""
    cfg = copy.deepcopy(cfg)
    drop = {"mcp": "a2a", "a2a": "mcp"}[keep]
    res = cfg["static_resources"]
    res["clusters"] = [c for c in res["clusters"] if not c["name"].startswith(drop)]

    def visit(d: dict[str, Any]) -> None:
        if "routes" in d and isinstance(d["routes"], list):
            d["routes"] = [r for r in d["routes"] if not str(r.get("name", "")).startswith(drop)]

    walk_dicts(cfg, visit)
    if keep == "a2a":
        # The tool ACL stage stays: its `a2a:` section is the A2A access
        # rules, task isolation and version pinning (docs/a2a.md).
        # separate instance: different default ports than the MCP one
        res["listeners"][0]["address"]["socket_address"]["port_value"] = 8444
        cfg["admin"]["address"]["socket_address"]["port_value"] = 9902
    return cfg

SPLIT_HEADER = """\
# GENERATED from envoy/gateway.yaml by `./dev envoy-split` (scripts/stack.py split).
# Do not edit: edit envoy/gateway.yaml and regenerate (a test checks they agree).
# {what}-only gateway instance: the recipe's last gotcha says MCP (low latency)
# and A2A (long-running tasks) should not share an instance in production.
# The comments on Envoy's settings are in envoy/gateway.yaml; the filter's
# sections keep theirs.
"""

FOUR_MODULES_HEADER = """\
# GENERATED from envoy/{source} by `./dev envoy-split` (scripts/stack.py split).
# Do not edit: edit envoy/gateway.yaml and regenerate (a test checks they agree).
# The same gateway with the chain as four Wasm modules (dist/wasm/audit.wasm,
# identity.wasm, tool_acl.wasm, rate_limit.wasm), for those who want the
# filters a la carte: each section of the gw.gateway filter's configuration is
# one filter's, verbatim, with its comments. One module is the cheaper
# deployment in every cell of BENCHMARKS.md (docs/deployment.md).
"""

# docker-compose.yml: the compose services that serve each cluster of
# gateway.yaml (DNS names on the compose network instead of 127.0.0.1).
# mcp-server-2 runs with the `replicas` profile; without it the name does not
# resolve and Envoy balances over the one replica there is. The example MCP
# server is stateless (no session to pin), so replicas need no affinity.
COMPOSE_UPSTREAMS: dict[str, list[tuple[str, int]]] = {
    "mcp_upstream": [("mcp-server", 3000), ("mcp-server-2", 3000)],
    "a2a_upstream": [("a2a-agent", 4000)],
    "identity_service": [("identity-service", 8081)],
    "oauth_server": [("oauth-server", 9000)],
    "audit_collector": [("audit-collector", 9100)],
}
# webdis, the HTTP front of Redis the rate limit shares its windows through.
COMPOSE_REDIS_CLUSTER = "gw_rate_limit_redis"
COMPOSE_WEBDIS = ("webdis", 7379)

COMPOSE_HEADER = """\
# GENERATED from envoy/{source} by `./dev envoy-split` (scripts/stack.py split).
# Do not edit: edit envoy/gateway.yaml and regenerate (a test checks they agree).
# The gateway as docker-compose.yml runs it: upstreams are the compose services
# (STRICT_DNS on their names), and the rate limit shares its windows through
# Redis (webdis), so several gateway replicas enforce one limit.
"""


def compose_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A four-module config for the docker-compose network (split_files
    rewrites the result as one module for the default)."""
    cfg = copy.deepcopy(cfg)
    clusters = cfg["static_resources"]["clusters"]
    for cluster in clusters:
        targets = COMPOSE_UPSTREAMS.get(cluster.get("name"))
        if targets is None:
            continue
        # service names: resolved by Envoy, re-resolved when a container restarts
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_ONLY"
        cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
            for host, port in targets]}]
    host, port = COMPOSE_WEBDIS
    clusters.append({
        "name": COMPOSE_REDIS_CLUSTER, "type": "STRICT_DNS", "dns_lookup_family": "V4_ONLY",
        "connect_timeout": "0.25s",
        "load_assignment": {"cluster_name": COMPOSE_REDIS_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
    })
    store = f"# Shared windows for every gateway replica (docs/rate-limit.md).\nredisStore:\n  cluster: {COMPOSE_REDIS_CLUSTER}\n"
    # four-module form only: the one-module form is derived from it (sections verbatim)
    conf = wasm_filters(cfg)["gw_rate_limit"]["configuration"]
    conf["value"] = conf["value"].rstrip("\n") + "\n" + store
    # A2A task owners shared by the replicas through the same webdis
    # (docs/a2a.md), inserted as text so the section keeps its comments.
    acl = wasm_filters(cfg)["gw_tool_acl"]["configuration"]
    anchor = "\n  taskIsolation:\n"
    if anchor in acl["value"]:
        acl["value"] = acl["value"].replace(
            anchor, f"{anchor}    # Owners shared by every gateway replica (docs/a2a.md).\n"
                    f"    redisStore:\n      cluster: {COMPOSE_REDIS_CLUSTER}\n", 1)
    return cfg


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the filters' configurations, with their comments)
    as literal blocks, readable as written, instead of quoted lines."""


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)


_Dumper.add_representer(str, _str)


def dump(cfg: dict[str, Any]) -> str:
    return yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, width=120)


def split_files() -> dict[Path, str]:
    """Every generated file under envoy/ -> its text."""
    base = load_config(ENVOY_DIR / "gateway.yaml")
    out = {}
    variants = {"gateway.yaml": base}
    for keep in ("mcp", "a2a"):
        cfg = split_config(base, keep)
        variants[f"{keep}-only.yaml"] = cfg
        out[ENVOY_DIR / f"{keep}-only.yaml"] = SPLIT_HEADER.format(what=keep.upper()) + dump(cfg)
    for name, cfg in variants.items():
        out[ENVOY_DIR / "four-modules" / name] = FOUR_MODULES_HEADER.format(source=name) + dump(four_module_config(cfg))
    # compose_config edits the rate limit's and the tool ACL's configurations
    # as text: on the four-module form, where each is a whole configuration
    compose = compose_config(four_module_config(base))
    out[ENVOY_DIR / "compose" / "gateway.yaml"] = (COMPOSE_HEADER.format(source="gateway.yaml")
                                                   + dump(one_module_config(compose)))
    out[ENVOY_DIR / "compose" / "four-modules.yaml"] = (
        COMPOSE_HEADER.format(source="four-modules/gateway.yaml") + dump(compose))
    return out
