#!/usr/bin/env bash
# Proves the production files: the app image builds (from the locally made base image) and
# docker-compose.yml validates.
source "$(dirname "$0")/lib.sh"
apt_install docker-compose
docker-compose -f docker-compose.yml config -q && ok "docker-compose.yml is valid"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE_IMAGE" -t trythis:ci . >/dev/null 2>&1 && ok "app image builds ($(docker image inspect trythis:ci --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'))"
out=$(docker run --rm --network none -e TRYTHIS_SANDBOX_PIDS=0 trythis:ci trythis migrate 2>&1 || true)
grep -q "TRYTHIS_SANDBOX_PIDS" <<<"$out" || die "the image's binary did not run: $out"
ok "the image's binary runs (and names a bad config key: $out)"
