//! Web previews and files against the real engine, relay and ttyd: a server started in a
//! sandbox is reached under its own host name only by its owner, the app behind it never sees
//! nor sets the platform's cookie, and files move in and out through the exec stream.
mod common;
use common::{Result, TestApp, Visitor};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny HTTP server for the sandbox (perl is in every Debian image): echoes the request it
/// saw and the body's length, sets an app cookie with `Domain=` and tries to forge the
/// platform's cookie; `Upgrade: echo` switches to echoing bytes (as a WebSocket would upgrade).
const SERVER: &str = r#"use IO::Socket::INET;
$| = 1;
my $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $ARGV[0], Listen => 10, ReuseAddr => 1) or die "listen: $!";
print "listening\n";
while (my $c = $s->accept) {
  my $req = "";
  while (my $line = <$c>) { $req .= $line; last if $line eq "\r\n"; }
  my ($len) = $req =~ /^Content-Length:\s*(\d+)/mi;
  my $body = "";
  read($c, $body, $len) if $len;
  if ($req =~ /^Upgrade:\s*echo/mi) {
    print $c "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
    $c->flush;
    while (sysread($c, my $buf, 4096)) { syswrite($c, "echo:$buf"); }
    close $c;
    next;
  }
  my $out = "saw " . $req . "body " . length($body) . "\n";
  print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: app=1; Domain=preview.localhost; Path=/\r\nSet-Cookie: __trythis_preview=forged; Path=/\r\nContent-Length: " . length($out) . "\r\nConnection: close\r\n\r\n" . $out;
  close $c;
}
"#;

async fn put(
    v: &Visitor,
    id: &str,
    path: &str,
    bytes: Vec<u8>,
) -> Result<(u16, serde_json::Value)> {
    let resp = v
        .http
        .put(format!("{}/api/sandboxes/{id}/files?path={path}", v.base))
        .header("cookie", &v.cookie)
        .header("x-csrf-token", &v.csrf)
        .body(bytes)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(serde_json::Value::Null)))
}

async fn get(v: &Visitor, id: &str, path: &str) -> Result<reqwest::Response> {
    Ok(v.http
        .get(format!("{}/api/sandboxes/{id}/files?path={path}", v.base))
        .header("cookie", &v.cookie)
        .send()
        .await?)
}

async fn started(app: &TestApp) -> Result<(Visitor, String)> {
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    let id = r.body["id"].as_str().ok_or("no sandbox id")?.to_string();
    Ok((v, id))
}

/// A Try of the fixture with `SERVER` uploaded and listening on port 8000: (owner, sandbox id,
/// the shell it runs in).
async fn serving(app: &TestApp) -> Result<(Visitor, String, common::Shell)> {
    let (v, id) = started(app).await?;
    assert_eq!(
        put(&v, &id, "/root/srv.pl", SERVER.as_bytes().to_vec())
            .await?
            .0,
        201
    );
    let mut shell = v
        .terminal(&id)
        .await
        .map_err(|s| format!("terminal: {s}"))?;
    shell.type_line("perl /root/srv.pl 8000 &").await?;
    shell
        .expect_literal("listening", Duration::from_secs(20))
        .await?;
    Ok((v, id, shell))
}

