//! Helpers the benchmarks share.

#[path = "../../tests/common/plain_build.rs"]
mod plain_build;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A new visitor as a browser has it once the page loaded: (visitor cookie, CSRF token).
pub async fn visitor_credentials(http: &reqwest::Client, base: &str) -> Result<(String, String)> {
    let resp = http.get(format!("{base}/api/me")).send().await?;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("trythis_vid="))
        .and_then(|v| v.split(';').next())
        .ok_or("no visitor cookie")?
        .to_string();
    let me: serde_json::Value = resp.json().await?;
    let csrf = me["csrf_token"]
        .as_str()
        .ok_or("no csrf token")?
        .to_string();
    Ok((cookie, csrf))
}

/// The benchmark project `bench`: the base image built and pushed (as repository `repo_name`),
/// published, and the whole server serving on a free loopback port.
pub async fn serve_bench_project(
    config: server::config::Config,
    repo_name: &str,
    base_image: &str,
) -> Result<std::net::SocketAddr> {
    let docker = server::sandbox::runtime::connect_docker(&config).await?;
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
    let state = server::build_state(config).await?;
    let p = db::projects::upsert(
        &state.db,
        &db::projects::NewProject {
            slug: "bench".into(),
            name: "Bench".into(),
            category: "Other".into(),
            ..Default::default()
        },
    )
    .await?;
    db::projects::set_image(&state.db, p.id, &repo, &img.digest, img.size).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = server::router(state);
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    Ok(addr)
}
