"""Where things are and what the chain is made of: paths, the Wasm
filters by vm_id, the one-module sections, default ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent.parent
ENVOY_DIR = ROOT / "envoy"
WASM_DIR = ROOT / "dist" / "wasm"
PYTHON = sys.executable

# Wasm filters of the chain, by vm_id -> artifact name in dist/wasm/. The
# justfile (`modules`) and the Cargo workspace list the same modules
# (tests/test_envoy_configs.py::test_the_module_lists_agree).
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
