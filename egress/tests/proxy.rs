//! End-to-end tests of the egress proxy. All traffic stays on 127.0.0.1: every destination that
//! is not a local origin is refused before the proxy connects anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use egress::{EgressProxy, Grant, Policy, Refusal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const ESTABLISHED: &str = "HTTP/1.1 200 Connection Established\r\n\r\n";

/// A tiny HTTP origin on 127.0.0.1 that reports every request head it receives and answers
/// "origin". It keeps a connection open until the client closes, so tunnels can be held.
struct Origin {
    addr: SocketAddr,
    heads: mpsc::UnboundedReceiver<String>,
}

async fn origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin address");
    let (tx, heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    Origin { addr, heads }
}

fn policy(allow: &[&str], ports: &[u16], mirrors: &[String]) -> Policy {
    Policy {
        allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_vec(),
        mirrors: mirrors.to_vec(),
    }
}

async fn proxy(policy: Policy) -> Arc<EgressProxy> {
    EgressProxy::start("127.0.0.1:0".parse().expect("addr"), policy)
        .await
        .expect("start proxy")
}

/// The `name:token` a client takes from the grant's proxy URL.
fn userinfo(grant: &Grant) -> String {
    let url = grant.proxy_url("127.0.0.1");
    let rest = url.strip_prefix("http://").expect("http URL");
    rest.split_once('@').expect("userinfo").0.to_string()
}

fn auth_header(userinfo: &str) -> String {
    format!(
        "Proxy-Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(userinfo)
    )
}

fn creds(grant: &Grant) -> String {
    auth_header(&userinfo(grant))
}

fn connect_request(target: &str, auth: &str) -> String {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n")
}

/// Sends `request` and reads everything until the proxy closes the connection.
/// A CONNECT to `target` with the grant's credentials: the proxy's whole answer.
async fn connect_as(p: &EgressProxy, g: &Grant, target: &str) -> String {
    exchange(
        p.local_addr(),
        connect_request(target, &creds(g)).as_bytes(),
    )
    .await
}

async fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    timeout(WAIT, async {
        let mut s = TcpStream::connect(proxy).await.expect("connect to proxy");
        // The proxy may answer and stop reading before it has taken everything (oversized heads).
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("the proxy answered and closed in time")
}

fn status(resp: &str) -> &str {
    resp.split("\r\n").next().unwrap_or_default()
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// Opens a CONNECT tunnel and returns the stream once the proxy has said 200.
async fn open_tunnel(proxy: SocketAddr, target: &str, auth: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(proxy).await.expect("connect to proxy");
    s.write_all(connect_request(target, auth).as_bytes())
        .await
        .expect("write CONNECT");
    let mut got = vec![0u8; ESTABLISHED.len()];
    let n = timeout(WAIT, read_up_to(&mut s, &mut got))
        .await
        .expect("CONNECT answered in time");
    let got = String::from_utf8_lossy(&got[..n]).into_owned();
    if got == ESTABLISHED {
        Ok(s)
    } else {
        Err(got)
    }
}

async fn read_up_to(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(m) => n += m,
        }
    }
    n
}

async fn next_refusal(grant: &mut Grant) -> Refusal {
    timeout(WAIT, grant.refusals().recv())
        .await
        .expect("refusal reported in time")
        .expect("refusal channel open")
}

/// A loopback listener that must never see a connection: proof the proxy refused before connecting.
async fn bystander() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind bystander")
}

/// The origin answered `resp` and saw a request starting with `request_line`: its head.
async fn origin_answered(resp: &str, origin: &mut Origin, request_line: &str) -> String {
    assert_eq!(status(resp), "HTTP/1.1 200 OK");
    assert_eq!(body(resp), "origin");
    let head = origin.heads.recv().await.expect("origin saw the request");
    assert!(head.starts_with(request_line), "{head}");
    head
}

async fn assert_untouched(listener: &TcpListener) {
    let accepted = timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the proxy connected to a refused destination"
    );
}

#[tokio::test]
async fn connect_to_a_mirror_reaches_the_origin() {
    let mut origin = origin().await;
    // Empty allow list and ports: the mirror entry alone lets this through.
    let p = proxy(policy(&[], &[], &[origin.addr.to_string()])).await;
    let g = p.grant("build-connect");

    let mut tunnel = open_tunnel(p.local_addr(), &origin.addr.to_string(), &creds(&g))
        .await
        .expect("tunnel to the mirror");
    tunnel
        .write_all(b"GET /through-tunnel HTTP/1.1\r\nHost: mirror\r\n\r\n")
        .await
        .expect("write through tunnel");
    let mut resp = Vec::new();
    timeout(WAIT, tunnel.read_to_end(&mut resp))
        .await
        .expect("origin answered in time")
        .expect("read through tunnel");
    let resp = String::from_utf8_lossy(&resp);
    origin_answered(&resp, &mut origin, "GET /through-tunnel HTTP/1.1\r\n").await;
}

