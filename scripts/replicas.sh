#!/usr/bin/env bash
# Several app servers on one machine, as processes: one PostgreSQL database for the cluster,
# N `trythis serve` replicas (the binary and platform scripts/run.sh serves) and HAProxy in front
# (deploy/haproxy.cfg). Idempotent: `up` keeps what already runs and starts what does not.
#   scripts/replicas.sh up              start the cluster; the last line printed is the LB's URL
#   scripts/replicas.sh status          each replica's pid, port and health; the load balancer's
#   scripts/replicas.sh down [--purge]  stop what `up` started (--purge: also its database and data)
# Settings (environment): TRYTHIS_REPLICAS (2), TRYTHIS_REPLICAS_LB_PORT (3100; replica i listens
# on TRYTHIS_REPLICAS_PORT + i - 1, default 3101), TRYTHIS_REPLICAS_DB (trythis_replicas),
# TRYTHIS_REPLICAS_DIR ($DATA/replicas: pids, logs, the replicas' data directory),
# TRYTHIS_REPLICAS_CATALOG (catalog), TRYTHIS_PROFILE (release; dev = the tests' build),
# TRYTHIS_REPLICAS_BIN (the binary; default the profile's).
source "$(dirname "$0")/lib.sh"

N=${TRYTHIS_REPLICAS:-2}
HOST=127.0.0.1
LB_PORT=${TRYTHIS_REPLICAS_LB_PORT:-3100}
PORT0=${TRYTHIS_REPLICAS_PORT:-3101}
DB_NAME=${TRYTHIS_REPLICAS_DB:-trythis_replicas}
STATE=${TRYTHIS_REPLICAS_DIR:-$DATA/replicas}
CATALOG=${TRYTHIS_REPLICAS_CATALOG:-catalog}
PROFILE=${TRYTHIS_PROFILE:-release}
case "$PROFILE" in dev) BIN="$ROOT/target/debug/trythis" ;; *) BIN="$ROOT/target/$PROFILE/trythis" ;; esac
BIN=${TRYTHIS_REPLICAS_BIN:-$BIN}   # another build of the binary (a test's proof on older code)
# HAProxy connects to the replicas from this address, and only it may name the client in
# X-Forwarded-For (TRYTHIS_TRUSTED_PROXIES): a client reaching a replica directly cannot.
LB_SOURCE=127.0.0.2
LB_URL="http://$HOST:$LB_PORT"
[[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] || die "TRYTHIS_REPLICAS_DB must be a plain name (a-z, 0-9, _)"
[[ "$N" =~ ^[1-9]$ ]] || die "TRYTHIS_REPLICAS must be 1 to 9"

pg_admin_url() { echo "postgres://trythis:trythis@127.0.0.1:5432/$1"; }
DB_URL=${TRYTHIS_REPLICAS_DATABASE_URL:-$(pg_admin_url "$DB_NAME")}

port_of() { echo $(( PORT0 + $1 - 1 )); }
pid_of() { cat "$STATE/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
health() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$1/healthz" 2>/dev/null || true; }

# What every replica runs with: the same database, public URL and data directory (so the same
# signing secret: a ticket or cookie one replica signed is good at every other).
replica_env() {
  local i=$1
  echo TRYTHIS_LISTEN="$HOST:$(port_of "$i")" TRYTHIS_PUBLIC_URL="${TRYTHIS_PUBLIC_URL:-$LB_URL}" \
    TRYTHIS_DATABASE_URL="$DB_URL" TRYTHIS_DATA_DIR="$STATE/data" \
    TRYTHIS_TTYD_PATH="${TRYTHIS_TTYD_PATH:-$DATA/bin/ttyd}" TRYTHIS_RELAY_PATH="${TRYTHIS_RELAY_PATH:-$DATA/bin/trythis-relay}" \
    TRYTHIS_TRUSTED_PROXIES="$LB_SOURCE/32" TRYTHIS_MODERATION="${TRYTHIS_MODERATION:-on}" \
    TRYTHIS_EGRESS_PROXY_PORT="${TRYTHIS_EGRESS_PROXY_PORT:-0}"
}

# daemon NAME CMD...: CMD in the background with its log and pid file; inherited descriptors
# above 2 are closed first (a lock held by whoever ran this script must not live on in it).
daemon() {
  local name=$1; shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
    exec "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1
  ) &
  echo $! >"$STATE/$name.pid"
}

wait_healthy() {  # wait_healthy NAME URL
  for _ in $(seq 1 240); do
    [ "$(health "$2")" = 200 ] && return 0
    alive "$1" || { tail -20 "$STATE/logs/$1.log" >&2; die "$1 exited: see $STATE/logs/$1.log"; }
    sleep 0.25
  done
  die "$1 did not become healthy at $2/healthz within 60 s: see $STATE/logs/$1.log"
}

haproxy_cfg() {
  # The template's two example servers become one line per replica.
  sed '/^    server r[0-9]/d' "$ROOT/deploy/haproxy.cfg"
  for i in $(seq 1 "$N"); do echo "    server r$i $HOST:$(port_of "$i") check"; done
}

lb_env() {
  echo TRYTHIS_LB_BIND="$HOST:$LB_PORT" TRYTHIS_LB_SOURCE="$LB_SOURCE" TRYTHIS_LB_STATS_SOCKET="$STATE/haproxy.sock"
}

# The load balancer's view of each replica (UP, DOWN, MAINT…), from its stats socket.
lb_servers() {
  python3 - "$STATE/haproxy.sock" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])
