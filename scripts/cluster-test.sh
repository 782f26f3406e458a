#!/usr/bin/env bash
# The local multi-host cluster (scripts/cluster.sh) tested as a real cluster: three engines in
# network namespaces joined by Swarm, sandboxes placed by Swarm on the sandbox nodes under gVisor
# without network, pulled from the platform registry at the cluster address; drain honoured; a
# node whose engine dies marked Down (the time is printed, not asserted); `down` leaves nothing.
# Needs root, the host engine, runsc and the platform registry (set up by scripts/run.sh or scripts/test.sh). With --bench it
# also measures a sandbox launched as a one-task service against a container started on a node
# Swarm reports Ready (docs/SCALING.md), TRYTHIS_CLUSTER_BENCH_RUNS (10) of each.
source "$(dirname "$0")/lib.sh"

T0=$(date +%s.%N)
CLUSTER="$ROOT/scripts/cluster.sh"
export TRYTHIS_CLUSTER_SITE=off   # the cluster alone: up prints the manager's engine last, no site
STATE=${TRYTHIS_CLUSTER_DIR:-/run/trythis-c}
NET=${TRYTHIS_CLUSTER_NET:-192.168.231}
PUSH_REF="$REGISTRY_ADDR/trythis-c/probe:1"
NODE_REF="$NET.1:5000/trythis-c/probe:1"
SANDBOX=(--constraint node.labels.trythis.sandbox==true --no-resolve-image --read-only --cap-drop ALL
  --limit-pids 64 --init --stop-grace-period 1s --reserve-memory 32M --reserve-cpu 0.05 --limit-memory 256M --limit-cpu 1)
BENCH=0; [ "${1:-}" = --bench ] && BENCH=1

