//! Isolation: strangers' code in builds and in sandboxes reaches nothing it should not. Each test
//! is an attack seen against the running site, replayed against the real engine, registry and
//! ttyd; the host-side targets (a listener on all interfaces, a trap socket) are the test's own.
mod common;
use common::*;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

const T: Duration = Duration::from_secs(30);

/// A TCP listener on every host interface that counts who connected: what a build or a sandbox
/// must not reach (the host's services on the bridge gateway).
async fn host_listener() -> Result<(u16, Arc<AtomicUsize>)> {
    let l = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let port = l.local_addr()?.port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok((port, hits))
}

/// A loopback "package mirror" the egress policy allows (`TRYTHIS_EGRESS_MIRRORS`): answers
/// `pong` to whatever arrives through the proxy's tunnel.
async fn mirror() -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = s.write_all(b"pong-from-mirror\n").await;
                }
            });
        }
    });
    Ok(port)
}

/// Bash that speaks to the egress proxy named by `$HTTP_PROXY` (user:token@host:port): a
/// CONNECT to `$1`, then one line `ping`; prints the proxy's status line and the first reply.
/// (`rd` retries reads that fail with EAGAIN, which gVisor's host network gives bash here.)
const VIA_PROXY: &str = r#"rd() { local i; for i in $(seq 50); do IFS= read -r "$1" <&3 && return 0; [ -n "${!1}" ] && return 0; sleep 0.1; done; return 1; }; via() { local status= l= reply=; set -- "$1" $(echo "$HTTP_PROXY" | sed -E 's#http://([^:]*):([^@]*)@([^:]*):([0-9]*)#\1 \2 \3 \4#'); exec 3<>/dev/tcp/$4/$5 || return; printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n' "$1" "$1" "$(printf '%s:%s' "$2" "$3" | base64 -w0)" >&3; rd status; echo "proxy said: ${status%$'\r'}"; case "$status" in *" 200 "*) while l=; rd l && [ -n "${l%$'\r'}" ]; do :; done; echo ping >&3; rd reply; echo "through: $reply";; *) while l=; rd l; do [ -n "${l%$'\r'}" ] && echo "body: ${l%$'\r'}"; [[ "$l" == trythis* ]] && break; done;; esac; exec 3>&-; }"#;

/// Probes `host/port` pairs with bash's /dev/tcp; prints `REACHED x` or `unreachable x`.
fn probe(targets: &[String]) -> String {
    format!(
        r#"for t in {}; do if timeout 3 bash -c "exec 3<>/dev/tcp/${{t%/*}}/${{t#*/}}" 2>/dev/null; then echo "REACHED $t"; else echo "unreachable $t"; fi; done"#,
        targets.join(" ")
    )
}

/// Root in the sandbox goes after the terminal's only platform part inside it: it tries to
/// replace the relay (what the engine execs for every new shell) and to remount it writable,
/// then ends its shell; the next shell must be the platform's relay, byte for byte. (The old
/// transport's attack, a socket swapped for a symlink to a host socket, has no target now: the
/// server dials only its own ttyd's socket, in a directory only it can open.)
#[tokio::test]
async fn a_sandbox_cannot_replace_the_terminal_relay() -> Result {
    use sha2::Digest;
    let relay = std::fs::read(relay_path())?;
    let want = hex::encode(sha2::Sha256::digest(&relay));
    for runtime in ["auto", "runc"] {
        let app = TestApp::start_with(&[("TRYTHIS_SANDBOX_RUNTIME", runtime)]).await?;
        let v = app.visitor().await?;
        let r = v.try_project("fixture").await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.body["id"].as_str().ok_or("id")?.to_string();
        let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
        let out = sh
            .run(
                "cp /bin/sh /opt/trythis/relay; mount -o remount,rw /opt/trythis/relay; rm -f /opt/trythis/relay; echo tried-$((40+2))",
                T,
            )
            .await?;
        assert!(out.contains("tried-42"), "{runtime}: {out}");
        sh.type_line("exit").await?;
        let closed = sh.wait_closed(T).await?;
        assert!(closed.starts_with("4002"), "{runtime}: {closed}");
        let mut again = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
        let out = again
            .run("sha256sum /opt/trythis/relay | cut -c1-64", T)
            .await?;
        assert!(out.contains(&want), "{runtime}: the relay changed: {out}");
        v.stop_sandbox(&id).await?;
        assert_eq!(app.containers_of(&id).await?, 0);
    }
    Ok(())
}

