//! `trythis-relay hold ENGINE DIR CONTAINER COLS ROWS`, on the host, one per open shell: the
//! **session holder**. It owns the shell's engine exec (with a TTY) and its recent output, and
//! outlives the app server: it starts its own session (`setsid`), so neither the death of the
//! server nor of the server's ttyd reaches it. Terminals join it over a UNIX socket in DIR (the
//! platform's, 0700): `relay attach` (run by ttyd, one per upstream WebSocket of any app server)
//! connects, gets the recent output, then the live output, and sends keys, sizes and hang-ups
//! as frames. A restarted or another app server joins the same shell with its screen.
//!
//! The holder ends when the shell's exec ends: the shell exited, was hung up, or its sandbox is
//! gone. Joiners then see their socket close, as a terminal sees a shell end.
use crate::engine::{Conn, Engine};
use crate::RELAY_IN_CONTAINER;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Frame kinds a joiner sends: `[kind, len_hi, len_lo, payload…]`.
pub const INPUT: u8 = 0;
/// Payload: columns and rows, big-endian u16 each.
pub const RESIZE: u8 = 1;
/// Ends the shell's session as a closing terminal does (SIGHUP); no payload.
pub const HANGUP: u8 = 2;
/// Largest frame payload accepted.
pub const MAX_FRAME: usize = 16 * 1024;
/// Output kept and replayed to a joiner, as the app server's own replay (256 KiB).
const SCROLLBACK_BYTES: usize = 256 * 1024;
/// A joiner that takes longer than this to take output is dropped (it rejoins from the replay).
const JOINER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the holder asks the engine whether the shell's exec still runs: a sandbox killed
/// under gVisor (out of memory) can leave its exec stream open, and the holder must not outlive it.
const EXEC_CHECK_EVERY: Duration = Duration::from_secs(15);

pub fn socket_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}.sock"))
}

fn lock_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}.lock"))
}

/// The holder's directory: an absolute path the server chose (it is on ttyd's command line).
pub fn valid_dir(dir: &str) -> bool {
    dir.starts_with('/') && !dir.split('/').any(|part| part == "..")
}

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(MAX_FRAME) as u16;
    let mut f = Vec::with_capacity(3 + payload.len());
    f.push(kind);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&payload[..len as usize]);
    f
}

pub fn resize_frame(cols: u16, rows: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(4);
    p.extend_from_slice(&cols.to_be_bytes());
    p.extend_from_slice(&rows.to_be_bytes());
    frame(RESIZE, &p)
}

