//! `GET /s/{id}/ws`: the browser's terminal WebSocket (ttyd protocol, subprotocol `tty`), proxied
//! frame by frame to the sandbox's shell session. Owner or admin only; every frame is validated.
//! A WebSocket is not covered by CORS or the CSRF guard, and SameSite=Lax lets other ports and
//! subdomains of the site send its cookies: so the upgrade needs `Origin` equal to the site's
//! (none only with an API token) and a 60-second ticket from `POST /api/sandboxes/{id}/ticket`
//! (CSRF-guarded), bound to the identity and the sandbox.
//!
//! The same proxy carries the sockets of share links (`http/api/shares.rs`): what each frame of
//! a browser may do is its seat's rule ([`Keys`]), applied here, on the server.
use crate::{
    http::error::{ApiError, ApiResult},
    http::state::AppState,
    sandbox::terminal::{
        parse_client_frame, Attachment, ClientFrame, TerminalError, TERMINAL_WS_BUFFER,
    },
};
use app::model::{Identity, ShareMode};
use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        Path, Query, State,
    },
    http::{header, HeaderMap},
    response::Response,
    Extension, Json,
};
use bytes::Bytes;
use std::time::Duration;

/// Close code when the shell ended by itself and the sandbox still runs (public/terminal.js).
pub const CLOSE_SHELL_EXITED: u16 = 4002;
/// "Service restart": the page reconnects to the same shell.
pub const CLOSE_RECONNECT: u16 = 1012;
/// Close code when the share link a watcher came through was revoked (public/terminal.js).
pub const CLOSE_SHARE_REVOKED: u16 = 4003;

/// Largest frame a browser may send (a paste is split by xterm.js well below this).
pub const MAX_FRAME: usize = 64 * 1024;

/// How long a terminal ticket opens the socket.
pub const TICKET_SECONDS: i64 = 60;
const TICKET_PURPOSE: &str = "terminal";

#[derive(serde::Deserialize)]
pub struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

impl TicketQuery {
    pub fn ticket(&self) -> &str {
        &self.ticket
    }
}

/// `POST /api/sandboxes/{id}/ticket` — 200 `{ticket, expires_in}`: opens the sandbox's terminal
/// once within 60 s, for this identity only (owner or admin).
pub async fn ticket(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let s = st
        .sandboxes
        .owned(&super::sandboxes::caller(&me), &id)
        .await?;
    if !s.active {
        return Err(ApiError::bad("sandbox_ended", "This sandbox has ended."));
    }
    let expires = chrono::Utc::now().timestamp() + TICKET_SECONDS;
    let ticket = st
        .signer
        .ticket(TICKET_PURPOSE, &me.key.to_string(), &id, expires);
    Ok(Json(
        serde_json::json!({ "ticket": ticket, "expires_in": TICKET_SECONDS }),
    ))
}

/// The upgrade must come from the site's own pages: browsers always send `Origin` on a
/// WebSocket, so none means an API client, which must have come with a token.
pub fn check_origin(st: &AppState, me: &Identity, headers: &HeaderMap) -> ApiResult<()> {
    let site = crate::http::identity::site_origin(&st.config.public_url);
    let origin_ok = match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => me.via_token,
        Some(Ok(origin)) => origin.eq_ignore_ascii_case(&site),
        Some(Err(_)) => false,
    };
    if origin_ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "The terminal opens only from the site's own pages ({site})."
        )))
    }
}

/// What a browser's frames may do to the shell it is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// The sandbox's owner (or an admin): keys, size and flow control.
    Owner,
    /// A watcher through a share link: keys only in `control` mode; never the size (the screen is
    /// the owner's) nor flow control (a pause would stop the owner's output).
    Watcher(ShareMode),
}

impl Keys {
    /// Whether `frame` may reach the shell; what may not is dropped, the socket stays open.
    pub fn allow(self, frame: &ClientFrame) -> bool {
        match (self, frame) {
            (Keys::Owner, _) => true,
            (Keys::Watcher(mode), ClientFrame::Input(_)) => mode.can_type(),
            (Keys::Watcher(_), _) => false,
        }
    }
}

/// Upgrades to the terminal protocol with the terminal's limits, then runs the proxy: `attach`
/// joins the shell once the browser's hello gave its size; `held` (its identity's socket slot)
/// is given back when the socket ends.
pub fn upgrade<A, F>(
    ws: WebSocketUpgrade,
    label: String,
    keys: Keys,
    held: crate::http::caps::Held,
    attach: A,
) -> Response
where
    A: FnOnce(u16, u16) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Attachment, TerminalError>> + Send,
{
    ws.protocols(["tty"])
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        // Keystrokes and screenfuls, not bulk data: tungstenite's 128 KiB buffers made an open
        // terminal cost 135 KB here (server/examples/terminal_bench.rs).
        .read_buffer_size(TERMINAL_WS_BUFFER)
        .write_buffer_size(TERMINAL_WS_BUFFER)
        .on_upgrade(move |socket| async move {
            if let Err(reason) = proxy(socket, keys, &held, attach).await {
                tracing::debug!(terminal = %label, reason, "terminal closed");
            }
        })
}

