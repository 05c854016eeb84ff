"""Run the gateway stack locally: example backends + stock Envoy + our Wasm filters.

One API for the demo, the tests, the benches and the scripts (the `scripts/`
directory is on the import path: pytest.ini `pythonpath`, and a script's own
directory for `python scripts/X.py`):

    from gwstack import Stack
    with Stack(config="envoy/gateway.yaml", workers=2) as s:
        print(s.base_url, s.ca_path, s.mcp_url, s.a2a_url, s.admin_url)

What it does:
  * renders an Envoy config from envoy/*.yaml (PyYAML): patches the listener
    port, the admin port, the upstream cluster ports, makes every `dist/...`
    file path absolute (so Envoy can run from anywhere), points TLS at freshly
    generated certificates, turns SO_REUSEPORT off (a second Envoy on the same
    port then fails loudly instead of silently sharing traffic), and lets the
    caller replace any Wasm filter's YAML `configuration` by vm_id (always
    the four filters' vm_ids: a one-module config is rewritten as four, then
    back as one unless GW_FOUR_MODULES=1: gwstack.render_config);
  * generates a self-signed CA + leaf certificate (localhost, 127.0.0.1, ::1);
  * picks free ports (or uses the ones you ask for);
  * starts the backends and Envoy in their own process groups, logging to
    files in the run directory, waits until they are ready, and stops all of
    them on exit, on SIGINT/SIGTERM and on any start-up failure.

CLI:
  python scripts/stack.py demo      [--config envoy/gateway.yaml] [--workers 2]
  python scripts/stack.py render    --config envoy/gateway.yaml --out FILE
  python scripts/stack.py validate  [configs...]     (envoy --mode validate)
  python scripts/stack.py split     (regenerate envoy/{mcp,a2a}-only.yaml, compose/*, four-modules/*)
  python scripts/stack.py certs | envoy-path

Modules, one concern each: modules (the Wasm modules, from filters/wasm/*),
layout (paths, the filter list, the deployment, ports), util (Envoy
binary, free ports, probes), certs, yamltree (loading/walking configs),
render, one_module, split (the generated configs), processes (Proc), stack
(Stack), cli (scripts/stack.py), support (helpers the tests and benches share).
"""

from .certs import generate_certs
from .layout import (BACKEND_CLUSTERS, DEFAULT_PORTS, ENVOY_DIR, FILTERS, FOUR_MODULES, GATEWAY_SECTIONS,
                     GATEWAY_VM, MODULES, ONE_MODULE, PYTHON, ROOT, WASM_DIR)
from .one_module import filter_configuration, four_module_config, one_module_config
from .processes import Proc
from .render import render_config, write_config
from .split import (COMPOSE_REDIS_CLUSTER, COMPOSE_UPSTREAMS, COMPOSE_WEBDIS, compose_config, split_config,
                    split_files)
from .stack import Stack, StackError
from .util import envoy_binary, free_port, http_ok, port_is_free, tail
from .yamltree import load_config, walk_dicts, wasm_filters

__all__ = [
    "BACKEND_CLUSTERS", "COMPOSE_REDIS_CLUSTER", "COMPOSE_UPSTREAMS", "COMPOSE_WEBDIS", "DEFAULT_PORTS",
    "ENVOY_DIR", "FILTERS", "FOUR_MODULES", "GATEWAY_SECTIONS", "GATEWAY_VM", "MODULES", "ONE_MODULE", "PYTHON",
    "ROOT", "WASM_DIR", "Proc", "Stack", "StackError", "compose_config", "envoy_binary", "filter_configuration", "four_module_config",
    "free_port", "generate_certs",
    "http_ok", "load_config", "one_module_config", "port_is_free", "render_config", "split_config",
    "split_files", "tail", "validate", "walk_dicts", "wasm_filters", "write_config",
]

from .cli import validate  # noqa: E402  (cli imports the modules above)
