//! `scripts/bench.sh` — the cluster runtime against the single-engine runtime, in the same run, on
//! the local cluster of `scripts/cluster.sh up 3` (which this bench starts, without its site).
//!
//! Measures, on the loopback and the cluster's own namespaces only: a cold Try (the click to the
//! first shell byte, no warm pool) through a server on the host's engine and through a server on
//! the Swarm's sandbox nodes, interleaved, sequential; then how long a sandbox node's loss (its
//! engine killed) takes to show as the sandbox's end in the API the visitor's page polls. Prints
//! numbers; asserts nothing.
mod common;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const STATE: &str = "/run/trythis-c";
const ROUNDS: usize = 15;

fn cluster_up() -> Result {
    let script = format!("{}/../scripts/cluster.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .args([script.as_str(), "up", "3"])
        .env("TRYTHIS_CLUSTER_SITE", "off")
        .env(
            "TRYTHIS_CLUSTER_HEARTBEAT",
            std::env::var("TRYTHIS_CLUSTER_HEARTBEAT").unwrap_or_else(|_| "1s".into()),
        )
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "scripts/cluster.sh up 3 failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name:<44} n={:<3} p50={:>5.0} ms  min={:>5.0} ms  max={:>5.0} ms",
        v.len(),
        at(0.5),
        v[0],
        v[v.len() - 1]
    );
}

async fn server(extra: &[(&str, &str)], base: &str) -> Result<String> {
    let (_dir, data, db_url) = common::scratch("cluster-bench")?;
    // As server/examples/bench.rs: the scripts' tools, run from the repository's root.
    let ttyd = std::env::var("TRYTHIS_TTYD_PATH").unwrap_or_else(|_| "data/bin/ttyd".into());
    let relay =
        std::env::var("TRYTHIS_RELAY_PATH").unwrap_or_else(|_| "data/bin/trythis-relay".into());
    let mut pairs = vec![
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_TTYD_PATH", ttyd.as_str()),
        ("TRYTHIS_RELAY_PATH", relay.as_str()),
        ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
        ("TRYTHIS_LOG", "warn"),
        ("TRYTHIS_WARM_POOL", "0"),
        ("TRYTHIS_WARM_POOL_MAX", "0"),
        ("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", "1000"),
        ("TRYTHIS_SANDBOXES_PER_IP", "1000"),
    ];
    pairs.extend_from_slice(extra);
    let config = server::config::Config::from_pairs(pairs)?;
    let addr = common::serve_bench_project(config, "cluster-bench", base).await?;
    Ok(format!("http://{addr}"))
}

#[tokio::main]
async fn main() -> Result {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let base =
        std::env::var("TRYTHIS_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into());
    cluster_up()?;
    let manager = format!("unix://{STATE}/n1/docker.sock");
    let engines = format!("unix://{STATE}/engines/{{node}}.sock");
    let single = server(&[], &base).await?;
    let cluster = server(
        &[
            ("TRYTHIS_SWARM_MANAGER", manager.as_str()),
            ("TRYTHIS_SWARM_NODE_ENGINE", engines.as_str()),
            ("TRYTHIS_SWARM_REGISTRY", "192.168.231.1:5000"),
            ("TRYTHIS_SWARM_POLL_MS", "250"),
        ],
        &base,
    )
    .await?;
    let http = reqwest::Client::new();
    // One launch each first: the image is pulled once per engine (not what a cold Try costs).
    for site in [&single, &cluster, &cluster] {
        let (id, cookie, _ws, _) = common::launch(&http, site).await?;
        common::stop(&http, site, &id, &cookie).await?;
    }
    let (mut on_single, mut on_cluster) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (site, out) in [(&single, &mut on_single), (&cluster, &mut on_cluster)] {
            let (id, cookie, _ws, ms) = common::launch(&http, site).await?;
            out.push(ms);
            common::stop(&http, site, &id, &cookie).await?;
        }
    }
    println!(
        "Cold Try, click to first shell byte (no warm pool, image on the engine), interleaved:"
    );
    summary("  single engine (this host's)", on_single);
    summary("  cluster runtime (Swarm sandbox nodes)", on_cluster);

    // Node loss: a sandbox on node 3, its engine killed; the API the page polls says it ended.
    let mut on_c3 = None;
    let mut others = Vec::new();
    for _ in 0..6 {
        let (id, cookie, ws, _) = common::launch(&http, &cluster).await?;
        if std::path::Path::new(&format!("{STATE}/n3/exec")).exists()
            && node_of(&id).await? == Some(3)
            && on_c3.is_none()
        {
            on_c3 = Some((id, cookie, ws));
        } else {
            others.push((id, cookie));
        }
    }
    let (id, cookie, _ws) = on_c3.ok_or("no sandbox landed on node 3")?;
    let pid = std::fs::read_to_string(format!("{STATE}/n3/docker.pid"))?;
    let t0 = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()?;
    loop {
        let st: serde_json::Value = http
            .get(format!("{cluster}/api/sandboxes/{id}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .json()
            .await?;
        if st["end_reason"] == "node_lost" {
            break;
        }
        if t0.elapsed().as_secs() > 90 {
            return Err(format!("no node_lost after 90 s: {st}").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    println!(
        "Node loss (engine killed) to the sandbox's end in the API, heartbeat {}: {:.1} s (the page asks when its terminal closes, then 1.5-3 s apart; end2end/nodes.mjs measures the page)",
        std::env::var("TRYTHIS_CLUSTER_HEARTBEAT").unwrap_or_else(|_| "1s".into()),
        t0.elapsed().as_secs_f64()
    );
    for (id, cookie) in others {
        common::stop(&http, &cluster, &id, &cookie).await?;
    }
    cluster_up()?;
    Ok(())
}

/// Which node's engine has `trythis-{id}` (2 or 3).
async fn node_of(id: &str) -> Result<Option<u8>> {
    for i in [2u8, 3] {
        let docker = bollard::Docker::connect_with_unix(
            &format!("unix://{STATE}/n{i}/docker.sock"),
            10,
            bollard::API_DEFAULT_VERSION,
        )?;
        if docker
            .inspect_container(&format!("trythis-{id}"), None)
            .await
            .is_ok()
        {
            return Ok(Some(i));
        }
    }
    Ok(None)
}
