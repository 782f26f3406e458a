#!/usr/bin/env bash
# A real multi-host Docker Swarm on one machine: N Docker engines, each in a network namespace of
# its own (a "host" with its own address, firewall and bridges), joined by veth pairs on a host
# bridge, and joined into one Swarm. Node 1 is the manager (drained: it runs no sandboxes); nodes
# 2..N are sandbox nodes (label trythis.sandbox=true, gVisor as the engine's default runtime, since
# a Swarm service cannot choose a runtime). Every node pulls from the platform registry at a
# cluster address (a read-only registry on the bridge, sharing the platform registry's storage).
#   scripts/cluster.sh up [N]   start (idempotent); the last line printed is the manager's engine
#   scripts/cluster.sh status   the nodes as the manager sees them
#   scripts/cluster.sh down     remove every trace: services, swarm, engines, namespaces, links,
#                               firewall rules, cgroups, the state directory
# Everything it creates is named trythis-c*. Settings (environment): TRYTHIS_CLUSTER_NET (first
# three octets of the /24 the script owns, 192.168.231), TRYTHIS_CLUSTER_DIR (/run/trythis-c, a
# tmpfs of TRYTHIS_CLUSTER_TMPFS_SIZE, 4g: engines' data roots live in memory),
# TRYTHIS_CLUSTER_HEARTBEAT (Swarm's dispatcher heartbeat, 5s: a node is Down a few periods after
# its last report),
# TRYTHIS_CLUSTER_REGISTRY_STORAGE (the platform registry's storage; default: the one the registry
# on TRYTHIS_REGISTRY_ADDR serves, else $DATA/registry).
# Serving the site on the cluster is the cluster runtime's job (issue 30, next step): for now `up`
# prints the manager's engine endpoint.
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
  [ "$(dk 1 node ls --format '{{.Status}}' | grep -c '^Ready$')" -ge "$n" ] || { status; die "not every node is Ready"; }
  ok "$n nodes Ready"
  status
  step "Cluster up: $n engines, Swarm managed through node 1's engine (the site on the cluster is the next step)"
  echo "unix://$(sock 1)"
}

status() {
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
