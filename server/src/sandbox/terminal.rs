//! Terminal sessions. ttyd starts a new shell for every WebSocket it accepts, so the server keeps
//! **one upstream WebSocket per sandbox** and lets browser connections attach to it and detach from
//! it: a page reload re-attaches to the same shell, with the recent screen output replayed. Only
//! WebSocket frames cross; the container never serves HTML to the site.
//!
//! The upstream runs over a byte stream the runtime opens (an exec'd relay inside the sandbox):
//! the server never dials a path the sandbox controls. Everything that comes back is the
//! sandbox's to forge, so it is bounded: small frames, a handshake bounded in time (tungstenite
//! bounds its size), and
//! per-browser queues bounded in bytes (a browser that falls behind is disconnected and
//! re-attaches from the replay; the upstream never waits for it).
//!
//! Besides its owner's browsers, a session has **watchers**: browsers that opened a share link
//! of the sandbox. They get the same output (and the shell's size, so their screen matches), are
//! capped apart from the owner's browsers (watchers can never lock the owner out), never open a
//! shell or resize it, and are cut off at once when their share is revoked. What a watcher may
//! send is the proxy's decision (`http/api/terminal.rs`).
use super::runtime::{Runtime, TerminalUpstream};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig, Message,
};

/// Output kept for replay when a browser (re)attaches.
const SCROLLBACK_BYTES: usize = 256 * 1024;
/// Largest WebSocket message or frame accepted from ttyd (its output frames are a few KiB).
pub const MAX_UPSTREAM_FRAME: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new shell may take to print its first byte (gVisor under a burst: seconds).
const SHELL_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Output queued for one browser; beyond it that browser is cut off (it re-attaches).
pub const MAX_QUEUED_PER_VIEWER: usize = 1024 * 1024;
/// The owner's (or an admin's) browsers attached to one shell at once.
pub const MAX_VIEWERS: usize = 8;
/// Watchers (share links) attached to one shell at once, besides the owner's browsers.
pub const MAX_WATCHERS: usize = 16;

/// ttyd protocol command bytes (1.7.x), checked against the real binary in the tests.
pub mod proto {
    pub const INPUT: u8 = b'0';
    pub const RESIZE: u8 = b'1';
    pub const PAUSE: u8 = b'2';
    pub const RESUME: u8 = b'3';
    pub const OUTPUT: u8 = b'0';
    pub const SET_TITLE: u8 = b'1';
    pub const SET_PREFERENCES: u8 = b'2';
    /// The platform's own server frame (ttyd has no such command): the shared shell's size,
    /// `{"columns":C,"rows":R}`, sent to watchers only, so their screen takes the owner's size.
    pub const WATCH_SIZE: u8 = b'9';
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("the sandbox is not running")]
    NotRunning,
    #[error("ttyd did not answer: {0}")]
    Upstream(String),
    #[error("{MAX_VIEWERS} browsers are already attached to this terminal")]
    TooManyViewers,
    #[error("{MAX_WATCHERS} people are already watching this terminal")]
    TooManyWatchers,
    /// No shell is open (it exited, or the server restarted): a watcher waits for the owner's
    /// browser to open one, it never starts one itself.
    #[error("the owner's shell is not open right now")]
    NoShell,
}

/// Someone watching a sandbox's terminal through a share link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    pub share_id: String,
    /// Their identity (an owner key's text): the owner's list counts people, not tabs.
    pub identity: String,
    /// Their display name; None for a visitor without an account (shown as "anonymous").
    pub name: Option<String>,
}

/// Who an attached browser is.
#[derive(Debug, Clone)]
pub enum Seat {
    /// The sandbox's owner (or an admin): its keys and size go to the shell.
    Owner,
    /// Through a share link.
    Watcher(Arc<Watcher>),
}

#[derive(Default)]
struct Replay {
    scrollback: VecDeque<u8>,
    title: Option<Bytes>,
    prefs: Option<Bytes>,
}

/// One attached browser's queue: frames plus the bytes they hold.
struct Viewer {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    cut_off: Arc<AtomicBool>,
    seat: Seat,
    /// Set when its share is revoked: its stream ends at once, queued frames unsent.
    revoked: Arc<AtomicBool>,
}

