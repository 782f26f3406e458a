//! One client connection: read the head, authenticate, check the destination, then splice.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::policy::{parse_authority, Target};
use crate::{addr, Refusal, Session, Shared, MAX_CONNS_PER_GRANT};

const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const TUNNEL_IDLE: Duration = Duration::from_secs(120);
/// After an error reply, how long and how much to keep reading what the client already sent:
/// closing with unread data makes the kernel send a reset that can destroy the reply in flight.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Hop-by-hop and proxy-only headers not forwarded to origins; Host and Connection are rewritten.
const DROPPED_HEADERS: &[&str] = &[
    "proxy-authorization",
    "proxy-connection",
    "connection",
    "keep-alive",
    "host",
];

enum Kind {
    Connect,
    /// Absolute-form plain HTTP, already split for the origin-form request line.
    Http {
        method: String,
        path: String,
        authority: String,
        minor_version: u8,
    },
}

struct Request {
    kind: Kind,
    target: Target,
    /// Proxy-Authorization, if sent.
    auth: Option<Vec<u8>>,
    /// Headers to forward (plain HTTP only).
    headers: Vec<(String, Vec<u8>)>,
    /// Bytes that arrived after the head (body, or early tunnel data).
    rest: Vec<u8>,
}

enum HeadError {
    /// Nothing useful to answer: the client went away.
    Gone,
    TooLarge,
    Bad(&'static str),
}

pub(crate) async fn handle(mut client: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let Some(unauthenticated) = crate::Unauthenticated::take(shared, peer.ip()) else {
        return reply(
            client,
            429,
            "too many connections from this address waiting to authenticate",
            "",
        )
        .await;
    };
    let req = match timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(req)) => req,
        Ok(Err(HeadError::Gone)) => return,
        Ok(Err(HeadError::TooLarge)) => {
            return reply(client, 400, "request head is larger than 16 KiB", "").await;
        }
        Ok(Err(HeadError::Bad(why))) => return reply(client, 400, why, "").await,
        Err(_) => {
            return reply(
                client,
                408,
                "request head not received within 10 seconds",
                "",
            )
            .await;
        }
    };

    let Some(session) = req
        .auth
        .as_deref()
        .and_then(basic_credentials)
        .and_then(|(name, token)| shared.authenticate(&name, &token))
    else {
        return reply(
            client,
            407,
            "proxy credentials missing or not valid (the build or sandbox they were issued to may have ended)",
            "Proxy-Authenticate: Basic realm=\"trythis\"\r\n",
        )
        .await;
    };

    drop(unauthenticated);
    let Some(_slot) = Slot::take(&session.active) else {
        return reply(
            client,
            429,
            "too many connections open at once for this build or sandbox",
            "",
        )
        .await;
    };

    let addrs = match check(&shared.policy, &req.target).await {
        Ok(addrs) => addrs,
        Err(Denied::Refused(reason)) => {
            let refusal = Refusal {
                target: req.target.to_string(),
                reason,
            };
            tracing::info!(
                grant = %session.name,
                %peer,
                target = %refusal.target,
                reason = %refusal.reason,
                "egress {refusal}"
            );
            // A full or closed queue only loses the report, never the refusal itself.
            let _ = session.refusals.try_send(refusal.clone());
            return reply(client, 403, &refusal.to_string(), "").await;
        }
        Err(Denied::Unreachable(why)) => return reply(client, 502, &why, "").await,
    };

    let mut upstream = match timeout(CONNECT_TIMEOUT, connect_any(&addrs)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let why = format!("could not connect to {}: {e}", req.target);
            return reply(client, 502, &why, "").await;
        }
        Err(_) => {
            let why = format!(
                "{} did not accept a connection within 10 seconds",
                req.target
            );
            return reply(client, 502, &why, "").await;
        }
    };
    let _ = upstream.set_nodelay(true);
    tracing::debug!(grant = %session.name, %peer, target = %req.target, "egress allowed");

    let opening = match &req.kind {
        Kind::Connect => {
            let established = b"HTTP/1.1 200 Connection Established\r\n\r\n";
            if !matches!(
                timeout(WRITE_TIMEOUT, client.write_all(established)).await,
                Ok(Ok(()))
            ) {
                return;
            }
            req.rest
        }
        Kind::Http {
            method,
            path,
            authority,
            minor_version,
        } => {
            let mut head =
                format!("{method} {path} HTTP/1.{minor_version}\r\nHost: {authority}\r\n")
                    .into_bytes();
            for (name, value) in &req.headers {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
            // One request per connection: a second request on a kept-alive connection would
            // reach this origin without passing through the checks above.
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            head.extend_from_slice(&req.rest);
            head
        }
    };
    if !opening.is_empty()
        && !matches!(
            timeout(WRITE_TIMEOUT, upstream.write_all(&opening)).await,
            Ok(Ok(()))
        )
    {
        return;
    }
    splice(client, upstream, session).await;
}

