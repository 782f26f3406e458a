//! `scripts/bench.sh` — Try latency and memory, against the real engine, registry and ttyd.
//!
//! Measures, on the loopback only: time from the Try request to the first shell byte on the
//! terminal WebSocket (50 sequential launches, then 20 and 50 concurrent, cold and from a warm
//! pool), host memory per idle sandbox (the drop in `MemAvailable` over 50 idle sandboxes with
//! their shells attached, and its parts) and server memory per open terminal. Prints numbers;
//! asserts nothing.
mod common;
use common::Ws;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Target {
    base: String,
    http: reqwest::Client,
}

impl Target {
    async fn launch(&self) -> Result<(String, String, Ws, f64)> {
        common::launch(&self.http, &self.base).await
    }

    async fn stop(&self, id: &str, cookie: &str) -> Result {
        common::stop(&self.http, &self.base, id, cookie).await
    }

    /// The server's launch phase totals from `/metrics`: (engine s, shell s, launches).
    async fn phases(&self) -> Result<(f64, f64, f64)> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("no {series} in /metrics"))
        };
        Ok((
            value("trythis_sandbox_launch_phase_seconds_sum{phase=\"engine\"}")?,
            value("trythis_sandbox_launch_phase_seconds_sum{phase=\"shell\"}")?,
            value("trythis_sandbox_launch_phase_seconds_count{phase=\"engine\"}")?,
        ))
    }

    /// Prints where the launches since `before` spent their time, per launch.
    async fn print_phases(&self, before: (f64, f64, f64)) -> Result {
        let after = self.phases().await?;
        let n = (after.2 - before.2).max(1.0);
        println!(
            "  phases per launch (server metrics): engine create + start {:.0} ms, then relay + ttyd + shell to its first byte {:.0} ms",
            (after.0 - before.0) / n * 1000.0,
            (after.1 - before.1) / n * 1000.0
        );
        Ok(())
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints a latency line; returns (p50, p95).
fn summary(name: &str, mut v: Vec<f64>, errors: usize) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<34} n={:<3} errors={errors:<2} p50={:>6.0} ms  p95={:>6.0} ms  max={:>6.0} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.95),
        v.last().copied().unwrap_or(f64::NAN)
    );
    (pct(&v, 0.5), pct(&v, 0.95))
}

fn rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(String::from)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Resident memory of every process whose name is one of `names`.
fn rss_of(names: &[&str]) -> u64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| names.contains(&c.trim()))
        })
        .map(|pid| rss_kb(&pid))
        .sum()
}

/// The platform's ttyd processes (one per app server; a terminal costs it a connection and a pty).
fn ttyd_rss_kb() -> u64 {
    rss_of(&["ttyd"])
}

/// The engine's daemons (dockerd, containerd), which keep state per container.
fn daemons_rss_kb() -> u64 {
    rss_of(&["dockerd", "containerd"])
}

fn self_rss_kb() -> u64 {
    rss_kb("self")
}

/// Where one sandbox's memory is, in KB.
struct Parts {
    /// The container's memory cgroup (cgroup v1, as on this machine).
    cgroup_kb: u64,
    /// Proportional set size of gVisor's kernel (`runsc-sandbox`, the sentry) in that cgroup;
    /// under runc there is none: the container's processes are the image's.
    sentry_pss_kb: u64,
    /// The same for gVisor's file server (`runsc-gofer`).
    gofer_pss_kb: u64,
    /// The containerd shim, a host process outside the cgroup.
    shim_pss_kb: u64,
    /// The terminal's host side: the `trythis-relay attach` ttyd runs for it.
    attach_pss_kb: u64,
}

fn pss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn mem_available_kb() -> Result<u64> {
    let m = std::fs::read_to_string("/proc/meminfo")?;
    m.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .ok_or_else(|| "no MemAvailable in /proc/meminfo".into())
}