#[tokio::test]
async fn plain_get_to_a_mirror_is_forwarded_in_origin_form() {
    let mut origin = origin().await;
    let p = proxy(policy(&[], &[], &[origin.addr.to_string()])).await;
    let g = p.grant("build-plain");

    let request = format!(
        "GET http://{0}/simple/pkg/?x=1 HTTP/1.1\r\nHost: {0}\r\n{1}Proxy-Connection: keep-alive\r\n\
         Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        origin.addr,
        creds(&g)
    );
    let resp = exchange(p.local_addr(), request.as_bytes()).await;
    let head = origin_answered(&resp, &mut origin, "GET /simple/pkg/?x=1 HTTP/1.1\r\n").await;
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("proxy-authorization"), "{head}");
    assert!(!lower.contains("proxy-connection"), "{head}");
    assert!(!lower.contains("keep-alive"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: {}\r\n", origin.addr)),
        "{head}"
    );
    assert!(head.contains("\r\nAccept: */*\r\n"), "{head}");
}

#[tokio::test]
async fn connect_to_another_loopback_port_is_refused_and_reported() {
    let origin = origin().await;
    let other = bystander().await;
    let port = other.local_addr().expect("addr").port();
    // Host and port allowed, so only the address check can refuse it.
    let p = proxy(policy(&["*"], &[port], &[origin.addr.to_string()])).await;
    let mut g = p.grant("build-loopback");

    let target = format!("127.0.0.1:{port}");
    let resp = connect_as(&p, &g, &target).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    assert!(resp.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    assert_eq!(
        body(&resp),
        format!("trythis egress proxy: blocked: {target} is a loopback address\n")
    );

    let refusal = next_refusal(&mut g).await;
    assert_eq!(refusal.target, target);
    assert_eq!(refusal.reason, "is a loopback address");
    assert_eq!(
        refusal.to_string(),
        format!("blocked: {target} is a loopback address")
    );
    assert_untouched(&other).await;
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
    let other = bystander().await;
    let port = other.local_addr().expect("addr").port();
    let p = proxy(policy(&["localhost"], &[port], &[])).await;
    let mut g = p.grant("build-localhost");

    let target = format!("localhost:{port}");
    let resp = connect_as(&p, &g, &target).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    let refusal = next_refusal(&mut g).await;
    assert_eq!(refusal.target, target);
    assert!(
        refusal.reason == "resolves to 127.0.0.1, a loopback address"
            || refusal.reason == "resolves to ::1, a loopback address",
        "{}",
        refusal.reason
    );
    assert_eq!(body(&resp), format!("trythis egress proxy: {refusal}\n"));
    assert_untouched(&other).await;
}

#[tokio::test]
async fn forbidden_address_literals_are_refused_with_their_class() {
    let p = proxy(policy(&["*"], &[80, 443], &[])).await;
    let mut g = p.grant("build-literals");
    let auth = creds(&g);
    let cases = [
        ("169.254.169.254:80", "is a link-local address"),
        ("10.1.2.3:443", "is a private address"),
        ("172.16.5.4:443", "is a private address"),
        ("192.168.0.1:80", "is a private address"),
        ("[::1]:443", "is a loopback address"),
        ("[::ffff:127.0.0.1]:443", "is a loopback address"),
        ("[::ffff:169.254.169.254]:80", "is a link-local address"),
        ("100.64.0.1:443", "is a shared (carrier-grade NAT) address"),
        ("0.0.0.0:80", "is an unspecified address"),
        ("[fe80::1]:443", "is a link-local address"),
        ("[fd00:ec2::254]:80", "is a private address"),
        ("224.0.0.1:80", "is a multicast address"),
    ];
    for (target, reason) in cases {
        let resp = exchange(p.local_addr(), connect_request(target, &auth).as_bytes()).await;
        assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden", "{target}");
        assert_eq!(
            body(&resp),
            format!("trythis egress proxy: blocked: {target} {reason}\n")
        );
        let refusal = next_refusal(&mut g).await;
        assert_eq!(
            (refusal.target.as_str(), refusal.reason.as_str()),
            (target, reason)
        );
    }

    // Plain HTTP goes through the same checks (the classic metadata request).
    let request = format!(
        "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n{auth}\r\n"
    );
    let resp = exchange(p.local_addr(), request.as_bytes()).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    assert_eq!(
        body(&resp),
        "trythis egress proxy: blocked: 169.254.169.254:80 is a link-local address\n"
    );
    let refusal = next_refusal(&mut g).await;
    assert_eq!(refusal.target, "169.254.169.254:80");
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_refused_without_resolving() {
    let p = proxy(Policy::default()).await;
    let mut g = p.grant("build-allowlist");
    // The allow list is checked before any lookup, so the reason names the list, not an address
    // (and `.invalid` would only give a 502 "could not resolve" had it been looked up).
    for target in ["example.invalid:443", "metadata.google.internal:80"] {
        let resp = exchange(
            p.local_addr(),
            connect_request(target, &creds(&g)).as_bytes(),
        )
        .await;
        assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
        let want = format!("blocked: {target} is not in the allowed list (TRYTHIS_EGRESS_ALLOW)");
        assert_eq!(body(&resp), format!("trythis egress proxy: {want}\n"));
        assert_eq!(next_refusal(&mut g).await.to_string(), want);
    }
}

#[tokio::test]
async fn a_disallowed_port_is_refused() {
    let p = proxy(Policy::default()).await;
    let mut g = p.grant("build-port");
    let resp = exchange(
        p.local_addr(),
        connect_request("pypi.org:22", &creds(&g)).as_bytes(),
    )
    .await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    assert_eq!(
        body(&resp),
        "trythis egress proxy: blocked: pypi.org:22 uses a port that is not allowed\n"
    );
    assert_eq!(
        next_refusal(&mut g).await.to_string(),
        "blocked: pypi.org:22 uses a port that is not allowed"
    );

    let request = format!(
        "GET http://pypi.org:8080/simple/ HTTP/1.1\r\nHost: pypi.org:8080\r\n{}\r\n",
        creds(&g)
    );
    let resp = exchange(p.local_addr(), request.as_bytes()).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    assert_eq!(
        next_refusal(&mut g).await.to_string(),
        "blocked: pypi.org:8080 uses a port that is not allowed"
    );
}

#[tokio::test]
async fn a_mirror_matches_only_as_written() {
    let origin = origin().await;
    let port = origin.addr.port();
    let p = proxy(policy(&[], &[port], &[origin.addr.to_string()])).await;
    let mut g = p.grant("build-mirror-literal");
    let target = format!("localhost:{port}");
    let resp = connect_as(&p, &g, &target).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    assert_eq!(
        next_refusal(&mut g).await.to_string(),
        format!("blocked: {target} is not in the allowed list (TRYTHIS_EGRESS_ALLOW)")
    );
}

const PROXY_AUTH_REQUIRED: &str = "HTTP/1.1 407 Proxy Authentication Required";
const CHALLENGE: &str = "\r\nProxy-Authenticate: Basic realm=\"trythis\"\r\n";

#[tokio::test]
async fn missing_credentials_get_407() {
    let p = proxy(Policy::default()).await;
    let _g = p.grant("build-nocreds");
    let resp = exchange(
        p.local_addr(),
        connect_request("pypi.org:443", "").as_bytes(),
    )
    .await;
    assert_eq!(status(&resp), PROXY_AUTH_REQUIRED);
    assert!(resp.contains(CHALLENGE), "{resp}");

    let resp = exchange(
        p.local_addr(),
        connect_request("pypi.org:443", "Proxy-Authorization: Bearer x\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&resp), PROXY_AUTH_REQUIRED);
}

#[tokio::test]
async fn wrong_credentials_get_407() {
    let p = proxy(policy(&["*"], &[443], &[])).await;
    let a = p.grant("build-a");
    let b = p.grant("build-b");
    let (a_name, a_token) = userinfo(&a)
        .split_once(':')
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .expect("name:token");
    let (_, b_token) = userinfo(&b)
        .split_once(':')
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .expect("name:token");
    assert_eq!(a_token.len(), 64);
    assert_ne!(a_token, b_token);

    let mut flipped = a_token.clone().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    for bad in [
        format!("{a_name}:{flipped}"),
        format!("{a_name}:{b_token}"),
        format!("{a_name}:"),
        format!("{a_name}:{a_token}x"),
        format!("build-c:{a_token}"),
        a_token.clone(),
    ] {
        let resp = exchange(
            p.local_addr(),
            connect_request("10.0.0.1:443", &auth_header(&bad)).as_bytes(),
        )
        .await;
        assert_eq!(status(&resp), PROXY_AUTH_REQUIRED, "{bad}");
        assert!(resp.contains(CHALLENGE));
    }

    // The genuine credentials get past authentication (to the policy's 403).
    let resp = exchange(
        p.local_addr(),
        connect_request("10.0.0.1:443", &auth_header(&format!("{a_name}:{a_token}"))).as_bytes(),
    )
    .await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
}

#[tokio::test]
async fn a_dropped_grant_gets_407() {
    let p = proxy(policy(&["*"], &[443], &[])).await;
    let g = p.grant("build-dropped");
    let auth = creds(&g);
    let request = connect_request("10.0.0.1:443", &auth);

    let resp = exchange(p.local_addr(), request.as_bytes()).await;
    assert_eq!(status(&resp), "HTTP/1.1 403 Forbidden");
    drop(g);
    let resp = exchange(p.local_addr(), request.as_bytes()).await;
    assert_eq!(status(&resp), PROXY_AUTH_REQUIRED);
}

#[tokio::test]
async fn dropping_a_grant_closes_its_open_tunnels() {
    let origin = origin().await;
    let p = proxy(policy(&[], &[], &[origin.addr.to_string()])).await;
    let g = p.grant("build-revoked");
    let mut tunnel = open_tunnel(p.local_addr(), &origin.addr.to_string(), &creds(&g))
        .await
        .expect("tunnel");
    drop(g);
    let mut buf = [0u8; 16];
    let n = timeout(WAIT, tunnel.read(&mut buf))
        .await
        .expect("tunnel closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn at_most_64_connections_per_grant() {
    let origin = origin().await;
    let p = proxy(policy(&[], &[], &[origin.addr.to_string()])).await;
    let g = p.grant("build-busy");
    let auth = creds(&g);
    let target = origin.addr.to_string();

    let mut tunnels = Vec::new();
    for i in 0..64 {
        let t = open_tunnel(p.local_addr(), &target, &auth).await;
        tunnels.push(t.unwrap_or_else(|e| panic!("tunnel {i}: {e}")));
    }
    let resp = exchange(p.local_addr(), connect_request(&target, &auth).as_bytes()).await;
    assert_eq!(status(&resp), "HTTP/1.1 429 Too Many Requests");

    // Another grant is unaffected.
    let other = p.grant("build-other");
    let t = open_tunnel(p.local_addr(), &target, &creds(&other)).await;
    assert!(t.is_ok(), "{:?}", t.err());

    // Closing a tunnel frees its slot.
    drop(tunnels.pop());
    let freed = timeout(WAIT, async {
        loop {
            if open_tunnel(p.local_addr(), &target, &auth).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "slot not freed");
}

#[tokio::test]
async fn an_oversized_head_gets_400_without_hanging() {
    let p = proxy(Policy::default()).await;
    let g = p.grant("build-big");
    let mut request = format!("GET http://pypi.org/ HTTP/1.1\r\n{}X-Pad: ", creds(&g)).into_bytes();
    request.extend(std::iter::repeat_n(b'a', 20 * 1024));
    let resp = exchange(p.local_addr(), &request).await;
    assert_eq!(status(&resp), "HTTP/1.1 400 Bad Request");
    assert_eq!(
        body(&resp),
        "trythis egress proxy: request head is larger than 16 KiB\n"
    );
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_get_400() {
    let p = proxy(Policy::default()).await;
    let g = p.grant("build-bad");
    let auth = creds(&g);
    let cases = [
        format!("GET /index.html HTTP/1.1\r\nHost: pypi.org\r\n{auth}\r\n"),
        format!("GET https://pypi.org/ HTTP/1.1\r\n{auth}\r\n"),
        format!("CONNECT pypi.org HTTP/1.1\r\n{auth}\r\n"),
        format!("CONNECT pypi.org:+443 HTTP/1.1\r\n{auth}\r\n"),
        format!("GET http://user@pypi.org/ HTTP/1.1\r\n{auth}\r\n"),
        "\x16\x03\x01\x02\x00\x01\x00\x01\r\n\r\n".to_string(),
        "GET http://pypi.org/ HTTP/2.0\r\n\r\n".to_string(),
    ];
    for request in cases {
        let resp = exchange(p.local_addr(), request.as_bytes()).await;
        assert_eq!(status(&resp), "HTTP/1.1 400 Bad Request", "{request:?}");
        assert!(body(&resp).starts_with("trythis egress proxy: "), "{resp}");
    }
    let resp = exchange(p.local_addr(), b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n").await;
    assert_eq!(
        body(&resp),
        "trythis egress proxy: this is a proxy: send CONNECT host:port or an absolute-form http:// request\n"
    );
}

#[tokio::test]
async fn a_slow_head_gets_408() {
    let p = proxy(Policy::default()).await;
    let resp = timeout(Duration::from_secs(15), async {
        let mut s = TcpStream::connect(p.local_addr()).await.expect("connect");
        s.write_all(b"CONNECT pypi.org:443 HTTP/1.1\r\n")
            .await
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("answered within the head timeout");
    assert_eq!(status(&resp), "HTTP/1.1 408 Request Timeout");
}

#[tokio::test]
async fn an_unreachable_mirror_gets_502_and_no_refusal() {
    let closed = bystander().await;
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let p = proxy(policy(&[], &[], &[addr.to_string()])).await;
    let mut g = p.grant("build-502");
    let resp = connect_as(&p, &g, &addr.to_string()).await;
    assert_eq!(status(&resp), "HTTP/1.1 502 Bad Gateway");
    assert!(
        body(&resp).starts_with(&format!(
            "trythis egress proxy: could not connect to {addr}: "
        )),
        "{resp}"
    );
    assert!(g.refusals().try_recv().is_err());
}

#[tokio::test]
async fn proxy_urls_carry_name_token_and_port() {
    let p = proxy(Policy::default()).await;
    let port = p.local_addr().port();
    let g = p.grant("build-01HXYZ");
    let url = g.proxy_url("172.17.0.1");
    let rest = url
        .strip_prefix("http://build-01HXYZ:")
        .expect("scheme and name");
    let (token, host) = rest.split_once('@').expect("token@host");
    assert_eq!(token.len(), 64);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(host, format!("172.17.0.1:{port}"));
    assert!(g
        .proxy_url("fd00::1")
        .ends_with(&format!("@[fd00::1]:{port}")));
    assert_ne!(p.grant("build-01HXYZ").proxy_url("h"), g.proxy_url("h"));
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let p = proxy(Policy::default()).await;
    let addr = p.local_addr();
    p.shutdown();
    let refused = timeout(WAIT, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting after shutdown");
}

/// A client that opens connections and never speaks held one of the proxy's 1,024 slots each
/// for 10 s: one source could keep every build and sandbox from reaching the proxy. Now a source
/// holds at most 64 unauthenticated connections; others (and it, once authenticated) go on.
#[tokio::test]
async fn one_source_cannot_hold_the_proxy_with_silent_connections() {
    let origin = origin().await;
    let p = proxy(policy(&[], &[], &[origin.addr.to_string()])).await;
    let g = p.grant("build-honest");
    let (auth, target) = (creds(&g), origin.addr.to_string());
    let mut silent = Vec::new();
    for _ in 0..egress::MAX_UNAUTHENTICATED_PER_SOURCE {
        silent.push(TcpStream::connect(p.local_addr()).await.expect("connect"));
    }
    // The silent ones are counted as the proxy picks them up: the next one from the same source
    // is refused once they all are (the old proxy tunnelled it: it never got a 429).
    let refused = timeout(WAIT, async {
        loop {
            let resp = exchange(p.local_addr(), connect_request(&target, &auth).as_bytes()).await;
            if status(&resp) == "HTTP/1.1 429 Too Many Requests" {
                return body(&resp).to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a 65th connection from the silent source was refused");
    assert!(refused.contains("waiting to authenticate"), "{refused}");

    // Another source is unaffected.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut other = socket.connect(p.local_addr()).await.expect("connect");
    other
        .write_all(connect_request(&target, &auth).as_bytes())
        .await
        .expect("write");
    let mut got = vec![0u8; ESTABLISHED.len()];
    let n = timeout(WAIT, read_up_to(&mut other, &mut got))
        .await
        .expect("answered");
    assert_eq!(String::from_utf8_lossy(&got[..n]), ESTABLISHED);

    // A silent connection closing gives its place back.
    drop(silent.pop());
    let reopened = timeout(WAIT, async {
        loop {
            if open_tunnel(p.local_addr(), &target, &auth).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "the source's place was not given back");
}
