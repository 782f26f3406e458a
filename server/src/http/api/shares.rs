//! Share links of a sandbox's terminal (`sandbox/shares.rs` holds their rules).
//!
//! The owner (or an admin): `POST /api/sandboxes/{id}/shares` `{"mode"}` makes one,
//! `GET …/shares` lists the live ones with who watches, `DELETE …/shares/{share_id}` revokes one
//! (its watchers' sockets close at once with 4003). Like every state-changing call these carry
//! the page's CSRF token (`identity::csrf_guard`). Viewers: `GET /api/shares/{token}` describes
//! the session, `POST /api/shares/{token}/ticket` gives a 60-second ticket for
//! `GET /shares/{share_id}/ws`, whose frames the proxy filters by the share's mode.
use super::sandboxes::caller;
use super::terminal::{check_origin, too_many_open, upgrade, Keys, TicketQuery, TICKET_SECONDS};
use crate::{
    http::error::{ApiError, ApiResult},
    http::state::AppState,
    sandbox::{
        shares::{ShareStatus, Shared},
        terminal::Watcher,
        SandboxError, SandboxService,
    },
};
use app::model::{Identity, NewShare, ShareInfo, ShareList, ShareLookup, SharedSession};
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    Extension, Json,
};
use std::sync::Arc;

const TICKET_PURPOSE: &str = "watch";

/// The page a share link opens.
fn link(st: &AppState, token: &str) -> String {
    format!(
        "{}/watch/{token}",
        st.config.public_url.trim_end_matches('/')
    )
}

fn info(status: ShareStatus) -> ShareInfo {
    ShareInfo {
        id: status.share.id,
        url: None,
        mode: status.share.mode,
        created_at: status.share.created_at.to_rfc3339(),
        watching: status.watchers.len(),
        viewers: status
            .watchers
            .iter()
            .map(|w| w.name.clone().unwrap_or_else(|| "anonymous".into()))
            .collect(),
    }
}

/// `POST /api/sandboxes/{id}/shares` `{"mode":"view"|"control"}` — 201 with the link (shown
/// once); 400 `sandbox_ended`; 409 `share_limit`; 403 / 404.
pub async fn create(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    body: Result<Json<NewShare>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ShareInfo>)> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    let NewShare { mode } = super::body(body)?;
    let made = st.sandboxes.create_share(&s, mode).await?;
    let mut out = info(ShareStatus {
        share: made.share,
        watchers: Vec::new(),
    });
    out.url = Some(link(&st, &made.token));
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /api/sandboxes/{id}/shares` — the live links, oldest first, with who watches now.
pub async fn list(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<ShareList>> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    let items = st
        .sandboxes
        .shares(&s)
        .await?
        .into_iter()
        .map(info)
        .collect();
    Ok(Json(ShareList { items }))
}

/// `DELETE /api/sandboxes/{id}/shares/{share_id}` — 204: the link stops working and its
/// watchers are cut off now; 404 no such live link.
pub async fn revoke(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((id, share_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let s = st.sandboxes.owned(&caller(&me), &id).await?;
    st.sandboxes.revoke_share(&s, &share_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A live share as its viewers see it.
pub fn session(shared: &Shared) -> SharedSession {
    let s = &shared.sandbox;
    SharedSession {
        id: shared.share.id.clone(),
        project: s.project_slug.clone(),
        project_name: shared.project_name.clone(),
        mode: shared.share.mode,
        state: s.state,
        sandbox_id: s.id.clone(),
        expires_at: s.expires_at.to_rfc3339(),
        seconds_left: (s.expires_at - chrono::Utc::now()).num_seconds().max(0),
        terminal_ws: format!("/shares/{}/ws", shared.share.id),
        ports: Vec::new(),
    }
}

/// `GET /api/shares/{token}` — 200 the shared session; 410 `share_ended` / `share_revoked`;
/// 404 no such link.
pub async fn describe(
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<SharedSession>> {
    let shared = st.sandboxes.shared(&token).await?;
    let mut answer = session(&shared);
    // The viewer's previews: the owner's ports, entered through this link.
    answer.ports = super::files::open_ports(&st, &shared.sandbox.id)
        .await
        .into_iter()
        .map(|mut p| {
            p.preview_url = format!("{}?share={}", p.preview_url, token.to_ascii_lowercase());
            p
        })
        .collect();
    Ok(Json(answer))
}

/// `POST /api/shares/{token}/ticket` — 200 `{ticket, expires_in, terminal_ws}`: opens the
/// share's terminal socket once within 60 s, for this identity only.
pub async fn ticket(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(token): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let shared = st.sandboxes.shared(&token).await?;
    let id = &shared.share.id;
    let expires = chrono::Utc::now().timestamp() + TICKET_SECONDS;
    let ticket = st
        .signer
        .ticket(TICKET_PURPOSE, &me.key.to_string(), id, expires);
    Ok(Json(serde_json::json!({
        "ticket": ticket,
        "expires_in": TICKET_SECONDS,
        "terminal_ws": format!("/shares/{id}/ws"),
    })))
}

/// `GET /shares/{share_id}/ws?ticket=` — a watcher's terminal socket: the site's `Origin`, a
/// ticket of this identity for this share, a live share, and a place under the identity's cap
/// of open terminals (the owner's own cap, the same count).
pub async fn connect(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(share_id): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: axum::extract::WebSocketUpgrade,
) -> ApiResult<Response> {
    check_origin(&st, &me, &headers)?;
    let now = chrono::Utc::now().timestamp();
    if !st.signer.check_ticket(
        q.ticket(),
        TICKET_PURPOSE,
        &me.key.to_string(),
        &share_id,
        now,
    ) {
        return Err(ApiError::Forbidden(
            "This shared terminal needs a fresh ticket: reload the page (API clients: POST /api/shares/{token}/ticket, then connect with ?ticket=)."
                .into(),
        ));
    }
    let shared = st.sandboxes.shared_by_id(&share_id).await?;
    let Some(held) = st.streams.terminals_per_identity.hold(&me.key.to_string()) else {
        return Err(too_many_open("terminals"));
    };
    let keys = Keys::Watcher(shared.share.mode);
    let watcher = Watcher {
        share_id: share_id.clone(),
        identity: me.key.to_string(),
        name: me
            .user
            .as_ref()
            .map(|u| u.name.trim().to_string())
            .filter(|n| !n.is_empty()),
    };
    let sandboxes = Arc::clone(&st.sandboxes);
    let label = format!("{}/{share_id}", shared.sandbox.id);
    Ok(upgrade(ws, label, keys, held, move |_, _| async move {
        sandboxes.watch(&shared, watcher).await
    }))
}

/// The `/watch/{token}` page's lookup, through the sandbox service.
pub struct SharePages(pub Arc<SandboxService>);

impl app::api::ShareDirectory for SharePages {
    fn look_up(
        &self,
        token: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ShareLookup, String>> + Send>>
    {
        let sandboxes = Arc::clone(&self.0);
        Box::pin(async move {
            match sandboxes.shared(&token).await {
                Ok(shared) => Ok(ShareLookup::Live(session(&shared))),
                Err(e @ (SandboxError::ShareEnded | SandboxError::ShareRevoked)) => {
                    Ok(ShareLookup::Gone(e.to_string()))
                }
                Err(SandboxError::NoSuchShare) => Ok(ShareLookup::NotFound),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
