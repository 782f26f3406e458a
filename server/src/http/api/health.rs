use crate::http::state::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};

/// How long one probe of the parts answers `/healthz`: a flood of health checks costs the engines
/// one probe per interval, not one per request.
pub const HEALTH_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`: 200 when the database, both engines (sandboxes, builds) and the registry all
/// answer; 503 naming the failing part. `runtime` says how sandboxes are isolated (`runsc` = gVisor, or `runc`).
/// Answered from a probe at most `HEALTH_CACHE` old (`checked_at` says when it ran); concurrent
/// requests wait for one probe instead of starting their own.
pub async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
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
