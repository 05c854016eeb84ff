"""Where things are and what the chain is made of: paths, the Wasm
filters by vm_id, the one-module sections, the deployment, default ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .modules import GATEWAY_MODULE, wasm_modules


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


ROOT = Path(__file__).resolve().parent.parent.parent
ENVOY_DIR = ROOT / "envoy"
WASM_DIR = ROOT / "dist" / "wasm"
PYTHON = sys.executable

# The Wasm modules (filters/wasm/*, scripts/gwstack/modules.py), by vm_id ->
# artifact name in dist/wasm/. A filter's vm_id is gw_<module>, its HTTP filter
# name gw.<module>; the gateway module is the others as one.
MODULES = list(wasm_modules().values())
FILTERS = {f"gw_{m}": f"{m}.wasm" for m in MODULES}

# The one-module chain (filters/gateway): the other modules' configurations as
# sections of one configuration, in one Wasm VM. vm_id of a filter -> its
# section (the module name in camelCase: tool_acl -> toolAcl).
GATEWAY_VM = f"gw_{GATEWAY_MODULE}"
GATEWAY_SECTIONS = {f"gw_{m}": _camel(m) for m in MODULES if m != GATEWAY_MODULE}

# The deployment the harness renders every config as. The shipped default is
# the one module (gateway.wasm, envoy/gateway.yaml); GW_FOUR_MODULES=1 renders
# the same configs as the four filters (envoy/four-modules/*), so that the
# same tests run against both. GW_ONE_MODULE=0 is an older spelling of it.
FOUR_MODULES = (os.environ.get("GW_FOUR_MODULES") == "1" or os.environ.get("GW_ONE_MODULE") == "0")
ONE_MODULE = not FOUR_MODULES

# Default demo ports (the recipe's), used when free.
DEFAULT_PORTS = {"gateway": 8443, "admin": 9901, "mcp_upstream": 3000, "a2a_upstream": 4000,
                 "identity_service": 8081, "oauth_server": 9000, "audit_collector": 9100}

# Example backends and the cluster each one serves.
BACKEND_CLUSTERS = {"mcp": "mcp_upstream", "a2a": "a2a_upstream", "audit": "audit_collector"}
