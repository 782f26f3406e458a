#!/usr/bin/env bash
# Garbage-collects the local registry's blobs: `registry-gc.sh STORAGE_DIR`. The server runs it
# (TRYTHIS_REGISTRY_GC_COMMAND) while none of its builds pushes; a blob survives while any
# manifest references it, and retention keeps the manifests of served images.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -d "${1:-}" ] || { echo "usage: $0 REGISTRY_STORAGE_DIR" >&2; exit 2; }
REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$1" exec docker-registry garbage-collect "$ROOT/registry/config.yml"
