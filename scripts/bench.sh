#!/usr/bin/env bash
# Benchmarks (numbers, no assertions): Try latency and memory against the real engine.
source "$(dirname "$0")/lib.sh"
ensure_docker; ensure_ttyd; ensure_base_image; ensure_registry
step "Try latency and memory (server/examples/bench.rs)"
TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q -p server --example bench
step "Search at 10,000 projects (db/examples/search_bench.rs, release build)"
cargo run -q --release -p db --example search_bench
