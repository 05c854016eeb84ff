#!/usr/bin/env python3
"""CLI of the gateway harness (the code is the `gwstack` package next to this file).

  python scripts/stack.py demo      [--config envoy/gateway.yaml] [--workers 2]
  python scripts/stack.py render    --config envoy/gateway.yaml --out FILE
  python scripts/stack.py validate  [configs...]     (envoy --mode validate)
  python scripts/stack.py split     (regenerate envoy/{mcp,a2a}-only.yaml, compose/*, four-modules/*)
  python scripts/stack.py certs     (the demo certificate in .run/certs/)
  python scripts/stack.py envoy-path
"""

import sys

from gwstack.cli import main

if __name__ == "__main__":
    sys.exit(main())