s.sendall(b"show stat\n"); out = b""
while chunk := s.recv(65536): out += chunk
for line in out.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == "replicas" and f[1] not in ("BACKEND",):
        print(f"{f[1]}={f[17]}")
PY
}

up() {
  ensure_platform
  ensure_postgres
  ensure_haproxy
  TRYTHIS_PROFILE=$PROFILE build_site
  mkdir -p "$STATE/logs" "$STATE/data"

  step "Database $DB_NAME for the cluster"
  if [ -z "${TRYTHIS_REPLICAS_DATABASE_URL:-}" ]; then
    psql "$(pg_admin_url postgres)" -qtAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1 \
      || psql "$(pg_admin_url postgres)" -qc "CREATE DATABASE $DB_NAME OWNER trythis"
  fi
  # shellcheck disable=SC2046
  env $(replica_env 1) "$BIN" migrate && ok "migrated (${DB_URL%%@*}@…)"
  step "Admin account and starter catalogue ($CATALOG)"
  # shellcheck disable=SC2046
  env $(replica_env 1) "$BIN" admin --first "${TRYTHIS_ADMIN_EMAIL:-admin@trythis.local}"
  # shellcheck disable=SC2046
  env $(replica_env 1) "$BIN" seed "$CATALOG"

  # One at a time: each start recovers builds and reconciles the engine with the database.
  for i in $(seq 1 "$N"); do
    local name="replica-$i" url="http://$HOST:$(port_of "$i")"
    step "Replica $i on $url"
    if alive "$name" && [ "$(health "$url")" = 200 ]; then ok "running (pid $(pid_of "$name"))"; continue; fi
    alive "$name" && die "$name (pid $(pid_of "$name")) runs but is not healthy: see $STATE/logs/$name.log"
    # shellcheck disable=SC2046
    daemon "$name" env $(replica_env "$i") "$BIN" serve
    wait_healthy "$name" "$url"
    ok "pid $(pid_of "$name"), log $STATE/logs/$name.log"
  done

  step "Load balancer (HAProxy) on $LB_URL"
  haproxy_cfg >"$STATE/haproxy.cfg.new"
  if alive lb && cmp -s "$STATE/haproxy.cfg.new" "$STATE/haproxy.cfg"; then
    rm -f "$STATE/haproxy.cfg.new"; ok "running (pid $(pid_of lb))"
  else
    mv "$STATE/haproxy.cfg.new" "$STATE/haproxy.cfg"
    # shellcheck disable=SC2046
    env $(lb_env) haproxy -c -q -f "$STATE/haproxy.cfg" || die "HAProxy refused $STATE/haproxy.cfg"
    if alive lb; then kill "$(pid_of lb)"; while alive lb; do sleep 0.1; done; fi
    # shellcheck disable=SC2046
    daemon lb env $(lb_env) haproxy -db -f "$STATE/haproxy.cfg"
    wait_healthy lb "$LB_URL"
    # Every replica in: the checks need two good answers (rise 2, 1 s apart).
    for _ in $(seq 1 40); do
      [ "$(lb_servers | grep -c '=UP$')" = "$N" ] && break; sleep 0.25
    done
    ok "pid $(pid_of lb): $(lb_servers | tr '\n' ' ')"
  fi
  step "Cluster up: $N replicas behind the load balancer"
  echo "$LB_URL"
}