impl Viewer {
    fn watcher(&self) -> Option<&Arc<Watcher>> {
        match &self.seat {
            Seat::Watcher(w) => Some(w),
            Seat::Owner => None,
        }
    }

    /// Queues `frame` unless this browser is too far behind (then it is cut off: false).
    fn offer(&self, frame: &Bytes) -> bool {
        let queued = self.queued.load(Ordering::Relaxed);
        if queued + frame.len() > MAX_QUEUED_PER_VIEWER {
            self.cut_off.store(true, Ordering::Relaxed);
            return false; // dropping the sender ends that browser's stream
        }
        self.queued.fetch_add(frame.len(), Ordering::Relaxed);
        self.tx.send(frame.clone()).is_ok()
    }
}

/// One sandbox's shell, shared by every browser attached to it.
pub struct Session {
    input: mpsc::Sender<Bytes>,
    replay: Mutex<Replay>,
    viewers: Mutex<Vec<Viewer>>,
    /// Unix milliseconds of the last keystroke (idle timeout).
    pub last_input_ms: AtomicI64,
    closed: AtomicBool,
    /// Wakes the upstream task when the session is closed from this side (it hangs up at once).
    closing: tokio::sync::Notify,
    /// The shell ended by itself (`exit`, Ctrl+D) while its sandbox runs on: a browser may open
    /// a new one.
    shell_exited: AtomicBool,
    /// This server's connection to the shell ended but the shell did not (its holder outlives
    /// the server's ttyd): browsers reconnect and get it again.
    upstream_lost: AtomicBool,
    /// The shell's size (columns, rows): the last the owner's browsers asked for.
    size: Mutex<(u16, u16)>,
}

/// What a browser gets when it attaches: frames to send first, then the live stream.
pub struct Attachment {
    pub session: Arc<Session>,
    pub first_frames: Vec<Bytes>,
    pub live: Live,
}

/// The live output for one browser. `next()` is `None` when the shell ended or this browser fell
/// too far behind (`cut_off()` tells which).
pub struct Live {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    cut_off: Arc<AtomicBool>,
    revoked: Arc<AtomicBool>,
}

impl Live {
    pub async fn next(&mut self) -> Option<Bytes> {
        let f = self.rx.recv().await;
        if self.revoked() {
            return None; // nothing more, not even what was queued before the revocation
        }
        let f = f?;
        self.queued.fetch_sub(f.len(), Ordering::Relaxed);
        Some(f)
    }

    pub fn cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Relaxed)
    }

    /// The share this browser watched through was revoked.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }
}

