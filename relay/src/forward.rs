//! Web previews from inside a sandbox: `forward PORT` joins the exec's stdin/stdout to a TCP
//! connection on the sandbox's own loopback (the sandbox keeps `network=none`: the bytes travel
//! the engine's exec stream, like the terminal's), and `ports [watch]` lists the listening ports.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

/// Exit code when nothing listens on the port (the server answers its "nothing here" page).
pub const NOTHING_LISTENS: i32 = 3;

pub fn forward(port: &str) -> i32 {
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        eprintln!("trythis-relay: not a port: {port:?}");
        return 2;
    };
    // A server may listen on IPv4, IPv6 or both; loopback of either.
    let conn =
        TcpStream::connect(("127.0.0.1", port)).or_else(|_| TcpStream::connect(("::1", port)));
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trythis-relay: nothing listens on port {port}: {e}");
            return NOTHING_LISTENS;
        }
    };
    let _ = conn.set_nodelay(true);
    let Ok(mut upstream_write) = conn.try_clone() else {
        return 1;
    };
    // stdin → the server; its end half-closes the connection (a request body is complete).
    let uploader = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = copy(&mut stdin, &mut upstream_write);
        let _ = upstream_write.shutdown(Shutdown::Write);
    });
    let mut conn = conn;
    let mut stdout = std::io::stdout().lock();
    let _ = copy(&mut conn, &mut stdout);
    let _ = conn.shutdown(Shutdown::Both);
    drop(uploader); // the process exits; stdin's reader goes with it
    0
}

/// Copies until EOF or an error, flushing every chunk (responses stream as they are written).
fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

/// `ports`: the listening TCP ports, one line `ports P1 P2 …`; `ports watch`: the same line
/// again whenever the set changes (checked twice a second), until the reader goes away.
pub fn ports(watch: bool) -> i32 {
    let mut last: Option<Vec<u16>> = None;
    loop {
        let now = listening();
        if last.as_ref() != Some(&now) {
            let line = std::iter::once("ports".to_string())
                .chain(now.iter().map(u16::to_string))
                .collect::<Vec<_>>()
                .join(" ");
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                return 0;
            }
            last = Some(now);
        }
        if !watch {
            return 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn listening() -> Vec<u16> {
    let mut ports: Vec<u16> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| listening_in(&table))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Ports in LISTEN state (0A) of a `/proc/net/tcp{,6}` table.
fn listening_in(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1)?;
            let state = cols.nth(1)?;
            if state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .filter(|p| *p > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:223D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
   2: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        assert_eq!(listening_in(table), vec![8000, 8765]);
    }
}