/// Root in a sandbox meets gVisor's kernel, not the host's, and gets a writable root whose
/// writes live in the sandbox's memory: servers write their pid under /var/run and logs under
/// /var/log (an apache2 project failed here on the read-only root), and filling "disk" ends
/// the sandbox without touching the host's disk.
#[tokio::test]
async fn gvisor_sandbox_has_a_writable_root_bounded_by_memory() -> Result {
    let app = TestApp::start().await?;
    let health = reqwest::get(app.url("/healthz")).await?;
    let health: serde_json::Value = health.json().await?;
    assert_eq!(health["runtime"], "runsc", "{health}");
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;

    let out = sh.run("dmesg | head -1", T).await?;
    assert!(out.contains("Starting gVisor"), "{out}");
    server_writes_pid_and_logs(&mut sh).await?;
    let out = sh
        .run(
            "touch /usr/local/bin/mine && echo wrote-usr; cat /data/seed.txt",
            T,
        )
        .await?;
    assert!(out.contains("wrote-usr") && out.contains("seeded"), "{out}");
    // No network at all: no route even to this machine's upstream.
    let out = sh.run(&probe(&["203.0.113.80/80".into()]), T).await?;
    assert!(out.contains("unreachable 203.0.113.80/80"), "{out}");

    // Fork bomb: gVisor's own process limit holds; the host sees a bounded thread count.
    sh.type_line("timeout -s KILL 8 bash -c 'b(){ b|b & }; b' 2>/dev/null")
        .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let threads = pids_in_container(&id).await?;
    assert!(
        threads <= 256 * 32,
        "host threads {threads} exceed the bound"
    );

    // "Disk": 900 MB written into the root under a 512 MB memory limit ends the sandbox; the
    // host's disk does not shrink. Fresh shell (the bomb's processes hold the old one).
    let r = v.stop_sandbox(&id).await?;
    assert_eq!(r.status, 204);
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
    sh.expect("Welcome to the fixture", T).await?;
    let before = free_bytes("/var/lib/docker")?;
    sh.type_line("dd if=/dev/zero of=/var/big bs=1M count=900")
        .await?;
    sh.wait_closed(Duration::from_secs(90)).await?;
    let after = free_bytes("/var/lib/docker")?;
    assert!(
        before.saturating_sub(after) < 64 * 1024 * 1024,
        "host disk shrank by {} bytes",
        before.saturating_sub(after)
    );
    // The sandbox ended by itself: its row says why (the page shows it) and the owner's slot is
    // free at once, not after the time limit.
    let mut info = serde_json::Value::Null;
    for _ in 0..100 {
        info = v
            .call("GET", &format!("/api/sandboxes/{id}"), None)
            .await?
            .body;
        if info["state"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(info["end_reason"], "out_of_memory", "{info}");
    assert_eq!(app.containers_of(&id).await?, 0);
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "a new Try starts: {:?}", r.body);
    let next = r.body["id"].as_str().ok_or("id")?.to_string();
    v.stop_sandbox(&next).await?;
    Ok(())
}

/// Root burning CPU in every core it can get holds its share (0.5 CPU by default) on average:
/// the limit's long period lets a start-up run at full speed, never more than the quota per
/// second. Measured host-side, in the sandbox's cgroup.
#[tokio::test]
async fn a_sandbox_burning_cpu_gets_its_share_and_no_more() -> Result {
    let app = TestApp::start().await?;
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
    sh.expect("Welcome to the fixture", T).await?;
    let (before, started) = (cpu_used(&id).await?, std::time::Instant::now());
    let out = sh
        .run(
            "for i in 1 2 3; do timeout 6 sh -c 'while :; do :; done' & done; wait; echo burned",
            Duration::from_secs(60),
        )
        .await?;
    assert!(out.contains("burned"), "{out}");
    let (used, wall) = (cpu_used(&id).await? - before, started.elapsed());
    // 0.5 CPU over the wall time, plus one period's quota of burst at each end.
    let allowed = wall.mul_f64(0.5) + Duration::from_millis(1000);
    assert!(
        used <= allowed,
        "{used:?} of CPU in {wall:?} (allowed {allowed:?})"
    );
    // The loops did burn: this is the limit at work, not an idle sandbox.
    assert!(used >= wall.mul_f64(0.2), "{used:?} of CPU in {wall:?}");
    v.stop_sandbox(&id).await?;
    Ok(())
}

/// A visitor fills their sandbox's task limit (the attack that, at 32 host PIDs per task, let
/// about twelve sandboxes take the host's whole process table). The sandbox's host PIDs stay
/// within its bound, every sandbox sits under the one parent cgroup whose pids.max caps them all
/// well below `pid_max`, the host still forks and another visitor's sandbox still answers.
#[tokio::test]
async fn a_sandbox_at_its_task_limit_leaves_the_host_and_others_working() -> Result {
    let app = TestApp::start().await?;
    let (a, b) = (app.visitor().await?, app.visitor().await?);
    let mut shells = Vec::new();
    let mut ids = Vec::new();
    for v in [&a, &b] {
        let r = v.try_project("fixture").await?;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.body["id"].as_str().ok_or("id")?.to_string();
        let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
        sh.expect("Welcome to the fixture", T).await?;
        shells.push(sh);
        ids.push(id);
    }
    let out = shells[0]
        .run(
            // 245 sleepers plus the shell's own tasks reach the limit; bash would retry a refused
            // fork for half a minute, so the loop stops just short and counts with builtins.
            "for i in {1..245}; do sleep 600 & done; t=(/proc/[0-9]*); echo \"tasks=${#t[@]}\"",
            Duration::from_secs(120),
        )
        .await?;
    let tasks: u64 = out
        .split("tasks=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .ok_or_else(|| format!("no task count in {out}"))?
        .parse()?;
    // The sandbox is at its task limit (256): this is the bound at work, not an idle sandbox.
    assert!(tasks >= 245, "only {tasks} tasks started: {out}");

    let parent = app.state.sandboxes.limits().cgroup_parent.clone();
    assert_eq!(parent.as_deref(), Some("/trythis-sandboxes"));
    let path = cgroup_path(&ids[0], "pids").await?;
    assert!(
        path.starts_with("/trythis-sandboxes/"),
        "the sandbox's pids cgroup {path} is outside the sandboxes' budget"
    );
    let read = |file: String| -> Result<u64> {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
        Ok(text.trim().parse().unwrap_or(u64::MAX)) // "max" = unbounded
    };
    let own_max = read(format!("/sys/fs/cgroup/pids{path}/pids.max"))?;
    let own_now = pids_in_container(&ids[0]).await?;
    let all_max = read("/sys/fs/cgroup/pids/trythis-sandboxes/pids.max".into())?;
    let pid_max = read("/proc/sys/kernel/pid_max".into())?;
    println!("host PIDs: sandbox A {own_now} of {own_max} ({tasks} tasks); all sandboxes ≤ {all_max}; pid_max {pid_max}");
    assert!(own_max <= 1024, "one sandbox may hold {own_max} host PIDs");
    assert!(own_now <= own_max);
    assert!(
        all_max <= pid_max / 2,
        "sandboxes together may hold {all_max} of {pid_max} host PIDs"
    );

    let forked = std::process::Command::new("true").status()?;
    assert!(forked.success(), "the host could not start a process");
    let other = shells[1].run("echo other-$((6*7))", T).await?;
    assert!(other.contains("other-42"), "{other}");
    for (v, id) in [&a, &b].into_iter().zip(&ids) {
        v.stop_sandbox(id).await?;
    }
    Ok(())
}

/// The runc fallback: read-only root plus bounded tmpfs over the usual writable directories.
#[tokio::test]
async fn runc_fallback_keeps_servers_working_and_writes_bounded() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_SANDBOX_RUNTIME", "runc")]).await?;
    let health: serde_json::Value = reqwest::get(app.url("/healthz")).await?.json().await?;
    assert_eq!(health["runtime"], "runc", "{health}");
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
    server_writes_pid_and_logs(&mut sh).await?;
    let out = sh.run("touch /usr/x 2>&1; cat /data/seed.txt", T).await?;
    assert!(
        out.contains("Read-only file system") && out.contains("seeded"),
        "{out}"
    );
    // Each writable directory is bounded: ENOSPC, and the host's disk stays put.
    for dir in ["/var/log", "/etc"] {
        let before = free_bytes("/var/lib/docker")?;
        let out = sh
            .run(
                &format!(
                    "dd if=/dev/zero of={dir}/big bs=1M count=400 2>&1 | head -2; rm -f {dir}/big"
                ),
                Duration::from_secs(60),
            )
            .await?;
        assert!(out.contains("No space left on device"), "{dir}: {out}");
        let after = free_bytes("/var/lib/docker")?;
        assert!(before.saturating_sub(after) < 64 * 1024 * 1024, "{dir}");
    }
    v.stop_sandbox(&id).await?;
    Ok(())
}

/// The host's view of a process a sandbox started: its real uid, found by a unique command line.
fn host_uid_of(cmdline: &str) -> Result<u32> {
    for entry in std::fs::read_dir("/proc")? {
        let dir = entry?.path();
        let Ok(cmd) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).replace('\0', " ").trim() == cmdline {
            let status = std::fs::read_to_string(dir.join("status"))?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .ok_or("no Uid line")?;
            return Ok(uid.parse()?);
        }
    }
    Err(format!("no host process runs `{cmdline}`").into())
}

