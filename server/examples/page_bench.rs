//! `scripts/bench.sh` — pages at static-file speed? The server (this build's profile; bench.sh
//! runs it `--release`, as `scripts/run.sh` serves) with a 48-project catalogue, and nginx from
//! Debian serving the very same bytes, loaded in turn by wrk with 64 connections on this machine.
//! Prints req/s and latency for both and their ratio; asserts nothing.
use std::{process::Command, time::Duration};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CONNECTIONS: &str = "64";
const SECONDS: &str = "8";

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, factor) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * factor)
}

/// wrk against `url` (no Accept-Encoding: the same bytes as nginx sends).
fn wrk(url: &str) -> Result<Load> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c",
            CONNECTIONS,
            "-d",
            &format!("{SECONDS}s"),
            "--latency",
            url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    };
    let non2xx = line("Non-2xx or 3xx responses:");
    if let Some(n) = non2xx {
        return Err(format!("{url}: {n} error responses").into());
    }
    Ok(Load {
        rps: line("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("wrk said: {text}"))?,
        p50_ms: line("50%").and_then(|v| ms(&v)).ok_or("no p50")?,
        p99_ms: line("99%").and_then(|v| ms(&v)).ok_or("no p99")?,
    })
}

#[tokio::main]
async fn main() -> Result {
    let dir = std::env::temp_dir().join(format!(
        "trythis-page-bench-{}",
        server::secrets::random_id()
    ));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}/b.db", dir.display());
    let data = dir.display().to_string();
    let site = std::env::var("TRYTHIS_SITE_ROOT").unwrap_or_else(|_| "target/site".into());
    let config = server::config::Config::from_pairs([
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_SITE_ROOT", site.as_str()),
        // wrk is one client with no cookie: every request is a new visitor.
        ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "1000000000"),
    ])?;
    let state = server::build_state(config).await?;
    let categories = db::projects::CATEGORIES;
    for n in 0..48 {
        let p = db::projects::upsert(
            &state.db,
            &db::projects::NewProject {
                slug: format!("project-{n}"),
                name: format!("Project {n}"),
                summary: "A command-line tool with a one-line summary of what it does.".into(),
                description:
                    "## Try it\n\nRun `project --help`, then explore.\n\n```\nproject demo\n```\n"
                        .repeat(4),
                category: categories[n % categories.len()].to_string(),
                tags: vec!["cli".into(), "rust".into(), format!("tag{}", n % 7)],
                ..Default::default()
            },
        )
        .await?;
        let digest = format!("sha256:{:064x}", n + 1);
        db::projects::set_image(&state.db, p.id, "127.0.0.1:5000/bench", &digest, 80 << 20).await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = server::router(state);
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });

    // The same bytes for nginx: each URL fetched once, saved under its own file name.
    let root = dir.join("nginx-root");
    std::fs::create_dir_all(&root)?;
    let http = reqwest::Client::new();
    let targets = [
        ("home page", "/", "home.html"),
        ("project page", "/p/project-3", "project.html"),
        ("badge", "/badge/project-3.svg", "badge.svg"),
        ("search API", "/api/projects?q=proj", "search.json"),
        ("stylesheet", "/pkg/trythis.css", "trythis.css"),
    ];
    for (_, path, file) in &targets {
        let resp = http.get(format!("{base}{path}")).send().await?;
        if !resp.status().is_success() {
            return Err(format!("{path}: {}", resp.status()).into());
        }
        std::fs::write(root.join(file), resp.bytes().await?)?;
    }
    let nginx_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; include /etc/nginx/mime.types; client_body_temp_path {d}; \
             proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{nginx_port}; root {r}; }} }}\n",
            d = dir.display(),
            r = root.display()
        ),
    )?;
    let mut nginx = Command::new("nginx")
        .args([
            "-c",
            &conf.display().to_string(),
            "-p",
            &dir.display().to_string(),
        ])
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("wrk, {CONNECTIONS} connections, {SECONDS} s each; nginx from Debian serving the same bytes");
    println!(
        "{:<14} {:>10} {:>9} {:>9} | {:>10} {:>9} {:>9} | {:>7}",
        "what", "req/s", "p50 ms", "p99 ms", "nginx r/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut failed = None;
    for (what, path, file) in &targets {
        let ours = wrk(&format!("{base}{path}"));
        let theirs = wrk(&format!("http://127.0.0.1:{nginx_port}/{file}"));
        match (ours, theirs) {
            (Ok(o), Ok(n)) => println!(
                "{what:<14} {:>10.0} {:>9.2} {:>9.2} | {:>10.0} {:>9.2} {:>9.2} | {:>6.1}%",
                o.rps,
                o.p50_ms,
                o.p99_ms,
                n.rps,
                n.p50_ms,
                n.p99_ms,
                100.0 * o.rps / n.rps
            ),
            (o, n) => {
                let e = format!("{what}: {:?} / {:?}", o.err(), n.err());
                println!("{e}");
                failed = Some(e);
            }
        }
    }
    // SIGTERM lets the master take its workers down (SIGKILL would orphan them).
    let _ = Command::new("kill")
        .args(["-TERM", &nginx.id().to_string()])
        .status();
    let _ = nginx.wait();
    let _ = std::fs::remove_dir_all(&dir);
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
