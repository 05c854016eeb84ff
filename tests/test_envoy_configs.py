"""Every Envoy config under envoy/ is valid for stock Envoy 1.40 and loads our
Wasm filters (validate mode does load and compile the .wasm files: a corrupt
module fails validation with "Unable to create Wasm plugin")."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import gwstack as stack_mod

CONFIGS = sorted((stack_mod.ENVOY_DIR).glob("*.yaml")) + sorted((stack_mod.ENVOY_DIR / "one-module").glob("*.yaml"))


def _id(p: Path) -> str:
    return str(p.relative_to(stack_mod.ENVOY_DIR))


def test_there_are_configs() -> None:
    names = {_id(p) for p in CONFIGS}
    assert {"gateway.yaml", "mcp-only.yaml", "a2a-only.yaml", "one-module/gateway.yaml",
            "one-module/mcp-only.yaml", "one-module/a2a-only.yaml"} <= names


@pytest.mark.timeout(180)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_envoy_validates(config: Path, wasm_built: Path, run_root: Path) -> None:
    [(path, rc, out)] = stack_mod.validate([config], run_dir=run_root / "validate")
    assert rc == 0, out


def test_validate_rejects_a_broken_wasm(wasm_built: Path, run_root: Path, tmp_path: Path) -> None:
    """Guards the test above: validation would catch a module that cannot load."""
    bad = tmp_path / "wasm"
    bad.mkdir()
    for name in stack_mod.FILTERS.values():
        (bad / name).write_bytes((wasm_built / name).read_bytes())
    broken = "gateway.wasm" if stack_mod.ONE_MODULE else "audit.wasm"
    (bad / broken).write_bytes(b"\0asm garbage")
    cfg = stack_mod.render_config("envoy/gateway.yaml", wasm_dir=bad,
                                  certs=stack_mod.generate_certs(run_root / "validate" / "certs"))
    out = stack_mod.write_config(cfg, tmp_path / "bad.yaml")
    import subprocess

    proc = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert ("gw_gateway" if stack_mod.ONE_MODULE else "gw_audit") in proc.stdout + proc.stderr


def test_split_configs_are_up_to_date() -> None:
    for path, text in stack_mod.split_files().items():
        assert path.read_text() == text, f"{path.name} is stale: run `just envoy-split`"


def _filters(cfg: dict) -> list[str]:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in hcm["http_filters"]]


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_filter_chain_order_and_policy(config: Path) -> None:
    cfg = yaml.safe_load(config.read_text())
    # stateful_session: MCP session affinity (docs/mcp.md), inert without an Mcp-Session-Id
    affinity = "envoy.filters.http.stateful_session"
    chain = ["gw.audit", "gw.identity", "gw.tool_acl", "gw.rate_limit", affinity, "envoy.filters.http.router"]
    sections = ["audit:", "identity:", "toolAcl:", "rateLimit:"]
    # Every instance keeps the tool ACL stage: on the A2A one it applies the
    # `a2a:` section (access rules, task isolation, version pinning).
    if config.parent.name == "one-module":
        assert _filters(cfg) == ["gw.gateway", affinity, "envoy.filters.http.router"]
        text = stack_mod.wasm_filters(cfg)["gw_gateway"]["configuration"]["value"]
        assert [line for line in text.splitlines() if line and not line.startswith(" ")] == sections
    else:
        assert _filters(cfg) == chain
    for vm_id, plugin in stack_mod.wasm_filters(cfg).items():
        assert plugin["failure_policy"] == "FAIL_CLOSED", vm_id
        assert plugin["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
        assert plugin["configuration"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
        yaml.safe_load(plugin["configuration"]["value"])  # the filter config is YAML


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_streaming_timeouts(config: Path) -> None:
    cfg = yaml.safe_load(config.read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["always_set_request_id_in_response"] is True
    assert hcm["normalize_path"] is True and hcm["merge_slashes"] is True
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert routes
    for r in routes:
        action = r["route"]
        assert action["timeout"] == "0s", r["name"]
        idle = int(action["idle_timeout"].rstrip("s"))
        assert idle >= (3600 if r["name"].startswith("a2a") else 300), r["name"]


def test_the_module_lists_agree() -> None:
    """The filter/module list is kept in three places that cannot read one
    another (the justfile's build loop, the Cargo workspace, the harness's
    FILTERS): they must name the same modules, or a module would be built
    but never loaded, or loaded but never rebuilt."""
    import re
    import tomllib

    just = (stack_mod.ROOT / "justfile").read_text()
    modules = re.search(r'^modules := "([^"]*)"', just, re.M).group(1).split()
    crates = re.search(r'^wasm_crates := "([^"]*)"', just, re.M).group(1).split()
    workspace = tomllib.loads((stack_mod.ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    wasm_dirs = sorted(m for m in workspace if m.startswith("filters/wasm/"))
    built = {}
    for d in wasm_dirs:
        manifest = tomllib.loads((stack_mod.ROOT / d / "Cargo.toml").read_text())
        built[manifest["package"]["name"]] = manifest["lib"]["name"]
    assert sorted(crates) == sorted(built), (crates, built)
    assert sorted(modules) == sorted(built.values()), (modules, built)
    assert sorted(f"{m}.wasm" for m in modules) == sorted(stack_mod.FILTERS.values())
