//! `scripts/bench.sh` — sandbox runtimes side by side in one run: gVisor (`runsc`, the default)
//! and runc. For each: Try → first shell byte (15 sequential launches through the real server,
//! terminal over the exec'd relay) and the host's `MemAvailable` drop per idle sandbox with its
//! shell attached (20 open). Prints numbers; asserts nothing.
mod common;
use common::Ws;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn launch(base: &str) -> Result<(String, String, Ws, f64)> {
    common::launch(&reqwest::Client::new(), base).await
}

async fn stop(base: &str, id: &str, cookie: &str) -> Result {
    common::stop(&reqwest::Client::new(), base, id, cookie).await
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result {
    let ttyd = std::env::var("TRYTHIS_TTYD_PATH").unwrap_or_else(|_| "data/bin/ttyd".into());
    let relay =
        std::env::var("TRYTHIS_RELAY_PATH").unwrap_or_else(|_| "data/bin/trythis-relay".into());
    let base_image =
        std::env::var("TRYTHIS_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into());
    for runtime in ["runsc", "runc"] {
        let (dir, data, db_url) = common::scratch("rtbench")?;
        let config = server::config::Config::from_pairs([
            ("TRYTHIS_DATA_DIR", data.as_str()),
            ("TRYTHIS_DATABASE_URL", db_url.as_str()),
            ("TRYTHIS_TTYD_PATH", ttyd.as_str()),
            ("TRYTHIS_RELAY_PATH", relay.as_str()),
            ("TRYTHIS_SANDBOX_RUNTIME", runtime),
            ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
            ("TRYTHIS_MAX_SANDBOXES", "60"),
            ("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", "100000"),
            ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "100000"),
            // Every bench client is 127.0.0.1: the per-network share is for real traffic.
            ("TRYTHIS_SANDBOXES_PER_IP", "100000"),
            ("TRYTHIS_LOG", "warn"),
        ])?;
        let addr = common::serve_bench_project(config, "rtbench", &base_image).await?;
        let base = format!("http://{addr}");

        let (id, c, _, _) = launch(&base).await?; // warm-up (image facts, seeds)
        stop(&base, &id, &c).await?;
        let mut ms = Vec::new();
        for _ in 0..15 {
            let (id, c, ws, t) = launch(&base).await?;
            ms.push(t);
            drop(ws);
            stop(&base, &id, &c).await?;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = mem_available_kb();
        let mut live = Vec::new();
        for _ in 0..20 {
            live.push(launch(&base).await?);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = mem_available_kb();
        let per_mb = before.saturating_sub(after) as f64 / 20.0 / 1024.0;
        println!(
            "{runtime:>5}: Try -> first shell byte p50 {:.0} ms, p95 {:.0} ms (15 sequential); idle sandbox with shell: {per_mb:.1} MB of host MemAvailable each (20 open) = {:.0} per GB",
            pct(&mut ms, 0.5),
            pct(&mut ms, 0.95),
            1024.0 / per_mb.max(0.1)
        );
        for (id, c, _, _) in live {
            stop(&base, &id, &c).await?;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
