//! `trythis-relay attach ENGINE CONTAINER`, on the host, one per terminal: ttyd runs it on a pty
//! of its own. It opens the visitor's shell through the engine's exec API **with a TTY**, so the
//! shell's terminal is the engine's console and its line discipline the host kernel's: ^C, ^Z and
//! ^\ become signals and a resize reaches the foreground program as SIGWINCH, under gVisor and
//! runc alike. ttyd's pty is put in raw mode: every byte passes through untouched.
use crate::engine::{Conn, Engine};
use crate::RELAY_IN_CONTAINER;
use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions};
use signal_hook::consts::{SIGHUP, SIGTERM, SIGWINCH};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

/// Sends ttyd's pty size to the exec when it changed. Called before forwarding input too: ttyd
/// applies a resize to its pty and then writes the keys that followed it, and a program must
/// see the new size before those keys (`stty size` typed right after a resize).
/// Resizes wait until the shell has printed (or a second passed): `relay shell` sets the size it
/// was started with, and a resize sent before that would be overwritten by it.
struct SizeSync {
    engine: Engine,
    exec: String,
    last: Mutex<(u16, u16)>,
    started: std::sync::atomic::AtomicBool,
}

impl SizeSync {
    /// The shell runs (its first output, or time): from now on resizes go through.
    fn shell_started(&self) {
        if !self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.sync();
        }
    }

    fn sync(&self) {
        if !self.started.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = pty_size() {
            if now != *last && self.engine.resize_exec(&self.exec, now.0, now.1).is_ok() {
                *last = now;
            }
        }
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

fn token() -> String {
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

pub fn run(endpoint: &str, container: &str) -> i32 {
    if !valid_container(container) {
        eprintln!("trythis-relay: not a sandbox: {container:?}");
        return 2;
    }
    let engine = match Engine::new(endpoint) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("trythis-relay: {e}");
            return 2;
        }
    };
    let (cols, rows) = pty_size().unwrap_or((80, 24));
    let token = token();
    let (cols_s, rows_s) = (cols.to_string(), rows.to_string());
    let cmd = [RELAY_IN_CONTAINER, "shell", &cols_s, &rows_s, &token];
    let started = engine
        .create_exec(container, &cmd, true, None)
        .and_then(|id| Ok((engine.start_exec(&id, true)?, id)));
    let (conn, exec) = match started {
        Ok(s) => s,
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
    let size = Arc::new(SizeSync {
        engine: engine.clone(),
        exec,
        last: Mutex::new((cols, rows)),
        started: std::sync::atomic::AtomicBool::new(false),
    });
    {
        let size = size.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            size.shell_started();
        });
    }
    let hang_up = {
        let engine = engine.clone();
        let container = container.to_string();
        move || {
            // The engine keeps an exec running when its client leaves: end the shell's session.
            let _ = engine.run(
                &container,
                &[RELAY_IN_CONTAINER, "hangup", &token],
                Some("0"),
            );
        }
    };
    let hang_up = Arc::new(hang_up);
    match signal_hook::iterator::Signals::new([SIGWINCH, SIGHUP, SIGTERM]) {
        Ok(mut signals) => {
            let size = size.clone();
            let hang_up = hang_up.clone();
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGWINCH {
                        size.sync();
                    } else {
                        hang_up();
                        std::process::exit(0);
                    }
                }
            });
        }
        Err(e) => eprintln!("trythis-relay: signals: {e}"),
    }
    let Ok(mut upstream) = conn.try_clone() else {
        return 1;
    };
    {
        let size = size.clone();
        let hang_up = hang_up.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        size.sync();
                        if upstream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            // ttyd's pty is gone: the visitor left.
            hang_up();
            upstream.shutdown_write();
            std::process::exit(0);
        });
    }
    let status = pump_out(conn, &size);
    if let Some(saved) = saved {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
    status
}

/// The shell's output to ttyd until the shell ends (its exec stream closes).
fn pump_out(mut conn: Conn, size: &SizeSync) -> i32 {
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => {
                size.shell_started();
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
