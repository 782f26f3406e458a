#!/usr/bin/env bash
# Benchmarks (numbers, no assertions): pages against nginx serving the same bytes, Try latency
# and memory, 10,000 proxied terminals, search at 10k projects, publishing overhead, sign-up +
# log-in throughput and the load balancer in front of two replicas, against the real engine and registry. Everything printed is also written to docs/bench-results.txt.
source "$(dirname "$0")/lib.sh"
exec > >(tee "$ROOT/docs/bench-results.txt") 2>&1
echo "trythis benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD)"
ensure_docker; ensure_ttyd; ensure_relay; ensure_base_image; ensure_gvisor; ensure_build_engine; ensure_registry
command -v wrk >/dev/null || apt_install wrk
command -v nginx >/dev/null || apt_install nginx-light
export TRYTHIS_PROFILE=release; build_site
step "Pages at 64 connections vs nginx serving the same bytes (server/examples/page_bench.rs, release build)"
TRYTHIS_SITE_ROOT="$ROOT/target/site" TRYTHIS_LOG=warn cargo run -q --release -p server --example page_bench
step "Try latency and memory (server/examples/bench.rs, release build)"
TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q --release -p server --example bench
step "The terminal proxy: 10,000 open terminals, keystroke echo vs a direct socket (server/examples/terminal_bench.rs, release build)"
TRYTHIS_LOG=warn cargo run -q --release -p server --example terminal_bench
step "The same for the fallback runtime, runc in a user namespace (the build engine), against its own floor"
TRYTHIS_BENCH_RUNTIME=runc+userns TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q --release -p server --example bench
step "Web previews: a request through the preview vs the same server on the host (server/examples/preview_bench.rs, release build)"
TRYTHIS_TTYD_PATH="$DATA/bin/ttyd" TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay" TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn \
  cargo run -q --release -p server --example preview_bench
step "Search at 10,000 projects (db/examples/search_bench.rs, release build)"
cargo run -q --release -p db --example search_bench
step "Publishing overhead: engine build+push vs trythis (server/examples/build_bench.rs)"
TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn cargo run -q -p server --example build_bench
step "Accounts: 1,000 sign-up + log-in flows (server/examples/auth_bench.rs)"
TRYTHIS_LOG=warn cargo run -q -p server --example auth_bench
step "Several app servers: HAProxy's cost on the home page and on a Try (direct vs through it, same run), and a replica's kill -9 to its terminal answering again (end2end/replicas.mjs --bench, release build)"
TRYTHIS_PROFILE=release node end2end/replicas.mjs --bench
step "Sandbox hosts: a sandbox as a one-task Swarm service vs a container on a Ready node, 10 each, and a node's loss to Down (scripts/cluster-test.sh --bench)"
scripts/cluster-test.sh --bench
step "Sandbox hosts: a cold Try through the cluster runtime vs the single engine, interleaved, and a node's loss to the sandbox's end (server/examples/cluster_bench.rs, release build)"
TRYTHIS_BASE_IMAGE="$BASE_IMAGE" TRYTHIS_LOG=warn cargo run -q --release -p server --example cluster_bench
step "Sandbox hosts in the browser: the site on the cluster, a node's engine killed under a visitor's Try to the page saying so, Try again on another node (end2end/nodes.mjs, release build)"
TRYTHIS_PROFILE=release node end2end/nodes.mjs
scripts/cluster.sh down