/// Where gVisor does not run, `auto` falls back to runc in the engine's user namespace: root in
/// the sandbox is an unprivileged uid on the host, and the read-only root with seeded writable
/// directories still works. Run on the build engine, the machine's engine with `userns-remap`.
/// (On the sandbox engine with `TRYTHIS_SANDBOX_RUNTIME=runc` the same process is host uid 0.)
#[tokio::test]
async fn runc_fallback_root_is_not_root_on_the_host() -> Result {
    let engine = std::env::var("TRYTHIS_BUILD_ENGINE")
        .unwrap_or_else(|_| "unix:///run/trythis/build-engine.sock".into());
    let app = TestApp::start_with(&[
        ("TRYTHIS_DOCKER_ENDPOINT", &engine),
        ("TRYTHIS_SANDBOX_RUNTIME", "auto"),
    ])
    .await?;
    let health: serde_json::Value = reqwest::get(app.url("/healthz")).await?.json().await?;
    assert_eq!(health["runtime"], "runc+userns", "{health}");
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
    let marker = format!("sleep {}", 100_000 + rand_u32() % 100_000);
    let out = sh
        .run(&format!("{marker} & echo \"inside uid $(id -u)\""), T)
        .await?;
    assert!(out.contains("inside uid 0"), "{out}");
    let mut host_uid = Err("not looked".into());
    for _ in 0..50 {
        host_uid = host_uid_of(&marker);
        if host_uid.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let host_uid = host_uid?;
    assert_ne!(host_uid, 0, "root in the sandbox is root on the host");
    assert!(
        host_uid >= 65536,
        "host uid {host_uid} is not a subordinate uid"
    );
    server_writes_pid_and_logs(&mut sh).await?;
    let out = sh
        .run(
            "cat /data/seed.txt /root/fixture.txt && echo mine > /root/new && cat /root/new",
            T,
        )
        .await?;
    assert!(
        out.contains("seeded") && out.contains("fixture") && out.contains("mine"),
        "{out}"
    );
    v.stop_sandbox(&id).await?;
    assert_eq!(app.containers_of(&id).await?, 0);
    Ok(())
}

/// What apache2 or nginx do at start: a pid file under /var/run, logs under /var/log, a temp
/// file beside the pid, a config under /etc.
async fn server_writes_pid_and_logs(sh: &mut Shell) -> Result {
    let out = sh
        .run(
            "mkdir -p /var/run/demo /var/log/demo && start-stop-daemon --start --background --make-pidfile --pidfile /var/run/demo/demo.pid --exec /bin/bash -- -c 'while :; do date >> /var/log/demo/demo.log; sleep 0.2; done' && for i in $(seq 100); do test -s /var/log/demo/demo.log && break; sleep 0.1; done && kill -0 \"$(cat /var/run/demo/demo.pid)\" && echo server-running && test -s /var/log/demo/demo.log && echo log-written && mktemp /var/run/demo/socks.XXXXXXXXXX >/dev/null && echo /etc-ok > /etc/demo.conf && cat /etc/demo.conf",
            T,
        )
        .await?;
    assert!(
        out.contains("server-running") && out.contains("log-written") && out.contains("/etc-ok"),
        "{out}"
    );
    Ok(())
}

/// A Dockerfile's build steps probe the host (its services on the gateway and docker0), the
/// metadata address and private ranges, then ask the egress proxy for the host's loopback
/// registry. All fail, each proxy refusal is a line in the build log, an allowed mirror is
/// reachable through the proxy, and the platform's extra CA is trusted during the build only.
#[tokio::test]
async fn build_steps_reach_only_the_egress_proxy() -> Result {
    let (port, hits) = host_listener().await?;
    let mirror_port = mirror().await?;
    let ca_dir = std::env::temp_dir().join(format!("trythis-ca-{}", rand_u32()));
    std::fs::create_dir_all(&ca_dir)?;
    let marker = format!("trythis test CA {}", rand_u32());
    let ca_file = ca_dir.join("extra.pem");
    std::fs::write(
        &ca_file,
        format!("# {marker}\n-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"),
    )?;
    let mirrors = format!("127.0.0.1:{mirror_port}");
    let ca = ca_file.display().to_string();
    let app = TestApp::start_with(&[
        ("TRYTHIS_EGRESS_MIRRORS", &mirrors),
        ("TRYTHIS_EXTRA_CA_FILE", &ca),
        // Any host and these ports: so the address check is what refuses.
        ("TRYTHIS_EGRESS_ALLOW", "*"),
        ("TRYTHIS_EGRESS_PORTS", "80,443,5000"),
    ])
    .await?;
    let gw = app.state.builds.networks().build.gateway;
    let v = app.user().await?;
    let slug = unique("probe");
    let targets = [
        format!("{gw}/{port}"),
        format!("172.17.0.1/{port}"),
        "169.254.169.254/80".to_string(),
        "10.255.255.53/53".to_string(),
        "127.0.0.1/5000".to_string(),
    ];
    let dockerfile = format!(
        "FROM {}\nSHELL [\"/bin/bash\", \"-c\"]\nRUN {}\nRUN {VIA_PROXY}; via 127.0.0.1:5000; via 169.254.169.254:80; via 127.0.0.1:{mirror_port}\nRUN grep -c '{marker}' \"$SSL_CERT_FILE\" && echo \"pip=$PIP_CERT node=$NODE_EXTRA_CA_CERTS\"\n",
        base_image(),
        probe(&targets)
    );
    let id = submit_dockerfile(&v, &slug, &dockerfile).await?;
    let b = wait_build(&v, &id, Duration::from_secs(300)).await?;
    // The stored log (what `GET /api/builds/{id}/log` replays to anyone watching).
    let row = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    let log = row.log.as_str();
    assert_eq!(b["state"], "succeeded", "{b}\n{log}");
    for t in &targets {
        assert!(!log.contains(&format!("REACHED {t}")), "{t}: {log}");
        assert!(log.contains(&format!("unreachable {t}")), "{t}: {log}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the host listener was reached"
    );
    assert!(
        log.contains("trythis egress proxy: blocked: 127.0.0.1:5000 is a loopback address"),
        "{log}"
    );
    assert!(
        log.contains("trythis egress proxy: blocked: 169.254.169.254:80 is a link-local address"),
        "{log}"
    );
    assert!(log.contains("proxy said: HTTP/1.1 403 Forbidden"), "{log}");
    assert!(log.contains("through: pong-from-mirror"), "{log}");
    assert!(
        log.contains("pip=/usr/local/share/trythis/ca-certificates.crt node=/usr/local/share/trythis/ca-certificates.crt"),
        "{log}"
    );
    // The CA variables were build-time only: the published image's environment has none.
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    let image = format!(
        "{}@{}",
        p.image_repo.ok_or("repo")?,
        p.image_digest.ok_or("digest")?
    );
    let docker = server::engine::connect_docker(&app.state.config).await?;
    let env = docker
        .inspect_image(&image)
        .await?
        .config
        .and_then(|c| c.env)
        .unwrap_or_default();
    assert!(!env.is_empty(), "image has an environment (PATH)");
    assert!(
        env.iter()
            .all(|e| !e.contains("SSL_CERT_FILE") && !e.contains("PROXY")),
        "{env:?}"
    );
    let _ = std::fs::remove_dir_all(&ca_dir);
    Ok(())
}

/// `ADD <url>` made the engine fetch the host's loopback registry into a public log: refused at
/// submission with its line, nothing is built.
#[tokio::test]
async fn add_of_a_url_is_refused_before_any_build() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("addurl");
    let dockerfile = format!(
        "FROM {}\nADD http://127.0.0.1:5000/v2/_catalog /c\nRUN cat /c\n",
        base_image()
    );
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(project(
                &slug,
                serde_json::json!({ "dockerfile": dockerfile }),
            )),
        )
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let text = r.body.to_string();
    assert!(
        text.contains("line 2") && text.contains("ADD with a URL is not possible"),
        "{text}"
    );
    let p = v
        .call("GET", &format!("/api/projects/{slug}"), None)
        .await?;
    assert_eq!(p.status, 404);
    Ok(())
}

