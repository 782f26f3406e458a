//! What a draining server (SIGTERM, `main.rs`) does to the connections it holds open: terminal
//! sockets are closed with 1001 (the page reconnects, through the load balancer, elsewhere) and
//! build-log streams end, instead of keeping the process alive or being cut mid-frame. The real
//! process's drain (`/healthz` 503, HAProxy taking it out, its exit) is `end2end/replicas.mjs`.
//! These tests need Docker: they fail (not skip) without it.
mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_draining_server_closes_open_terminals_with_going_away() -> Result {
    let app = TestApp::start().await?;
    let (v, id, mut sh) = owner_with_terminal(&app).await?;
    sh.run("echo open-$((40+2))", T).await?;
    app.state.streams.close_all();
    let reason = sh.wait_closed(T).await?;
    assert!(reason.starts_with("1001 "), "{reason:?}");
    v.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn a_draining_server_ends_open_build_log_streams() -> Result {
    let app = TestApp::start().await?;
    let alice = app.user().await?;
    let endless =
        serde_json::json!({ "dockerfile": format!("FROM {}\nRUN sleep 600\n", base_image()) });
    let build = submit(&alice, project(&unique("drain"), endless)).await?;
    let stream = alice
        .http
        .get(app.url(&format!("/api/builds/{build}/log")))
        .header("cookie", &alice.cookie)
        .send()
        .await?;
    assert_eq!(stream.status().as_u16(), 200);
    // Open: its body does not end while the build runs...
    let body = tokio::spawn(stream.text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!body.is_finished(), "the log stream ended before the drain");
    // ...and ends, whole, when the server drains.
    app.state.streams.close_all();
    let text = tokio::time::timeout(T, body).await???;
    assert!(text.contains("event: state"), "{text}");
    app.state.builds.cancel(&build).await?;
    Ok(())
}

/// The load balancer's check: ready while serving, 503 "draining" from the moment a drain
/// starts (so HAProxy takes the replica out before its sockets close).
#[tokio::test]
async fn readyz_answers_ready_until_the_drain() -> Result {
    let app = TestApp::start().await?;
    let ready = reqwest::get(app.url("/readyz")).await?;
    assert_eq!(ready.status().as_u16(), 200);
    let body: serde_json::Value = ready.json().await?;
    assert_eq!(body["status"], "ready", "{body}");
    app.state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let draining = reqwest::get(app.url("/readyz")).await?;
    assert_eq!(draining.status().as_u16(), 503);
    let body: serde_json::Value = draining.json().await?;
    assert_eq!(body["status"], "draining", "{body}");
    Ok(())
}
