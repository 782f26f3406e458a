//! The platform's ttyd: one per app server, on a private UNIX socket, outside every sandbox.
//! For each terminal WebSocket it runs `trythis-relay attach ENGINE trythis-<id>` on a pty of its
//! own; the relay opens the shell through the engine's exec API with a TTY (`relay/src/attach.rs`).
//! The container's name comes from the WebSocket request (`-a`: `/ws?arg=…`), which only this
//! server can send: the socket's directory is the server's alone (0700).
use super::runtime::RuntimeError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

/// How long a (re)started ttyd may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TtydHost {
    ttyd: PathBuf,
    relay: PathBuf,
    engine: String,
    dir: PathBuf,
    socket: PathBuf,
    child: tokio::sync::Mutex<Option<Child>>,
}

impl TtydHost {
    /// The socket lives in a directory named after the data directory and this process (a UNIX
    /// socket path must stay under 108 bytes, so not inside the data directory itself).
    pub fn new(ttyd: &Path, relay: &Path, engine: &str, data_dir: &Path) -> Self {
        let digest = Sha256::digest(format!("{}\0{}", data_dir.display(), std::process::id()));
        let dir = std::env::temp_dir().join(format!("trythis-tty-{}", &hex::encode(digest)[..16]));
        Self {
            ttyd: ttyd.to_path_buf(),
            relay: relay.to_path_buf(),
            engine: engine.to_string(),
            socket: dir.join("ttyd.sock"),
            dir,
            child: tokio::sync::Mutex::new(None),
        }
    }

    /// A connection to ttyd, starting it first if it is not running (first use, or it died).
    pub async fn connect(&self) -> Result<UnixStream, RuntimeError> {
        let started = {
            let mut child = self.child.lock().await;
            let running = match child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => true,
                Some(Ok(Some(status))) => {
                    tracing::warn!(%status, "the terminal server (ttyd) exited; restarting it");
                    false
                }
                _ => false,
            };
            if !running {
                *child = Some(self.spawn()?);
            }
            !running
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match UnixStream::connect(&self.socket).await {
                Ok(s) => return Ok(s),
                Err(e) if !started || tokio::time::Instant::now() > deadline => {
                    return Err(RuntimeError::NotReady(format!(
                        "the terminal server (ttyd) at {}: {e}",
                        self.socket.display()
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn spawn(&self) -> Result<Child, RuntimeError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let fail = |what: &str, e: std::io::Error| {
            RuntimeError::Engine(format!("the terminal server (ttyd): {what}: {e}"))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| fail("socket directory", e))?;
        // An existing directory keeps its mode: make sure it is ours alone.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("socket directory", e))?;
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(&self.relay);
        // `with-parent`: ttyd (and with it every terminal) dies with this server, even on SIGKILL.
        cmd.arg("with-parent")
            .arg(&self.ttyd)
            .args(["-W", "-a", "-d", "1", "-t", "disableLeaveAlert=true", "-i"])
            .arg(&self.socket)
            .arg(&self.relay)
            .args(["attach", &self.engine])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| fail("start", e))
    }
}

impl Drop for TtydHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The WebSocket path that has ttyd attach to `container`.
pub fn ws_path(container: &str) -> String {
    format!("/ws?arg={container}")
}