/// A project that opted into egress: its sandbox reaches neither the host, nor the metadata
/// address, nor another sandbox; outbound goes through the proxy and its policy only.
#[tokio::test]
async fn egress_sandboxes_reach_only_the_proxy() -> Result {
    let (port, hits) = host_listener().await?;
    let mirror_port = mirror().await?;
    let mirrors = format!("127.0.0.1:{mirror_port}");
    let app = TestApp::start_with(&[
        ("TRYTHIS_EGRESS_MIRRORS", &mirrors),
        ("TRYTHIS_EGRESS_ALLOW", "*"),
        ("TRYTHIS_EGRESS_PORTS", "80,443,5000"),
    ])
    .await?;
    publish_net_fixture(&app).await?;
    let networks = app.state.builds.networks().clone();
    let gw = networks.sandbox.gateway;
    // IPv6 is off on both isolated bridges (the host's rules are IPv4 only).
    for bridge in [
        server::network::bridge_name(&networks.sandbox.network),
        server::network::bridge_name(&networks.build.network),
    ] {
        let knob =
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"))?;
        assert_eq!(knob.trim(), "1", "IPv6 is on for {bridge}");
    }

    // A neighbour: another visitor's egress sandbox running a server on its address.
    let n = app.visitor().await?;
    let r = n.try_project("net-fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let nid = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut nsh = n
        .terminal(&nid)
        .await
        .map_err(|s| format!("upgrade: {s}"))?;
    let out = nsh
        .run(
            "(/opt/trythis/ttyd -p 7000 bash >/dev/null 2>&1 &); sleep 1; hostname -I",
            T,
        )
        .await?;
    let neighbour_ip = out
        .split_whitespace()
        .find(|w| w.starts_with("172.30.241."))
        .ok_or(format!("no address: {out}"))?
        .to_string();

    let v = app.visitor().await?;
    let r = v.try_project("net-fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&id).await.map_err(|s| format!("upgrade: {s}"))?;
    let targets = [
        format!("{gw}/{port}"),
        format!("172.17.0.1/{port}"),
        "169.254.169.254/80".to_string(),
        format!("{neighbour_ip}/7000"),
        // The build network's proxy is on the host too: not this network's way out.
        format!(
            "{}/{}",
            networks.build.gateway,
            networks.build.proxy.local_addr().port()
        ),
    ];
    let out = sh.run(&probe(&targets), Duration::from_secs(60)).await?;
    for t in &targets {
        assert!(!out.contains(&format!("REACHED {t}")), "{t}: {out}");
        assert!(out.contains(&format!("unreachable {t}")), "{t}: {out}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let out = sh
        .run(
            &format!("{VIA_PROXY}; via 127.0.0.1:5000; via 127.0.0.1:{mirror_port}"),
            T,
        )
        .await?;
    assert!(
        out.contains("body: trythis egress proxy: blocked: 127.0.0.1:5000 is a loopback address"),
        "{out}"
    );
    assert!(out.contains("through: pong-from-mirror"), "{out}");
    for (who, sid) in [(&v, &id), (&n, &nid)] {
        who.stop_sandbox(sid).await?;
    }
    // Stopped and removed (its proxy credential is revoked with it: egress/tests cover 407).
    assert_eq!(app.containers_of(&id).await?, 0);
    Ok(())
}