async fn read_head(s: &mut TcpStream) -> Result<Request, HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let room = MAX_HEAD.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = match s.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let rest = buf.get(len..).unwrap_or_default().to_vec();
                return to_request(&parsed, rest);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::Bad("request has more than 100 header lines"))
            }
            Err(_) => return Err(HeadError::Bad("malformed HTTP request head")),
        }
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>, rest: Vec<u8>) -> Result<Request, HeadError> {
    const NOT_PROXY_FORM: &str =
        "this is a proxy: send CONNECT host:port or an absolute-form http:// request";
    let (Some(method), Some(uri), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Bad("malformed HTTP request head"));
    };
    let auth = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| h.value.to_vec());

    let (kind, target) = if method == "CONNECT" {
        let target =
            parse_authority(uri, None).ok_or(HeadError::Bad("CONNECT needs a host:port target"))?;
        (Kind::Connect, target)
    } else {
        let after_scheme = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .and_then(|_| uri.get(7..))
            .ok_or(HeadError::Bad(NOT_PROXY_FORM))?;
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, remainder) = after_scheme.split_at(end);
        // Userinfo in the target would only confuse what "the host" is; nobody needs it here.
        let target = parse_authority(authority, Some(80))
            .ok_or(HeadError::Bad("the request URL has no valid host[:port]"))?;
        let remainder = remainder.split('#').next().unwrap_or_default();
        let path = match remainder.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{remainder}"),
            Some(_) => remainder.to_string(),
        };
        let kind = Kind::Http {
            method: method.to_string(),
            path,
            authority: authority.to_string(),
            minor_version,
        };
        (kind, target)
    };

    let headers = match kind {
        Kind::Connect => Vec::new(),
        Kind::Http { .. } => parsed
            .headers
            .iter()
            .filter(|h| {
                !DROPPED_HEADERS
                    .iter()
                    .any(|d| h.name.eq_ignore_ascii_case(d))
            })
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    };
    Ok(Request {
        kind,
        target,
        auth,
        headers,
        rest,
    })
}

/// `Basic base64(name:token)` → (name, token). The token never contains ':', the name may.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, token) = decoded.rsplit_once(':')?;
    Some((name.to_string(), token.to_string()))
}

/// A place among the grant's concurrent connections, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Option<Slot> {
        let before = active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(active));
        // On refusal the slot is dropped here, undoing the increment.
        (before < MAX_CONNS_PER_GRANT).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Denied {
    /// Policy says no: 403, reported to the grant.
    Refused(String),
    /// Allowed, but could not be resolved: 502.
    Unreachable(String),
}

/// The policy decision, in order: port, host, then one resolution whose every address must pass.
/// Returns the addresses to connect to; the caller must use these and never resolve again.
async fn check(policy: &crate::Policy, target: &Target) -> Result<Vec<SocketAddr>, Denied> {
    let mirror = policy.is_mirror(target);
    if !mirror {
        if !policy.port_allowed(target.port) {
            return Err(Denied::Refused("uses a port that is not allowed".into()));
        }
        if !policy.host_allowed(&target.host) {
            return Err(Denied::Refused(
                "is not in the allowed list (TRYTHIS_EGRESS_ALLOW)".into(),
            ));
        }
    }
    if let Some(ip) = target.ip {
        if !mirror {
            if let Some(class) = addr::forbidden(ip) {
                return Err(Denied::Refused(format!("is {class}")));
            }
        }
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }

    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let mut addrs: Vec<SocketAddr> = match timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(e)) => {
            return Err(Denied::Unreachable(format!(
                "could not resolve {}: {e}",
                target.host
            )))
        }
        Err(_) => {
            return Err(Denied::Unreachable(format!(
                "could not resolve {} within 10 seconds",
                target.host
            )))
        }
    };
    let mut seen: Vec<IpAddr> = Vec::new();
    addrs.retain(|a| {
        let new = !seen.contains(&a.ip());
        seen.push(a.ip());
        new
    });
    if addrs.is_empty() {
        return Err(Denied::Unreachable(format!(
            "{} has no addresses",
            target.host
        )));
    }
    if !mirror {
        // Any bad answer condemns the name: a client could otherwise retry until it got it.
        for a in &addrs {
            if let Some(class) = addr::forbidden(a.ip()) {
                return Err(Denied::Refused(format!("resolves to {}, {class}", a.ip())));
            }
        }
    }
    Ok(addrs)
}