impl Session {
    fn new(input: mpsc::Sender<Bytes>, cols: u16, rows: u16) -> Self {
        Self {
            input,
            replay: Mutex::new(Replay::default()),
            viewers: Mutex::new(Vec::new()),
            last_input_ms: AtomicI64::new(chrono::Utc::now().timestamp_millis()),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            shell_exited: AtomicBool::new(false),
            upstream_lost: AtomicBool::new(false),
            size: Mutex::new((cols, rows)),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn shell_exited(&self) -> bool {
        self.shell_exited.load(Ordering::Relaxed)
    }

    pub fn upstream_lost(&self) -> bool {
        self.upstream_lost.load(Ordering::Relaxed)
    }

    /// Sends a client frame (already validated) to ttyd.
    pub async fn send(&self, frame: Bytes) -> bool {
        if frame.first() == Some(&proto::INPUT) {
            self.last_input_ms
                .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
        self.input.send(frame).await.is_ok()
    }

    /// Resizes the shell (the owner's browsers only) and tells the watchers its new size.
    pub async fn resize(&self, cols: u16, rows: u16) -> bool {
        *self.size.lock().unwrap_or_else(|p| p.into_inner()) = (cols, rows);
        let frame = watch_size_frame(cols, rows);
        self.viewers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|v| v.watcher().is_none() || v.offer(&frame));
        self.send(resize_frame(cols, rows)).await
    }

    /// The shell's size (columns, rows).
    pub fn size(&self) -> (u16, u16) {
        *self.size.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attach(self: &Arc<Self>, seat: Seat) -> Result<Attachment, TerminalError> {
        let guard = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        // Joining under the replay lock: no frame is lost or repeated between snapshot and stream.
        let mut viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers.retain(|v| !v.tx.is_closed());
        let watching = matches!(seat, Seat::Watcher(_));
        let seated = viewers
            .iter()
            .filter(|v| v.watcher().is_some() == watching)
            .count();
        match (watching, seated) {
            (false, n) if n >= MAX_VIEWERS => return Err(TerminalError::TooManyViewers),
            (true, n) if n >= MAX_WATCHERS => return Err(TerminalError::TooManyWatchers),
            _ => {}
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let cut_off = Arc::new(AtomicBool::new(false));
        let revoked = Arc::new(AtomicBool::new(false));
        viewers.push(Viewer {
            tx,
            queued: queued.clone(),
            cut_off: cut_off.clone(),
            seat,
            revoked: revoked.clone(),
        });
        drop(viewers);
        let mut first_frames = Vec::new();
        if watching {
            // Unknown (0×0) when this server joined the shell for watchers only: the page keeps
            // its own size until the owner's next resize through here.
            let (cols, rows) = self.size();
            if cols > 0 && rows > 0 {
                first_frames.push(watch_size_frame(cols, rows));
            }
        }
        first_frames.extend(guard.prefs.clone());
        first_frames.extend(guard.title.clone());
        if !guard.scrollback.is_empty() {
            let mut out = Vec::with_capacity(guard.scrollback.len() + 1);
            out.push(proto::OUTPUT);
            out.extend(guard.scrollback.iter());
            first_frames.push(Bytes::from(out));
        }
        Ok(Attachment {
            session: self.clone(),
            first_frames,
            live: Live {
                rx,
                queued,
                cut_off,
                revoked,
            },
        })
    }

    /// Cuts off every watcher of share `share_id` at once; how many browsers that was.
    fn revoke(&self, share_id: &str) -> usize {
        let mut viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        let before = viewers.len();
        viewers.retain(|v| match v.watcher() {
            Some(w) if w.share_id == share_id => {
                v.revoked.store(true, Ordering::Relaxed);
                false // dropping the sender wakes its stream, which ends
            }
            _ => true,
        });
        before - viewers.len()
    }

    /// The watchers attached now (one entry per browser).
    fn watchers(&self) -> Vec<Arc<Watcher>> {
        let viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers
            .iter()
            .filter(|v| !v.tx.is_closed())
            .filter_map(|v| v.watcher().cloned())
            .collect()
    }

    fn record(&self, frame: &Bytes) {
        let mut r = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        match frame.first() {
            Some(&proto::OUTPUT) => {
                r.scrollback.extend(&frame[1..]);
                let excess = r.scrollback.len().saturating_sub(SCROLLBACK_BYTES);
                r.scrollback.drain(..excess);
            }
            Some(&proto::SET_TITLE) => r.title = Some(frame.clone()),
            Some(&proto::SET_PREFERENCES) => r.prefs = Some(frame.clone()),
            _ => {}
        }
        let mut viewers = self.viewers.lock().unwrap_or_else(|p| p.into_inner());
        viewers.retain(|v| v.offer(frame));
    }

    fn end(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.closing.notify_one();
        self.viewers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

type Map = Arc<Mutex<HashMap<String, Arc<Session>>>>;

#[derive(Clone)]
pub struct Terminals {
    sessions: Map,
    runtime: Arc<dyn Runtime>,
}

impl Terminals {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self {
            sessions: Map::default(),
            runtime,
        }
    }

    /// Attaches to the sandbox's shell, opening the upstream connection to ttyd if there is none.
    pub async fn attach(
        &self,
        sandbox_id: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Attachment, TerminalError> {
        if let Some(s) = self.get(sandbox_id) {
            s.resize(cols, rows).await;
            return s.attach(Seat::Owner);
        }
        let session = self.open(sandbox_id, Opening::Sized(cols, rows)).await?;
        self.keep_first(sandbox_id, session).attach(Seat::Owner)
    }

    /// Attaches a watcher to the sandbox's open shell: its output from now on (after the recent
    /// screen), never its size; no shell open is `NoShell` (a watcher never starts one).
    /// The owner's shell may be open through another app server: then this one joins it without
    /// sizing it (0×0: the relay sends no size for an unsized terminal), never starting one.
    pub async fn watch(
        &self,
        sandbox_id: &str,
        watcher: Watcher,
    ) -> Result<Attachment, TerminalError> {
        let session = match self.get(sandbox_id) {
            Some(s) => s,
            None if self.runtime.shell_held(sandbox_id).await => {
                let opened = self.open(sandbox_id, Opening::Watch).await?;
                self.keep_first(sandbox_id, opened)
            }
            None => return Err(TerminalError::NoShell),
        };
        session.attach(Seat::Watcher(Arc::new(watcher)))
    }

    /// The sandbox's session once `opened` is in the map: two browsers may race to open, and
    /// the first one's is kept (the other's upstream closes).
    fn keep_first(&self, sandbox_id: &str, opened: Arc<Session>) -> Arc<Session> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let kept = map
            .entry(sandbox_id.to_string())
            .or_insert(opened.clone())
            .clone();
        if !Arc::ptr_eq(&kept, &opened) {
            opened.end();
        }
        kept
    }

    /// Cuts off the watchers of share `share_id` of the sandbox at once; how many there were.
    pub fn revoke_share(&self, sandbox_id: &str, share_id: &str) -> usize {
        self.get(sandbox_id).map_or(0, |s| s.revoke(share_id))
    }

    /// Every (sandbox, share) watched through this server now.
    pub fn watched_shares(&self) -> Vec<(String, String)> {
        let sessions: Vec<(String, Arc<Session>)> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let mut watched: Vec<(String, String)> = sessions
            .iter()
            .flat_map(|(id, s)| {
                s.watchers()
                    .into_iter()
                    .map(|w| (id.clone(), w.share_id.clone()))
            })
            .collect();
        watched.sort();
        watched.dedup();
        watched
    }

    /// Who watches the sandbox's shell now (one entry per browser).
    pub fn watchers(&self, sandbox_id: &str) -> Vec<Arc<Watcher>> {
        self.get(sandbox_id)
            .map(|s| s.watchers())
            .unwrap_or_default()
    }

    /// Starts the shell without a browser (launch readiness, warm pool) and waits for its first
    /// output (the welcome, the prompt, or the relay's own error): a sandbox is ready once its
    /// shell runs, and a launch whose shell never starts fails instead of handing out a silent
    /// terminal.
    pub async fn open_idle(&self, sandbox_id: &str) -> Result<(), TerminalError> {
        let mut a = self.attach(sandbox_id, 80, 24).await?;
        if a.first_frames
            .iter()
            .any(|f| f.first() == Some(&proto::OUTPUT))
        {
            return Ok(());
        }
        let first_output = async {
            while let Some(f) = a.live.next().await {
                if f.first() == Some(&proto::OUTPUT) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(SHELL_START_TIMEOUT, first_output).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(TerminalError::Upstream(
                "the shell ended before printing".into(),
            )),
            Err(_) => Err(TerminalError::Upstream(format!(
                "the shell printed nothing within {} s",
                SHELL_START_TIMEOUT.as_secs()
            ))),
        }
    }

    pub fn get(&self, sandbox_id: &str) -> Option<Arc<Session>> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(sandbox_id).filter(|s| !s.is_closed()).cloned()
    }

    /// Ends the shell (its session gets SIGHUP, through its holder) and closes this server's
    /// connection to it; attached browsers see the session end. Once this returns, the next
    /// attach opens a new shell.
    pub async fn close(&self, sandbox_id: &str) {
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox_id);
        if let Some(s) = removed {
            s.end();
        }
        // The shell outlives connections to it (another server's too): it is told to end.
        self.runtime.hang_up_shell(sandbox_id).await;
    }

    /// Records input at `at_ms` (unix ms) for a sandbox with an open session.
    pub fn mark_input(&self, sandbox_id: &str, at_ms: i64) {
        if let Some(s) = self.get(sandbox_id) {
            s.last_input_ms.fetch_max(at_ms, Ordering::Relaxed);
        }
    }

    /// Last keystroke time (unix ms) of a sandbox with an open session.
    pub fn last_input_ms(&self, sandbox_id: &str) -> Option<i64> {
        self.get(sandbox_id)
            .map(|s| s.last_input_ms.load(Ordering::Relaxed))
    }

    pub fn open_count(&self) -> usize {
        self.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }

    async fn open(&self, id: &str, how: Opening) -> Result<Arc<Session>, TerminalError> {
        let (opened, (cols, rows)) = match how {
            Opening::Sized(cols, rows) => (self.runtime.open_terminal(id).await, (cols, rows)),
            // Unknown (0×0) until the owner's browser attaches here and resizes it.
            Opening::Watch => (self.runtime.join_terminal(id).await, (0, 0)),
        };
        let stream = opened.map_err(|e| match e {
            super::runtime::RuntimeError::ImageMissing(_) => TerminalError::NotRunning,
            other => TerminalError::Upstream(other.to_string()),
        })?;
        let runtime = self.runtime.clone();
        let sandbox = id.to_string();
        let exited = Box::pin(async move {
            runtime.wait_exit(&sandbox).await;
        });
        let runtime = self.runtime.clone();
        let sandbox = id.to_string();
        let held: ShellHeld =
            Box::new(move || Box::pin(async move { runtime.shell_held(&sandbox).await }));
        open_session(
            id.to_string(),
            stream,
            (cols, rows),
            self.sessions.clone(),
            exited,
            held,
        )
        .await
    }
}

pub fn resize_frame(cols: u16, rows: u16) -> Bytes {
    size_frame(proto::RESIZE, cols, rows)
}

/// What watchers are told of the shell's size.
pub fn watch_size_frame(cols: u16, rows: u16) -> Bytes {
    size_frame(proto::WATCH_SIZE, cols, rows)
}

fn size_frame(command: u8, cols: u16, rows: u16) -> Bytes {
    let mut f = vec![command];
    f.extend(
        serde_json::json!({ "columns": cols, "rows": rows })
            .to_string()
            .into_bytes(),
    );
    Bytes::from(f)
}

/// Read and write buffers of a terminal's WebSockets (browser and ttyd sides). Terminal traffic
/// is small frames; tungstenite's default of 128 KiB each is meant for bulk transfers, and at
/// 10,000 open terminals it was most of the server's memory.
pub const TERMINAL_WS_BUFFER: usize = 8 * 1024;

/// The WebSocket limits for ttyd's side: small frames, small buffers.
pub fn upstream_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_UPSTREAM_FRAME))
        .max_frame_size(Some(MAX_UPSTREAM_FRAME))
        .read_buffer_size(TERMINAL_WS_BUFFER)
        .write_buffer_size(TERMINAL_WS_BUFFER)
}

/// How this server opens its connection to a shell.
enum Opening {
    /// For the owner's browser (or the warm pool): starts the shell if none runs, at this size.
    Sized(u16, u16),
    /// For watchers: joins the open shell, never starting it or sizing it.
    Watch,
}

/// Asks whether the shell still runs after this server's connection to it ended.
type ShellHeld =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send>;

async fn open_session(
    id: String,
    upstream: TerminalUpstream,
    (cols, rows): (u16, u16),
    map: Map,
    mut exited: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    held: ShellHeld,
) -> Result<Arc<Session>, TerminalError> {
    let mut req = format!("ws://localhost{}", upstream.path)
        .into_client_request()
        .map_err(|e| TerminalError::Upstream(e.to_string()))?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
    let handshake =
        tokio_tungstenite::client_async_with_config(req, upstream.io, Some(upstream_ws_config()));
    let (mut ws, _) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| TerminalError::Upstream("handshake timed out".into()))?
        .map_err(|e| TerminalError::Upstream(format!("handshake: {e}")))?;
    let hello = serde_json::json!({ "AuthToken": "", "columns": cols, "rows": rows }).to_string();
    ws.send(Message::Binary(Bytes::from(hello)))
        .await
        .map_err(|e| TerminalError::Upstream(e.to_string()))?;

