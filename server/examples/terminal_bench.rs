//! `scripts/bench.sh` — the terminal proxy at scale: 10,000 open terminals through the server,
//! and the proxy's cost per keystroke echo against a direct socket.
//!
//! The server is the real one (router, identities, Try, sessions, the proxy) with one part
//! replaced: the sandbox runtime is an in-process stand-in whose "ttyd" speaks ttyd's protocol
//! and echoes input, so 10,000 terminals fit on this machine (10,000 real sandboxes would need
//! about 180 GB). The browsers are a child process (`terminal_bench clients`), so the server's
//! memory is measured alone; the stand-in's end of each upstream is in the server's process and
//! is included in the upstream figure, which is therefore an upper bound. Prints numbers; asserts
//! nothing.
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use server::engine::Isolation;
use server::sandbox::runtime::{
    LaunchSpec, Launched, Listed, Runtime, RuntimeError, TerminalUpstream,
};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest,
    handshake::server::{Request, Response},
    http::HeaderValue,
    Message,
};

// Only the visitor's credentials and Try are used here; the rest serves the other benchmarks.
#[allow(dead_code)]
mod common;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TERMINALS: usize = 10_000;
const ECHOES: usize = 500;

/// ttyd's side of one terminal: agree on `tty`, take the size message, print a prompt, then echo
/// every input frame back as output (ttyd's INPUT and OUTPUT frames both start with `0`).
async fn echo_ttyd<S: AsyncRead + AsyncWrite + Unpin>(io: S) {
    #[allow(clippy::result_large_err)] // tungstenite's callback error type
    let agree = |_: &Request, mut resp: Response| {
        resp.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
        Ok(resp)
    };
    // Small buffers, like ttyd's own (C, libwebsockets): the stand-in's share of the server's
    // memory stays small.
    let config = server::sandbox::terminal::upstream_ws_config();
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(io, agree, Some(config)).await
    else {
        return;
    };
    let _size = ws.next().await;
    if ws
        .send(Message::Binary(Bytes::from_static(b"0$ ")))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(b) = msg {
            if b.first() == Some(&b'0') && ws.send(Message::Binary(b)).await.is_err() {
                return;
            }
        }
    }
}

/// Sandboxes that are only a terminal: launch and destroy do nothing, `open_terminal` is a pipe
/// to an `echo_ttyd`.
struct EchoRuntime;

#[async_trait::async_trait]
impl Runtime for EchoRuntime {
    async fn launch(&self, spec: &LaunchSpec) -> std::result::Result<Launched, RuntimeError> {
        Ok(Launched {
            container_id: spec.sandbox_id.clone(),
            node: None,
        })
    }
    async fn destroy(&self, _: &str) -> std::result::Result<(), RuntimeError> {
        Ok(())
    }
    async fn open_terminal(&self, _: &str) -> std::result::Result<TerminalUpstream, RuntimeError> {
        let (ours, theirs) = tokio::io::duplex(16 * 1024);
        tokio::spawn(echo_ttyd(theirs));
        Ok(TerminalUpstream::direct(ours))
    }
    fn isolation(&self) -> Isolation {
        Isolation::Gvisor
    }
    async fn list(&self) -> std::result::Result<Vec<Listed>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn ping(&self) -> std::result::Result<(), RuntimeError> {
        Ok(())
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser's terminal: a ticket (for a visitor's `(base, cookie, csrf)`), the tty
/// subprotocol and the site's Origin, the size message, then the first output frame.
async fn open(url: &str, visitor: Option<(&str, &str, &str)>) -> Result<Ws> {
    let mut url = url.to_string();
    if let Some((base, cookie, csrf)) = visitor {
        let id = url
            .rsplit('/')
            .nth(1)
            .ok_or("no sandbox id in the URL")?
            .to_string();
        let ticket =
            common::terminal_ticket(&reqwest::Client::new(), base, &id, (cookie, csrf)).await?;
        url.push_str(&format!("?ticket={ticket}"));
    }
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
    if let Some((base, cookie, _)) = visitor {
        req.headers_mut()
            .insert("cookie", HeaderValue::from_str(cookie)?);
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(base)?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    ws.send(Message::Binary(Bytes::from_static(
        br#"{"AuthToken":"","columns":80,"rows":24}"#,
    )))
    .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] == b'0' => return Ok(ws),
            Some(Ok(_)) => {}
            other => return Err(format!("terminal ended before output: {other:?}").into()),
        }
    }
}

/// Round trips of one keystroke: sent as input, back as output. Milliseconds, sorted.
async fn echoes(ws: &mut Ws) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(ECHOES);
    for i in 0..ECHOES {
        let key = b'a' + (i % 26) as u8;
        let t0 = Instant::now();
        ws.send(Message::Binary(Bytes::from(vec![b'0', key])))
            .await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.ends_with(&[key]) => break,
                Some(Ok(_)) => {}
                other => return Err(format!("no echo: {other:?}").into()),
            }
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times)
}

