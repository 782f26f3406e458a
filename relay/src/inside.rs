//! The relay's jobs inside a sandbox (it is bind-mounted read-only at `/opt/trythis/relay`):
//! the container's idle main process, the session leader of each visitor shell, and the hang-up
//! that ends one shell's session when its browser leaves.
use rustix::process::{kill_process, Pid, Signal};
use rustix::termios::{tcsetwinsize, Winsize};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Debian puts games in /usr/games, which root's PATH leaves out: a visitor's shell gets it, so
/// `fortune | cowsay` works as a project page says. Then the welcome text, then bash if the
/// image has it, else sh. bash writes its working directory at every prompt (`files::CWD_FILE`):
/// an upload lands where the visitor is.
pub const SHELL_SCRIPT: &str = concat!(
    r#"for d in /usr/local/games /usr/games; do [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac; done; export PATH; "#,
    r#"[ -n "$TRYTHIS_WELCOME" ] && printf '%s\n\n' "$TRYTHIS_WELCOME"; unset TRYTHIS_WELCOME; "#,
    r#"PROMPT_COMMAND='pwd 2>/dev/null >/tmp/.trythis-cwd'; export PROMPT_COMMAND; "#,
    r#"if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"#
);

/// `shell COLS ROWS TOKEN`: the engine starts this as a new session on the exec's TTY. It sizes
/// the TTY before the shell prints anything, then stays the session leader (found by its token)
/// while the shell runs as its child.
pub fn shell(cols: &str, rows: &str, _token: &str) -> i32 {
    if let (Ok(ws_col), Ok(ws_row)) = (cols.parse::<u16>(), rows.parse::<u16>()) {
        let _ = tcsetwinsize(
            std::io::stdin(),
            Winsize {
                ws_row,
                ws_col,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        );
    }
    // Until the shell takes the terminal's foreground, a ^C or ^Z reaches this process too: it
    // must survive them. Handlers (not "ignore") so the shell's exec resets them to default.
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    let child = std::process::Command::new("/bin/sh")
        .args(["-c", SHELL_SCRIPT])
        .spawn();
    match child.and_then(|mut c| c.wait()) {
        Ok(status) => status.code().unwrap_or(0),
        Err(e) => {
            eprintln!("trythis: no /bin/sh in this image: {e}\r");
            1
        }
    }
}

/// `hangup TOKEN`: what a closing terminal does to its session (SIGHUP, then SIGCONT so stopped
/// jobs see it), for the session whose leader is `shell … TOKEN`.
pub fn hangup(token: &str) -> i32 {
    let Some(sid) = leader_session(token) else {
        return 0; // already ended
    };
    let members: Vec<i32> = pids().filter(|pid| session_of(*pid) == Some(sid)).collect();
    for sig in [Signal::HUP, Signal::CONT] {
        for pid in &members {
            if let Some(p) = Pid::from_raw(*pid) {
                let _ = kill_process(p, sig);
            }
        }
    }
    0
}

/// `idle`: the container's main process (under the engine's init). Shells come and go by exec.
pub fn idle() -> i32 {
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut s) => {
            s.forever().next();
            0
        }
        Err(_) => loop {
            std::thread::park();
        },
    }
}

fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn leader_session(token: &str) -> Option<i32> {
    pids().find_map(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.len() >= 5 && args[1] == b"shell" && args[4] == token.as_bytes())
            .then(|| session_of(pid))
            .flatten()
    })
}

/// Field 6 of `/proc/PID/stat` (after the parenthesised name, which may hold spaces).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(3)?.parse().ok()
}
