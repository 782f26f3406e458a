//! Helpers the benchmarks share.

#[path = "../../tests/common/http_visitor.rs"]
mod http_visitor;
#[path = "../../tests/common/plain_build.rs"]
mod plain_build;
#[allow(unused_imports)] // each bench uses its own share of these
pub use http_visitor::{press_try, set_cookie, visitor_credentials};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Instant;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The benchmark project `bench`: the base image built and pushed (as repository `repo_name`),
/// published, and the whole server serving on a free loopback port.
pub async fn serve_bench_project(
    mut config: server::config::Config,
    repo_name: &str,
    base_image: &str,
) -> Result<std::net::SocketAddr> {
    let docker = server::engine::connect_docker(&config).await?;
    let registry = registry::Registry::new(config.registry.clone());
    let repo = registry.config().repository_for(repo_name);
    plain_build::plain_build_and_push(
        &docker,
        &format!("FROM {base_image}\nWORKDIR /root\n"),
        &repo,
        "b1",
    )
    .await?;
    let img = registry.resolve(&repo, "b1").await?;
    // The site's address is where it listens: changes must name it as their Host.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    config.public_url = format!("http://{addr}");
    // Previews of a loopback site are served on its own port.
    if let Some(p) = config.preview.as_mut() {
        p.port = Some(addr.port());
    }
    let state = server::build_state(config).await?;
    publish_bench_project(&state.db, &repo, &img.digest, img.size).await?;
    let router = server::router(state);
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    Ok(addr)
}

/// A new visitor's Try with its terminal open as a browser opens it: (id, cookie, terminal, ms
/// from the click to the first shell byte).
pub async fn launch(http: &reqwest::Client, base: &str) -> Result<(String, String, Ws, f64)> {
    // The visitor has the page (cookie and CSRF token) before clicking Try: not timed.
    let (cookie, csrf) = visitor_credentials(http, base).await?;
    let t0 = Instant::now();
    let id = press_try(http, base, "bench", (&cookie, &csrf)).await?;
    let ticket = terminal_ticket(http, base, &id, (&cookie, &csrf)).await?;
    let mut req = format!(
        "{}/s/{id}/ws?ticket={ticket}",
        base.replacen("http", "ws", 1)
    )
    .into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
    req.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie)?);
    req.headers_mut()
        .insert("origin", HeaderValue::from_str(base)?);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    ws.send(Message::Binary(Bytes::from(
        r#"{"AuthToken":"","columns":80,"rows":24}"#,
    )))
    .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] == b'0' => break,
            Some(Ok(_)) => {}
            other => return Err(format!("terminal ended before output: {other:?}").into()),
        }
    }
    Ok((id, cookie, ws, t0.elapsed().as_secs_f64() * 1000.0))
}

/// A ticket to open sandbox `id`'s terminal, as the page gets one before each connection.
pub async fn terminal_ticket(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    (cookie, csrf): (&str, &str),
) -> Result<String> {
    let resp = http
        .post(format!("{base}/api/sandboxes/{id}/ticket"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    match body["ticket"].as_str() {
        Some(t) if status.is_success() => Ok(t.to_string()),
        _ => Err(format!("ticket answered {status}: {body}").into()),
    }
}

/// Stops the sandbox as its visitor (a cookie-carrying change needs the identity's CSRF token).
pub async fn stop(http: &reqwest::Client, base: &str, id: &str, cookie: &str) -> Result<()> {
    let me: serde_json::Value = http
        .get(format!("{base}/api/me"))
        .header("cookie", cookie)
        .send()
        .await?
        .json()
        .await?;
    http.delete(format!("{base}/api/sandboxes/{id}"))
        .header("cookie", cookie)
        .header("x-csrf-token", me["csrf_token"].as_str().unwrap_or(""))
        .send()
        .await?;
    Ok(())
}

/// The project `bench`, live with the given image.
pub async fn publish_bench_project(
    db: &db::DatabaseConnection,
    repo: &str,
    digest: &str,
    size: i64,
) -> Result<()> {
    let p = db::projects::upsert(
        db,
        &db::projects::NewProject {
            slug: "bench".into(),
            name: "Bench".into(),
            category: "Other".into(),
            ..Default::default()
        },
    )
    .await?;
    db::projects::set_image(db, p.id, repo, digest, size).await?;
    Ok(())
}

/// A fresh data directory for one bench run: (the directory, its path as text, a SQLite URL in it).
pub fn scratch(name: &str) -> Result<(std::path::PathBuf, String, String)> {
    let dir = std::env::temp_dir().join(format!("trythis-{name}-{}", server::secrets::random_id()));
    std::fs::create_dir_all(&dir)?;
    let data = dir.display().to_string();
    let db_url = format!("sqlite://{data}/b.db");
    Ok((dir, data, db_url))
}
