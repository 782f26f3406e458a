use crate::http::client_ip::ClientIp;
use crate::sandbox::{Caller, Status};
use crate::{http::error::ApiResult, http::state::AppState};
use app::model::{EndReason, Identity, SandboxInfo};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Json,
};

/// The sandbox service's caller for this request's identity.
pub fn caller(me: &Identity) -> Caller {
    Caller {
        owner: me.key.clone(),
        signed_in: me.signed_in,
        is_admin: me.is_admin,
    }
}

/// A sandbox as the API answers it.
pub fn info(s: Status) -> SandboxInfo {
    app::api::ssr::sandbox_info(&s.row, s.can_extend, s.idle_seconds_left)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TryBody {
    #[serde(default)]
    replace: bool,
}

/// `POST /api/projects/{slug}/try` — 201 new sandbox, 200 the running one, 409 another project's
/// is running (send `{"replace": true}` to swap), 429 rate limited, 503 queued / unavailable.
pub async fn start(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    body: Option<Json<TryBody>>,
) -> ApiResult<Response> {
    let replace = body.map(|b| b.0.replace).unwrap_or(false);
    let out = st
        .sandboxes
        .try_project(&caller(&me), ip, &slug, replace)
        .await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info(out.info))).into_response())
}

/// `GET /api/sandboxes/{id}` (owner or admin).
pub async fn status(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    let mut answer = info(st.sandboxes.info(&s));
    if s.active {
        answer.ports = super::files::open_ports(&st, &id).await;
    }
    Ok(Json(answer))
}

/// `DELETE /api/sandboxes/{id}` (owner or admin): stop it now.
pub async fn stop(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    if s.active {
        st.sandboxes
            .stop(
                &s.id,
                if s.owner == me.key {
                    EndReason::StoppedByOwner
                } else {
                    EndReason::StoppedByAdmin
                },
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/sandboxes/{id}/extend` (owner): more time, a bounded number of times.
pub async fn extend(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    Ok(Json(info(st.sandboxes.extend(&s).await?)))
}

/// `POST /api/sandboxes/{id}/active` (owner): "I'm still here" — resets the idle clock.
pub async fn still_here(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    Ok(Json(info(st.sandboxes.still_here(&s).await?)))
}

/// `GET /try/{slug}`: the README badge's target — opens the project page, which starts the Try
/// through the API (same limits; a GET never changes state by itself).
pub async fn try_redirect(Path(slug): Path<String>) -> Redirect {
    let safe: String = slug
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Redirect::to(&format!("/p/{safe}?try=1"))
}
