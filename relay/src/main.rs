//! `trythis-relay SOCKET`: runs inside a sandbox (static, mounted read-only) and joins its stdin and
//! stdout to the UNIX socket ttyd listens on there. The server starts it through the engine's exec
//! API, so the server never dials a path the sandbox could redirect, and the same transport works
//! under runc, gVisor (whose sockets never appear on the host) and a remote engine.
//!
//! std only: it must run in any image, so it is built for the musl target as a static binary.
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// ttyd creates its socket a few milliseconds after the container starts.
const WAIT_FOR_SOCKET: Duration = Duration::from_secs(10);

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: trythis-relay SOCKET");
        std::process::exit(2);
    };
    let deadline = Instant::now() + WAIT_FOR_SOCKET;
    let socket = loop {
        match UnixStream::connect(&path) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                eprintln!("trythis-relay: {}: {e}", path.to_string_lossy());
                std::process::exit(1);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let Ok(mut upstream) = socket.try_clone() else {
        std::process::exit(1);
    };
    // stdin → socket on a thread; socket → stdout here. Either side ending ends the relay.
    std::thread::spawn(move || {
        let _ = pump(&mut std::io::stdin().lock(), &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = socket;
    let _ = pump(&mut downstream, &mut std::io::stdout().lock());
    std::process::exit(0);
}

fn pump(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