/// `n` new visitors press Try at the same moment; prints the latency summary and returns the
/// sandboxes that started.
async fn at_once(
    t: &std::sync::Arc<Target>,
    n: usize,
    name: &str,
) -> (Vec<(String, String, Ws)>, f64) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.launch().await })
        })
        .collect();
    let (mut times, mut errors, mut live) = (Vec::new(), 0, Vec::new());
    for task in tasks {
        match task.await {
            Ok(Ok((id, c, ws, ms))) => {
                times.push(ms);
                live.push((id, c, ws));
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("error: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let (_, p95) = summary(name, times, errors);
    (live, p95)
}

/// CPU time used on this machine, per process name, in clock ticks: each process's own time plus
/// that of the children it has reaped (the shim reaps the `runsc create`/`start` it runs).
struct CpuSnapshot {
    per_name: std::collections::HashMap<String, u64>,
    /// Busy ticks of all cores together (from `/proc/stat`).
    busy: u64,
    at: std::time::Instant,
}

/// Linux reports process and core times in USER_HZ ticks, 100 per second on every
/// mainstream kernel configuration.
const TICKS_PER_SEC: f64 = 100.0;

fn cpu_snapshot() -> CpuSnapshot {
    let me = std::process::id().to_string();
    let mut per_name = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state …`: the name may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime, stime, cutime, cstime are fields 14–17 of stat, 12–15 after the name.
        let ticks: u64 = fields
            .get(11..15)
            .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        let name = if pid == me {
            "trythis (server, in the bench process)".to_string()
        } else {
            stat[open + 1..close].to_string()
        };
        *per_name.entry(name).or_insert(0) += ticks;
    }
    let busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let cpu: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
            Some(cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?)
        })
        .unwrap_or(0);
    CpuSnapshot {
        per_name,
        busy,
        at: std::time::Instant::now(),
    }
}

/// Where the machine's CPU went between two snapshots: the profile of a burst of launches.
fn cpu_report(before: &CpuSnapshot, after: &CpuSnapshot, launches: usize) {
    let wall = (after.at - before.at).as_secs_f64();
    let busy = after.busy.saturating_sub(before.busy) as f64 / TICKS_PER_SEC;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut used: Vec<(String, f64)> = after
        .per_name
        .iter()
        .map(|(name, t)| {
            let was = before.per_name.get(name).copied().unwrap_or(0);
            (name.clone(), t.saturating_sub(was) as f64 / TICKS_PER_SEC)
        })
        .filter(|(_, s)| *s >= 0.05)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let named: f64 = used.iter().map(|(_, s)| s).sum();
    let top = used
        .iter()
        .take(7)
        .map(|(n, s)| format!("{n} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "  CPU profile: {cores:.0} cores {:.0} % busy over {wall:.2} s = {busy:.1} CPU-s ({:.2} per launch; at that cost {launches} launches need {:.2} s on {cores:.0} cores); by process: {top}; not attributed (exited processes, kernel) {:.1} s",
        100.0 * busy / (wall * cores),
        busy / launches as f64,
        busy / cores,
        (busy - named).max(0.0),
    );
}

/// The bare engine floor: what a Try needs at the least, straight from the engine, without
/// trythis: create a container of the same image with `host` (the same runtime, no network),
/// attach, start, and read the first byte of an interactive shell. Returns (container id, ms).
async fn bare_launch(
    docker: &bollard::Docker,
    image: &str,
    host: &bollard::models::HostConfig,
) -> Result<(String, f64)> {
    use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptions};
    use futures::StreamExt;
    let t0 = std::time::Instant::now();
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec!["sh".into()]),
        cmd: Some(vec!["-i".into()]),
        tty: Some(true),
        open_stdin: Some(true),
        network_disabled: Some(true),
        labels: Some(std::collections::HashMap::from([(
            "trythis.bench".to_string(),
            "bare".to_string(),
        )])),
        host_config: Some(host.clone()),
        ..Default::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await?;
    let opts = AttachContainerOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let mut attached = docker.attach_container(&created.id, Some(opts)).await?;
    docker.start_container(&created.id, None).await?;
    loop {
        match attached.output.next().await {
            Some(Ok(out)) => {
                if !out.into_bytes().is_empty() {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the bare shell ended before its prompt".into()),
        }
    }
    Ok((created.id, t0.elapsed().as_secs_f64() * 1000.0))
}

async fn bare_remove(docker: &bollard::Docker, id: &str) -> Result {
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    docker.remove_container(id, Some(opts)).await?;
    Ok(())
}

/// `n` bare launches at once; prints the summary. Returns the containers and the p95 in ms.
async fn bare_at_once(
    docker: &bollard::Docker,
    image: &str,
    host: &bollard::models::HostConfig,
    n: usize,
) -> (Vec<String>, f64) {
    let runs = futures::future::join_all((0..n).map(|_| bare_launch(docker, image, host))).await;
    let (mut ids, mut times, mut errors) = (Vec::new(), Vec::new(), 0);
    for r in runs {
        match r {
            Ok((id, ms)) => {
                ids.push(id);
                times.push(ms);
            }
            Err(e) => {
                errors += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let runtime = host.runtime.as_deref().unwrap_or("runc");
    let (_, p95) = summary(
        &format!("bare engine ({runtime}), {n} at once"),
        times,
        errors,
    );
    (ids, p95)
}

/// What each of the sandbox's settings adds to the bare floor: launches with all of them and with
/// all but one, alternating, 10 rounds; prints p50 with all minus p50 without each.
async fn settings_profile(
    docker: &bollard::Docker,
    image: &str,
    sandbox_host: &bollard::models::HostConfig,
) -> Result {
    use bollard::models::HostConfig;
    let all = sandbox_host.clone();
    let variants: Vec<(&str, HostConfig)> = vec![
        ("all", all.clone()),
        (
            "init (tini as PID 1)",
            HostConfig {
                init: None,
                ..all.clone()
            },
        ),
        (
            "the read-only binds (relay; gVisor: the xattr workaround)",
            HostConfig {
                mounts: None,
                ..all.clone()
            },
        ),
        (
            "the CPU limit",
            HostConfig {
                nano_cpus: None,
                cpu_period: None,
                cpu_quota: None,
                ..all.clone()
            },
        ),
        (
            "the memory, pids and nproc limits",
            HostConfig {
                memory: None,
                memory_swap: None,
                pids_limit: None,
                ulimits: None,
                ..all.clone()
            },
        ),
        (
            "capabilities and no-new-privileges",
            HostConfig {
                cap_drop: None,
                cap_add: None,
                security_opt: None,
                ..all.clone()
            },
        ),
    ];
    let mut times = vec![Vec::new(); variants.len()];
    for _ in 0..10 {
        for (i, (_, host)) in variants.iter().enumerate() {
            let (id, ms) = bare_launch(docker, image, host).await?;
            times[i].push(ms);
            bare_remove(docker, &id).await?;
        }
    }
    let p50: Vec<f64> = times
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.total_cmp(b));
            pct(&v, 0.5)
        })
        .collect();
    let parts = variants
        .iter()
        .zip(&p50)
        .skip(1)
        .map(|((name, _), without)| format!("{name} {:+.0} ms", p50[0] - without))
        .collect::<Vec<_>>()
        .join(", ");
    println!("  what each setting adds to the floor (p50 {:.0} ms with all, minus p50 without it, 10 rounds): {parts}", p50[0]);
    Ok(())
}

async fn sandbox_memory_kb(docker: &bollard::Docker, sandbox_id: &str) -> Result<Parts> {
    let info = docker
        .inspect_container(&format!("trythis-{sandbox_id}"), None)
        .await?;
    let (id, pid) = (
        info.id.unwrap_or_default(),
        info.state.and_then(|s| s.pid).unwrap_or(0),
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = cgroup
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        })
        .and_then(|l| l.splitn(3, ':').nth(2))
        .ok_or("no memory cgroup")?;
    let usage: u64 =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"))?
            .trim()
            .parse()?;
    let (mut shim, mut sentry, mut gofer, mut attach) = (0, 0, 0, 0);
    let name = format!("trythis-{sandbox_id}");
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let pid_dir = entry.file_name().to_string_lossy().to_string();
        if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{pid_dir}/cmdline")) {
            if cmd.contains("\0attach\0") && cmd.ends_with(&format!("\0{name}\0")) {
                attach += pss_kb(&pid_dir);
                continue;
            }
            if !cmd.contains(&id) {
                continue;
            }
            if cmd.contains("containerd-shim") {
                shim = pss_kb(&pid_dir);
            } else if cmd.starts_with("runsc-gofer") {
                gofer += pss_kb(&pid_dir);
            } else if cmd.starts_with("runsc") {
                sentry += pss_kb(&pid_dir);
            }
        }
    }
    Ok(Parts {
        cgroup_kb: usage / 1024,
        sentry_pss_kb: sentry,
        gofer_pss_kb: gofer,
        shim_pss_kb: shim,
        attach_pss_kb: attach,
    })
}

#[tokio::main]
async fn main() -> Result {
    let (dir, data, db_url) = common::scratch("bench")?;
    let ttyd = std::env::var("TRYTHIS_TTYD_PATH").unwrap_or_else(|_| "data/bin/ttyd".into());
    let relay =
        std::env::var("TRYTHIS_RELAY_PATH").unwrap_or_else(|_| "data/bin/trythis-relay".into());
    // `runsc` (the default runtime, gVisor) or `runc+userns` (the fallback: runc on the build
    // engine, which remaps uids, as the conformance tests run it). The second pass skips the
    // 50-at-once burst and the warm pool.
    let bench_runtime = std::env::var("TRYTHIS_BENCH_RUNTIME").unwrap_or_else(|_| "runsc".into());
    let full = bench_runtime == "runsc";
    let build_engine = std::env::var("TRYTHIS_BUILD_ENGINE")
        .unwrap_or_else(|_| "unix:///run/trythis/build-engine.sock".into());
    println!("sandbox runtime under test: {bench_runtime}");
    let mut pairs = vec![
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_TTYD_PATH", ttyd.as_str()),
        ("TRYTHIS_RELAY_PATH", relay.as_str()),
        ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
        ("TRYTHIS_MAX_SANDBOXES", "60"),
        ("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", "100000"),
        ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "100000"),
        // Every bench client is 127.0.0.1: the per-network share is for real traffic.
        ("TRYTHIS_SANDBOXES_PER_IP", "100000"),
    ];
    if full {
        pairs.push(("TRYTHIS_SANDBOX_RUNTIME", "runsc"));
    } else {
        pairs.push(("TRYTHIS_DOCKER_ENDPOINT", build_engine.as_str()));
        pairs.push(("TRYTHIS_SANDBOX_RUNTIME", "auto"));
    }
    let config = server::config::Config::from_pairs(pairs.clone())?;
    let base =
        std::env::var("TRYTHIS_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into());
    let docker = server::engine::connect_docker(&config).await?;
    let addr = common::serve_bench_project(config, "bench", &base).await?;
    let t = std::sync::Arc::new(Target {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    });

    // Warm-up: the first launch of an image reads its home directory once (cached afterwards).
    let (id, c, _, first) = t.launch().await?;
    // The bare floor uses the same image and runtime as the sandboxes.
    let info = docker
        .inspect_container(&format!("trythis-{id}"), None)
        .await?;
    let image = info
        .config
        .and_then(|c| c.image)
        .ok_or("sandbox without image")?;
    // The sandbox's own settings (mounts, limits, init), to tell their cost from trythis's.
    let sandbox_host = info.host_config.unwrap_or_default();
    let runtime = sandbox_host
        .runtime
        .clone()
        .unwrap_or_else(|| "runc".into());
    let bare_host = bollard::models::HostConfig {
        network_mode: Some("none".into()),
        runtime: Some(runtime.clone()),
        ..Default::default()
    };
    t.stop(&id, &c).await?;
    println!("first launch of a new image (reads its dirs once): {first:.0} ms");

    let mut seq = Vec::new();
    let mut errors = 0;
    let phases = t.phases().await?;
    for _ in 0..50 {
        match t.launch().await {
            Ok((id, c, ws, ms)) => {
                seq.push(ms);
                drop(ws);
                t.stop(&id, &c).await?;
            }
            Err(e) => {
                errors += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let (try_p50, _) = summary("Try -> first shell byte, sequential", seq, errors);
    t.print_phases(phases).await?;
    // Alternating, so a drift of the machine's speed weighs on both alike.
    let (mut bare, mut dressed) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        for (host, times) in [(&bare_host, &mut bare), (&sandbox_host, &mut dressed)] {
            let (id, ms) = bare_launch(&docker, &image, host).await?;
            times.push(ms);
            bare_remove(&docker, &id).await?;
        }
    }
    let (bare_p50, _) = summary(&format!("bare engine ({runtime}), sequential"), bare, 0);
    println!(
        "  bare engine = create + attach + start + first byte of `sh -i`, same image and runtime, no trythis; cold Try / bare floor at p50: {:.2}x (goal <= 1.0x)",
        try_p50 / bare_p50
    );
    let (dressed_p50, _) = summary("bare engine, sandbox's settings", dressed, 0);
    println!(
        "  the sandbox's mounts, limits and init cost {:+.0} ms at p50 over the bare floor; the other {:.0} ms of the gap to the Try are trythis's own (the server, ttyd and its relay, the engine's exec with a TTY, bash)",
        dressed_p50 - bare_p50,
        try_p50 - dressed_p50
    );
    settings_profile(&docker, &image, &sandbox_host).await?;
    if std::env::var("TRYTHIS_BENCH_ONLY").as_deref() == Ok("floor") {
        return Ok(());
    }

    for n in if full { vec![20, 50] } else { vec![20] } {
        let (before, phases) = (cpu_snapshot(), t.phases().await?);
        let (live, try_p95) = at_once(
            &t,
            n,
            &format!("Try -> first shell byte, {n} at once (cold)"),
        )
        .await;
        cpu_report(&before, &cpu_snapshot(), n);
        t.print_phases(phases).await?;
        for (id, c, _) in live {
            t.stop(&id, &c).await?;
        }
        if n == 20 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let before = cpu_snapshot();
            let (ids, bare_p95) = bare_at_once(&docker, &image, &bare_host, n).await;
            cpu_report(&before, &cpu_snapshot(), n);
            for id in ids {
                bare_remove(&docker, &id).await?;
            }
            println!(
                "  {n} at once, cold Try / bare floor at p95: {:.2}x",
                try_p95 / bare_p95
            );
        }
    }

    // Memory: 50 idle sandboxes with their shells attached. The host's view (MemAvailable, which
    // counts shared pages once) is the figure; the parts say where it goes.
    const IDLE: usize = 50;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (avail0, rss0, daemons0, ttyd0) = (
        mem_available_kb()?,
        self_rss_kb(),
        daemons_rss_kb(),
        ttyd_rss_kb(),
    );
    let mut live = Vec::new();
    for _ in 0..IDLE {
        let (id, c, ws, _) = t.launch().await?;
        live.push((id, c, ws));
    }
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let (avail1, rss1, daemons1, ttyd1) = (
        mem_available_kb()?,
        self_rss_kb(),
        daemons_rss_kb(),
        ttyd_rss_kb(),
    );
    let mut per = Vec::new();
    for (id, _, _) in &live {
        per.push(sandbox_memory_kb(&docker, id).await?);
    }
    let n = per.len() as f64;
    let drop_mb = avail0.saturating_sub(avail1) as f64 / n / 1024.0;
    let part = |f: fn(&Parts) -> u64| per.iter().map(f).sum::<u64>() as f64 / n / 1024.0;
    println!(
        "memory per idle sandbox ({IDLE} open, host MemAvailable drop): {drop_mb:.1} MB = {:.0} sandboxes per GB",
        1024.0 / drop_mb
    );
    println!(
        "  parts: container cgroup {:.1} MB (sandbox kernel or init + relay + shell + files), gVisor's processes: its kernel (runsc-sandbox) {:.1} MB PSS, its file server (runsc-gofer) {:.1} MB PSS; outside the cgroup the containerd shim {:.1} MB PSS, the terminal's host side (relay attach) {:.2} MB PSS, ttyd growth {:.2} MB RSS and dockerd + containerd growth {:.1} MB RSS",
        part(|p| p.cgroup_kb),
        part(|p| p.sentry_pss_kb),
        part(|p| p.gofer_pss_kb),
        part(|p| p.shim_pss_kb),
        part(|p| p.attach_pss_kb),
        ttyd1.saturating_sub(ttyd0) as f64 / n / 1024.0,
        daemons1.saturating_sub(daemons0) as f64 / n / 1024.0
    );
    println!(
        "server memory per open terminal: {:.0} KB",
        (rss1.saturating_sub(rss0)) as f64 / IDLE as f64
    );
    for (id, c, _) in live {
        t.stop(&id, &c).await?;
    }
    if !full {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    // Warm pool with the defaults: the same database (so the tries above are its recent demand),
    // a second server whose warm-pool job sizes the pool to demand every 5 s, as `trythis serve` does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let paddr = listener.local_addr()?;
    let mut pooled_config = server::config::Config::from_pairs(pairs.clone())?;
    pooled_config.public_url = format!("http://{paddr}");
    let platform = server::compose(pooled_config, None).await?;
    let pooled = platform.state.clone();
    let router = server::router(pooled.clone());
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    // The periodic jobs of `trythis serve` (reaper, warm pool, sweep); the first server builds.
    let periodic = platform.jobs.start_only(&[server::jobs::Kind::Periodic]);
    let pt = std::sync::Arc::new(Target {
        base: format!("http://{paddr}"),
        http: reqwest::Client::new(),
    });
    const SURGE: usize = 20;
    let filled = pool_filled(&pooled.db, SURGE).await?;
    println!("warm pool: {SURGE} members ready {filled:.1} s after start-up (defaults: it follows the last 5 minutes' tries)");
    // A badge surge on a popular project: 20 visitors at once.
    for (id, c, _) in at_once(
        &pt,
        SURGE,
        "Try -> first shell byte, 20 at once (warm pool, defaults)",
    )
    .await
    .0
    {
        pt.stop(&id, &c).await?;
    }
    let refilled = pool_filled(&pooled.db, SURGE).await?;
    println!("warm pool: back to {SURGE} ready {refilled:.1} s after the surge took them");
    let (mut warm, mut errors) = (Vec::new(), 0);
    for _ in 0..50 {
        // Steady state: a pool member has been waiting a while, its shell already printed its prompt.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        match pt.launch().await {
            Ok((id, c, _ws, ms)) => {
                warm.push(ms);
                pt.stop(&id, &c).await?;
            }
            Err(e) => {
                errors += 1;
                eprintln!("error: {e}");
            }
        }
    }
    summary("Try -> first shell byte, warm pool", warm, errors);
    // The reaper first, with any refill it is in: else it launches members after the stops.
    periodic.stop().await;
    for s in db::sandboxes::all_active(&pooled.db).await? {
        pooled
            .sandboxes
            .stop(&s.id, vocab::EndReason::ServerStopping)
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Seconds until `n` warm-pool members are ready (the warm-pool job refills it).
async fn pool_filled(db: &db::DatabaseConnection, n: usize) -> Result<f64> {
    let t0 = std::time::Instant::now();
    loop {
        let ready = db::sandboxes::pool_members(db)
            .await?
            .iter()
            .filter(|m| m.state == db::SandboxState::Ready)
            .count();
        if ready >= n {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > std::time::Duration::from_secs(180) {
            return Err(format!("the warm pool reached only {ready} of {n} in 180 s").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
