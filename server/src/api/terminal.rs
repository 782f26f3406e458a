//! `GET /s/{id}/ws`: the browser's terminal WebSocket (ttyd protocol, subprotocol `tty`), proxied
//! frame by frame to the sandbox's shell session. Owner or admin only; every frame is validated.
use crate::{
    error::{ApiError, ApiResult},
    sandbox::terminal::{parse_client_frame, ClientFrame},
    state::AppState,
};
use app::model::Identity;
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        Path, State,
    },
    response::Response,
    Extension,
};
use bytes::Bytes;
use std::time::Duration;

/// Largest frame a browser may send (a paste is split by xterm.js well below this).
pub const MAX_FRAME: usize = 64 * 1024;

pub async fn connect(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let not_found = || ApiError::NotFound("There is no such sandbox.".into());
    if id.len() != 26 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let s = db::sandboxes::get(&st.db, &id)
        .await?
        .ok_or_else(not_found)?;
    if s.owner != me.key && !me.is_admin {
        return Err(ApiError::Forbidden(
            "This terminal belongs to someone else.".into(),
        ));
    }
    if !s.active {
        return Err(ApiError::bad("sandbox_ended", "This sandbox has ended."));
    }
    Ok(ws
        .protocols(["tty"])
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            if let Err(reason) = proxy(st, id.clone(), socket).await {
                tracing::debug!(sandbox = %id, reason, "terminal closed");
            }
        }))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) -> Result<(), &'static str> {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    Err(reason)
}

fn payload(msg: Message) -> Option<Bytes> {
    match msg {
        Message::Binary(b) => Some(b),
        Message::Text(t) => Some(Bytes::copy_from_slice(t.as_bytes())),
        _ => None,
    }
}

async fn proxy(st: AppState, id: String, mut socket: WebSocket) -> Result<(), &'static str> {
    // 1. The client's hello gives the terminal size.
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let (cols, rows) = match first {
        Ok(Some(Ok(msg))) => match payload(msg).as_deref().map(parse_client_frame) {
            Some(Ok(ClientFrame::Hello { cols, rows })) => (cols, rows),
            _ => return close(socket, 1008, "expected the terminal hello first").await,
        },
        _ => return Err("no hello"),
    };
    // 2. A sandbox still starting (a concurrent Try) becomes ready within seconds.
    let mut socket_path = None;
    for _ in 0..150 {
        match db::sandboxes::get(&st.db, &id).await {
            Ok(Some(s)) if s.state == "ready" => {
                // An open session (re-attach, warm pool) needs no engine round-trip.
                socket_path = if st.sandboxes.terminals.get(&id).is_some() {
                    Some(std::path::PathBuf::new())
                } else {
                    st.sandboxes.runtime().socket(&id).await.ok().flatten()
                };
                break;
            }
            Ok(Some(s)) if s.active => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => break,
        }
    }
    let Some(socket_path) = socket_path else {
        return close(socket, 1011, "sandbox is not running").await;
    };
    let attachment = match st
        .sandboxes
        .terminals
        .attach(&id, &socket_path, cols, rows)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(sandbox = %id, error = %e, "terminal attach failed");
            return close(socket, 1011, "terminal unavailable").await;
        }
    };
    for f in attachment.first_frames {
        socket
            .send(Message::Binary(f))
            .await
            .map_err(|_| "send failed")?;
    }
    let session = attachment.session;
    let mut live = attachment.live;
    // 3. Pump both ways until either side ends.
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(m)) => {
                    let Some(data) = payload(m) else { continue };
                    match parse_client_frame(&data) {
                        Ok(ClientFrame::Forward(f)) => { if !session.send(f).await { return close(socket, 1011, "session ended").await; } }
                        Ok(ClientFrame::Hello { cols, rows }) => { session.send(crate::sandbox::terminal::resize_frame(cols, rows)).await; }
                        Err(reason) => return close(socket, 1008, reason).await,
                    }
                }
            },
            out = live.recv() => match out {
                Ok(f) if f.is_empty() => return close(socket, 1000, "sandbox ended").await,
                Ok(f) => socket.send(Message::Binary(f)).await.map_err(|_| "send failed")?,
                // A slow browser skipped frames: keep going, the screen catches up.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return close(socket, 1000, "sandbox ended").await,
            },
        }
    }
}
