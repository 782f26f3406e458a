#!/usr/bin/env bash
# A real multi-host Docker Swarm on one machine, and the site served on it with the cluster
# runtime (docs/SCALING.md): N Docker engines, each in a network namespace of its own (a "host"
# with its own address, firewall and bridges), joined by veth pairs on a host bridge, and joined
# into one Swarm. Node 1 is the manager (drained: it runs no sandboxes); nodes 2..N are sandbox
# nodes (labels trythis.sandbox=true and trythis.node=trythis-cI, gVisor as the engine's default
# runtime). Every node pulls from the platform registry at a cluster address (a read-only registry
# on the bridge, sharing the platform registry's storage). $STATE/engines/trythis-cI.sock links to
# node I's engine socket: the site's TRYTHIS_SWARM_NODE_ENGINE is unix://$STATE/engines/{node}.sock.
#   scripts/cluster.sh up [N]   start (idempotent), then serve the site on the cluster; the last
#                               line printed is the site's URL (with TRYTHIS_CLUSTER_SITE=off: no
#                               site, and the last line is the manager's engine endpoint)
#   scripts/cluster.sh status   the nodes as the manager sees them, the engine links, the site
#   scripts/cluster.sh down     stop the site, then remove every trace: services, swarm, engines,
#                               namespaces, links, firewall rules, cgroups, the state directory
#                               (the site's data directory stays: database, admin password, mails)
# The site is `trythis serve` (target/$TRYTHIS_PROFILE/trythis, release by default, built when
# missing; dev or debug = the tests' build) with its own data directory $DATA/cluster-site (its
# own SQLite database), the same registry under its own namespace trythis-cluster, the same ttyd
# and relay as scripts/run.sh, on 127.0.0.1:TRYTHIS_CLUSTER_SITE_PORT (3100); its log and pid are
# in the state directory. `up` migrates it, creates its first admin (password printed once, kept
# in $DATA/cluster-site/admin-password) and publishes the starter catalogue, as scripts/run.sh
# does. Sandboxes of egress projects run on the host's own engine (beside the egress proxy);
# `down` removes those of the cluster site too.
# Everything it creates is named trythis-c*. Settings (environment): TRYTHIS_CLUSTER_NET (first
# three octets of the /24 the script owns, 192.168.231), TRYTHIS_CLUSTER_DIR (/run/trythis-c, a
# tmpfs of TRYTHIS_CLUSTER_TMPFS_SIZE, 4g: engines' data roots live in memory),
# TRYTHIS_CLUSTER_HEARTBEAT (Swarm's dispatcher heartbeat, 5s: a node is Down a few periods after
# its last report),
# TRYTHIS_CLUSTER_REGISTRY_STORAGE (the platform registry's storage; default: the one the registry
# on TRYTHIS_REGISTRY_ADDR serves, else $DATA/registry), TRYTHIS_CLUSTER_SITE (on; off: no site),
# TRYTHIS_CLUSTER_SITE_PORT (3100), TRYTHIS_PROFILE (release).
source "$(dirname "$0")/lib.sh"

