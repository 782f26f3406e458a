//! Terminal sessions. ttyd starts a new shell for every WebSocket it accepts, so the server keeps
//! **one upstream WebSocket per sandbox** (over ttyd's UNIX socket) and lets browser connections
//! attach to it and detach from it: a page reload re-attaches to the same shell, with the recent
//! screen output replayed. Only WebSocket frames cross; the container never serves HTML to the site.
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

/// Output kept for replay when a browser (re)attaches.
const SCROLLBACK_BYTES: usize = 256 * 1024;

/// ttyd protocol command bytes (1.7.x), checked against the real binary in the tests.
pub mod proto {
    pub const INPUT: u8 = b'0';
    pub const RESIZE: u8 = b'1';
    pub const PAUSE: u8 = b'2';
    pub const RESUME: u8 = b'3';
    pub const OUTPUT: u8 = b'0';
    pub const SET_TITLE: u8 = b'1';
    pub const SET_PREFERENCES: u8 = b'2';
}

#[derive(Default)]
struct Replay {
    scrollback: VecDeque<u8>,
    title: Option<Bytes>,
    prefs: Option<Bytes>,
}

/// One sandbox's shell, shared by every browser attached to it.
pub struct Session {
    input: mpsc::Sender<Bytes>,
    output: broadcast::Sender<Bytes>,
    replay: Mutex<Replay>,
    /// Unix milliseconds of the last keystroke (idle timeout).
    pub last_input_ms: AtomicI64,
    closed: AtomicBool,
}

/// What a browser gets when it attaches: frames to send first, then the live stream.
pub struct Attachment {
    pub session: Arc<Session>,
    pub first_frames: Vec<Bytes>,
    pub live: broadcast::Receiver<Bytes>,
}

impl Session {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Sends a client frame (already validated) to ttyd.
    pub async fn send(&self, frame: Bytes) -> bool {
        if frame.first() == Some(&proto::INPUT) {
            self.last_input_ms
                .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
        self.input.send(frame).await.is_ok()
    }

    fn attach(self: &Arc<Self>) -> Attachment {
        let guard = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        // Subscribing under the replay lock: no frame is lost or repeated between snapshot and stream.
        let live = self.output.subscribe();
        let mut first_frames = Vec::new();
        first_frames.extend(guard.prefs.clone());
        first_frames.extend(guard.title.clone());
        if !guard.scrollback.is_empty() {
            let mut out = Vec::with_capacity(guard.scrollback.len() + 1);
            out.push(proto::OUTPUT);
            out.extend(guard.scrollback.iter());
            first_frames.push(Bytes::from(out));
        }
        Attachment {
            session: self.clone(),
            first_frames,
            live,
        }
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
        let _ = self.output.send(frame.clone());
    }
}

type Map = Arc<Mutex<HashMap<String, Arc<Session>>>>;

#[derive(Default, Clone)]
pub struct Terminals {
    sessions: Map,
}

impl Terminals {
    /// Attaches to the sandbox's shell, opening the upstream connection to ttyd if there is none.
    pub async fn attach(
        &self,
        sandbox_id: &str,
        socket: &Path,
        cols: u16,
        rows: u16,
    ) -> Result<Attachment, String> {
        if let Some(s) = self.get(sandbox_id) {
            let resize = resize_frame(cols, rows);
            s.send(resize).await;
            return Ok(s.attach());
        }
        let session = open(
            sandbox_id.to_string(),
            socket,
            cols,
            rows,
            self.sessions.clone(),
        )
        .await?;
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Two browsers may race to open; keep the first, the second one's upstream closes itself.
        let session = map.entry(sandbox_id.to_string()).or_insert(session).clone();
        Ok(session.attach())
    }

    pub fn get(&self, sandbox_id: &str) -> Option<Arc<Session>> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(sandbox_id).filter(|s| !s.is_closed()).cloned()
    }