/// The next frame, or None at a clean end of the stream.
fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 3];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes([head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other("frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// A connection to the shell's holder, starting the holder (and with it the shell) if none
/// runs. Creation is serialised by a lock file, so two terminals opening at once share one shell.
pub fn join(
    endpoint: &str,
    dir: &Path,
    container: &str,
    cols: u16,
    rows: u16,
) -> io::Result<UnixStream> {
    let socket = socket_path(dir, container);
    if let Ok(s) = UnixStream::connect(&socket) {
        return Ok(s);
    }
    create_private_dir(dir)?;
    let lock = std::fs::File::create(lock_path(dir, container))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    if let Ok(s) = UnixStream::connect(&socket) {
        return Ok(s);
    }
    // A holder that died without cleaning up (SIGKILL) left its socket file.
    let _ = std::fs::remove_file(&socket);
    let (cols_s, rows_s) = (cols.to_string(), rows.to_string());
    let dir_s = dir.to_string_lossy();
    let mut holder = std::process::Command::new(std::env::current_exe()?)
        .args(["hold", endpoint, &dir_s, container, &cols_s, &rows_s])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut said = String::new();
    if let Some(out) = holder.stdout.take() {
        let _ = io::BufRead::read_line(&mut io::BufReader::new(out), &mut said);
    }
    if said.trim_end() != "ready" {
        let _ = holder.wait();
        let why = said.trim_end().trim_start_matches("error: ");
        return Err(io::Error::other(if why.is_empty() {
            "the session holder did not start".to_string()
        } else {
            why.to_string()
        }));
    }
    drop(lock);
    UnixStream::connect(&socket)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Resizes wait until the shell has printed (or a second passed): `relay shell` sets the size it
/// was started with, and a resize applied before that would be overwritten by it.
struct SizeSync {
    engine: Engine,
    exec: String,
    wanted: Mutex<(u16, u16)>,
    applied: Mutex<(u16, u16)>,
    started: AtomicBool,
}

impl SizeSync {
    fn want(&self, cols: u16, rows: u16) {
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) = (cols, rows);
        self.apply();
    }

    fn shell_started(&self) {
        if !self.started.swap(true, Ordering::SeqCst) {
            self.apply();
        }
    }

    fn apply(&self) {
        if !self.started.load(Ordering::SeqCst) {
            return;
        }
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = *self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        if wanted != *applied
            && self
                .engine
                .resize_exec(&self.exec, wanted.0, wanted.1)
                .is_ok()
        {
            *applied = wanted;
        }
    }
}

/// The shell's output and who receives it. Joining takes the replay and the live stream under
/// one lock, so nothing is lost or repeated between them.
struct Hub {
    out: Mutex<Out>,
    input: Mutex<Conn>,
    size: SizeSync,
    engine: Engine,
    dir: PathBuf,
    container: String,
    token: String,
    unlinked: AtomicBool,
}

#[derive(Default)]
struct Out {
    scrollback: VecDeque<u8>,
    joiners: Vec<UnixStream>,
}

impl Hub {
    /// Removes the socket, once, under the creation lock (no holder is being started for this
    /// sandbox meanwhile): a later one belongs to a newer holder.
    fn unlink(&self) {
        if self.unlinked.swap(true, Ordering::SeqCst) {
            return;
        }
        let lock = std::fs::File::create(lock_path(&self.dir, &self.container));
        if let Ok(lock) = &lock {
            let _ = rustix::fs::flock(lock, rustix::fs::FlockOperation::LockExclusive);
        }
        let _ = std::fs::remove_file(socket_path(&self.dir, &self.container));
    }

    /// The shell ended. The socket goes first, so a terminal that sees its stream close finds
    /// no holder (the shell is gone) rather than this one, still listening. The lock file stays
    /// (a terminal may wait on it); the server removes it with the sandbox.
    fn end(&self) -> ! {
        self.unlink();
        let out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for j in &out.joiners {
            let _ = j.shutdown(std::net::Shutdown::Both);
        }
        std::process::exit(0)
    }

    fn broadcast(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.scrollback.extend(bytes);
        let excess = out.scrollback.len().saturating_sub(SCROLLBACK_BYTES);
        out.scrollback.drain(..excess);
        out.joiners.retain_mut(|j| {
            let ok = j.write_all(bytes).is_ok();
            if !ok {
                let _ = j.shutdown(std::net::Shutdown::Both);
            }
            ok
        });
    }

    fn add(&self, mut joiner: UnixStream) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = out.scrollback.as_slices();
        if joiner
            .write_all(a)
            .and_then(|_| joiner.write_all(b))
            .is_ok()
        {
            out.joiners.push(joiner);
        }
    }

    /// The frames of one joiner, in order: a resize is applied before the keys after it.
    fn serve(&self, mut joiner: UnixStream) {
        loop {
            match read_frame(&mut joiner) {
                Ok(Some((INPUT, keys))) => {
                    let mut input = self.input.lock().unwrap_or_else(|p| p.into_inner());
                    if input.write_all(&keys).is_err() {
                        return;
                    }
                }
                Ok(Some((RESIZE, size))) if size.len() == 4 => {
                    let cols = u16::from_be_bytes([size[0], size[1]]);
                    let rows = u16::from_be_bytes([size[2], size[3]]);
                    if (1..=500).contains(&cols) && (1..=200).contains(&rows) {
                        self.size.want(cols, rows);
                    }
                }
                Ok(Some((HANGUP, _))) => {
                    // No terminal joins this shell from now on: the next one starts a new shell.
                    // The socket goes before the answer (the connection's close), so whoever
                    // asked can count on it.
                    self.unlink();
                    let _ = joiner.shutdown(std::net::Shutdown::Both);
                    // The engine keeps an exec running when its client leaves: end the session.
                    let _ = self.engine.run(
                        &self.container,
                        &[RELAY_IN_CONTAINER, "hangup", &self.token],
                        Some("0"),
                    );
                    return;
                }
                // Anything else is not this protocol: that joiner is dropped.
                Ok(Some(_)) | Ok(None) | Err(_) => {
                    let _ = joiner.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}

pub fn hold(endpoint: &str, dir: &str, container: &str, cols: &str, rows: &str) -> i32 {
    // A session of its own: the terminal (ttyd's pty) and process group of whoever started it
    // can end without taking the shell along.
    let _ = rustix::process::setsid();
    let say = |line: &str| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let (Ok(cols), Ok(rows)) = (cols.parse::<u16>(), rows.parse::<u16>()) else {
        say("error: bad size");
        return 2;
    };
    if !crate::attach::valid_container(container) || !valid_dir(dir) {
        say("error: not a sandbox");
        return 2;
    }
    let dir = Path::new(dir);
    let engine = match Engine::new(endpoint) {
        Ok(e) => e,
        Err(e) => {
            say(&format!("error: {e}"));
            return 2;
        }
    };
    let token = crate::attach::token();
    let (cols_s, rows_s) = (cols.to_string(), rows.to_string());
    let cmd = [RELAY_IN_CONTAINER, "shell", &cols_s, &rows_s, &token];
    let started = engine
        .create_exec(container, &cmd, true, None)
        .and_then(|id| Ok((engine.start_exec(&id, true)?, id)));
    let (conn, exec) = match started {
        Ok(s) => s,
        Err(e) => {
            say(&format!("error: {e}"));
            return 1;
        }
    };
    let listener = match UnixListener::bind(socket_path(dir, container)) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("error: session socket: {e}"));
            return 1;
        }
    };
    let Ok(input) = conn.try_clone() else {
        say("error: exec stream");
        return 1;
    };
    let hub = Arc::new(Hub {
        out: Mutex::new(Out::default()),
        input: Mutex::new(input),
        size: SizeSync {
            engine: engine.clone(),
            exec,
            wanted: Mutex::new((cols, rows)),
            applied: Mutex::new((cols, rows)),
            started: AtomicBool::new(false),
        },
        engine,
        dir: dir.to_path_buf(),
        container: container.to_string(),
        token,
        unlinked: AtomicBool::new(false),
    });
    say("ready");
    {
        let hub = hub.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            hub.size.shell_started();
        });
    }
    {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut conn = conn;
            let mut buf = [0u8; 16 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        hub.size.shell_started();
                        hub.broadcast(&buf[..n]);
                    }
                }
            }
            hub.end()
        });
    }
    {
        let hub = hub.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(EXEC_CHECK_EVERY);
            if let Ok(false) = hub.engine.exec_running(&hub.size.exec) {
                hub.end();
            }
        });
    }
    for joiner in listener.incoming().flatten() {
        let _ = joiner.set_write_timeout(Some(JOINER_WRITE_TIMEOUT));
        let Ok(reader) = joiner.try_clone() else {
            continue;
        };
        hub.add(joiner);
        let hub = hub.clone();
        std::thread::spawn(move || hub.serve(reader));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut bytes = frame(INPUT, b"ls\r");
        bytes.extend(resize_frame(120, 40));
        bytes.extend(frame(HANGUP, &[]));
        let mut r = io::Cursor::new(bytes);
        assert_eq!(
            read_frame(&mut r).ok().flatten(),
            Some((INPUT, b"ls\r".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).ok().flatten(),
            Some((RESIZE, vec![0, 120, 0, 40]))
        );
        assert_eq!(read_frame(&mut r).ok().flatten(), Some((HANGUP, vec![])));
        assert!(matches!(read_frame(&mut r), Ok(None)));
        let mut big = vec![INPUT, 0xff, 0xff];
        big.extend(vec![b'x'; 0xffff]);
        assert!(read_frame(&mut io::Cursor::new(big)).is_err());
    }

    #[test]
    fn only_absolute_plain_dirs_hold_sessions() {
        assert!(valid_dir("/tmp/trythis-sessions-0123"));
        assert!(!valid_dir("relative/dir"));
        assert!(!valid_dir("/tmp/../etc"));
    }
}
