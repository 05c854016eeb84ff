#!/usr/bin/env python3
"""Latency of the identity filter's paths, through real Envoy over TLS.

Starts the gateway (1 worker) with the example identity service and OAuth
server, then times N sequential keep-alive requests per case to a path with
no route (Envoy's router answers 404 right after the filters, so no upstream
time is included) and prints median / p90 in microseconds:

  public            path listed in publicPaths: the filter only strips headers
  no credential     401 answered by the filter
  static key        SHA-256 lookup in the static agents
  cached key        validation result from shared data
  cached token      introspection result from shared data, scopes + audience checked
  key callout       a new key every request: validation callout (then 401)
  token callout     a new token every request: introspection callout (then 401)

The client (Python httpx) costs more than the gateway: compare the rows with
each other, not with other tools' absolute numbers.

Run: .venv/bin/python scripts/bench_identity.py [-n 400]
"""

from __future__ import annotations

import argparse
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

from gwstack import Stack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=400)
    args = ap.parse_args()

    import yaml

    from gwstack.support import Services, identity_config  # the same services and config as the e2e tests

    with tempfile.TemporaryDirectory() as tmp:
        services = Services(Path(tmp) / "services")
        services.start()
        conf = yaml.safe_load(identity_config())
        conf["publicPaths"] = ["/bench-public"]
        try:
            with Stack(config="envoy/gateway.yaml", workers=1, run_dir=Path(tmp) / "stack",
                       filter_configs={"gw_identity": yaml.safe_dump(conf)},
                       extra_upstreams={"identity_service": services.identity_port,
                                        "oauth_server": services.oauth_port}) as s:
                ctx = ssl.create_default_context(cafile=str(s.ca_path))
                token = services.token("admin-oauth")
                cases = [
                    ("public", "/bench-public", lambda: {}),
                    ("no credential", "/mcp/bench", lambda: {}),
                    ("static key", "/mcp/bench", lambda: {"x-agent-api-key": "gw-demo-admin-1"}),
                    ("cached key", "/mcp/bench", lambda: {"x-agent-api-key": "svc-key-admin-7"}),
                    ("cached token", "/mcp/bench", lambda: {"authorization": f"Bearer {token}"}),
                    ("key callout", "/mcp/bench", lambda: {"x-agent-api-key": secrets.token_hex(12)}),
                    ("token callout", "/mcp/bench", lambda: {"authorization": f"Bearer {secrets.token_hex(16)}"}),
                ]
                print(f"{'case':<15} {'status':>6} {'median µs':>10} {'p90 µs':>8}   (n={args.n}, 1 Envoy worker, TLS, keep-alive)")
                with httpx.Client(base_url=s.base_url, verify=ctx, timeout=10) as c:
                    for name, path, headers in cases:
                        for _ in range(20):  # warm up (and fill the cache)
                            c.get(path, headers=headers())
                        times = []
                        status = 0
                        for _ in range(args.n):
                            h = headers()
                            t0 = time.perf_counter()
                            status = c.get(path, headers=h).status_code
                            times.append((time.perf_counter() - t0) * 1e6)
                        times.sort()
                        print(f"{name:<15} {status:>6} {statistics.median(times):>10.0f} {times[int(len(times) * 0.9)]:>8.0f}")
        finally:
            services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