    let (input, mut input_rx) = mpsc::channel::<Bytes>(64);
    let session = Arc::new(Session::new(input, cols, rows));
    let s = session.clone();
    tokio::spawn(async move {
        let mut held = Some(held);
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) if !b.is_empty() => s.record(&b),
                    Some(Ok(Message::Text(t))) if !t.is_empty() => s.record(&Bytes::copy_from_slice(t.as_bytes())),
                    // ttyd going away (killed, restarted) resets the connection.
                    Some(Ok(Message::Close(_))) | None | Some(Err(
                        tokio_tungstenite::tungstenite::Error::Io(_)
                        | tokio_tungstenite::tungstenite::Error::ConnectionClosed
                        | tokio_tungstenite::tungstenite::Error::AlreadyClosed
                        | tokio_tungstenite::tungstenite::Error::Protocol(
                            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                        ),
                    )) => {
                        // ttyd closes when the shell's exec ends: the shell exited, or the
                        // sandbox is going away (then its container stops at the same moment).
                        // Or ttyd itself went (restarted): then the shell's holder still has it.
                        let stopping = tokio::time::timeout(Duration::from_millis(300), &mut exited).await.is_ok();
                        if !stopping && !s.is_closed() {
                            let still_held = match held.take() {
                                Some(held) => held().await,
                                None => false,
                            };
                            let flag = if still_held { &s.upstream_lost } else { &s.shell_exited };
                            flag.store(true, Ordering::Relaxed);
                        }
                        break;
                    }
                    Some(Err(e)) => {
                        // A ttyd that breaks the protocol or the limits is the sandbox's doing.
                        tracing::warn!(sandbox = %id, error = %e, "terminal upstream misbehaved; session closed");
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                frame = input_rx.recv() => match frame {
                    Some(f) => if ws.send(Message::Binary(f)).await.is_err() { break },
                    None => break,
                },
                _ = s.closing.notified() => break,
                _ = &mut exited => {
                    tracing::info!(sandbox = %id, "sandbox stopped; terminal session closed");
                    break;
                }
            }
            if s.is_closed() {
                break;
            }
        }
        // A dead sandbox's stream may never drain: don't wait on it.
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        s.end();
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(&id).is_some_and(|cur| Arc::ptr_eq(cur, &s)) {
            m.remove(&id);
        }
    });
    Ok(session)
}

