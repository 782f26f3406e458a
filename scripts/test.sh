#!/usr/bin/env bash
# The whole test suite, from a fresh machine or a warm one: formatting and lints, unit tests,
# integration tests against the real engine, registry, ttyd, SQLite and PostgreSQL, then the
# browser tests in headless Chromium against the real server, then the same server as two replicas
# behind HAProxy, then a local three-node Swarm (sandbox hosts). Idempotent.
source "$(dirname "$0")/lib.sh"
T0=$(date +%s)
ensure_platform
ensure_postgres
ensure_chromium
ensure_smtp_sink
ensure_e2e_tui_image
ensure_haproxy

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy -q --workspace --all-targets -- -D warnings
step "cargo clippy of the browser half (app, hydrate, wasm32) -- -D warnings"
cargo clippy -q -p app --features hydrate --target wasm32-unknown-unknown -- -D warnings

build_site

step "Unit and integration tests (SQLite and PostgreSQL; real Docker engine, registry, ttyd)"
export TRYTHIS_TEST_TTYD="$DATA/bin/ttyd" TRYTHIS_TEST_RELAY="$DATA/bin/trythis-relay" TRYTHIS_TEST_BASE_IMAGE="$BASE_IMAGE"
cargo test -q --workspace 2>&1 | tee "$DATA/logs/cargo-test.log"

step "Production image builds and compose file validates"
scripts/check-deploy.sh

step "Local OAuth provider self-test (the e2e stand-in for GitHub and Google)"
node end2end/oauth-provider.test.mjs

step "End-to-end tests in headless Chromium"
node end2end/e2e.mjs

step "Cluster tests: two replicas behind HAProxy on one PostgreSQL (end2end/replicas.mjs, one cluster start)"
node end2end/replicas.mjs

step "Sandbox hosts: a three-node Swarm of engines in network namespaces (scripts/cluster-test.sh, ≈40 s)"
scripts/cluster-test.sh

step "All tests passed in $(( $(date +%s) - T0 )) s"
