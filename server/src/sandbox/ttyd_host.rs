//! The platform's ttyd: one per app server, on a private UNIX socket, outside every sandbox.
//! For each terminal WebSocket it runs `trythis-relay attach ENGINE SESSIONS trythis-<id>` on a
//! pty of its own; the relay joins the shell's session holder in SESSIONS, starting it when none
//! runs (`relay/src/session.rs`), and the holder owns the shell's engine exec with a TTY. ttyd dies
//! with this server; holders do not, so a restarted server (or another replica on this host)
//! joins the same shells with their recent output.
//! The container's name comes from the WebSocket request (`-a`: `/ws?arg=…`), which only this
//! server can send: the socket's directory is the server's alone (0700), and the sessions
//! directory is the platform's alone (0700).
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
    sessions: PathBuf,
    child: tokio::sync::Mutex<Option<Child>>,
}

impl TtydHost {
    /// The socket lives in a directory named after the data directory and this process (a UNIX
    /// socket path must stay under 108 bytes, so not inside the data directory itself).
    pub fn new(ttyd: &Path, relay: &Path, engine: &str, data_dir: &Path) -> Self {
        let dir = socket_dir(data_dir, engine);
        Self {
            sessions: sessions_dir(engine),
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
            .arg(&self.sessions)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd.spawn().map_err(|e| fail("start", e))
    }
}

impl TtydHost {
    /// Ends `container`'s shell as a closing terminal would (SIGHUP to its session), through its
    /// holder. Nothing to do when no shell is held.
    /// Returns once no new terminal can join that shell (the holder closes the connection after
    /// removing its socket), or after 5 seconds.
    pub async fn hang_up(&self, container: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut holder) = UnixStream::connect(self.holder_socket(container)).await else {
            return;
        };
        let answered = async {
            // The holder's HANGUP frame: kind 2, no payload (`relay/src/session.rs`).
            holder.write_all(&[2, 0, 0]).await?;
            // What comes first is the shell's recent output, as to any terminal: not needed.
            let mut sink = [0u8; 16 * 1024];
            while holder.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), answered).await;
    }

    /// Whether a holder keeps `container`'s shell (it outlives this server's ttyd).
    pub async fn holds_shell(&self, container: &str) -> bool {
        UnixStream::connect(self.holder_socket(container))
            .await
            .is_ok()
    }

    /// Removes the lock file the shells of `container` were started under (a holder leaves it:
    /// a terminal may be waiting on it). The sandbox is going away.
    pub fn forget(&self, container: &str) {
        let _ = std::fs::remove_file(self.sessions.join(format!("{container}.lock")));
    }

    fn holder_socket(&self, container: &str) -> PathBuf {
        self.sessions.join(format!("{container}.sock"))
    }
}

/// The directory of this process's ttyd socket for the installation in `data_dir` and the
/// engine `engine` (one ttyd per engine: the cluster runtime has one per sandbox node).
pub fn socket_dir(data_dir: &Path, engine: &str) -> PathBuf {
    let digest = Sha256::digest(format!(
        "{}\0{}\0{engine}",
        data_dir.display(),
        std::process::id()
    ));
    std::env::temp_dir().join(format!("trythis-tty-{}", &hex::encode(digest)[..16]))
}

/// Where shells' holders listen: one directory per engine, shared by every app server of this
/// host using it (a UNIX socket path must stay under 108 bytes, hence a digest in the temp dir).
pub fn sessions_dir(engine: &str) -> PathBuf {
    let digest = Sha256::digest(engine.as_bytes());
    std::env::temp_dir().join(format!("trythis-sessions-{}", &hex::encode(digest)[..16]))
}

impl Drop for TtydHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The WebSocket path that has ttyd attach to `container` (`watch`: join its open shell only,
/// never start one or set its size).
pub fn ws_path(container: &str, watch: bool) -> String {
    if watch {
        format!("/ws?arg={container}&arg=watch")
    } else {
        format!("/ws?arg={container}")
    }
}
