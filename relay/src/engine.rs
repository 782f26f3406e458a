//! The few Engine API calls the terminal needs (create an exec, start it with a TTY, resize it),
//! over HTTP on the engine's UNIX socket or TCP address. Hand-written rather than a client crate:
//! the relay is a static binary started once per terminal, and these are four fixed requests.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// A byte stream to the engine.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// `unix:///path` or `tcp://host:port` (the server's `TRYTHIS_DOCKER`).
#[derive(Clone, Debug)]
pub struct Engine {
    endpoint: String,
}

impl Engine {
    pub fn new(endpoint: &str) -> io::Result<Engine> {
        if endpoint.starts_with("unix://") || endpoint.starts_with("tcp://") {
            Ok(Engine {
                endpoint: endpoint.to_string(),
            })
        } else {
            Err(io::Error::other(format!(
                "engine endpoint {endpoint:?}: expected unix:// or tcp://"
            )))
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        if let Some(path) = self.endpoint.strip_prefix("unix://") {
            Ok(Conn::Unix(UnixStream::connect(path)?))
        } else {
            let addr = self.endpoint.trim_start_matches("tcp://");
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s))
        }
    }

    /// One request and its whole answer (HTTP/1.0: the engine closes after it, never chunks).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> io::Result<(u16, String)> {
        let mut conn = self.connect()?;
        conn.write_all(request(method, path, body, "HTTP/1.0", &[]).as_bytes())?;
        let mut reply = Vec::new();
        conn.take(MAX_REPLY).read_to_end(&mut reply)?;
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        Ok((status_of(head)?, body.to_string()))
    }

    /// Creates an exec in `container` running `cmd`; returns its id.
    pub fn create_exec(
        &self,
        container: &str,
        cmd: &[&str],
        tty: bool,
        user: Option<&str>,
    ) -> io::Result<String> {
        let cmd: Vec<String> = cmd.iter().map(|c| json_string(c)).collect();
        let user = user.map_or(String::new(), |u| format!(",\"User\":{}", json_string(u)));
        let body = format!(
            "{{\"AttachStdin\":{tty},\"AttachStdout\":true,\"AttachStderr\":true,\"Tty\":{tty},\"Cmd\":[{}]{user}}}",
            cmd.join(",")
        );
        let (status, reply) = self.call(
            "POST",
            &format!("/containers/{container}/exec"),
            Some(&body),
        )?;
        if status != 201 {
            return Err(io::Error::other(format!(
                "the engine refused the exec ({status}): {}",
                message_of(&reply)
            )));
        }
        string_field(&reply, "Id").ok_or_else(|| io::Error::other("no exec id in the reply"))
    }

    /// Starts an exec attached: the connection becomes the exec's raw stream (TTY: one stream,
    /// no multiplexing headers).
    pub fn start_exec(&self, id: &str, tty: bool) -> io::Result<Conn> {
        let mut conn = self.connect()?;
        let body = format!("{{\"Detach\":false,\"Tty\":{tty}}}");
        let headers = [("Connection", "Upgrade"), ("Upgrade", "tcp")];
        let req = request(
            "POST",
            &format!("/exec/{id}/start"),
            Some(&body),
            "HTTP/1.1",
            &headers,
        );
        conn.write_all(req.as_bytes())?;
        // Read the head byte by byte: what follows it is the exec's output, not ours to buffer.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 || conn.read(&mut byte)? == 0 {
                return Err(io::Error::other("the engine closed before attaching"));
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        match status_of(&head)? {
            101 | 200 => Ok(conn),
            s => Err(io::Error::other(format!(
                "the engine refused to start the exec ({s})"
            ))),
        }
    }

    pub fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> io::Result<()> {
        let (status, reply) = self.call(
            "POST",
            &format!("/exec/{id}/resize?h={rows}&w={cols}"),
            None,
        )?;
        match status {
            200 | 201 => Ok(()),
            s => Err(io::Error::other(format!(
                "resize refused ({s}): {}",
                message_of(&reply)
            ))),
        }
    }

    /// Whether the exec still runs (false once it ended or its container is gone).
    pub fn exec_running(&self, id: &str) -> io::Result<bool> {
        let (status, reply) = self.call("GET", &format!("/exec/{id}/json"), None)?;
        match status {
            200 => Ok(!reply.contains("\"Running\":false")),
            404 => Ok(false),
            s => Err(io::Error::other(format!(
                "exec inspect refused ({s}): {}",
                message_of(&reply)
            ))),
        }
    }

    /// Runs `cmd` in `container` to its end (no TTY, output discarded).
    pub fn run(&self, container: &str, cmd: &[&str], user: Option<&str>) -> io::Result<()> {
        let id = self.create_exec(container, cmd, false, user)?;
        let mut conn = self.start_exec(&id, false)?;
        io::copy(&mut conn, &mut io::sink())?;
        Ok(())
    }
}

/// Engine answers are small JSON documents; anything longer is cut here.
const MAX_REPLY: u64 = 64 * 1024;

fn request(
    method: &str,
    path: &str,
    body: Option<&str>,
    version: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut r = format!("{method} {path} {version}\r\nHost: docker\r\n");
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    r.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    r
}

fn status_of(head: &str) -> io::Result<u16> {
    let first = BufReader::new(head.as_bytes())
        .lines()
        .next()
        .transpose()?
        .unwrap_or_default();
    first
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {first:?}")))
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a top-level string field in a small JSON object (ids and messages only).
fn string_field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = json[at + key.len() + 2..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

fn message_of(reply: &str) -> String {
    string_field(reply, "message").unwrap_or_else(|| reply.trim().chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_strings() {
        assert_eq!(
            string_field(r#"{"Id": "ab\"c", "x":1}"#, "Id").as_deref(),
            Some("ab\"c")
        );
        assert_eq!(
            string_field(r#"{"message":"No such container: x"}"#, "Id"),
            None
        );
        assert_eq!(json_string("a\"b\\\n"), r#""a\"b\\\u000a""#);
        assert_eq!(status_of("HTTP/1.1 101 UPGRADED\r\nX: y").ok(), Some(101));
        assert!(status_of("garbage").is_err());
        assert!(Engine::new("/var/run/docker.sock").is_err());
    }
}
