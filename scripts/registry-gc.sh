#!/usr/bin/env bash
# Garbage-collects the local registry's blobs: `registry-gc.sh [STORAGE_DIR]`; without a dir, the
# storage of the registry that is running (read from its process). The server runs it
# (TRYTHIS_REGISTRY_GC_COMMAND) while none of its builds pushes; a blob survives while any
# manifest references it, and retention keeps the manifests of served images.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ]; then
  pid=$(pgrep -f 'docker-registry serve' | head -1 || true)
  [ -n "$pid" ] && dir=$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=//p')
fi
[ -d "$dir" ] || { echo "registry-gc: no registry storage found (give its directory as the argument)" >&2; exit 2; }
REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$dir" exec docker-registry garbage-collect "$ROOT/registry/config.yml"
