use crate::http::state::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};

/// How long one probe of the parts answers `/healthz`: a flood of health checks costs the engines
/// one probe per interval, not one per request.
pub const HEALTH_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`: 200 when the database, both engines (sandboxes, builds) and the registry all
/// answer; 503 naming the failing part. `runtime` says how sandboxes are isolated (`runsc` = gVisor, or `runc`).
/// Answered from a probe at most `HEALTH_CACHE` old (`checked_at` says when it ran); concurrent
/// requests wait for one probe instead of starting their own. A draining server (SIGTERM)
/// answers 503 `{"status": "draining"}` at once, so the load balancer takes it out first.
pub async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    if st.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "draining",
                "message": "This server is shutting down: new requests go to another one.",
            })),
        );
    }
    let mut cached = st.health.lock().await;
    if let Some((at, status, body)) = cached.as_ref() {
        if at.elapsed() < HEALTH_CACHE {
            return (*status, Json(body.clone()));
        }
    }
    let (status, body) = probe(&st).await;
    *cached = Some((std::time::Instant::now(), status, body.clone()));
    (status, Json(body))
}

/// `GET /readyz`: whether the load balancer should send this replica requests. 200 unless it
/// drains (SIGTERM) or its own database connection fails. The engines and the registry are not
/// asked: they are shared, so when one is down every replica is, and taking them all out would
/// turn a degraded site (pages, accounts, running Tries) into none.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if st.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "draining" })),
        );
    }
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), db::ping(&st.db)).await;
    if matches!(db, Ok(Ok(_))) {
        (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready" })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "db": "unavailable" })),
        )
    }
}

async fn probe(st: &AppState) -> (StatusCode, serde_json::Value) {
    let timeout = std::time::Duration::from_secs(3);
    let (db, docker, builds, registry) = tokio::join!(
        tokio::time::timeout(timeout, db::ping(&st.db)),
        tokio::time::timeout(timeout, st.sandboxes.ping_engine()),
        tokio::time::timeout(timeout, st.builds.ping_engine()),
        tokio::time::timeout(timeout, st.registry.ping()),
    );
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let (isolation, version) = st.sandboxes.engine_facts();
    let (db_ok, docker_ok, builds_ok, reg_ok) = (
        matches!(db, Ok(Ok(_))),
        matches!(docker, Ok(Ok(_))),
        matches!(builds, Ok(Ok(_))),
        matches!(registry, Ok(Ok(_))),
    );
    let status = if db_ok && docker_ok && builds_ok && reg_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        serde_json::json!({
            "db": word(db_ok),
            "docker": word(docker_ok),
            "build_engine": word(builds_ok),
            "registry": word(reg_ok),
            "runtime": isolation,
            "runtime_version": version,
            // Which replica answered (several app servers behind a load balancer).
            "replica": st.config.replica_id,
            "checked_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }),
    )
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let running = db::sandboxes::count_active(&st.db).await.unwrap_or(0);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.metrics.render(running, st.sandboxes.queue_length()),
    )
}