NET=${TRYTHIS_CLUSTER_NET:-192.168.231}
[[ "$NET" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "TRYTHIS_CLUSTER_NET must be three octets, e.g. 192.168.231"
STATE=${TRYTHIS_CLUSTER_DIR:-/run/trythis-c}
BR=trythis-cbr
BR_IP=$NET.1
REG_PORT=5000
CLUSTER_REGISTRY=$BR_IP:$REG_PORT
MAX_NODES=9

node_ip() { echo "$NET.$(( 10 + $1 ))"; }
ns() { echo "trythis-c$1"; }
sock() { echo "$STATE/n$1/docker.sock"; }
dk() { local i=$1; shift; docker -H "unix://$(sock "$i")" "$@"; }
engine_pid() { local p; p=$(cat "$STATE/n$1/docker.pid" 2>/dev/null || true); [ -n "$p" ] && grep -qa dockerd "/proc/$p/cmdline" 2>/dev/null && echo "$p"; }
# The nodes that exist (a state directory per node).
nodes() { local d; for d in "$STATE"/n[0-9]; do [ -d "$d" ] && echo "${d##*/n}"; done; }
# Where the site reaches node I's engine (the name is the node's trythis.node label).
engine_link() { echo "$STATE/engines/$(ns "$1").sock"; }

# The site served on the cluster.
SITE=${TRYTHIS_CLUSTER_SITE:-on}
[ "$SITE" = on ] || [ "$SITE" = off ] || die "TRYTHIS_CLUSTER_SITE must be on or off"
SITE_PORT=${TRYTHIS_CLUSTER_SITE_PORT:-3100}
[[ "$SITE_PORT" =~ ^[0-9]+$ ]] && [ "$SITE_PORT" -ge 1 ] && [ "$SITE_PORT" -le 65535 ] || die "TRYTHIS_CLUSTER_SITE_PORT must be a port number"
SITE_URL=http://127.0.0.1:$SITE_PORT
SITE_DATA=$DATA/cluster-site
PROFILE=${TRYTHIS_PROFILE:-release}
case "$PROFILE" in dev|debug) BIN="$ROOT/target/debug/trythis" ;; *) BIN="$ROOT/target/$PROFILE/trythis" ;; esac
# Everything the site runs with. Explicit, so that a trythis.env of the host's own site (which
# lib.sh exports) cannot point this one at the other's database, mail folder or port.
SITE_ENV=(
  TRYTHIS_DATA_DIR="$SITE_DATA"
  TRYTHIS_DATABASE_URL="sqlite://$SITE_DATA/trythis.db"
  TRYTHIS_MAIL_DIR="$SITE_DATA/mail"
  TRYTHIS_LISTEN="127.0.0.1:$SITE_PORT"
  TRYTHIS_PUBLIC_URL="$SITE_URL"
  TRYTHIS_TTYD_PATH="$DATA/bin/ttyd"
  TRYTHIS_RELAY_PATH="$DATA/bin/trythis-relay"
  TRYTHIS_MODERATION="${TRYTHIS_MODERATION:-on}"
  # The same registry, its own repositories: each installation's retention deletes the tags of
  # its repositories that its own database does not keep, so two must not share them. The
  # host's own site collects the registry's garbage: two collectors could delete a blob the
  # other is pushing.
  TRYTHIS_REGISTRY_NAMESPACE=trythis-cluster
  TRYTHIS_REGISTRY_GC_COMMAND=
  # Beside a site of this host (scripts/run.sh): the first free proxy port on the egress network.
  TRYTHIS_EGRESS_PROXY_PORT="${TRYTHIS_EGRESS_PROXY_PORT:-0}"
  TRYTHIS_SWARM_MANAGER="unix://$STATE/n1/docker.sock"
  TRYTHIS_SWARM_NODE_ENGINE="unix://$STATE/engines/{node}.sock"
  TRYTHIS_SWARM_REGISTRY="$CLUSTER_REGISTRY"
)
site() { env "${SITE_ENV[@]}" "$BIN" "$@"; }
site_pid() { local p; p=$(cat "$STATE/site.pid" 2>/dev/null || true); [ -n "$p" ] && grep -qa serve "/proc/$p/cmdline" 2>/dev/null && echo "$p"; }
site_health() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$SITE_URL/healthz" 2>/dev/null || true; }

# The firewall rules the script adds (and `down` removes): the bridge forwards between nodes (the
# host engine's FORWARD policy is DROP); from the bridge the host answers only the cluster registry.
FW_RULES=(
  "FORWARD -i $BR -o $BR -j ACCEPT"
  "INPUT -i $BR -j DROP"
  "INPUT -i $BR -d $BR_IP -p tcp --dport $REG_PORT -j ACCEPT"
)

