"""The attack suite's stack: envoy/gateway.yaml exactly as shipped (every
filter configuration unchanged, the real identity filter with its demo keys),
plus the example identity service on the shipped `identity_service` cluster,
which knows a pool of extra agents so that cases that count (rate limits)
each get agents of their own. The OAuth cluster points at a closed port: a
bearer token can only be refused. One stack for the whole package; every
case checks what reached the upstreams (support.Watch) and, after it ran,
that no Wasm VM crashed (the Envoy log since the case started)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gwstack as stack_mod
from attacks.support import CRASH, AttackGateway
from gwstack import PYTHON, Proc, Stack, free_port, http_ok

ROLES = {"sentinel": 40, "admin": 20, "alchemy": 10}
# One agent known under two keys: the same agent id, two credentials.
TWIN = "sentinel-atk-twin"


@pytest.fixture(scope="package")
def atk(start_stack: Callable[..., Stack], run_root: Path) -> Iterator[AttackGateway]:
    run_dir = run_root / "attacks_identity"
    run_dir.mkdir(parents=True, exist_ok=True)
    agents, keys = [], {}
    for role, n in ROLES.items():
        keys[role] = []
        for i in range(n):
            agent_id = f"{role}-atk-{i}"
            key = f"atk-key-{agent_id}"
            keys[role].append(key)
            agents.append({"id": agent_id, "name": agent_id, "owner": "attack-suite",
                           "keySha256": hashlib.sha256(key.encode()).hexdigest()})
    keys["twin"] = [f"atk-key-{TWIN}-a", f"atk-key-{TWIN}-b"]
    for k in keys["twin"]:
        agents.append({"id": TWIN, "name": TWIN, "owner": "attack-suite",
                       "keySha256": hashlib.sha256(k.encode()).hexdigest()})
    (run_dir / "agents.json").write_text(json.dumps(agents))
    port = free_port()
    ident = Proc("identity_service",
                 [PYTHON, str(stack_mod.ROOT / "examples" / "identity_service" / "service.py"), "--port", str(port),
                  "--agents", str(run_dir / "agents.json"), "--enable-faults"],
                 run_dir / "identity_service.log", ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
    ident.start()
    try:
        deadline = time.monotonic() + 30
        while not (ident.ready and ident.ready()):
            assert ident.alive(), stack_mod.tail(ident.log)
            assert time.monotonic() < deadline, stack_mod.tail(ident.log)
            time.sleep(0.1)
        s = start_stack("attacks", config="envoy/gateway.yaml",
                        extra_upstreams={"identity_service": port, "oauth_server": free_port()})
        gw = AttackGateway(s, {})
        gw.identity_url = f"http://127.0.0.1:{port}"
        gw.keys = keys
        yield gw
        text = gw.log()
        # stopped here, not at the end of the session: the machine is shared
        s.stop()
        crashes = [line for line in text.splitlines() if CRASH.search(line)]
        assert not crashes, "a Wasm VM crashed:\n" + "\n".join(crashes[:20])
    finally:
        ident.stop()


@pytest.fixture(autouse=True)
def _no_vm_crash(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every case: Envoy alive, no Wasm panic / failed callback in its log."""
    if "atk" not in request.fixturenames:
        yield
        return
    gw: AttackGateway = request.getfixturevalue("atk")
    offset = gw.stack.log_path("envoy").stat().st_size
    yield
    gw.stack.assert_alive()
    text, _ = gw.envoy_log_since(offset)
    crashes = [line for line in text.splitlines() if CRASH.search(line)]
    assert not crashes, "a Wasm VM crashed during this case:\n" + "\n".join(crashes[:20])
