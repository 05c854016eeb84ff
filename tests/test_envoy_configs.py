"""Every Envoy config under envoy/ is valid for stock Envoy 1.40 and loads our
Wasm filters (validate mode does load and compile the .wasm files: a corrupt
module fails validation with "Unable to create Wasm plugin")."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import gwstack as stack_mod

CONFIGS = sorted((stack_mod.ENVOY_DIR).glob("*.yaml")) + sorted((stack_mod.ENVOY_DIR / "four-modules").glob("*.yaml"))


def _id(p: Path) -> str:
    return str(p.relative_to(stack_mod.ENVOY_DIR))


def test_there_are_configs() -> None:
    names = {_id(p) for p in CONFIGS}
    assert {"gateway.yaml", "mcp-only.yaml", "a2a-only.yaml", "four-modules/gateway.yaml",
            "four-modules/mcp-only.yaml", "four-modules/a2a-only.yaml"} <= names


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
    """Every generated file under envoy/ is what `./dev envoy-split` writes
    now, and nothing else is there: gateway.yaml is the only hand-written one."""
    files = stack_mod.split_files()
    for path, text in files.items():
        assert path.exists() and path.read_text() == text, f"{path} is stale: run `./dev envoy-split`"
    on_disk = set(stack_mod.ENVOY_DIR.glob("**/*.yaml"))
    assert on_disk == set(files) | {stack_mod.ENVOY_DIR / "gateway.yaml"}, sorted(map(_id, on_disk))


def test_the_two_deployments_are_one_config() -> None:
    """The rewrites between one module and four lose nothing: each config is
    the one-module form of its four-module form, byte for byte in each
    section (comments included), so the harness, which applies the tests'
    patches to four filters and renders one module, runs the shipped file."""
    for path in stack_mod.ENVOY_DIR.glob("**/*.yaml"):
        cfg = stack_mod.load_config(path)
        four = stack_mod.four_module_config(cfg)
        assert stack_mod.GATEWAY_VM not in stack_mod.wasm_filters(four), _id(path)
        assert stack_mod.one_module_config(four) == stack_mod.one_module_config(cfg), _id(path)
        if stack_mod.GATEWAY_VM in stack_mod.wasm_filters(cfg):
            assert stack_mod.one_module_config(four) == cfg, _id(path)
            rendered = stack_mod.render_config(path, deployment="one")
            assert rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"] == \
                stack_mod.render_config(cfg, deployment="as-is")["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    # every section's comments reach the four-module files
    shipped = (stack_mod.ENVOY_DIR / "gateway.yaml").read_text()
    four_text = (stack_mod.ENVOY_DIR / "four-modules" / "gateway.yaml").read_text()
    for line in ("# Define which agents can invoke which tools", "# The recipe's policies/agent-rate-limit.yaml"):
        assert line in shipped and line in four_text, line


def test_four_module_rewrite_refuses_an_unknown_section() -> None:
    cfg = stack_mod.load_config(stack_mod.ENVOY_DIR / "gateway.yaml")
    plugin = stack_mod.wasm_filters(cfg)[stack_mod.GATEWAY_VM]
    plugin["configuration"]["value"] += "toolAcls: {}\n"
    with pytest.raises(ValueError, match="toolAcls"):
        stack_mod.four_module_config(cfg)


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
    if config.parent.name != "four-modules":
        assert _filters(cfg) == ["gw.gateway", affinity, "envoy.filters.http.router"]
        text = stack_mod.wasm_filters(cfg)["gw_gateway"]["configuration"]["value"]
        assert [line for line in text.splitlines() if line and line[0] not in " #"] == sections
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
    """One list of modules: the packages under filters/wasm/. The Cargo
    workspace globs them, the justfile and the harness read them
    (gwstack.modules): no hand-kept copy of the list is left to drift."""
    import re
    import tomllib

    just = (stack_mod.ROOT / "justfile").read_text()
    assert re.search(r'^wasm_crates := `\.venv/bin/python scripts/gwstack/modules\.py crates`$', just, re.M)
    assert re.search(r'^modules := `\.venv/bin/python scripts/gwstack/modules\.py modules`$', just, re.M)
    workspace = tomllib.loads((stack_mod.ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    assert "filters/wasm/*" in workspace and not [m for m in workspace if m.startswith("filters/wasm/") and m != "filters/wasm/*"]
    built = {}
    for manifest in sorted((stack_mod.ROOT / "filters" / "wasm").glob("*/Cargo.toml")):
        data = tomllib.loads(manifest.read_text())
        built[data["package"]["name"]] = data["lib"]["name"]
    assert set(built.values()) >= {"audit", "identity", "tool_acl", "rate_limit", "gateway"}, built
    from gwstack.modules import wasm_modules

    assert wasm_modules() == built
    assert sorted(stack_mod.FILTERS.values()) == sorted(f"{m}.wasm" for m in built.values())
    # the one-module sections are the other modules
    assert sorted(stack_mod.GATEWAY_SECTIONS.values()) == ["audit", "identity", "rateLimit", "toolAcl"]