    /// Closes the upstream (the shell ends); attached browsers see the session end.
    pub fn close(&self, sandbox_id: &str) {
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox_id);
        if let Some(s) = removed {
            s.closed.store(true, Ordering::Relaxed);
            let _ = s.output.send(Bytes::new());
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
}

pub fn resize_frame(cols: u16, rows: u16) -> Bytes {
    let mut f = vec![proto::RESIZE];
    f.extend(
        serde_json::json!({ "columns": cols, "rows": rows })
            .to_string()
            .into_bytes(),
    );
    Bytes::from(f)
}

async fn open(
    id: String,
    socket: &Path,
    cols: u16,
    rows: u16,
    map: Map,
) -> Result<Arc<Session>, String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::UnixStream::connect(socket),
    )
    .await
    .map_err(|_| "ttyd socket connect timed out".to_string())?
    .map_err(|e| format!("ttyd socket: {e}"))?;
    let mut req = "ws://sandbox/ws"
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("ttyd handshake: {e}"))?;
    let hello = serde_json::json!({ "AuthToken": "", "columns": cols, "rows": rows }).to_string();
    ws.send(Message::Binary(Bytes::from(hello)))
        .await
        .map_err(|e| e.to_string())?;

    let (input, mut input_rx) = mpsc::channel::<Bytes>(256);
    let (output, _) = broadcast::channel::<Bytes>(1024);
    let session = Arc::new(Session {
        input,
        output,
        replay: Mutex::new(Replay::default()),
        last_input_ms: AtomicI64::new(chrono::Utc::now().timestamp_millis()),
        closed: AtomicBool::new(false),
    });
    let s = session.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) if !b.is_empty() => s.record(&b),
                    Some(Ok(Message::Text(t))) if !t.is_empty() => s.record(&Bytes::from(t.as_bytes().to_vec())),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                frame = input_rx.recv() => match frame {
                    Some(f) => if ws.send(Message::Binary(f)).await.is_err() { break },
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_secs(1)), if s.is_closed() => break,
            }
            if s.is_closed() {
                break;
            }
        }
        let _ = ws.close(None).await;
        s.closed.store(true, Ordering::Relaxed);
        let _ = s.output.send(Bytes::new());
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(&id).is_some_and(|cur| Arc::ptr_eq(cur, &s)) {
            m.remove(&id);
        }
    });
    Ok(session)
}

/// A browser's frame, validated: what may be forwarded to ttyd.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    Forward(Bytes),
    /// The ttyd hello (`{"AuthToken":…,"columns":…,"rows":…}`), answered by the proxy itself.
    Hello {
        cols: u16,
        rows: u16,
    },
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
        Some(&proto::INPUT) => Ok(ClientFrame::Forward(Bytes::copy_from_slice(frame))),
        Some(&proto::RESIZE) => {
            let s: Size = serde_json::from_slice(&frame[1..]).map_err(|_| "malformed resize")?;
            let (cols, rows) = valid_size(&s).ok_or("terminal size out of range")?;
            Ok(ClientFrame::Forward(resize_frame(cols, rows)))
        }
        Some(&proto::PAUSE) | Some(&proto::RESUME) if frame.len() == 1 => {
            Ok(ClientFrame::Forward(Bytes::copy_from_slice(frame)))
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
            Ok(ClientFrame::Forward(resize_frame(100, 30)))
        );
        assert!(parse_client_frame(b"1not json").is_err());
    }

    #[test]
    fn input_passes_and_unknown_commands_are_refused() {
        assert_eq!(
            parse_client_frame(b"0ls\r"),
            Ok(ClientFrame::Forward(Bytes::from_static(b"0ls\r")))
        );
        assert!(parse_client_frame(b"9boom").is_err());
        assert!(parse_client_frame(b"").is_err());
        assert!(parse_client_frame(b"2extra").is_err());
    }

    #[test]
    fn scrollback_is_bounded_and_replayed() {
        let (input, _rx) = mpsc::channel(1);
        let (output, _) = broadcast::channel(4);
        let s = Arc::new(Session {
            input,
            output,
            replay: Mutex::new(Replay::default()),
            last_input_ms: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        });
        let mut big = vec![proto::OUTPUT];
        big.extend(std::iter::repeat_n(b'x', SCROLLBACK_BYTES + 10));
        s.record(&Bytes::from(big));
        s.record(&Bytes::from_static(b"0tail"));
        s.record(&Bytes::from_static(b"1title"));
        let a = s.attach();
        assert_eq!(a.first_frames[0], Bytes::from_static(b"1title"));
        let replay = &a.first_frames[1];
        assert_eq!(replay.len(), SCROLLBACK_BYTES + 1);
        assert!(replay.ends_with(b"tail"));
    }
}
