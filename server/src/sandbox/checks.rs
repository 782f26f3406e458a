//! Smoke checks in real sandboxes (`SandboxChecks`, the `builds::check::SmokeRunner` the server
//! uses): a sandbox of the pushed image, launched through the `Runtime` without network, and the
//! check's command typed into its terminal (`run_typed`) as a visitor would type it.
use super::runtime::{LaunchSpec, Runtime, RuntimeError};
use super::terminal::{proto, Terminals};
use crate::builds::check::{
    CheckError, CheckJob, CheckOutput, SmokeRunner, CHECK_TIMEOUT, MAX_CHECK_OUTPUT,
};
use bytes::Bytes;
use std::{sync::Arc, time::Duration};

/// Checks in real sandboxes, through the sandbox runtime and its terminals.
pub struct SandboxChecks {
    runtime: Arc<dyn Runtime>,
    terminals: Terminals,
}

impl SandboxChecks {
    pub fn new(runtime: Arc<dyn Runtime>) -> Arc<Self> {
        Arc::new(Self {
            terminals: Terminals::new(runtime.clone()),
            runtime,
        })
    }
}

/// Bytes of a check's screen kept (its output is cut at `MAX_CHECK_OUTPUT` from these).
const SCREEN_KEPT: usize = MAX_CHECK_OUTPUT + 16 * 1024;
/// Room after the status marker for the status and its closing `__`.
const STATUS_DIGITS: usize = 8;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Types `command` into the sandbox's shell as a visitor would and reads the screen until it
/// ends (or `timeout`): its output (what the terminal showed after the typed line) and status.
/// Pagers print instead of waiting for a key, and a command ending in a comment or an open quote
/// cannot swallow the status line (the subshell closes on a line of its own).
pub async fn run_typed(
    terminals: &Terminals,
    sandbox_id: &str,
    command: &str,
    timeout: Duration,
) -> Result<CheckOutput, RuntimeError> {
    let mut attached = terminals
        .attach(sandbox_id, 200, 50)
        .await
        .map_err(|e| RuntimeError::NotReady(e.to_string()))?;
    let token = hex::encode(rand::random::<[u8; 8]>());
    let typed = format!(
        "( export PAGER=cat GIT_PAGER=cat MANPAGER=cat SYSTEMD_PAGER=cat; {command}\r) ; printf '\\n__TRYTHIS_DONE_%s_%s__\\n' {token} \"$?\"\r"
    );
    let mut frame = vec![proto::INPUT];
    frame.extend_from_slice(typed.as_bytes());
    if !attached.session.send(Bytes::from(frame)).await {
        return Err(RuntimeError::NotReady("the shell ended".into()));
    }
    let done = format!("__TRYTHIS_DONE_{token}_");
    let echoed = format!("' {token} \"$?\"");
    // A check's output is the maintainer's to choose (`yes` prints forever): the screen keeps its
    // first `SCREEN_KEPT` bytes, and the status is looked for in a short sliding tail.
    let mut screen: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut status: Option<Option<i64>> = None;
    let mut take = |chunk: &[u8], status: &mut Option<Option<i64>>| {
        if screen.len() < SCREEN_KEPT {
            screen.extend_from_slice(chunk);
        }
        tail.extend_from_slice(chunk);
        if let Some(at) = find(&tail, done.as_bytes()) {
            let rest = &tail[at + done.len()..];
            if let Some(end) = find(rest, b"__") {
                *status = Some(
                    std::str::from_utf8(&rest[..end])
                        .ok()
                        .and_then(|c| c.parse().ok()),
                );
                return;
            }
            tail.drain(..at);
        } else {
            let keep = tail.len().min(done.len() + STATUS_DIGITS);
            tail.drain(..tail.len() - keep);
        }
    };
    for f in attached.first_frames.drain(..) {
        if f.first() == Some(&proto::OUTPUT) {
            take(&f[1..], &mut status);
        }
    }
    let reading = async {
        while status.is_none() {
            match attached.live.next().await {
                Some(f) if f.first() == Some(&proto::OUTPUT) => take(&f[1..], &mut status),
                Some(_) => {}
                // Fell a queue behind a flood, as a slow browser would: re-attach, and read on
                // from the replay (its tail holds the status if the command has ended).
                None if attached.live.cut_off() => {
                    let Ok(again) = terminals.attach(sandbox_id, 200, 50).await else {
                        break;
                    };
                    attached = again;
                    for f in attached.first_frames.drain(..) {
                        if f.first() == Some(&proto::OUTPUT) {
                            take(&f[1..], &mut status);
                        }
                    }
                }
                None => break,
            }
        }
        status
    };
    let ended = tokio::time::timeout(timeout, reading).await;
    terminals.close(sandbox_id).await;
    let screen = String::from_utf8_lossy(&screen);
    let exit_code = ended.ok().flatten().flatten();
    // Ended in time: the output stops at the status line (if the screen kept it); cut off or still
    // running: what it printed so far, and no status.
    let output = match (exit_code, screen.find(&done)) {
        (Some(_), Some(at)) => &screen[..at],
        _ => &screen[..],
    };
    // What the command printed starts after the echo of the typed line.
    let output = output
        .rfind(&echoed)
        .map(|i| &output[i..])
        .and_then(|rest| rest.find('\n').map(|nl| &rest[nl + 1..]))
        .unwrap_or("");
    let text = output
        .split('\n')
        .map(crate::builds::log::readable)
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim_end().to_string();
    let truncated = text.len() > MAX_CHECK_OUTPUT;
    let mut cut = text.len().min(MAX_CHECK_OUTPUT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok(CheckOutput {
        exit_code,
        output: text[..cut].to_string(),
        truncated,
    })
}

#[async_trait::async_trait]
impl SmokeRunner for SandboxChecks {
    async fn run(&self, job: &CheckJob<'_>) -> Result<CheckOutput, CheckError> {
        let CheckJob {
            build_id,
            project,
            image,
            command,
        } = *job;
        // No row in `sandboxes`: the guard removes the container however the check ends (the
        // build cancelled, banned or timed out drops this future), the sweep removes it once its
        // build is no longer checking, and the next start's reconcile if this process dies.
        let sandbox_id = format!("{CHECK_PREFIX}{build_id}");
        let guard = CheckSandbox {
            runtime: self.runtime.clone(),
            id: Some(sandbox_id.clone()),
        };
        let spec = LaunchSpec {
            sandbox_id: sandbox_id.clone(),
            owner: format!("build:{build_id}"),
            project: project.to_string(),
            image: image.to_string(),
            expires_unix: chrono::Utc::now().timestamp() + CHECK_TIMEOUT.as_secs() as i64 + 60,
            egress: None,
            welcome: None,
        };
        let result = match self.runtime.launch(&spec).await {
            Ok(_) => run_typed(&self.terminals, &sandbox_id, command, CHECK_TIMEOUT).await,
            Err(e) => Err(e),
        };
        guard.remove().await;
        result.map_err(CheckError::new)
    }
}

/// The container id prefix of smoke-check sandboxes (`check-<build id>`).
pub const CHECK_PREFIX: &str = "check-";

/// A smoke check's sandbox, removed when the check ends however it ends: dropped mid-check (the
/// build was cancelled, its maintainer banned, or it timed out), it removes the container in the
/// background, so nothing the check started keeps running unaccounted.
struct CheckSandbox {
    runtime: Arc<dyn Runtime>,
    id: Option<String>,
}

impl CheckSandbox {
    async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = self.runtime.destroy(&id).await {
                tracing::warn!(sandbox = %id, error = %e, "a smoke check's sandbox was not removed; the sweep will retry");
            }
        }
    }
}

