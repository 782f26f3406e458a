#!/usr/bin/env bash
# Benchmarks (numbers, no assertions): Try latency and memory, search at 10k projects, and
# publishing overhead and sign-up + log-in throughput, against the real engine and registry.
source "$(dirname "$0")/lib.sh"
ensure_docker; ensure_ttyd; ensure_relay; ensure_base_image; ensure_gvisor; ensure_build_engine; ensure_registry
step "Try latency and memory (server/examples/bench.rs)"
TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q -p server --example bench
step "Sandbox runtimes side by side: gVisor and runc (server/examples/runtime_bench.rs)"
TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q -p server --example runtime_bench
step "Search at 10,000 projects (db/examples/search_bench.rs, release build)"
cargo run -q --release -p db --example search_bench
step "Publishing overhead: engine build+push vs trythis (server/examples/build_bench.rs)"
TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn cargo run -q -p server --example build_bench
step "Accounts: 1,000 sign-up + log-in flows (server/examples/auth_bench.rs)"
TRYTHIS_LOG=warn cargo run -q -p server --example auth_bench
