//! `trythis-relay attach ENGINE DIR CONTAINER [watch]`, on the host, one per terminal: ttyd runs it on a
//! pty of its own. It joins the sandbox's shell through the shell's session holder (`session.rs`,
//! started here when none runs): the holder owns the engine exec **with a TTY**, so the shell's
//! terminal is the engine's console and its line discipline the host kernel's: ^C, ^Z and ^\
//! become signals and a resize reaches the foreground program as SIGWINCH, under gVisor and runc
//! alike. ttyd's pty is put in raw mode: every byte passes through untouched. When this process
//! ends (the visitor's page, the app server or its ttyd went away), the shell runs on.
use crate::session;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions};
use signal_hook::consts::{SIGHUP, SIGTERM, SIGWINCH};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

/// The holder's end of this terminal: frames go out whole, a resize before the keys that
/// followed it (ttyd applies a resize to its pty, then writes the keys typed after it; a program
/// must see the new size before those keys, as `stty size` typed right after a resize).
struct Holder {
    stream: Mutex<(UnixStream, (u16, u16))>,
}

impl Holder {
    /// Sends ttyd's pty size when it changed, then `keys` (if any), in one frame sequence.
    fn send(&self, keys: Option<&[u8]>) -> bool {
        let mut guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let (stream, last) = &mut *guard;
        let mut bytes = Vec::new();
        if let Some(now) = pty_size() {
            if now != *last {
                bytes.extend(session::resize_frame(now.0, now.1));
                *last = now;
            }
        }
        for chunk in keys.unwrap_or_default().chunks(session::MAX_FRAME) {
            bytes.extend(session::frame(session::INPUT, chunk));
        }
        bytes.is_empty() || stream.write_all(&bytes).is_ok()
    }
}

/// (columns, rows) of ttyd's pty.
fn pty_size() -> Option<(u16, u16)> {
    let ws = tcgetwinsize(std::io::stdin()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Container names the platform gives sandboxes (`trythis-<id>`, smoke checks `trythis-check-<id>`):
/// nothing else is attached to, and the name goes into an Engine API path as it is.
pub fn valid_container(name: &str) -> bool {
    name.strip_prefix("trythis-").is_some_and(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

pub fn token() -> String {
    let mut bytes = [0u8; 12];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Uniqueness is all the token needs (it names this shell to `hangup`).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..12].copy_from_slice(&t.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `watch`: join the open shell only (for share viewers): never start one, and never send
/// this terminal's first size (the owner's browsers size the shell; later resizes, which the
/// server makes for the owner, still go through).
pub fn run(endpoint: &str, dir: &str, container: &str, watch: bool) -> i32 {
    if !valid_container(container) || !session::valid_dir(dir) {
        eprintln!("trythis-relay: not a sandbox: {container:?}");
        return 2;
    }
    let (cols, rows) = pty_size().unwrap_or((80, 24));
    let dir = std::path::Path::new(dir);
    let joined = if watch {
        UnixStream::connect(session::socket_path(dir, container))
    } else {
        session::join(endpoint, dir, container, cols, rows)
    };
    let stream = match joined {
        Ok(s) => s,
        Err(_) if watch => {
            eprintln!("\r\ntrythis: the owner's shell is not open\r");
            return 1;
        }
        Err(e) => {
            eprintln!("\r\ntrythis: the sandbox's shell could not start: {e}\r");
            return 1;
        }
    };
    // Raw: ttyd's pty only carries bytes; the sandbox's pty does the terminal's work.
    let saved = tcgetattr(std::io::stdin()).ok();
    if let Some(mut raw) = saved.clone() {
        raw.make_raw();
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &raw);
    }
    let Ok(output) = stream.try_clone() else {
        return 1;
    };
    // The holder's size may be another terminal's: this one's goes first (a watcher's never).
    let first = if watch {
        pty_size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    let holder = Arc::new(Holder {
        stream: Mutex::new((stream, first)),
    });
    if !holder.send(None) {
        return 1;
    }
    match signal_hook::iterator::Signals::new([SIGWINCH, SIGHUP, SIGTERM]) {
        Ok(mut signals) => {
            let holder = holder.clone();
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    if sig != SIGWINCH {
                        // The terminal went away, not the shell: it stays with its holder.
                        std::process::exit(0);
                    }
                    holder.send(None);
                }
            });
        }
        Err(e) => eprintln!("trythis-relay: signals: {e}"),
    }
    {
        let holder = holder.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !holder.send(Some(&buf[..n])) {
                            break;
                        }
                    }
                }
            }
            std::process::exit(0);
        });
    }
    let status = pump_out(output);
    if let Some(saved) = saved {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
    status
}

/// The shell's output to ttyd until the shell ends (the holder closes the stream).
fn pump_out(mut from: UnixStream) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    return 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_sandbox_names_are_attached() {
        assert!(super::valid_container("trythis-abc123"));
        assert!(super::valid_container("trythis-check-abc123"));
        assert!(!super::valid_container("trythis-"));
        assert!(!super::valid_container("trythis-../../x"));
        assert!(!super::valid_container("registry"));
        assert!(!super::valid_container("trythis-ABC"));
    }
}
