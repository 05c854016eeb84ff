"""`Stack`: backends + Envoy, started together, stopped together."""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .certs import generate_certs
from .layout import BACKEND_CLUSTERS, DEFAULT_PORTS, FILTERS, PYTHON, ROOT, WASM_DIR
from .processes import Proc
from .render import render_config, write_config
from .util import _handed_out, _http_get, envoy_binary, free_port, http_ok, port_is_free, tail
from .yamltree import load_config, wasm_filters


class StackError(RuntimeError):
    pass

_live_stacks: list["Stack"] = []


def _stop_all() -> None:
    for s in list(_live_stacks):
        s.stop()

atexit.register(_stop_all)


@dataclass
class Stack:
    """Backends + Envoy, started together, stopped together.

    config:          Envoy config under envoy/ (gateway.yaml, mcp-only.yaml, a2a-only.yaml)
    workers:         Envoy --concurrency
    ports:           fixed ports {"gateway", "admin", "mcp_upstream", "a2a_upstream", <cluster>...};
                     anything missing is free-picked
    prefer_defaults: try the recipe's ports (8443, 9901, 3000, 4000) first (demo)
    filter_configs:  {vm_id: yaml text | dict} replacing a filter's configuration
    extra_upstreams: {cluster name: port} for clusters served by processes you add
    backends:        which example backends to run: "mcp", "a2a", "audit" (the audit
                     collector); default: those whose cluster is in the config
    audit_collector_args: extra flags for examples/audit_collector (e.g. "--delay-ms", "50")
    deployment:      "one" (gateway.wasm) | "four" (four filters) | "as-is"; default: one
                     module unless GW_FOUR_MODULES=1 (render_config)

    Adding a process of your own (e.g. a token-introspection or audit-sink
    server that a new cluster in gateway.yaml points at):

        port = free_port()
        s = Stack(extra_upstreams={"identity_service": port},
                  filter_configs={"gw_identity": "authMethods: [...]"})
        s.add_process("identity_service", [PYTHON, "tests/fake_idp.py", str(port)],
                      ready_url=f"http://127.0.0.1:{port}/healthz")
        s.start()
    """

    config: str = "envoy/gateway.yaml"
    workers: int = 2
    run_dir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    prefer_defaults: bool = False
    filter_configs: dict[str, Any] = field(default_factory=dict)
    extra_upstreams: dict[str, Any] = field(default_factory=dict)
    backends: tuple[str, ...] | None = None
    audit_collector_args: tuple[str, ...] = ()
    wasm_dir: Path | None = None
    envoy_log_level: str = "info"
    component_log_level: str = "wasm:debug"
    patch: Callable[[dict[str, Any]], None] | None = None
    deployment: str | None = None
    start_timeout: float = 60.0
    a2a_stream_steps: int = 3

    procs: list[Proc] = field(default_factory=list, init=False)
    extra_procs: list[Proc] = field(default_factory=list, init=False)
    rendered: Path | None = field(default=None, init=False)
    certs: dict[str, Path] = field(default_factory=dict, init=False)

    # ---- public view
    @property
    def gateway_port(self) -> int:
        return self.ports["gateway"]

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.gateway_port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def a2a_url(self) -> str:
        return f"{self.base_url}/a2a"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    @property
    def ca_path(self) -> Path:
        return self.certs["ca"]

    @property
    def audit_events_path(self) -> Path:
        """JSON lines written by the example audit collector."""
        assert self.run_dir is not None
        return self.run_dir / "audit-events.jsonl"

    def upstream_url(self, cluster: str) -> str:
        return f"http://127.0.0.1:{self.ports[cluster]}"

    def log_path(self, name: str) -> Path:
        assert self.run_dir is not None
        return self.run_dir / f"{name}.log"

    def add_process(self, name: str, argv: list[str], ready_url: str | None = None, env: dict[str, str] | None = None) -> None:
        """Register another process (e.g. an OAuth or audit sink server) to start
        before Envoy and stop with the stack. Call before start()."""
        ready = (lambda: http_ok(ready_url)) if ready_url else None
        self.extra_procs.append(Proc(name, argv, Path(""), ready, env))

    # ---- lifecycle
    def _pick(self, name: str) -> int:
        if name in self.ports:
            return self.ports[name]
        default = DEFAULT_PORTS.get(name)
        if self.prefer_defaults and default and default not in _handed_out and port_is_free(default):
            _handed_out.add(default)
            port = default
        else:
            port = free_port()
        self.ports[name] = port
        return port

    def start(self) -> "Stack":
        if self.run_dir is None:
            self.run_dir = ROOT / ".run" / f"stack-{os.getpid()}-{int(time.time())}"
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _live_stacks.append(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self.run_dir is not None
        base = load_config(self.config)
        clusters = {c["name"] for c in base["static_resources"]["clusters"]}
        backends = self.backends
        if backends is None:
            backends = tuple(b for b, c in BACKEND_CLUSTERS.items() if c in clusters)

        self._pick("gateway")
        self._pick("admin")
        upstreams: dict[str, Any] = {}
        for b in backends:
            upstreams[BACKEND_CLUSTERS[b]] = self._pick(BACKEND_CLUSTERS[b])
        for cluster, port in self.extra_upstreams.items():
            upstreams[cluster] = port
            self.ports.setdefault(cluster, port if isinstance(port, int) else port[1])

        self.certs = generate_certs(ROOT / ".run" / "certs") if self.prefer_defaults else generate_certs(self.run_dir / "certs")

        missing = [f for f in FILTERS.values() if not (Path(self.wasm_dir or WASM_DIR) / f).exists()]
        if missing and self._uses_wasm(base):
            raise StackError(f"missing wasm artifacts {missing} in {self.wasm_dir or WASM_DIR}: run `just build`")

        cfg = render_config(
            base,
            ports={"gateway": self.ports["gateway"], "admin": self.ports["admin"]},
            upstreams=upstreams,
            certs=self.certs,
            wasm_dir=self.wasm_dir,
            filter_configs=self.filter_configs,
            patch=self.patch,
            deployment=self.deployment,
        )
        self.rendered = write_config(cfg, self.run_dir / "envoy.yaml")

        if "mcp" in backends:
            port = self.ports["mcp_upstream"]
            self.procs.append(
                Proc("mcp_server", [PYTHON, "-m", "examples.mcp_server.server", "--port", str(port)],
                     self.log_path("mcp_server"), ready=lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz"))
            )
        if "a2a" in backends:
            port = self.ports["a2a_upstream"]
            self.procs.append(
                Proc("a2a_agent",
                     [PYTHON, "-m", "examples.a2a_agent.agent", "--port", str(port),
                      "--public-url", self.a2a_url, "--stream-steps", str(self.a2a_stream_steps)],
                     self.log_path("a2a_agent"), ready=lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz"))
            )
        if "audit" in backends:
            port = self.ports["audit_collector"]
            self.procs.append(
                Proc("audit_collector",
                     [PYTHON, "examples/audit_collector/collector.py", "--port", str(port),
                      "--out", str(self.audit_events_path), *self.audit_collector_args],
                     self.log_path("audit_collector"), ready=lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz"))
            )
        for p in self.extra_procs:
            p.log = self.log_path(p.name)
            self.procs.append(p)

        for p in self.procs:
            p.start()
        self._wait(self.procs)

        envoy = Proc(
            "envoy",
            [
                envoy_binary(), "-c", str(self.rendered),
                "--concurrency", str(self.workers),
                # No shared memory / hot restart: several Envoys can run on one
                # machine without --base-id clashes.
                "--disable-hot-restart",
                "--log-level", self.envoy_log_level,
                "--component-log-level", self.component_log_level,
            ],
            self.log_path("envoy"),
            ready=lambda: http_ok(f"{self.admin_url}/ready"),
        )
        self.procs.append(envoy)
        envoy.start()
        self._wait([envoy])

    @staticmethod
    def _uses_wasm(cfg: dict[str, Any]) -> bool:
        return bool(wasm_filters(cfg))

    def _wait(self, procs: list[Proc]) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = [p for p in procs if p.ready is not None]
        while pending:
            for p in list(pending):
                if not p.alive():
                    raise StackError(f"{p.name} exited during start-up (rc={p.popen and p.popen.returncode}); "
                                     f"log {p.log}:\n{tail(p.log)}")
                if p.ready and p.ready():
                    pending.remove(p)
            if time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise StackError(f"timed out waiting for {names}:\n" + "\n".join(f"--- {p.log}\n{tail(p.log)}" for p in pending))
            time.sleep(0.1)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        if self in _live_stacks:
            _live_stacks.remove(self)

    def assert_alive(self) -> None:
        dead = [p.name for p in self.procs if not p.alive()]
        if dead:
            raise StackError(f"processes died: {dead}; " + "; ".join(f"{n}: {tail(self.log_path(n), 20)}" for n in dead))

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- introspection
    def admin(self, path: str) -> tuple[int, str]:
        status, body = _http_get(f"{self.admin_url}{path}", timeout=5)
        return status, body.decode(errors="replace")

    def describe(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url, "mcp_url": self.mcp_url, "a2a_url": self.a2a_url,
            "admin_url": self.admin_url, "ca": str(self.ca_path), "ports": self.ports,
            "run_dir": str(self.run_dir), "config": str(self.rendered),
        }