impl Drop for CheckSandbox {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let runtime = self.runtime.clone();
        // Dropped outside a runtime only at process exit, where the next start's reconcile
        // removes the container.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                match runtime.destroy(&id).await {
                    Ok(()) => tracing::info!(sandbox = %id, "removed the sandbox of an interrupted smoke check"),
                    Err(e) => tracing::warn!(sandbox = %id, error = %e, "the sandbox of an interrupted smoke check was not removed; the sweep will retry"),
                }
            });
        }
    }
}

/// `run_typed` against a stand-in ttyd (behind the `Runtime` trait): the check's output is the
/// maintainer's to choose.
#[cfg(test)]
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
mod typed_tests {
    use super::*;
    use crate::engine::Isolation;
    use crate::sandbox::runtime::{Launched, Listed, TerminalUpstream};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{http::HeaderValue, Message};

    /// A "ttyd" that echoes the typed line, prints `lines` lines of `y`, then the status marker
    /// split across two frames.
    struct Flood {
        lines: usize,
    }

    #[async_trait::async_trait]
    impl Runtime for Flood {
        async fn launch(&self, _: &LaunchSpec) -> Result<Launched, RuntimeError> {
            Err(RuntimeError::Engine("not used".into()))
        }
        async fn destroy(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn open_terminal(&self, _: &str) -> Result<TerminalUpstream, RuntimeError> {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let lines = self.lines;
            tokio::spawn(async move {
                let agree = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                             mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    resp.headers_mut()
                        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(theirs, agree).await else {
                    return;
                };
                let out = |b: Vec<u8>| Message::Binary(Bytes::from([vec![b'0'], b].concat()));
                let _hello = ws.next().await;
                let _ = ws.send(out(b"$ ".to_vec())).await;
                // The typed line: its token is the status marker's.
                let typed = loop {
                    match ws.next().await {
                        Some(Ok(Message::Binary(b))) if b.first() == Some(&b'0') => {
                            break String::from_utf8_lossy(&b[1..]).into_owned()
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                };
                let Some(token) = typed.split("' ").nth(1).and_then(|t| t.split(' ').next()) else {
                    return;
                };
                let token = token.to_string();
                let _ = ws.send(out(typed.replace('\r', "\r\n").into_bytes())).await;
                let chunk = "y\r\n".repeat(4096).into_bytes();
                for _ in 0..lines / 4096 {
                    if ws.send(out(chunk.clone())).await.is_err() {
                        return;
                    }
                }
                let marker = format!("\r\n__TRYTHIS_DONE_{token}_3__\r\n$ ");
                let (a, b) = marker.split_at(20);
                let _ = ws.send(out(a.as_bytes().to_vec())).await;
                let _ = ws.send(out(b.as_bytes().to_vec())).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
            Ok(TerminalUpstream::direct(ours))
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

    async fn typed(lines: usize) -> CheckOutput {
        let terminals = Terminals::new(Arc::new(Flood { lines }));
        match run_typed(&terminals, "s1", "yes | head", Duration::from_secs(30)).await {
            Ok(out) => out,
            Err(e) => panic!("run_typed: {e}"),
        }
    }

    #[tokio::test]
    async fn the_status_is_found_after_a_flood_and_the_output_is_cut() {
        // 4 MiB of output (1,048,576 lines), the marker split across frames.
        let out = typed(1 << 20).await;
        assert_eq!(out.exit_code, Some(3));
        assert!(out.truncated);
        assert!(out.output.len() <= MAX_CHECK_OUTPUT);
        assert!(out.output.starts_with("y\ny\n"), "{:?}", &out.output[..20]);
    }

    #[tokio::test]
    async fn a_short_output_stops_at_the_status_line() {
        let out = typed(4096).await;
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.truncated);
        assert_eq!(out.output, "y\n".repeat(4096).trim_end());
    }
}