# daemon LOG PIDFILE CMD...: CMD in the background; descriptors above 2 are closed first (a lock
# held by whoever ran this script must not live on in an engine).
daemon() {
  local log=$1 pidfile=$2; shift 2
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
    exec "$@" </dev/null >>"$log" 2>&1
  ) &
  echo $! >"$pidfile"
}

# The platform registry's storage: the directory the registry on REGISTRY_ADDR serves.
registry_storage() {
  if [ -n "${TRYTHIS_CLUSTER_REGISTRY_STORAGE:-}" ]; then echo "$TRYTHIS_CLUSTER_REGISTRY_STORAGE"; return; fi
  local pid dir
  pid=$(ss -Hltnp "sport = :${REGISTRY_ADDR##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] && dir=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=//p')
  echo "${dir:-$DATA/registry}"
}

node_config() {  # node_config I: the engine's daemon.json
  local i=$1
  python3 - "$STATE/n$i/daemon.json" "$i" "$CLUSTER_REGISTRY" <<'PY'
import json, sys
path, i, registry = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conf = {
    "storage-driver": "overlay2",
    "insecure-registries": [registry],
    # The node's containers under a cgroup of their own (and the same PID budget idea as one host).
    "cgroup-parent": f"/trythis-c{i}",
    "containerd-namespace": f"trythis-c{i}",
    "containerd-plugins-namespace": f"trythis-c{i}-plugins",
    "log-opts": {"max-size": "10m", "max-file": "1"},
    # Same flags as scripts/lib.sh ensure_gvisor: no network, writes in the sandbox's memory.
    "runtimes": {
        "trythis-runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--overlay2=all:memory"]},
        "trythis-runsc-net": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host", "--overlay2=all:memory"]},
    },
}
if i > 1:
    # Swarm services cannot pick a runtime: on a sandbox node every container is a gVisor one.
    conf["default-runtime"] = "trythis-runsc"
json.dump(conf, open(path, "w"), indent=2)
PY
}