pub async fn connect(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    Query(q): Query<TicketQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    check_origin(&st, &me, &headers)?;
    // Unknown (404) and someone else's (403) sandboxes first, so the answer says which.
    let s = st
        .sandboxes
        .owned(&super::sandboxes::caller(&me), &id)
        .await?;
    let now = chrono::Utc::now().timestamp();
    if !st
        .signer
        .check_ticket(&q.ticket, TICKET_PURPOSE, &me.key.to_string(), &id, now)
    {
        return Err(ApiError::Forbidden(
            "This terminal needs a fresh ticket: reload the page (API clients: POST /api/sandboxes/{id}/ticket, then connect with ?ticket=)."
                .into(),
        ));
    }
    if !s.active {
        return Err(ApiError::bad("sandbox_ended", "This sandbox has ended."));
    }
    let Some(held) = st.streams.terminals_per_identity.hold(&me.key.to_string()) else {
        return Err(too_many_open("terminals"));
    };
    let label = id.clone();
    Ok(upgrade(
        ws,
        label,
        Keys::Owner,
        held,
        move |cols, rows| async move { st.sandboxes.attach(&id, cols, rows).await },
    ))
}

/// Too many connections of one kind open from one identity.
pub fn too_many_open(what: &str) -> ApiError {
    ApiError::RateLimited {
        message: format!(
            "Too many {what} are open in your browser. Close some tabs and try again."
        ),
        retry_after_secs: 5,
    }
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

/// Close code when the server drains (SIGTERM): the page reconnects, through the load balancer
/// to another replica.
pub const CLOSE_GOING_AWAY: u16 = 1001;

async fn proxy<A, F>(
    mut socket: WebSocket,
    keys: Keys,
    held: &crate::http::caps::Held,
    attach: A,
) -> Result<(), &'static str>
where
    A: FnOnce(u16, u16) -> F,
    F: std::future::Future<Output = Result<Attachment, TerminalError>>,
{
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
    let attachment = match attach(cols, rows).await {
        Ok(a) => a,
        Err(TerminalError::NotRunning) => {
            return close(socket, 1011, "sandbox is not running").await;
        }
        Err(TerminalError::TooManyViewers) => {
            return close(socket, 1013, "too many browsers on this terminal").await;
        }
        Err(TerminalError::TooManyWatchers) => {
            return close(socket, 1013, "too many people are watching this terminal").await;
        }
        Err(TerminalError::NoShell) => {
            return close(socket, 1013, "the owner's shell is not open right now").await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "terminal attach failed");
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
            () = held.closed() => return close(socket, CLOSE_GOING_AWAY, "the server is restarting").await,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(m)) => {
                    let Some(data) = payload(m) else { continue };
                    let frame = match parse_client_frame(&data) {
                        Ok(f) => f,
                        Err(reason) => return close(socket, 1008, reason).await,
                    };
                    // A watcher's keys in view mode, any watcher's size or pause: dropped here,
                    // whatever its page does.
                    if !keys.allow(&frame) {
                        continue;
                    }
                    let sent = match frame {
                        ClientFrame::Input(f) | ClientFrame::Flow(f) => session.send(f).await,
                        ClientFrame::Resize { cols, rows } | ClientFrame::Hello { cols, rows } => session.resize(cols, rows).await,
                    };
                    if !sent {
                        return close(socket, 1011, "session ended").await;
                    }
                }
            },
            out = live.next() => match out {
                Some(f) => socket.send(Message::Binary(f)).await.map_err(|_| "send failed")?,
                // The share link was revoked: its watchers are told so, and do not reconnect.
                None if live.revoked() => return close(socket, CLOSE_SHARE_REVOKED, "the owner stopped sharing this session").await,
                // Fell too far behind: the page reconnects and gets the screen from the replay.
                None if live.cut_off() => return close(socket, 4000, "too slow: reconnecting").await,
                // `exit` or Ctrl+D: the page offers a new shell in the same sandbox.
                None if session.shell_exited() => return close(socket, CLOSE_SHELL_EXITED, "the shell exited").await,
                // The server's connection to the shell broke, the shell did not: the page reconnects.
                None if session.upstream_lost() => return close(socket, CLOSE_RECONNECT, "the terminal is reconnecting").await,
                None => return close(socket, 1000, "sandbox ended").await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The server's rule for what each seat's frames may do (the real sockets: tests/shares.rs).
    #[test]
    fn watchers_type_only_in_control_mode_and_never_size_or_pause_the_shell() {
        let keys = ClientFrame::Input(Bytes::from_static(b"0ls\r"));
        let size = ClientFrame::Resize { cols: 20, rows: 5 };
        let hello = ClientFrame::Hello { cols: 20, rows: 5 };
        let pause = ClientFrame::Flow(Bytes::from_static(b"2"));
        for f in [&keys, &size, &hello, &pause] {
            assert!(Keys::Owner.allow(f), "{f:?}");
            assert!(!Keys::Watcher(ShareMode::View).allow(f), "{f:?}");
        }
        assert!(Keys::Watcher(ShareMode::Control).allow(&keys));
        for f in [&size, &hello, &pause] {
            assert!(!Keys::Watcher(ShareMode::Control).allow(f), "{f:?}");
        }
    }
}