#[tokio::test]
async fn files_go_in_where_the_shell_is_and_come_out_and_strangers_and_bad_paths_are_refused(
) -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_UPLOAD_MAX_MB", "1")]).await?;
    let (v, id) = started(&app).await?;

    // Before any prompt the shell's directory is the image's WORKDIR.
    let (status, body) = put(&v, &id, "hello.txt", b"hello from the browser\n".to_vec()).await?;
    assert_eq!(
        (status, body["path"].as_str()),
        (201, Some("/root/hello.txt")),
        "{body}"
    );

    let mut shell = v
        .terminal(&id)
        .await
        .map_err(|s| format!("terminal: {s}"))?;
    shell
        .type_line("cat /root/hello.txt; mkdir -p /tmp/work && cd /tmp/work")
        .await?;
    shell
        .expect_literal("hello from the browser", Duration::from_secs(20))
        .await?;
    shell.type_line("echo moved-$((40+2))").await?;
    shell
        .expect_literal("moved-42", Duration::from_secs(10))
        .await?;
    // Now it lands where the visitor is.
    let (status, body) = put(&v, &id, "data.csv", b"a,b\n1,2\n".to_vec()).await?;
    assert_eq!(
        (status, body["path"].as_str()),
        (201, Some("/tmp/work/data.csv")),
        "{body}"
    );
    shell
        .type_line("wc -l < data.csv | sed s/^/lines=/")
        .await?;
    shell
        .expect_literal("lines=2", Duration::from_secs(10))
        .await?;

    // Out: a file as it is, a directory as a tar archive.
    let resp = get(&v, &id, "/root/hello.txt").await?;
    assert_eq!(resp.status().as_u16(), 200);
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"hello.txt\""),
        "{disposition}"
    );
    assert_eq!(resp.bytes().await?.as_ref(), b"hello from the browser\n");
    let resp = get(&v, &id, "/tmp/work").await?;
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok()),
        Some("application/x-tar")
    );
    let tar = resp.bytes().await?;
    let listing = std::process::Command::new("tar")
        .args(["-tf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                std::io::Write::write_all(&mut i, &tar)?;
            }
            c.wait_with_output()
        })?;
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "work/\nwork/data.csv\n"
    );

    // Clear answers, and nothing lost.
    assert_eq!(put(&v, &id, "../etc/evil", b"x".to_vec()).await?.0, 400);
    assert_eq!(
        get(&v, &id, "/tmp/../etc/passwd").await?.status().as_u16(),
        400
    );
    assert_eq!(get(&v, &id, "/no/such/file").await?.status().as_u16(), 404);
    let (status, body) = put(&v, &id, "big.bin", vec![7u8; 1024 * 1024 + 1]).await?;
    assert_eq!(status, 413, "{body}");
    let (status, _) = put(&v, &id, "/tmp/work", b"x".to_vec()).await?;
    assert_eq!(status, 400, "a directory is not overwritten");
    let streamed = v
        .http
        .put(format!("{}/api/sandboxes/{id}/files?path=s.txt", v.base))
        .header("cookie", &v.cookie)
        .header("x-csrf-token", &v.csrf)
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<
            _,
            std::io::Error,
        >(
            bytes::Bytes::from_static(b"no length"),
        )])))
        .send()
        .await?;
    assert_eq!(streamed.status().as_u16(), 411);
    let without_csrf = v
        .http
        .put(format!("{}/api/sandboxes/{id}/files?path=c.txt", v.base))
        .header("cookie", &v.cookie)
        .body("x")
        .send()
        .await?;
    assert_eq!(without_csrf.status().as_u16(), 403);

    let stranger = app.visitor().await?;
    assert_eq!(put(&stranger, &id, "x.txt", b"x".to_vec()).await?.0, 403);
    assert_eq!(
        get(&stranger, &id, "/root/hello.txt")
            .await?
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        stranger
            .status_of("GET", &format!("/api/sandboxes/{id}/ports"))
            .await?,
        403
    );
    shell
        .type_line("ls -a /tmp/work /root | tr '\\n' ' '; echo END")
        .await?;
    let listed = shell
        .expect(r"\. \.\. data\.csv [^\n]*END", Duration::from_secs(10))
        .await?;
    assert!(
        !listed.contains("trythis-upload")
            && !listed.contains("c.txt")
            && !listed.contains("s.txt"),
        "{listed}"
    );
    Ok(())
}