/// The child process: the browsers. Reads `id cookie` lines, opens every terminal, measures the
/// echo through the proxy and directly, reports, and holds the terminals until stdin closes.
async fn clients(base: &str, direct: &str) -> Result {
    let lines: Vec<(String, String, String)> = std::io::stdin()
        .lock()
        .lines()
        .map_while(std::result::Result::ok)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((
                w.next()?.to_string(),
                w.next()?.to_string(),
                w.next()?.to_string(),
            ))
        })
        .collect();
    let ws_base = base.replacen("http", "ws", 1);
    let t0 = Instant::now();
    let opened: Vec<_> = futures::stream::iter(lines.iter().map(|(id, cookie, csrf)| {
        let url = format!("{ws_base}/s/{id}/ws");
        async move { open(&url, Some((base, cookie, csrf))).await }
    }))
    .buffer_unordered(64)
    .collect()
    .await;
    let errors = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
        eprintln!("first error: {e}");
    }
    let mut open_ws: Vec<Ws> = opened.into_iter().filter_map(|r| r.ok()).collect();
    println!(
        "open {} {errors} {:.1}",
        open_ws.len(),
        t0.elapsed().as_secs_f64()
    );
    let proxied = match open_ws.first_mut() {
        Some(ws) => echoes(ws).await?,
        None => Vec::new(),
    };
    let mut direct_ws = open(direct, None).await?;
    let straight = echoes(&mut direct_ws).await?;
    println!(
        "echo {:.3} {:.3} {:.3} {:.3}",
        pct(&proxied, 0.5),
        pct(&proxied, 0.99),
        pct(&straight, 0.5),
        pct(&straight, 0.99)
    );
    std::io::stdout().flush()?;
    // Hold every terminal open until the parent has measured.
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(open_ws);
    Ok(())
}

#[tokio::main]
async fn main() -> Result {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("clients") {
        return clients(&args[2], &args[3]).await;
    }
    let dir = std::env::temp_dir().join(format!(
        "trythis-terminal-bench-{}",
        server::secrets::random_id()
    ));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}/b.db", dir.display());
    let data = dir.display().to_string();
    let many = (TERMINALS * 2).to_string();
    // The site's address is where it listens: changes must name it as their Host.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = server::config::Config::from_pairs([
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_PUBLIC_URL", base.as_str()),
        ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
        ("TRYTHIS_MAX_SANDBOXES", many.as_str()),
        ("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", "100000000"),
        ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "100000000"),
        // Every bench client is 127.0.0.1: the per-network share is for real traffic.
        ("TRYTHIS_SANDBOXES_PER_IP", many.as_str()),
    ])?;
    let state = server::build_state_with(config, Some(std::sync::Arc::new(EchoRuntime))).await?;
    common::publish_bench_project(
        &state.db,
        "127.0.0.1:5000/trythis/terminal-bench",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        1,
    )
    .await?;
    let router = server::router(state.clone());
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    // The reference: the same echoing "ttyd" on a plain loopback socket, no server between.
    let direct = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let direct_url = format!("ws://{}/", direct.local_addr()?);
    tokio::spawn(async move {
        while let Ok((sock, _)) = direct.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(echo_ttyd(sock));
        }
    });

    let http = reqwest::Client::new();
    let rss0 = rss_kb();
    let t0 = Instant::now();
    let tried: Vec<Result<(String, String, String)>> =
        futures::stream::iter((0..TERMINALS).map(|_| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let (cookie, csrf) = common::visitor_credentials(&http, &base).await?;
                let id = common::press_try(&http, &base, "bench", (&cookie, &csrf)).await?;
                Ok((id, cookie, csrf))
            }
        }))
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = tried.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = tried.iter().find(|r| r.is_err()) {
        eprintln!("first error: {e}");
    }
    let started: Vec<(String, String, String)> = tried.into_iter().filter_map(|r| r.ok()).collect();
    let launch_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kb();

    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["clients", &base, &direct_url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut to_child = child.stdin.take().ok_or("no stdin")?;
    for (id, cookie, csrf) in &started {
        writeln!(to_child, "{id} {cookie} {csrf}")?;
    }
    writeln!(to_child)?;
    let from_child = child.stdout.take().ok_or("no stdout")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from_child)
            .lines()
            .map_while(std::result::Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let opened = rx.recv().await.ok_or("the clients process ended")?;
    let echo = rx.recv().await.ok_or("the clients process ended")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss2 = rss_kb();
    let open: Vec<&str> = opened.split_whitespace().collect();
    let e: Vec<f64> = echo
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let n = started.len().max(1) as f64;
    println!(
        "terminals: {} sandboxes started in {launch_secs:.1} s ({failed} refused); {} browsers attached in {} s ({} failed)",
        started.len(),
        open.get(1).unwrap_or(&"?"),
        open.get(3).unwrap_or(&"?"),
        open.get(2).unwrap_or(&"?"),
    );
    println!(
        "server memory per open terminal: {:.1} KB = upstream and session {:.1} KB (includes the stand-in ttyd's end) + attached browser {:.1} KB; server RSS {:.0} MB with {} terminals",
        (rss2.saturating_sub(rss0)) as f64 / n,
        (rss1.saturating_sub(rss0)) as f64 / n,
        (rss2.saturating_sub(rss1)) as f64 / n,
        rss2 as f64 / 1024.0,
        started.len()
    );
    if let [p50, p99, d50, d99] = e[..] {
        println!(
            "keystroke echo ({ECHOES} round trips, {} terminals open): through the proxy p50 {p50:.3} ms p99 {p99:.3} ms; direct socket p50 {d50:.3} ms p99 {d99:.3} ms; proxy overhead p50 {:.3} ms",
            started.len(),
            p50 - d50
        );
    }
    drop(to_child);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