async fn connect_any(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Copies both ways until both sides finish, the tunnel sits idle for [`TUNNEL_IDLE`], or the
/// grant is dropped.
async fn splice(client: TcpStream, upstream: TcpStream, mut session: Session) {
    let clock = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let mut client = Tracked {
        inner: client,
        clock: Arc::clone(&clock),
    };
    let mut upstream = Tracked {
        inner: upstream,
        clock: Arc::clone(&clock),
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            _ = tokio::time::sleep_until(clock.last() + TUNNEL_IDLE) => {
                if clock.last().elapsed() >= TUNNEL_IDLE {
                    tracing::debug!(grant = %session.name, "egress tunnel closed after idling");
                    return;
                }
            }
            // Only ever completes with an error: when the grant's sender is dropped.
            _ = session.revoked.changed() => {
                tracing::debug!(grant = %session.name, "egress tunnel closed: grant revoked");
                return;
            }
        }
    }
}

struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last byte moved in either direction.
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that records when bytes last moved, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    clock: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends a proxy-generated error with a one-sentence text body, then closes gracefully.
async fn reply(mut client: TcpStream, status: u16, sentence: &str, extra_headers: &str) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        _ => "Bad Gateway",
    };
    let body = format!("trythis egress proxy: {sentence}\n");
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra_headers}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = timeout(WRITE_TIMEOUT, async {
        client.write_all(msg.as_bytes()).await?;
        client.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(LINGER_TIME, async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            basic_credentials(enc("build-1:abc").as_bytes()),
            Some(("build-1".into(), "abc".into()))
        );
        assert_eq!(
            basic_credentials(enc("a:b:c").as_bytes()),
            Some(("a:b".into(), "c".into()))
        );
        assert_eq!(
            basic_credentials(format!("bAsIc  {}", &enc("x:y")[6..]).as_bytes()),
            Some(("x".into(), "y".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(enc("no-colon").as_bytes()), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(basic_credentials(&[0xff, 0xfe]), None);
    }

    #[test]
    fn slots_are_bounded_and_returned() {
        let active = Arc::new(AtomicUsize::new(0));
        let held: Vec<Slot> = (0..MAX_CONNS_PER_GRANT)
            .map(|_| Slot::take(&active).expect("within the limit"))
            .collect();
        assert!(Slot::take(&active).is_none());
        assert_eq!(active.load(Ordering::SeqCst), MAX_CONNS_PER_GRANT);
        drop(held);
        assert_eq!(active.load(Ordering::SeqCst), 0);
        assert!(Slot::take(&active).is_some());
    }

    fn parse(head: &str) -> Result<Request, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head.as_bytes()) {
            Ok(httparse::Status::Complete(_)) => to_request(&req, Vec::new()),
            _ => Err(HeadError::Bad("test: incomplete")),
        }
    }

    #[test]
    fn absolute_form_is_split_for_the_origin() {
        let cases = [
            ("http://example.com/a/b?c=d", "/a/b?c=d", "example.com", 80),
            ("HTTP://example.com:8080", "/", "example.com:8080", 8080),
            ("http://example.com?q", "/?q", "example.com", 80),
            ("http://example.com/x#frag", "/x", "example.com", 80),
            ("http://[::1]:81/", "/", "[::1]:81", 81),
        ];
        for (uri, want_path, want_authority, want_port) in cases {
            let req = parse(&format!("GET {uri} HTTP/1.1\r\n\r\n"))
                .unwrap_or_else(|_| panic!("{uri} should parse"));
            let Kind::Http {
                path, authority, ..
            } = &req.kind
            else {
                panic!("{uri}: not plain HTTP");
            };
            assert_eq!(
                (path.as_str(), authority.as_str(), req.target.port),
                (want_path, want_authority, want_port),
                "{uri}"
            );
        }
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
            "GET http://user@example.com/ HTTP/1.1\r\n\r\n",
            "GET http:///x HTTP/1.1\r\n\r\n",
            "CONNECT example.com HTTP/1.1\r\n\r\n",
            "CONNECT /x HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn proxy_headers_are_not_forwarded() {
        let req = parse(
            "GET http://example.com/ HTTP/1.1\r\nHost: other\r\nProxy-Authorization: Basic eDp5\r\n\
             Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap_or_else(|_| panic!("should parse"));
        assert_eq!(req.auth.as_deref(), Some(&b"Basic eDp5"[..]));
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["Accept"]);
    }
}