up() {
  local n=${1:-3}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le $MAX_NODES ] || die "N must be 2 to $MAX_NODES (one manager, the rest sandbox nodes)"
  [ "$(id -u)" = 0 ] || die "cluster.sh needs root (namespaces, links, firewall rules, engines)"
  command -v runsc >/dev/null || die "runsc not found: run scripts/run.sh or scripts/test.sh first (scripts/lib.sh ensure_gvisor)"
  command -v docker-registry >/dev/null || apt_install docker-registry
  apt_install iproute2 iptables util-linux

  step "State directory $STATE (tmpfs: the engines' data live in memory)"
  mkdir -p "$STATE"
  mountpoint -q "$STATE" || mount -t tmpfs -o "size=${TRYTHIS_CLUSTER_TMPFS_SIZE:-4g},mode=0700" trythis-c "$STATE" \
    || die "could not mount a tmpfs on $STATE"
  ok "$(df -h --output=size,avail "$STATE" | tail -1 | awk '{print $1" ("$2" free)"}')"

  step "Bridge $BR ($BR_IP/24) and firewall rules"
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge || die "could not create the bridge $BR"
  fi
  # grep reads a captured output: with pipefail, `ip … | grep -q` fails when grep stops reading early.
  grep -q "inet $BR_IP/24" <<<"$(ip addr show dev "$BR")" || ip addr add "$BR_IP/24" dev "$BR"
  ip link set "$BR" up
  local rule
  for rule in "${FW_RULES[@]}"; do
    # shellcheck disable=SC2086
    iptables -w -C $rule 2>/dev/null || iptables -w -I $rule
  done
  ok "$(ip -br addr show dev "$BR" | awk '{print $1, $3}'); forwarding on the bridge, host reachable only at $CLUSTER_REGISTRY"

  step "Cluster registry on $CLUSTER_REGISTRY (read-only, the platform registry's storage)"
  local storage; storage=$(registry_storage)
  [ -d "$storage" ] || die "the platform registry's storage $storage does not exist (scripts/lib.sh ensure_registry)"
  if ! curl -fsS -m 2 "http://$CLUSTER_REGISTRY/v2/" >/dev/null 2>&1; then
    # Nodes only pull: pushes go to the platform registry (REGISTRY_ADDR), which shares the storage.
    daemon "$STATE/registry.log" "$STATE/registry.pid" env REGISTRY_HTTP_ADDR="$CLUSTER_REGISTRY" \
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$storage" REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled": true}' \
      docker-registry serve "$ROOT/registry/config.yml"
    for _ in $(seq 1 40); do curl -fsS -m 1 "http://$CLUSTER_REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
    curl -fsS -m 2 "http://$CLUSTER_REGISTRY/v2/" >/dev/null || die "the cluster registry did not start: see $STATE/registry.log"
  fi
  ok "pid $(cat "$STATE/registry.pid"), storage $storage"

  local i
  for i in $(seq 1 "$n"); do
    local netns; netns=$(ns "$i")
    step "Node $i ($netns, $(node_ip "$i")$([ "$i" = 1 ] && echo ', manager' || echo ', sandbox node'))"
    mkdir -p "$STATE/n$i"
    if [ ! -e "/var/run/netns/$netns" ]; then
      ip netns add "$netns" || die "could not create the network namespace $netns"
    fi
    if ! ip link show "$netns" >/dev/null 2>&1; then
      ip link add "$netns" type veth peer name eth0 netns "$netns" || die "could not create the veth pair $netns"
    fi
    ip link set "$netns" master "$BR" up
    ip -n "$netns" link set lo up
    grep -q "inet $(node_ip "$i")/24" <<<"$(ip -n "$netns" addr show dev eth0)" || ip -n "$netns" addr add "$(node_ip "$i")/24" dev eth0
    ip -n "$netns" link set eth0 up
    [ -n "$(ip -n "$netns" route show default)" ] || ip -n "$netns" route add default via "$BR_IP"
    if engine_pid "$i" >/dev/null && dk "$i" info >/dev/null 2>&1; then
      ok "engine running (pid $(engine_pid "$i"))"; continue
    fi
    node_config "$i"
    rm -f "$STATE/n$i/docker.pid" "$(sock "$i")"
    # nsenter --net, not `ip netns exec` (it remounts /sys and dockerd finds no cgroups); a UTS
    # namespace of its own so that each node has its own hostname in Swarm.
    daemon "$STATE/n$i/dockerd.log" "$STATE/n$i/launcher.pid" unshare --uts sh -c \
      'hostname "$0" && exec nsenter --net="/var/run/netns/$0" "$@"' "$netns" \
      dockerd --config-file "$STATE/n$i/daemon.json" --data-root "$STATE/n$i/data" \
      --exec-root "$STATE/n$i/exec" -H "unix://$(sock "$i")" --pidfile "$STATE/n$i/docker.pid"
    for _ in $(seq 1 120); do dk "$i" info >/dev/null 2>&1 && break; sleep 0.25; done
    dk "$i" info >/dev/null 2>&1 || { tail -5 "$STATE/n$i/dockerd.log" >&2; die "node $i's engine did not start: see $STATE/n$i/dockerd.log"; }
    ok "engine $(dk "$i" version -f '{{.Server.Version}}') pid $(engine_pid "$i"), default runtime $(dk "$i" info -f '{{.DefaultRuntime}}'), log $STATE/n$i/dockerd.log"
  done

  step "Swarm: manager node 1, sandbox nodes 2..$n"
  if [ "$(dk 1 info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    dk 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" >/dev/null \
      || die "swarm init failed on node 1"
  fi
  # How often nodes report to the manager: a node that stops reporting is Down after a few periods.
  dk 1 swarm update --dispatcher-heartbeat "${TRYTHIS_CLUSTER_HEARTBEAT:-5s}" >/dev/null \
    || die "TRYTHIS_CLUSTER_HEARTBEAT=${TRYTHIS_CLUSTER_HEARTBEAT:-} is not a duration Swarm takes (e.g. 5s)"
  local token; token=$(dk 1 swarm join-token -q worker)
  for i in $(seq 2 "$n"); do
    if [ "$(dk "$i" info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
      dk "$i" swarm join --token "$token" --advertise-addr "$(node_ip "$i")" "$(node_ip 1):2377" >/dev/null \
        || die "node $i could not join the swarm"
    fi
  done
  # Labels and availability: sandboxes go only to labelled nodes; the manager takes no tasks.
  dk 1 node update --availability drain "$(dk 1 info -f '{{.Swarm.NodeID}}')" >/dev/null
  for i in $(seq 2 "$n"); do
    dk 1 node update --label-add trythis.sandbox=true --label-add "trythis.node=$(ns "$i")" \
      "$(dk "$i" info -f '{{.Swarm.NodeID}}')" >/dev/null
  done
  for _ in $(seq 1 120); do
    [ "$(dk 1 node ls --format '{{.Status}}' | grep -c '^Ready$')" -ge "$n" ] && break; sleep 0.25
  done
  [ "$(dk 1 node ls --format '{{.Status}}' | grep -c '^Ready$')" -ge "$n" ] || { node_table; die "not every node is Ready"; }
  ok "$n nodes Ready"
  # The site reaches each sandbox node's engine by the node's name (TRYTHIS_SWARM_NODE_ENGINE).
  mkdir -p "$STATE/engines"
  for i in $(seq 2 "$n"); do ln -sfn "../n$i/docker.sock" "$(engine_link "$i")"; done
  node_table
  engine_links
  if [ "$SITE" = off ]; then
    step "Cluster up: $n engines, Swarm managed through node 1's engine (TRYTHIS_CLUSTER_SITE=off: no site)"
    echo "unix://$(sock 1)"
    return
  fi
  serve_site
  step "Cluster up: $n engines (manager unix://$(sock 1)), the site on them (log $STATE/site.log)"
  echo "$SITE_URL"
}

# The site on the cluster: as scripts/run.sh (migrate, first admin, starter catalogue, serve),
# with the cluster runtime, its own data directory and port, in the background.
serve_site() {
  step "Site on the cluster: $SITE_URL"
  if [ -n "$(site_pid)" ] && [ "$(site_health)" = 200 ]; then ok "running (pid $(site_pid))"; return; fi
  if [ -z "$(site_pid)" ]; then
    # What scripts/run.sh sets up (toolchains, ttyd, relay, build engine, PID budget), each kept
    # when present; the server and the wasm bundle are built only when missing.
    ensure_platform
    if [ ! -x "$BIN" ] || [ ! -f "${TRYTHIS_SITE_ROOT:-target/site}/pkg/trythis.wasm" ]; then
      # shellcheck disable=SC2015
      TRYTHIS_PROFILE=$([ "$PROFILE" = debug ] && echo dev || echo "$PROFILE") build_site
    fi
    [ -x "$BIN" ] || die "no server binary at $BIN"
    if ss -Hltn "sport = :$SITE_PORT" | grep -q .; then
      die "port $SITE_PORT is taken (scripts/replicas.sh's load balancer uses 3100 too): set TRYTHIS_CLUSTER_SITE_PORT"
    fi
    mkdir -p "$SITE_DATA"
    step "Site database ($SITE_DATA/trythis.db), admin account, mail"
    site migrate >/dev/null && ok "migrated"
    site admin --first "${TRYTHIS_ADMIN_EMAIL:-admin@trythis.local}"
    if [ -n "${TRYTHIS_SMTP_URL:-}" ]; then ok "mail through ${TRYTHIS_SMTP_URL##*@}"
    else ok "no TRYTHIS_SMTP_URL: mails are written to $SITE_DATA/mail/<address>/*.eml"; fi
    step "Starter catalogue (built, checked in a sandbox on the cluster and pushed once; reused later)"
    site seed catalog
    daemon "$STATE/site.log" "$STATE/site.pid" env "${SITE_ENV[@]}" "$BIN" serve
  fi
  for _ in $(seq 1 240); do
    [ "$(site_health)" = 200 ] && break
    [ -n "$(site_pid)" ] || break
    sleep 0.25
  done
  if [ "$(site_health)" != 200 ]; then
    tail -20 "$STATE/site.log" >&2
    [ -n "$(site_pid)" ] || die "the site exited: see $STATE/site.log"
    die "the site did not answer $SITE_URL/healthz within 60 s (pid $(site_pid)): see $STATE/site.log"
  fi
  ok "pid $(site_pid), data $SITE_DATA, admin password in $SITE_DATA/admin-password, log $STATE/site.log"
}

# The links the site reaches each sandbox node's engine through.
engine_links() {
  local l
  for l in "$STATE"/engines/*.sock; do
    [ -L "$l" ] || continue
    printf '%-36s -> %s%s\n' "$l" "$(readlink "$l")" "$([ -S "$l" ] || echo ' (no engine)')"
  done
}

status() {
  node_table || return 1
  engine_links
  local pid; pid=$(site_pid || true)
  if [ -n "$pid" ]; then printf 'site %s pid %s health %s\n' "$SITE_URL" "$pid" "$(site_health)"
  else echo "site not running (TRYTHIS_CLUSTER_SITE_PORT $SITE_PORT, data $SITE_DATA)"; fi
}

node_table() {
  [ -S "$(sock 1)" ] && dk 1 info >/dev/null 2>&1 || { echo "no cluster (node 1's engine does not answer at $(sock 1))"; return 1; }
  local id
  printf '%-12s %-9s %-8s %-12s %-8s %s\n' NODE ROLE STATE AVAILABILITY ADDRESS LABELS
  for id in $(dk 1 node ls -q); do
    dk 1 node inspect "$id" -f '{{.Description.Hostname}} {{.Spec.Role}} {{.Status.State}} {{.Spec.Availability}} {{.Status.Addr}} {{range $k, $v := .Spec.Labels}}{{$k}}={{$v}},{{end}}' \
      | awk '{sub(/,$/, "", $6); printf "%-12s %-9s %-8s %-12s %-8s %s\n", $1, $2, $3, $4, $5, $6}'
  done
}

down() {
  [ "$(id -u)" = 0 ] || die "cluster.sh needs root"
  local i
  step "Site on the cluster"
  local pid; pid=$(site_pid || true)
  if [ -n "$pid" ]; then
    # SIGTERM: it drains (TRYTHIS_DRAIN_SECONDS), then closes; its sandboxes stay in the engines.
    kill -TERM "$pid"
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "    $pid did not stop in 60 s: killed"; kill -KILL "$pid"; }
    ok "pid $pid stopped"
  else ok "not running"; fi
  [ -f "$STATE/site.log" ] && [ -d "$SITE_DATA" ] && cp "$STATE/site.log" "$SITE_DATA/last-site.log"
  # Its sandboxes on the host's own engine (egress projects, beside the proxy): by its
  # installation's label. Those on the nodes go with the engines below.
  local bin
  for bin in "$BIN" "$ROOT/target/release/trythis" "$ROOT/target/debug/trythis" ""; do [ -x "$bin" ] && break; done
  if [ -n "$bin" ] && [ -f "$SITE_DATA/trythis.db" ]; then
    local instance ids=()
    instance=$(env "${SITE_ENV[@]}" TRYTHIS_LOG=error "$bin" instance 2>/dev/null | tail -1 || true)
    if [[ "$instance" =~ ^[A-Za-z0-9_-]+$ ]]; then
      mapfile -t ids < <(docker ps -aq --filter "label=trythis.instance=$instance" 2>/dev/null || true)
      [ ${#ids[@]} -gt 0 ] && docker rm -fv "${ids[@]}" >/dev/null
      ok "${#ids[@]} of its containers removed from the host's engine"
    fi
  fi
  # The shells' holder directories of the nodes' engines (ttyd_host.rs sessions_dir: a digest of
  # the engine endpoint); the holders themselves run from the state directory's sockets and are
  # stopped with the engines' leftovers below.
  local link
  for link in "$STATE"/engines/*.sock; do
    [ -L "$link" ] || continue
    rm -rf "${TMPDIR:-/tmp}/trythis-sessions-$(printf '%s' "unix://$link" | sha256sum | cut -c1-16)"
  done
  [ -d "$SITE_DATA" ] && ok "its data directory $SITE_DATA stays (database, admin password, mails, last-site.log): remove it to start afresh"

  step "Services and swarm"
  if [ -S "$(sock 1)" ] && dk 1 info >/dev/null 2>&1 && [ "$(dk 1 info -f '{{.Swarm.ControlAvailable}}')" = true ]; then
    local svcs; svcs=$(dk 1 service ls -q)
    [ -n "$svcs" ] && dk 1 service rm $svcs >/dev/null
    ok "$(echo "$svcs" | grep -c . || true) services removed"
  else ok "no manager answers"; fi
  for i in $(nodes); do
    if dk "$i" info >/dev/null 2>&1; then dk "$i" swarm leave --force >/dev/null 2>&1 || true; fi
  done

  step "Engines"
  for i in $(nodes); do
    local pid; pid=$(engine_pid "$i" || true)
    [ -n "$pid" ] && kill -TERM "$pid"
  done
  for _ in $(seq 1 100); do
    local left=0
    for i in $(nodes); do engine_pid "$i" >/dev/null && left=1; done
    [ $left = 0 ] && break; sleep 0.2
  done
  # Whatever still runs from the state directory (an engine that did not stop, containerd, shims
  # and gVisor sandboxes of an engine that was killed): each by its pid.
  local pids
  pids=$(for p in /proc/[0-9]*; do grep -qa "$STATE/" "$p/cmdline" 2>/dev/null && echo "${p#/proc/}"; done || true)
  local reg; reg=$(cat "$STATE/registry.pid" 2>/dev/null || true)
  [ -n "$reg" ] && grep -qa docker-registry "/proc/$reg/cmdline" 2>/dev/null && pids="$pids $reg"
  [ -n "${pids// /}" ] && { echo "    stopping leftovers and the cluster registry: $(echo $pids)"; kill -KILL $pids 2>/dev/null || true; sleep 0.5; }
  ok stopped

  step "Mounts, namespaces, links, firewall rules, cgroups"
  if [ -d "$STATE" ]; then
    # Innermost first: overlays of containers, network namespaces bound by the engines, the tmpfs.
    awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  for i in $(seq 1 $MAX_NODES); do
    grep -qw "$(ns "$i")" <<<"$(ip netns list)" && ip netns del "$(ns "$i")"
    ip link show "$(ns "$i")" >/dev/null 2>&1 && ip link del "$(ns "$i")"
    local cg
    for cg in /sys/fs/cgroup/*/"$(ns "$i")" /sys/fs/cgroup/"$(ns "$i")"; do
      [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  ip link show "$BR" >/dev/null 2>&1 && ip link del "$BR"
  local rule
  for rule in "${FW_RULES[@]}"; do
    # shellcheck disable=SC2086
    while iptables -w -C $rule 2>/dev/null; do iptables -w -D $rule; done
  done
  rm -rf "$STATE"
  ok "removed"
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  status) status ;;
  down) down ;;
  *) die "usage: scripts/cluster.sh up [N] | status | down" ;;
esac
