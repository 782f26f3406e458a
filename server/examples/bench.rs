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
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>, errors: usize) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<34} n={:<3} errors={errors:<2} p50={:>6.0} ms  p95={:>6.0} ms  max={:>6.0} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.95),
        v.last().copied().unwrap_or(f64::NAN)
    );
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

fn self_rss_kb() -> u64 {
    rss_kb("self")
}

/// Where one sandbox's memory is, in KB.
struct Parts {
    /// The container's memory cgroup (cgroup v1, as on this machine).
    cgroup_kb: u64,
    /// Proportional set size of the runtime's own processes in that cgroup (gVisor's sentry and
    /// gofer; under runc none: the container's processes are the image's).
    runtime_pss_kb: u64,
    /// The containerd shim, a host process outside the cgroup.
    shim_pss_kb: u64,
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
async fn at_once(t: &std::sync::Arc<Target>, n: usize, name: &str) -> Vec<(String, String, Ws)> {
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
    summary(name, times, errors);
    live
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
    let mut shim = 0;
    let mut runtime = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{name}/cmdline")) {
            if !cmd.contains(&id) {
                continue;
            }
            if cmd.contains("containerd-shim") {
                shim = pss_kb(&name);
            } else if cmd.starts_with("runsc") {
                runtime += pss_kb(&name);
            }
        }
    }
    Ok(Parts {
        cgroup_kb: usage / 1024,
        runtime_pss_kb: runtime,
        shim_pss_kb: shim,
    })
}

#[tokio::main]
async fn main() -> Result {
    let (dir, data, db_url) = common::scratch("bench")?;
    let ttyd = std::env::var("TRYTHIS_TTYD_PATH").unwrap_or_else(|_| "data/bin/ttyd".into());
    let relay =
        std::env::var("TRYTHIS_RELAY_PATH").unwrap_or_else(|_| "data/bin/trythis-relay".into());
    let pairs = [
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
    let config = server::config::Config::from_pairs(pairs)?;
    let base =
        std::env::var("TRYTHIS_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into());
    let docker = server::sandbox::runtime::connect_docker(&config).await?;
    let addr = common::serve_bench_project(config, "bench", &base).await?;
    let t = std::sync::Arc::new(Target {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    });

    // Warm-up: the first launch of an image reads its home directory once (cached afterwards).
    let (id, c, _, first) = t.launch().await?;
    t.stop(&id, &c).await?;
    println!("first launch of a new image (reads its dirs once): {first:.0} ms");

    let mut seq = Vec::new();
    let mut errors = 0;
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
    summary("Try -> first shell byte, sequential", seq, errors);

    for n in [20, 50] {
        let live = at_once(
            &t,
            n,
            &format!("Try -> first shell byte, {n} at once (cold)"),
        )
        .await;
        for (id, c, _) in live {
            t.stop(&id, &c).await?;
        }
    }

    // Memory: 50 idle sandboxes with their shells attached. The host's view (MemAvailable, which
    // counts shared pages once) is the figure; the parts say where it goes.
    const IDLE: usize = 50;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (avail0, rss0) = (mem_available_kb()?, self_rss_kb());
    let mut live = Vec::new();
    for _ in 0..IDLE {
        let (id, c, ws, _) = t.launch().await?;
        live.push((id, c, ws));
    }
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let (avail1, rss1) = (mem_available_kb()?, self_rss_kb());
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
        "  parts: container cgroup {:.1} MB (sandbox kernel or init + ttyd + shell + files), of which runtime processes {:.1} MB PSS; containerd shim {:.1} MB PSS outside it",
        part(|p| p.cgroup_kb),
        part(|p| p.runtime_pss_kb),
        part(|p| p.shim_pss_kb)
    );
    println!(
        "server memory per open terminal: {:.0} KB",
        (rss1.saturating_sub(rss0)) as f64 / IDLE as f64
    );
    for (id, c, _) in live {
        t.stop(&id, &c).await?;
    }

    // Warm pool with the defaults: the same database (so the tries above are its recent demand),
    // a second server whose reaper loop sizes the pool to demand every 5 s, as `trythis serve` does.
    let pooled_config = server::config::Config::from_pairs(pairs)?;
    let pooled = server::build_state(pooled_config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let paddr = listener.local_addr()?;
    let router = server::router(pooled.clone());
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    let (_stop_reaper, reaper_stop) = tokio::sync::watch::channel(false);
    tokio::spawn(server::sandbox::reaper_loop(
        pooled.sandboxes.clone(),
        std::time::Duration::from_secs(5),
        reaper_stop,
    ));
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
    for s in db::sandboxes::all_active(&pooled.db).await? {
        pooled.sandboxes.stop(&s.id, "bench over").await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Seconds until `n` warm-pool members are ready (the reaper loop refills it).
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