/// A browser's frame, validated: what it asks of the shell.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Keys (the whole ttyd frame, command byte included).
    Input(Bytes),
    /// A new terminal size.
    Resize { cols: u16, rows: u16 },
    /// ttyd's pause or resume of the shell's output (the whole frame).
    Flow(Bytes),
    /// The ttyd hello (`{"AuthToken":…,"columns":…,"rows":…}`), answered by the proxy itself.
    Hello { cols: u16, rows: u16 },
}

#[derive(serde::Deserialize)]
struct Size {
    columns: u16,
    rows: u16,
}

pub const MAX_COLS: u16 = 500;
pub const MAX_ROWS: u16 = 200;

fn valid_size(s: &Size) -> Option<(u16, u16)> {
    ((1..=MAX_COLS).contains(&s.columns) && (1..=MAX_ROWS).contains(&s.rows))
        .then_some((s.columns, s.rows))
}

/// Checks one browser frame against ttyd's client protocol.
pub fn parse_client_frame(frame: &[u8]) -> Result<ClientFrame, &'static str> {
    match frame.first() {
        None => Err("empty frame"),
        Some(b'{') => {
            let s: Size = serde_json::from_slice(frame).map_err(|_| "malformed hello")?;
            let (cols, rows) = valid_size(&s).ok_or("terminal size out of range")?;
            Ok(ClientFrame::Hello { cols, rows })
        }
        Some(&proto::INPUT) => Ok(ClientFrame::Input(Bytes::copy_from_slice(frame))),
        Some(&proto::RESIZE) => {
            let s: Size = serde_json::from_slice(&frame[1..]).map_err(|_| "malformed resize")?;
            let (cols, rows) = valid_size(&s).ok_or("terminal size out of range")?;
            Ok(ClientFrame::Resize { cols, rows })
        }
        Some(&proto::PAUSE) | Some(&proto::RESUME) if frame.len() == 1 => {
            Ok(ClientFrame::Flow(Bytes::copy_from_slice(frame)))
        }
        Some(_) => Err("unknown frame type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_resize_are_validated() {
        assert_eq!(
            parse_client_frame(br#"{"AuthToken":"","columns":80,"rows":24}"#),
            Ok(ClientFrame::Hello { cols: 80, rows: 24 })
        );
        assert!(parse_client_frame(br#"{"columns":0,"rows":24}"#).is_err());
        assert!(parse_client_frame(br#"{"columns":80,"rows":99999}"#).is_err());
        assert_eq!(
            parse_client_frame(br#"1{"columns":100,"rows":30,"junk":"x"}"#),
            Ok(ClientFrame::Resize {
                cols: 100,
                rows: 30
            })
        );
        assert!(parse_client_frame(b"1not json").is_err());
    }

    #[test]
    fn input_passes_and_unknown_commands_are_refused() {
        assert_eq!(
            parse_client_frame(b"0ls\r"),
            Ok(ClientFrame::Input(Bytes::from_static(b"0ls\r")))
        );
        assert_eq!(
            parse_client_frame(b"2"),
            Ok(ClientFrame::Flow(Bytes::from_static(b"2")))
        );
        assert!(parse_client_frame(b"9boom").is_err());
        assert!(parse_client_frame(b"").is_err());
        assert!(parse_client_frame(b"2extra").is_err());
    }

    #[test]
    fn scrollback_is_bounded_and_replayed() {
        let (input, _rx) = mpsc::channel(1);
        let s = Arc::new(Session::new(input, 80, 24));
        let mut big = vec![proto::OUTPUT];
        big.extend(std::iter::repeat_n(b'x', SCROLLBACK_BYTES + 10));
        s.record(&Bytes::from(big));
        s.record(&Bytes::from_static(b"0tail"));
        s.record(&Bytes::from_static(b"1title"));
        let Ok(a) = s.attach(Seat::Owner) else {
            panic!("attach refused")
        };
        assert_eq!(a.first_frames[0], Bytes::from_static(b"1title"));
        let replay = &a.first_frames[1];
        assert_eq!(replay.len(), SCROLLBACK_BYTES + 1);
        assert!(replay.ends_with(b"tail"));
    }
}

#[cfg(test)]
mod fanout_tests {
    use super::*;

    fn session() -> Arc<Session> {
        let (input, _rx) = mpsc::channel(1);
        Arc::new(Session::new(input, 80, 24))
    }

    #[tokio::test]
    async fn a_browser_that_stops_reading_is_cut_off_by_bytes_not_slots() {
        let s = session();
        let Ok(mut slow) = s.attach(Seat::Owner) else {
            panic!("attach refused")
        };
        let Ok(mut fast) = s.attach(Seat::Owner) else {
            panic!("attach refused")
        };
        // 4 KiB frames: the slow browser's queue reaches its byte bound after 256 frames.
        let frame = Bytes::from(vec![proto::OUTPUT; 4096]);
        for _ in 0..(MAX_QUEUED_PER_VIEWER / 4096 + 10) {
            s.record(&frame);
            assert!(fast.live.next().await.is_some());
        }
        let mut got = 0;
        while slow.live.next().await.is_some() {
            got += 1;
        }
        assert_eq!(got, MAX_QUEUED_PER_VIEWER / 4096);
        assert!(slow.live.cut_off());
        assert!(!fast.live.cut_off());
    }

    #[tokio::test]
    async fn viewers_are_capped() {
        let s = session();
        let mut kept = Vec::new();
        for _ in 0..MAX_VIEWERS {
            kept.push(s.attach(Seat::Owner).map_err(|e| e.to_string()));
        }
        assert!(kept.iter().all(Result::is_ok));
        assert!(matches!(
            s.attach(Seat::Owner),
            Err(TerminalError::TooManyViewers)
        ));
        kept.pop();
        assert!(
            s.attach(Seat::Owner).is_ok(),
            "a detached browser frees its place"
        );
    }

    fn watcher(share: &str, who: &str) -> Seat {
        Seat::Watcher(Arc::new(Watcher {
            share_id: share.into(),
            identity: who.into(),
            name: None,
        }))
    }

    #[tokio::test]
    async fn watchers_are_capped_apart_and_never_lock_the_owner_out() {
        let s = session();
        let mut kept = Vec::new();
        for i in 0..MAX_WATCHERS {
            kept.push(
                s.attach(watcher("sh", &format!("v:{i}")))
                    .map_err(|e| e.to_string()),
            );
        }
        assert!(kept.iter().all(Result::is_ok));
        assert!(matches!(
            s.attach(watcher("sh", "v:late")),
            Err(TerminalError::TooManyWatchers)
        ));
        assert!(s.attach(Seat::Owner).is_ok(), "the owner still gets in");
        assert_eq!(s.watchers().len(), MAX_WATCHERS);
    }

    #[tokio::test]
    async fn watchers_get_the_size_and_a_revocation_cuts_only_their_share_at_once() {
        let s = session();
        let Ok(mut owner) = s.attach(Seat::Owner) else {
            panic!("attach refused")
        };
        let Ok(mut a) = s.attach(watcher("a", "v:1")) else {
            panic!("attach refused")
        };
        let Ok(mut b) = s.attach(watcher("b", "v:2")) else {
            panic!("attach refused")
        };
        // A watcher learns the shell's size first, and every change of it; the owner does not.
        assert_eq!(a.first_frames[0], watch_size_frame(80, 24));
        assert!(owner.first_frames.is_empty());
        s.resize(100, 30).await;
        assert_eq!(a.live.next().await, Some(watch_size_frame(100, 30)));
        assert_eq!(b.live.next().await, Some(watch_size_frame(100, 30)));
        // Output reaches everyone; queued output of a revoked watcher is never delivered.
        s.record(&Bytes::from_static(b"0hello"));
        assert_eq!(owner.live.next().await, Some(Bytes::from_static(b"0hello")));
        assert_eq!(s.revoke("a"), 1);
        assert_eq!(a.live.next().await, None);
        assert!(a.live.revoked() && !a.live.cut_off());
        assert_eq!(b.live.next().await, Some(Bytes::from_static(b"0hello")));
        assert!(!b.live.revoked());
        let left: Vec<String> = s.watchers().iter().map(|w| w.share_id.clone()).collect();
        assert_eq!(left, vec!["b".to_string()]);
    }
}

/// The upstream side with a fake runtime (behind the `Runtime` trait): whatever the stream from a
/// sandbox carries is the sandbox's to forge.
#[cfg(test)]
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
mod upstream_tests {
    use super::*;
    use crate::engine::Isolation;
    use crate::sandbox::runtime::{LaunchSpec, Launched, Listed, RuntimeError, TerminalUpstream};
    use tokio::io::DuplexStream;

    /// Hands out the client end of a pipe whose other end the test plays as "ttyd".
    struct PipeRuntime(Mutex<Option<DuplexStream>>);

    #[async_trait::async_trait]
    impl Runtime for PipeRuntime {
        async fn launch(&self, _: &LaunchSpec) -> Result<Launched, RuntimeError> {
            Err(RuntimeError::Engine("not used".into()))
        }
        async fn destroy(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn open_terminal(&self, _: &str) -> Result<TerminalUpstream, RuntimeError> {
            let end = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            end.map(TerminalUpstream::direct)
                .ok_or_else(|| RuntimeError::NotReady("used".into()))
        }
        fn isolation(&self) -> Isolation {
            Isolation::Runc
        }
        async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
            Ok(vec![])
        }
        async fn ping(&self) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    fn pipe() -> (Terminals, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let rt = Arc::new(PipeRuntime(Mutex::new(Some(ours))));
        (Terminals::new(rt), theirs)
    }

    #[tokio::test]
    async fn an_oversized_upstream_frame_closes_the_session() {
        let (terms, theirs) = pipe();
        let fake_ttyd = tokio::spawn(async move {
            // Like ttyd: agree on the `tty` subprotocol.
            let agree = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
                Ok(resp)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(theirs, agree)
                .await
                .ok()?;
            let _hello = ws.next().await;
            ws.send(Message::Binary(Bytes::from_static(b"0$ ")))
                .await
                .ok()?;
            let huge = vec![proto::OUTPUT; MAX_UPSTREAM_FRAME + 1];
            ws.send(Message::Binary(Bytes::from(huge))).await.ok()?;
            // Stay open: only the server's limit may end the session.
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(())
        });
        let mut a = match terms.attach("s1", 80, 24).await {
            Ok(a) => a,
            Err(e) => panic!("attach failed: {e}"),
        };
        assert_eq!(a.live.next().await, Some(Bytes::from_static(b"0$ ")));
        let end = tokio::time::timeout(Duration::from_secs(5), a.live.next()).await;
        assert_eq!(end, Ok(None), "the session must end on an oversized frame");
        assert!(a.session.is_closed());
        assert!(!a.live.cut_off());
        assert_eq!(terms.open_count(), 0);
        fake_ttyd.abort();
    }
}