dk() { local i=$1; shift; docker -H "unix://$STATE/n$i/docker.sock" "$@"; }
pass() { printf '    \033[32mPASS\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31mFAIL\033[0m %s\n' "$*" >&2; exit 1; }
node_index() { echo "${1#trythis-c}"; }   # Swarm hostname trythis-cN → N
# running_tasks SERVICE: the node hostname of each running task, one a line.
running_tasks() { dk 1 service ps "$1" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' | awk '$2 == "Running" {print $1}'; }
wait_running() {  # wait_running SERVICE COUNT
  for _ in $(seq 1 240); do
    [ "$(running_tasks "$1" | wc -l)" -ge "$2" ] && return 0; sleep 0.25
  done
  dk 1 service ps --no-trunc "$1" >&2
  fail "$1: $2 tasks not running within 60 s"
}
rm_service() {  # rm_service NAME: removed, and its containers gone from every node's engine
  dk 1 service rm "$1" >/dev/null
  for _ in $(seq 1 120); do
    local left=0 i
    for i in 2 3; do [ -n "$(dk "$i" ps -aq --filter "label=com.docker.swarm.service.name=$1" 2>/dev/null)" ] && left=1; done
    [ $left = 0 ] && return 0; sleep 0.25
  done
  fail "$1's containers still on the nodes 30 s after service rm"
}
# The host's engines are not ours: the count of dockerd before must be the count after.
# Live ones only: an engine just stopped may linger a moment as a zombie of its reaper.
live_dockerd() { ps -C dockerd -o stat= | grep -vc '^Z' || true; }
DOCKERD_BEFORE=$(live_dockerd)

# The probe image out of the host engine and its tag out of the platform registry (its layers
# are the base image's, kept by the platform's own manifests).
remove_probe_image() {
  docker image rm "$PUSH_REF" >/dev/null 2>&1 || true
  local digest
  digest=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_ADDR/v2/trythis-c/probe/manifests/1" 2>/dev/null | tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}' || true)
  [ -z "$digest" ] || curl -fsS -o /dev/null -X DELETE "http://$REGISTRY_ADDR/v2/trythis-c/probe/manifests/$digest" || true
}
cleanup() {
  "$CLUSTER" down >/dev/null 2>&1 || true
  remove_probe_image
}
trap cleanup EXIT

step "Cluster up 3 (one manager, two sandbox nodes)"
"$CLUSTER" down >/dev/null 2>&1 || true
"$CLUSTER" up 3 >"$DATA/logs/cluster-up.log" 2>&1 || { tail -20 "$DATA/logs/cluster-up.log"; fail "cluster.sh up 3"; }
ENDPOINT=$(tail -1 "$DATA/logs/cluster-up.log")
[ "$ENDPOINT" = "unix://$STATE/n1/docker.sock" ] || fail "last line of up is '$ENDPOINT', not the manager's endpoint"
READY=$(dk 1 node ls --format '{{.Hostname}} {{.Status}}' | awk '$2 == "Ready"' | wc -l)
[ "$READY" = 3 ] || fail "$READY nodes Ready, 3 expected"
ROLES=$(dk 1 node ls -q | xargs docker -H "$ENDPOINT" node inspect -f '{{.Description.Hostname}}:{{.Spec.Role}}:{{.Spec.Availability}}:{{index .Spec.Labels "trythis.sandbox"}}' | sort | tr '\n' ' ')
[ "$ROLES" = "trythis-c1:manager:drain: trythis-c2:worker:active:true trythis-c3:worker:active:true " ] \
  || fail "nodes (hostname:role:availability:trythis.sandbox): $ROLES"
pass "3 nodes Ready: $ROLES; manager endpoint $ENDPOINT"
# Idempotent: a second up keeps the same swarm.
SWARM_ID=$(dk 1 info -f '{{.Swarm.Cluster.ID}}')
"$CLUSTER" up 3 >/dev/null 2>&1 || fail "a second cluster.sh up 3"
[ "$(dk 1 info -f '{{.Swarm.Cluster.ID}}')" = "$SWARM_ID" ] && [ "$(dk 1 node ls -q | wc -l)" = 3 ] \
  || fail "a second up changed the swarm"
pass "up is idempotent"

step "An image in the platform registry, pulled by a sandbox node from $NET.1:5000"
docker tag "$BASE_IMAGE" "$PUSH_REF" && docker push -q "$PUSH_REF" >/dev/null || fail "push to $REGISTRY_ADDR"
# The nodes cannot push: the cluster registry is read-only.
UPLOAD=$(nsenter --net=/var/run/netns/trythis-c2 curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST "http://$NET.1:5000/v2/trythis-c/probe/blobs/uploads/")
[ "$UPLOAD" = 202 ] && fail "a node may start an upload to the cluster registry"
pass "the cluster registry refuses a node's upload (HTTP $UPLOAD)"
dk 1 service create -q --detach --name trythis-c-probe "${SANDBOX[@]}" "$NODE_REF" sleep 600 >/dev/null \
  || fail "service create"
wait_running trythis-c-probe 1
NODE=$(running_tasks trythis-c-probe | head -1); I=$(node_index "$NODE")
[ "$I" = 2 ] || [ "$I" = 3 ] || fail "the sandbox task runs on $NODE, not on a sandbox node"
CID=$(dk "$I" ps -q --filter label=com.docker.swarm.service.name=trythis-c-probe)
[ -n "$CID" ] || fail "no container of trythis-c-probe on $NODE's own engine"
pass "task on $NODE (container ${CID:0:12} on that node's engine)"
dk "$I" image inspect "$NODE_REF" >/dev/null 2>&1 || fail "$NODE has no $NODE_REF (pulled from elsewhere?)"
pass "$NODE pulled $NODE_REF"
RUNTIME=$(dk "$I" inspect -f '{{.HostConfig.Runtime}}' "$CID")
FIRST=$(dk "$I" exec "$CID" dmesg 2>&1 | head -1 || true)
[[ "$FIRST" == *"Starting gVisor"* ]] || fail "dmesg in the sandbox starts with '$FIRST' (runtime $RUNTIME), not gVisor"
pass "gVisor: runtime $RUNTIME, dmesg: $FIRST"
IFACES=$(dk "$I" exec "$CID" cat /proc/net/dev 2>&1 | awk -F: 'NR > 2 {gsub(/ /, "", $1); print $1}' | tr '\n' ' ')
[ "$IFACES" = "lo " ] || fail "interfaces in the sandbox: $IFACES (only lo expected)"
pass "no network: interfaces '$IFACES'"
# Read-only root, no capabilities, the PID limit: the engine's record and the sandbox's behaviour.
dk "$I" exec "$CID" sh -c 'echo x >/probe' 2>/dev/null && fail "the sandbox wrote to its read-only root"
[ "$(dk "$I" inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}}' "$CID")" = "true 64 [ALL]" ] \
  || fail "limits on the node's container: $(dk "$I" inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}}' "$CID")"
CAPS=$(dk "$I" exec "$CID" awk '/^CapEff/ {print $2}' /proc/self/status 2>&1 || true)
[ "$CAPS" = 0000000000000000 ] || fail "effective capabilities in the sandbox: $CAPS"
pass "read-only root, CapEff $CAPS, pids limit 64"
rm_service trythis-c-probe

step "10 replicas spread over both sandbox nodes"
dk 1 service create -q --detach --name trythis-c-spread --replicas 10 "${SANDBOX[@]}" "$NODE_REF" sleep 600 >/dev/null \
  || fail "service create"
wait_running trythis-c-spread 10
SPREAD=$(running_tasks trythis-c-spread | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
ON2=$(running_tasks trythis-c-spread | grep -cx trythis-c2 || true)
ON3=$(running_tasks trythis-c-spread | grep -cx trythis-c3 || true)
[ "$ON2" -gt 0 ] && [ "$ON3" -gt 0 ] && [ $((ON2 + ON3)) = 10 ] || fail "tasks per node: $SPREAD"
pass "tasks per node: $SPREAD"
rm_service trythis-c-spread

if [ $BENCH = 1 ]; then
  RUNS=${TRYTHIS_CLUSTER_BENCH_RUNS:-10}
  step "Launch times, $RUNS each: one-task service vs container on a Ready node (both under gVisor)"
  now() { date +%s%N; }
  ms() { echo $(( ($2 - $1) / 1000000 )); }
  SVC_MS=(); CTR_MS=(); SVC_START_MS=(); CTR_START_MS=()
  started_ns() { date -d "$(dk "$1" inspect -f '{{.State.StartedAt}}' "$2")" +%s%N; }
  for r in $(seq 1 "$RUNS"); do
    t=$(now)
    dk 1 service create -q --detach --name "trythis-c-b$r" --restart-condition none "${SANDBOX[@]}" "$NODE_REF" sleep 600 >/dev/null
    until [ "$(running_tasks "trythis-c-b$r" | wc -l)" = 1 ]; do sleep 0.05; done
    SVC_MS+=("$(ms "$t" "$(now)")")
    # Without the polling's cost: the engine's own start time of the task's container.
    N=$(running_tasks "trythis-c-b$r")
    SVC_START_MS+=("$(ms "$t" "$(started_ns "$(node_index "$N")" "$(dk "$(node_index "$N")" ps -q --filter "label=com.docker.swarm.service.name=trythis-c-b$r")")")")
    rm_service "trythis-c-b$r"
  done
  for r in $(seq 1 "$RUNS"); do
    t=$(now)
    # The platform's choice: a Ready, active sandbox node (Swarm's view), then create + start there.
    N=$(dk 1 node ls --filter node.label=trythis.sandbox=true --format '{{.Hostname}} {{.Status}} {{.Availability}}' \
      | awk '$2 == "Ready" && $3 == "Active" {print $1}' | sed -n "$(( r % 2 + 1 ))p")
    dk "$(node_index "$N")" run -d -q --name "trythis-c-b$r" --read-only --cap-drop ALL --pids-limit 64 --memory 256M --cpus 1 \
      "$NODE_REF" sleep 600 >/dev/null
    CTR_MS+=("$(ms "$t" "$(now)")")
    CTR_START_MS+=("$(ms "$t" "$(started_ns "$(node_index "$N")" "trythis-c-b$r")")")
    dk "$(node_index "$N")" rm -f "trythis-c-b$r" >/dev/null
  done
  stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "p50 %d ms, min %d, max %d (n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR}'; }
  echo "    BENCH one-task service (create → task Running): $(stats "${SVC_MS[@]}")"
  echo "    BENCH container on a Ready node (node ls + run -d): $(stats "${CTR_MS[@]}")"
  echo "    BENCH to the container's start (engine's StartedAt): service $(stats "${SVC_START_MS[@]}"); container $(stats "${CTR_START_MS[@]}")"
fi

step "A drained node gets none of a new service's tasks"
ID3=$(dk 3 info -f '{{.Swarm.NodeID}}')
dk 1 node update --availability drain "$ID3" >/dev/null
dk 1 service create -q --detach --name trythis-c-drained --replicas 4 "${SANDBOX[@]}" "$NODE_REF" sleep 600 >/dev/null \
  || fail "service create"
wait_running trythis-c-drained 4
PLACED=$(running_tasks trythis-c-drained | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
[ "$(running_tasks trythis-c-drained | grep -cx trythis-c3 || true)" = 0 ] || fail "drained trythis-c3 got tasks: $PLACED"
[ -z "$(dk 3 ps -q)" ] || fail "drained trythis-c3's engine runs containers: $(dk 3 ps --format '{{.Names}}')"
pass "tasks: $PLACED"
rm_service trythis-c-drained
dk 1 node update --availability active "$ID3" >/dev/null

step "A node whose engine dies is marked Down by the manager"
PID3=$(cat "$STATE/n3/docker.pid")
t=$(date +%s%N)
kill -KILL "$PID3"   # the machine's loss, not a clean stop
DOWN=""
for _ in $(seq 1 240); do
  [ "$(dk 1 node inspect -f '{{.Status.State}}' "$ID3")" = down ] && { DOWN=$(( ($(date +%s%N) - t) / 1000000 )); break; }
  sleep 0.25
done
[ -n "$DOWN" ] || fail "trythis-c3 not marked down within 60 s of its engine's death"
pass "trythis-c3 Down after ${DOWN} ms (MEASURED, not asserted)"

step "down leaves nothing"
"$CLUSTER" down >"$DATA/logs/cluster-down.log" 2>&1 || { tail -20 "$DATA/logs/cluster-down.log"; fail "cluster.sh down"; }
LEFT=""
# Captured first: with pipefail, `cmd | grep -q` can fail on a match (cmd killed by SIGPIPE).
NETNS=$(ip netns list | grep trythis-c || true); LINKS=$(ip -br link | awk '/trythis-c/ {print $1}')
RULES=$(iptables -w -S | grep trythis-c || true); CGROUPS=$(ls -d /sys/fs/cgroup/*/trythis-c* /sys/fs/cgroup/trythis-c* 2>/dev/null || true)
[ -n "$NETNS" ] && LEFT+="netns: $(echo $NETNS); "
[ -n "$LINKS" ] && LEFT+="links: $(echo $LINKS); "
[ -n "$RULES" ] && LEFT+="iptables: $(tr '\n' ';' <<<"$RULES"); "
[ "$(live_dockerd)" = "$DOCKERD_BEFORE" ] || LEFT+="dockerd: $(live_dockerd) running, $DOCKERD_BEFORE before; "
for p in /proc/[0-9]*; do grep -qa "$STATE" "$p/cmdline" 2>/dev/null && LEFT+="process ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" | cut -c1-80); "; done
grep -q " $STATE" /proc/self/mountinfo && LEFT+="mounts under $STATE; "
[ -e "$STATE" ] && LEFT+="$STATE exists; "
[ -n "$CGROUPS" ] && LEFT+="cgroups: $(echo $CGROUPS); "
curl -fsS -m 1 "http://$NET.1:5000/v2/" >/dev/null 2>&1 && LEFT+="the cluster registry answers; "
[ -z "$LEFT" ] || fail "left after down: $LEFT"
pass "no netns, link, firewall rule, dockerd, process, mount, cgroup or state directory of the cluster left"

trap - EXIT
remove_probe_image
step "cluster-test passed in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}') s"
