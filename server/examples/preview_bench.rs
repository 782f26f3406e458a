//! `scripts/bench.sh` — what a web preview adds per request, against the real engine and relay.
//!
//! The same small keep-alive HTTP server (perl) runs twice: on the host's loopback (the
//! reference) and in a sandbox, reached through its preview host (platform → engine exec →
//! `relay forward` → the sandbox's loopback). Measured: a request on an open connection, and a
//! first request (a new connection each time). Prints numbers; asserts nothing.
mod common;
use futures::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Answers every request on a connection (keep-alive) with a short body; `GET /close` answers
/// with `Connection: close` and closes, so the next request needs a new connection (through the
/// preview: a new exec of the relay).
const SERVER: &str = r#"use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $ARGV[0], Listen => 64, ReuseAddr => 1) or die "listen: $!";
$SIG{CHLD} = "IGNORE";
while (my $c = $s->accept) {
  next if fork();
  while (1) {
    my $req = "";
    while (my $line = <$c>) { $req .= $line; last if $line eq "\r\n"; }
    last if $req eq "";
    my $body = "hello from port $ARGV[0]\n";
    my $close = $req =~ m{^GET /close} ? "Connection: close\r\n" : "";
    print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${close}Content-Length: " . length($body) . "\r\n\r\n" . $body;
    $c->flush;
    last if $close;
  }
  exit 0;
}
"#;

const N: usize = 300;

/// The reference server ends with the bench, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Its forked connection handlers go with their process group's leader's socket.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn line(name: &str, mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<46} n={:<4} p50={:>7.2} ms  p95={:>7.2} ms  max={:>7.2} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.95),
        v.last().copied().unwrap_or(f64::NAN)
    );
    pct(&v, 0.5)
}

/// `N` GETs of `url`: on one kept-alive connection, or each on a new one.
async fn measure(
    client: impl Fn() -> Result<reqwest::Client>,
    url: &str,
    cookie: &str,
    fresh: bool,
) -> Result<Vec<f64>> {
    let shared = client()?;
    // The first answer sets the connection up; it is not counted on an open connection.
    shared
        .get(url)
        .header("cookie", cookie)
        .send()
        .await?
        .bytes()
        .await?;
    let mut out = Vec::with_capacity(N);
    for _ in 0..N {
        let c = if fresh { client()? } else { shared.clone() };
        let t0 = Instant::now();
        let resp = c.get(url).header("cookie", cookie).send().await?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()).into());
        }
        resp.bytes().await?;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result {
    let (dir, data, db_url) = common::scratch("preview-bench")?;
    let ttyd = std::env::var("TRYTHIS_TTYD_PATH").unwrap_or_else(|_| "data/bin/ttyd".into());
    let relay =
        std::env::var("TRYTHIS_RELAY_PATH").unwrap_or_else(|_| "data/bin/trythis-relay".into());
    let config = server::config::Config::from_pairs([
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_TTYD_PATH", ttyd.as_str()),
        ("TRYTHIS_RELAY_PATH", relay.as_str()),
        ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
    ])?;
    let base_image =
        std::env::var("TRYTHIS_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into());
    let addr = common::serve_bench_project(config, "preview-bench", &base_image).await?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let (id, cookie, mut ws, _) = common::launch(&http, &base).await?;
    let me: serde_json::Value = http
        .get(format!("{base}/api/me"))
        .header("cookie", &cookie)
        .send()
        .await?
        .json()
        .await?;
    let csrf = me["csrf_token"].as_str().unwrap_or("").to_string();
    http.put(format!("{base}/api/sandboxes/{id}/files?path=/tmp/srv.pl"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body(SERVER)
        .send()
        .await?
        .error_for_status()?;
    ws.send(Message::Binary(bytes::Bytes::from(
        "0perl /tmp/srv.pl 8000 &\r",
    )))
    .await?;

    // The reference: the same server on the host's loopback.
    let script = dir.join("srv.pl");
    std::fs::write(&script, SERVER)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let host_port = listener.local_addr()?.port();
    drop(listener);
    let _reference = KillOnDrop(
        std::process::Command::new("perl")
            .arg(&script)
            .arg(host_port.to_string())
            .spawn()?,
    );

    // The preview's cookie, as the owner's browser gets it.
    let host = format!("{id}-8000.preview.localhost");
    let preview_client = {
        let host = host.clone();
        move || -> Result<reqwest::Client> {
            Ok(reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, addr)
                .build()?)
        }
    };
    let c = preview_client()?;
    let mut ready = false;
    for _ in 0..100 {
        let s: serde_json::Value = http
            .get(format!("{base}/api/sandboxes/{id}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .json()
            .await?;
        if s["ports"].as_array().is_some_and(|p| !p.is_empty()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ready {
        return Err("the sandbox's server never listened".into());
    }
    let entry = c
        .get(format!("{base}/preview/{id}/8000"))
        .header("cookie", &cookie)
        .send()
        .await?;
    let enter = entry
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no entry redirect")?
        .to_string();
    let entered = c.get(&enter).send().await?;
    let preview_cookie = entered
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no preview cookie")?
        .to_string();
    let preview_url = format!("http://{host}:{}/", addr.port());
    let reference_url = format!("http://127.0.0.1:{host_port}/");
    let plain = || -> Result<reqwest::Client> { Ok(reqwest::Client::builder().build()?) };
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("web preview vs the same server on the host's loopback ({N} sequential GETs each)");
    let r_open = line(
        "reference, open connection",
        measure(plain, &reference_url, "", false).await?,
    );
    let p_open = line(
        "preview, open connection",
        measure(&preview_client, &preview_url, &preview_cookie, false).await?,
    );
    let r_first = line(
        "reference, first request (new connection)",
        measure(plain, &format!("{reference_url}close"), "", true).await?,
    );
    let p_first = line(
        "preview, first request (new connection + exec)",
        measure(
            &preview_client,
            &format!("{preview_url}close"),
            &preview_cookie,
            true,
        )
        .await?,
    );
    println!(
        "  added by the preview (p50): {:+.2} ms on an open connection, {:+.2} ms for a first request",
        p_open - r_open,
        p_first - r_first
    );
    common::stop(&http, &base, &id, &cookie).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
