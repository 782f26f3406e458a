#!/usr/bin/env bash
# Proves the production files: the app image builds (from the locally made base image) and
# docker-compose.yml and the load balancer's config validate.
source "$(dirname "$0")/lib.sh"
apt_install docker-compose
docker-compose -f docker-compose.yml config -q && ok "docker-compose.yml is valid"
ensure_haproxy >/dev/null
TRYTHIS_LB_BIND=127.0.0.1:3000 TRYTHIS_LB_SOURCE=127.0.0.2 TRYTHIS_LB_STATS_SOCKET=/tmp/haproxy.sock \
  TRYTHIS_LB_REPLICA_1=127.0.0.1:3001 TRYTHIS_LB_REPLICA_2=127.0.0.1:3002 \
  haproxy -c -q -f deploy/haproxy.cfg || die "deploy/haproxy.cfg is not valid"
ok "deploy/haproxy.cfg is valid (HAProxy $(haproxy -v | awk 'NR==1{print $3}'))"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE_IMAGE" -t trythis:ci . >/dev/null 2>&1 && ok "app image builds ($(docker image inspect trythis:ci --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'))"
out=$(docker run --rm --network none -e TRYTHIS_SANDBOX_PIDS=0 trythis:ci trythis migrate 2>&1 || true)
grep -q "TRYTHIS_SANDBOX_PIDS" <<<"$out" || die "the image's binary did not run: $out"
ok "the image's binary runs (and names a bad config key: $out)"