status() {
  local code=0
  for i in $(seq 1 "$N"); do
    local name="replica-$i" url="http://$HOST:$(port_of "$i")"
    if alive "$name"; then
      printf '%-10s pid %-8s port %-6s health %s\n' "$name" "$(pid_of "$name")" "$(port_of "$i")" "$(health "$url")"
    else
      printf '%-10s %-12s port %-6s\n' "$name" "not running" "$(port_of "$i")"; code=1
    fi
  done
  if alive lb; then
    printf '%-10s pid %-8s port %-6s health %s  %s  (%s)\n' lb "$(pid_of lb)" "$LB_PORT" "$(health "$LB_URL")" "$LB_URL" "$(lb_servers | tr '\n' ' ' | sed 's/ $//')"
  else
    printf '%-10s %-12s port %-6s\n' lb "not running" "$LB_PORT"; code=1
  fi
  return $code
}

down() {
  step "Stopping the replicas (each drains first: TRYTHIS_DRAIN_SECONDS)"
  local pids=()
  for i in $(seq 1 "$N"); do
    if alive "replica-$i"; then pids+=("$(pid_of "replica-$i")"); kill -TERM "${pids[-1]}"; fi
  done
  for _ in $(seq 1 600); do
    local left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { echo "    $p did not stop in 60 s: killed"; kill -KILL "$p"; }; done
  ok "${#pids[@]} stopped"
  step "Stopping the load balancer"
  if alive lb; then kill "$(pid_of lb)"; while alive lb; do sleep 0.1; done; ok stopped; else ok "not running"; fi
  rm -f "$STATE"/*.pid "$STATE/haproxy.cfg" "$STATE/haproxy.sock"
  if [ "${1:-}" = --purge ]; then
    # The warm pool outlives the replicas (its shells are held beside the engine): every
    # container of this installation goes with its database.
    step "Removing the cluster's sandboxes"
    local instance="" ids=()
    [ -x "$BIN" ] && instance=$(env $(replica_env 1) "$BIN" instance 2>/dev/null || true)
    if [ -n "$instance" ]; then
      mapfile -t ids < <(docker ps -aq --filter "label=trythis.instance=$instance")
      [ ${#ids[@]} -gt 0 ] && docker rm -fv "${ids[@]}" >/dev/null
      ok "${#ids[@]} removed"
    else
      ok "none (no installation id)"
    fi
    step "Removing the cluster's database $DB_NAME and $STATE"
    if [ -z "${TRYTHIS_REPLICAS_DATABASE_URL:-}" ] && psql "$(pg_admin_url postgres)" -qtAc 'SELECT 1' >/dev/null 2>&1; then
      psql "$(pg_admin_url postgres)" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
    fi
    rm -rf "$STATE"
    ok removed
  fi
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  down) down "${2:-}" ;;
  *) die "usage: scripts/replicas.sh up | status | down [--purge]" ;;
esac