/// The preview host of the test server's sandbox port, resolved to the server (as browsers
/// resolve `*.localhost`), redirects not followed.
fn preview_client(app: &TestApp, id: &str, port: u16) -> Result<(reqwest::Client, String)> {
    let host = format!("{id}-{port}.preview.localhost");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, app.addr)
        .timeout(Duration::from_secs(60))
        .build()?;
    Ok((client, format!("http://{host}:{}", app.addr.port())))
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Enters the preview of `port` as `v` would from its Try: the preview cookie.
async fn enter(app: &TestApp, v: &Visitor, id: &str, port: u16, next: &str) -> Result<String> {
    let (client, origin) = preview_client(app, id, port)?;
    let site = client
        .get(format!("{}/preview/{id}/{port}?next={next}", v.base))
        .header("cookie", &v.cookie)
        .send()
        .await?;
    assert_eq!(site.status().as_u16(), 303);
    let to = location(&site);
    assert!(
        to.starts_with(&format!("{origin}/__trythis/enter?")),
        "{to}"
    );
    let entered = client.get(&to).send().await?;
    assert_eq!(entered.status().as_u16(), 303);
    assert_eq!(
        location(&entered),
        next.replace("%2F", "/")
            .replace("%3F", "?")
            .replace("%3D", "=")
    );
    let set = entered
        .headers()
        .get("set-cookie")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        set.starts_with("__trythis_preview=") && set.contains("HttpOnly"),
        "{set}"
    );
    assert!(
        !set.to_ascii_lowercase().contains("domain="),
        "host-only: {set}"
    );
    Ok(set.split(';').next().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_server_in_the_sandbox_is_reached_under_its_own_host_by_its_owner_only() -> Result {
    let app = TestApp::start().await?;
    let (v, id, _shell) = serving(&app).await?;

    // The port shows, with its preview address on the site.
    let mut listed = serde_json::Value::Null;
    for _ in 0..40 {
        listed = v
            .call("GET", &format!("/api/sandboxes/{id}"), None)
            .await?
            .body["ports"]
            .clone();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        listed,
        serde_json::json!([{ "port": 8000, "preview_url": format!("{}/preview/{id}/8000", v.base) }])
    );

    let (client, origin) = preview_client(&app, &id, 8000)?;
    // Without the preview's cookie: back to the site's entry (GET), refused otherwise.
    let bare = client.get(format!("{origin}/x?y=1")).send().await?;
    assert_eq!(bare.status().as_u16(), 303);
    assert_eq!(
        location(&bare),
        format!("{}/preview/{id}/8000?next=/x%3Fy%3D1", v.base)
    );
    assert_eq!(
        client
            .post(format!("{origin}/x"))
            .body("b")
            .send()
            .await?
            .status()
            .as_u16(),
        403
    );
    // The site's visitor cookie is no key to the preview host.
    let with_site_cookie = client
        .get(format!("{origin}/"))
        .header("cookie", &v.cookie)
        .send()
        .await?;
    assert_eq!(with_site_cookie.status().as_u16(), 303);

    // Someone else cannot enter, nor reuse a ticket for another port or sandbox.
    let stranger = app.visitor().await?;
    let refused = client
        .get(format!("{}/preview/{id}/8000", v.base))
        .header("cookie", &stranger.cookie)
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 403);

    let cookie = enter(&app, &v, &id, 8000, "/x%3Fy%3D1").await?;
    let (other_port, other_origin) = preview_client(&app, &id, 8001)?;
    let moved = other_port
        .get(format!("{other_origin}/"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(
        moved.status().as_u16(),
        303,
        "a cookie of port 8000 is no key to 8001"
    );
    let forged = client
        .get(format!("{origin}/"))
        .header(
            "cookie",
            cookie.replace("__trythis_preview=", "__trythis_preview=00"),
        )
        .send()
        .await?;
    assert_eq!(forged.status().as_u16(), 303);

    // Path, query, method and body pass; the app sees its own cookies, never the platform's.
    let page = client
        .post(format!("{origin}/api/me?q=a%20b"))
        .header("cookie", format!("app=1; {cookie}; other=2"))
        .body(vec![b'z'; 100_000])
        .send()
        .await?;
    assert_eq!(page.status().as_u16(), 200);
    let set_cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok().map(String::from))
        .collect();
    assert_eq!(
        set_cookies,
        vec!["app=1; Path=/".to_string()],
        "no Domain=, no forged platform cookie"
    );
    let text = page.text().await?;
    assert!(
        text.starts_with("saw POST /api/me?q=a%20b HTTP/1.1"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("cookie: app=1; other=2\r\n"),
        "{text}"
    );
    assert!(!text.contains("__trythis_preview"), "{text}");
    assert!(text.ends_with("body 100000\n"), "{text}");

    // An upgrade (what a WebSocket does) is joined end to end.
    let mut raw = tokio::net::TcpStream::connect(app.addr).await?;
    raw.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {id}-8000.preview.localhost:{}\r\nCookie: {cookie}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            app.addr.port()
        )
        .as_bytes(),
    )
    .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), raw.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    raw.write_all(b"ping").await?;
    let n = tokio::time::timeout(Duration::from_secs(20), raw.read(&mut buf)).await??;
    assert_eq!(&buf[..n], b"echo:ping");
    drop(raw);

    // A port where nothing listens: a page that says so.
    let closed = enter(&app, &v, &id, 8001, "%2F").await?;
    let nothing = other_port
        .get(format!("{other_origin}/"))
        .header("cookie", &closed)
        .send()
        .await?;
    assert_eq!(nothing.status().as_u16(), 502);
    assert!(nothing
        .text()
        .await?
        .contains("Nothing answers on port 8001"));

    // It ends with the sandbox.
    assert_eq!(v.stop_sandbox(&id).await?.status, 204);
    let after = client
        .get(format!("{origin}/"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(after.status().as_u16(), 410);
    Ok(())
}

#[tokio::test]
async fn a_share_links_viewer_opens_the_previews_until_the_link_is_revoked() -> Result {
    let app = TestApp::start().await?;
    let (v, id, _shell) = serving(&app).await?;
    let made = v
        .call(
            "POST",
            &format!("/api/sandboxes/{id}/shares"),
            Some(serde_json::json!({ "mode": "view" })),
        )
        .await?;
    assert_eq!(made.status, 201, "{}", made.body);
    let url = made.body["url"].as_str().ok_or("no share url")?;
    let token = url.rsplit('/').next().ok_or("no token")?.to_string();
    let share_id = made.body["id"].as_str().ok_or("no share id")?.to_string();

    // The viewer (another identity) finds the port with an address that opens for the link.
    let viewer = app.visitor().await?;
    let mut ports = serde_json::Value::Null;
    for _ in 0..40 {
        ports = viewer
            .call("GET", &format!("/api/shares/{token}"), None)
            .await?
            .body["ports"]
            .clone();
        if ports.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let entry = format!("{}/preview/{id}/8000?share={token}", v.base);
    assert_eq!(
        ports,
        serde_json::json!([{ "port": 8000, "preview_url": entry }])
    );

    let (client, origin) = preview_client(&app, &id, 8000)?;
    // Without the link the viewer is no one to the preview; a made-up token opens nothing.
    let bare = client
        .get(format!("{}/preview/{id}/8000", v.base))
        .header("cookie", &viewer.cookie)
        .send()
        .await?;
    assert_eq!(bare.status().as_u16(), 403);
    let made_up = client
        .get(format!(
            "{}/preview/{id}/8000?share={}",
            v.base,
            "ab".repeat(32)
        ))
        .header("cookie", &viewer.cookie)
        .send()
        .await?;
    assert_eq!(made_up.status().as_u16(), 404);

    let to = client
        .get(&entry)
        .header("cookie", &viewer.cookie)
        .send()
        .await?;
    assert_eq!(to.status().as_u16(), 303);
    let entered = client.get(location(&to)).send().await?;
    assert_eq!(entered.status().as_u16(), 303);
    let cookie = entered
        .headers()
        .get("set-cookie")
        .and_then(|h| h.to_str().ok())
        .and_then(|c| c.split(';').next())
        .ok_or("no preview cookie")?
        .to_string();
    let page = client
        .get(format!("{origin}/shared"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await?.starts_with("saw GET /shared HTTP/1.1"));

    // Revoked: the viewer's preview ends at once.
    let revoked = v
        .call(
            "DELETE",
            &format!("/api/sandboxes/{id}/shares/{share_id}"),
            None,
        )
        .await?;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let after = client
        .get(format!("{origin}/shared"))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(after.status().as_u16(), 410);
    let again = client
        .get(&entry)
        .header("cookie", &viewer.cookie)
        .send()
        .await?;
    assert_eq!(again.status().as_u16(), 410);
    Ok(())
}
