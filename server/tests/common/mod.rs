//! Test harness: boots the real server (real engine, registry, ttyd, SQLite) on a loopback port,
//! with a fixture project whose image is built from the platform's base image and pushed.
#![allow(dead_code)]
pub mod http_visitor;
pub mod plain_build;
#[allow(unused_imports)] // each test binary uses its own share of these
pub use http_visitor::{press_try, set_cookie, visitor_credentials};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use server::config::Config;
use std::{net::SocketAddr, time::Duration};
use tokio::sync::OnceCell;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The fixture image: the base image plus a marker file in the home directory.
/// The fixture also declares a VOLUME and a fast HEALTHCHECK: sandboxes must bound the first
/// (tmpfs, never a host-disk volume) and never run the second.
const FIXTURE_DOCKERFILE: &str = "FROM {BASE}\nRUN echo 'export FIXTURE_READY=yes' >> /root/.bashrc && echo fixture > /root/fixture.txt && mkdir -p /data && echo seeded > /data/seed.txt\nVOLUME /data\nHEALTHCHECK --interval=1s CMD touch /tmp/health-ran\nWORKDIR /root\n";

static FIXTURE: OnceCell<(String, String, i64)> = OnceCell::const_new();

pub fn ttyd_path() -> String {
    std::env::var("TRYTHIS_TEST_TTYD")
        .unwrap_or_else(|_| format!("{}/../data/bin/ttyd", env!("CARGO_MANIFEST_DIR")))
}

pub fn relay_path() -> String {
    std::env::var("TRYTHIS_TEST_RELAY")
        .unwrap_or_else(|_| format!("{}/../data/bin/trythis-relay", env!("CARGO_MANIFEST_DIR")))
}

/// Builds and pushes the fixture image once per test binary: (repository, digest, size).
pub async fn fixture_image(config: &Config) -> Result<(String, String, i64)> {
    let out = FIXTURE
        .get_or_try_init(|| async {
            let base = std::env::var("TRYTHIS_TEST_BASE_IMAGE")
                .unwrap_or_else(|_| "trythis/base:bookworm".into());
            let docker = server::engine::connect_docker(config).await.map_err(|e| {
                format!("Docker is required for these tests and is not answering: {e}")
            })?;
            let registry = registry::Registry::new(config.registry.clone());
            let repo = registry.config().repository_for("test-fixture");
            plain_build::plain_build_and_push(
                &docker,
                &FIXTURE_DOCKERFILE.replace("{BASE}", &base),
                &repo,
                "t1",
            )
            .await?;
            let img = registry
                .resolve(&repo, "t1")
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((repo, img.digest, img.size))
        })
        .await?;
    Ok(out.clone())
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: server::http::state::AppState,
    pub dir: std::path::PathBuf,
    /// This server's installation id: its containers carry it, and go with it.
    instance: String,
    /// The engine its sandboxes run on, when not the default one (`docker -H`).
    engine: Option<String>,
}

/// An address no other test (or earlier run) uses: the SMTP server's mailboxes are shared.
pub fn unique_email(local: &str) -> String {
    format!(
        "{local}@{}.example.test",
        &server::secrets::random_id()[..10]
    )
}

/// The local SMTP server `scripts/test.sh` starts (aiosmtpd): mails to `a@b` land in
/// `$TRYTHIS_TEST_MAILDIR/a@b/`.
pub fn smtp_url() -> Result<String> {
    std::env::var("TRYTHIS_TEST_SMTP_URL").map_err(|_| {
        "TRYTHIS_TEST_SMTP_URL is not set: these tests need the local SMTP server that scripts/test.sh starts (scripts/lib.sh ensure_smtp_sink)".into()
    })
}

pub fn maildir() -> Result<std::path::PathBuf> {
    std::env::var("TRYTHIS_TEST_MAILDIR")
        .map(std::path::PathBuf::from)
        .map_err(|_| "TRYTHIS_TEST_MAILDIR is not set (scripts/lib.sh ensure_smtp_sink)".into())
}

/// A quoted-printable text decoded (what a mail client shows): soft line breaks joined, `=XX`
/// bytes restored.
pub fn decode_qp(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every mail the SMTP server received for `email`, oldest first, decoded.
pub fn mails_to(email: &str) -> Result<Vec<String>> {
    let dir = server::accounts::mail::recipient_dir(&maildir()?, email);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    files.sort();
    Ok(files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|m| decode_qp(&m))
        .collect())
}

/// The newest mail to `email` that contains `needle`, waiting up to 15 s for it to arrive.
pub async fn mail_to(email: &str, needle: &str) -> Result<String> {
    for _ in 0..150 {
        if let Some(m) = mails_to(email)?
            .into_iter()
            .rev()
            .find(|m| m.contains(needle))
        {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no mail to {email} containing {needle:?} arrived within 15 s").into())
}

/// The token of the `{path}?token=` link in a mail.
pub fn link_token(mail: &str, path: &str) -> Result<String> {
    let marker = format!("{path}?token=");
    let at = mail.find(&marker).ok_or("no link in the mail")? + marker.len();
    Ok(mail[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect())
}

pub fn test_config(dir: &std::path::Path, extra: &[(&str, &str)]) -> Result<Config> {
    let db = format!("sqlite://{}/t.db", dir.display());
    let smtp = smtp_url()?;
    let data = dir.display().to_string();
    let ttyd = ttyd_path();
    let relay = relay_path();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("TRYTHIS_DATA_DIR", &data),
        ("TRYTHIS_DATABASE_URL", &db),
        ("TRYTHIS_TTYD_PATH", &ttyd),
        ("TRYTHIS_RELAY_PATH", &relay),
        // Each test server's proxies take free ports of the reserved range.
        ("TRYTHIS_EGRESS_PROXY_PORT", "0"),
        ("TRYTHIS_LOG", "warn"),
        ("TRYTHIS_SMTP_URL", &smtp),
        // Every test client is 127.0.0.1; the per-client share is tested in the fast tier.
        ("TRYTHIS_SANDBOXES_PER_IP", "1000"),
    ];
    pairs.extend_from_slice(extra);
    Ok(Config::from_pairs(pairs)?)
}

impl TestApp {
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts the full server with extra config keys, and publishes the fixture project `fixture`.
    pub async fn start_with(extra: &[(&str, &str)]) -> Result<Self> {
        // Warnings and errors of the server show in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
        let dir =
            std::env::temp_dir().join(format!("trythis-test-{}", server::secrets::random_id()));
        std::fs::create_dir_all(&dir)?;
        // The port first: the site's address is its public URL, the only `Host` and `Origin`
        // state-changing requests may name.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let site = format!("http://{addr}");
        let mut pairs = vec![("TRYTHIS_PUBLIC_URL", site.as_str())];
        pairs.extend_from_slice(extra);
        let config = test_config(&dir, &pairs)?;
        let (repo, digest, size) = fixture_image(&config).await?;
        let state = server::build_state(config).await?;
        let instance = db::instance_id(&state.db, server::secrets::random_id).await?;
        publish_fixture(&state.db, "fixture", "Databases", &repo, &digest, size).await?;
        let router = server::router(state.clone());
        tokio::spawn(async move {
            let _ = server::serve(listener, router, std::future::pending()).await;
        });
        let engine = extra
            .iter()
            .find(|(k, _)| *k == "TRYTHIS_DOCKER_ENDPOINT")
            .map(|(_, v)| v.to_string());
        Ok(Self {
            addr,
            state,
            dir,
            instance,
            engine,
        })
    }

    /// Kills (SIGKILL) this server's ttyd and with it every terminal connection it held, as the
    /// server's own death would; the shells live on in their holders.
    pub fn kill_ttyd(&self) -> Result {
        let engine = self
            .engine
            .as_deref()
            .unwrap_or("unix:///var/run/docker.sock");
        let socket = server::sandbox::ttyd_host::socket_dir(&self.dir, engine).join("ttyd.sock");
        kill_ttyd_serving(&socket.to_string_lossy())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new visitor: an HTTP client that keeps this visitor's cookie.
    pub async fn visitor(&self) -> Result<Visitor> {
        // A request the server never answers fails its test, naming the request, instead of
        // holding the suite until CI's limit (seen once: a page or Stop in a parallel run).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let resp = http.get(self.url("/api/projects")).send().await?;
        let cookie = set_cookie(&resp, "trythis_vid").ok_or("no visitor cookie")?;
        let mut v = Visitor {
            http,
            cookie,
            csrf: String::new(),
            base: format!("http://{}", self.addr),
        };
        v.refresh_csrf().await?;
        Ok(v)
    }

    /// A new signed-up account (a unique email), as an HTTP client with its session cookie.
    pub async fn user(&self) -> Result<Visitor> {
        let mut v = self.visitor().await?;
        let email = unique_email("user");
        v.sign_up(&email, "correct horse battery").await?;
        Ok(v)
    }

    /// Containers of this test's sandboxes still present in the engine.
    pub async fn containers_of(&self, sandbox_id: &str) -> Result<usize> {
        let listed = self.state.sandboxes.runtime().list().await?;
        Ok(listed.iter().filter(|l| l.sandbox_id == sandbox_id).count())
    }
}

impl Drop for TestApp {
    /// The test's files and every container its server started (a test that ends without
    /// stopping its sandboxes must not leave them running on the machine).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let label = format!(
            "label={}={}",
            server::sandbox::runtime::LABEL_INSTANCE,
            self.instance
        );
        let docker = || {
            let mut cmd = std::process::Command::new("docker");
            if let Some(engine) = &self.engine {
                cmd.args(["-H", engine]);
            }
            cmd
        };
        let listed = docker().args(["ps", "-aq", "--filter", &label]).output();
        if let Ok(out) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = docker().args(["rm", "-fv"]).args(&ids).output();
            }
        }
    }
}

pub async fn publish_fixture(
    db: &db::DatabaseConnection,
    slug: &str,
    category: &str,
    repo: &str,
    digest: &str,
    size: i64,
) -> Result<db::projects::Model> {
    let p = db::projects::upsert(
        db,
        &db::projects::NewProject {
            slug: slug.into(),
            name: format!("Fixture {slug}"),
            summary: "A test project".into(),
            description: "Used by the tests.".into(),
            category: category.into(),
            tags: vec!["test".into()],
            welcome: Some("Welcome to the fixture".into()),
            ..Default::default()
        },
    )
    .await?;
    db::projects::set_image(db, p.id, repo, digest, size).await?;
    Ok(p)
}

/// The fixture image published again as `net-fixture`, a project whose sandboxes have egress
/// (through the platform's proxy).
pub async fn publish_net_fixture(app: &TestApp) -> Result<db::projects::Model> {
    let (repo, digest, size) = fixture_image(&app.state.config).await?;
    let p = db::projects::upsert(
        &app.state.db,
        &db::projects::NewProject {
            slug: "net-fixture".into(),
            name: "Networked fixture".into(),
            summary: "A test project with egress".into(),
            description: "Used by the tests.".into(),
            category: "Databases".into(),
            tags: vec!["test".into()],
            welcome: Some("Welcome to the fixture".into()),
            egress: true,
            ..Default::default()
        },
    )
    .await?;
    db::projects::set_image(&app.state.db, p.id, &repo, &digest, size).await?;
    Ok(p)
}

pub struct Visitor {
    pub http: reqwest::Client,
    /// The `Cookie` header this browser sends (visitor cookie, then the session's once signed in).
    pub cookie: String,
    /// The CSRF token of this browser's current identity (from `GET /api/me`).
    pub csrf: String,
    pub base: String,
}

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

impl Reply {
    /// The fields a 400's problems name, in order.
    pub fn problem_fields(&self) -> Vec<&str> {
        self.body["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["field"].as_str())
            .collect()
    }
}

impl Visitor {
    pub async fn refresh_csrf(&mut self) -> Result<()> {
        let me = self.call("GET", "/api/me", None).await?;
        self.csrf = me.body["csrf_token"]
            .as_str()
            .ok_or("no csrf token")?
            .to_string();
        Ok(())
    }

    /// This browser's `trythis_session=…` cookie (to plant in another browser).
    pub fn session_cookie(&self) -> Result<String> {
        Ok(self
            .cookie
            .split("; ")
            .find(|c| c.starts_with("trythis_session="))
            .ok_or("no session cookie")?
            .to_string())
    }

    /// Replaces the session cookie (keeps the visitor cookie).
    pub fn set_session(&mut self, session: Option<&str>) {
        let visitor = self
            .cookie
            .split("; ")
            .find(|c| c.starts_with("trythis_vid="))
            .unwrap_or("")
            .to_string();
        self.cookie = match session {
            Some(s) => format!("{visitor}; {s}"),
            None => visitor,
        };
    }

    /// Signs up or logs in (`/api/auth/signup` or `/login`); keeps the new session cookie.
    pub async fn auth(&mut self, what: &str, email: &str, password: &str) -> Result<Reply> {
        self.post_auth(
            &format!("/api/auth/{what}"),
            serde_json::json!({ "email": email, "password": password }),
        )
        .await
    }

    /// POSTs to an auth endpoint and keeps the session cookie it sets, if any.
    pub async fn post_auth(&mut self, path: &str, body: serde_json::Value) -> Result<Reply> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let session = set_cookie(&resp, "trythis_session");
        let body = serde_json::from_str(&resp.text().await?).unwrap_or(serde_json::Value::Null);
        if let Some(s) = session.filter(|s| s != "trythis_session=") {
            self.set_session(Some(&s));
            self.refresh_csrf().await?;
        }
        Ok(Reply {
            status,
            retry_after: None,
            body,
        })
    }

    /// The sign-up form: an address (its password is chosen on the mailed link's page).
    pub async fn signup_form(&mut self, email: &str) -> Result<Reply> {
        self.post_auth("/api/auth/signup", serde_json::json!({ "email": email }))
            .await
    }

    /// The newest sign-up link mailed to `email`.
    pub async fn signup_link(email: &str) -> Result<String> {
        let mail = mail_to(email, "/verify?token=").await?;
        link_token(&mail, "/verify")
    }

    /// The whole sign-up: the form (202), the mail, its link's page with the password (201,
    /// signed in: this browser asked for the link).
    pub async fn sign_up(&mut self, email: &str, password: &str) -> Result<()> {
        self.sign_up_with(email, password, false).await
    }

    /// Signs up as [`Visitor::sign_up`], ticking "Bring my tries into this account" when `bring`.
    pub async fn sign_up_with(&mut self, email: &str, password: &str, bring: bool) -> Result<()> {
        let r = self.signup_form(email).await?;
        if r.status != 202 {
            return Err(format!("sign-up answered {}: {}", r.status, r.body).into());
        }
        let token = Self::signup_link(email).await?;
        let r = self
            .post_auth(
                "/api/auth/verify",
                serde_json::json!({ "token": token, "password": password, "bring": bring }),
            )
            .await?;
        if r.status != 201 || r.body["signed_in"] != true {
            return Err(format!("the sign-up link answered {}: {}", r.status, r.body).into());
        }
        Ok(())
    }

    /// Stops sandbox `id` as its owner would (the page's Stop).
    pub async fn stop_sandbox(&self, id: &str) -> Result<Reply> {
        self.call("DELETE", &format!("/api/sandboxes/{id}"), None)
            .await
    }

    /// The status of a body-less call.
    pub async fn status_of(&self, method: &str, path: &str) -> Result<u16> {
        Ok(self.call(method, path, None).await?.status)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if method != "GET" {
            req = req.header("x-csrf-token", &self.csrf);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }

    pub async fn try_project(&self, slug: &str) -> Result<Reply> {
        self.call(
            "POST",
            &format!("/api/projects/{slug}/try"),
            Some(serde_json::json!({})),
        )
        .await
    }

    /// A terminal ticket for sandbox `id` (`POST /api/sandboxes/{id}/ticket`); Err: the status.
    pub async fn terminal_ticket(&self, id: &str) -> std::result::Result<String, u16> {
        let r = self
            .call("POST", &format!("/api/sandboxes/{id}/ticket"), None)
            .await
            .map_err(|_| 0u16)?;
        match r.body["ticket"].as_str() {
            Some(t) if r.status == 200 => Ok(t.to_string()),
            _ => Err(r.status),
        }
    }

    /// Opens the terminal WebSocket as the site's page does (a fresh ticket, the site's
    /// `Origin`) and says nothing; Err carries the HTTP status of a refusal.
    /// A refused ticket (a stranger, an unknown sandbox) connects without one, so the socket's
    /// own answer is what the caller sees.
    pub async fn terminal_socket(&self, id: &str) -> std::result::Result<Ws, u16> {
        let ticket = self.terminal_ticket(id).await.ok();
        self.terminal_socket_with(id, ticket.as_deref(), Some(&self.base.clone()))
            .await
    }

    /// Opens the terminal WebSocket with the given ticket and `Origin` (None: not sent).
    pub async fn terminal_socket_with(
        &self,
        id: &str,
        ticket: Option<&str>,
        origin: Option<&str>,
    ) -> std::result::Result<Ws, u16> {
        self.socket_at(&format!("/s/{id}/ws"), ticket, origin).await
    }

    /// Opens a terminal WebSocket at `path` (`/s/{id}/ws`, a share's `/shares/{id}/ws`) with the
    /// given ticket and `Origin` (None: not sent); Err carries the HTTP status of a refusal.
    pub async fn socket_at(
        &self,
        path: &str,
        ticket: Option<&str>,
        origin: Option<&str>,
    ) -> std::result::Result<Ws, u16> {
        let mut url = format!("{}{path}", self.base.replacen("http://", "ws://", 1));
        if let Some(t) = ticket {
            url.push_str(&format!("?ticket={t}"));
        }
        let mut req = url.into_client_request().map_err(|_| 0u16)?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
        req.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&self.cookie).map_err(|_| 0u16)?,
        );
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(o).map_err(|_| 0u16)?);
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(_) => Err(0),
        }
    }

    /// Opens the terminal WebSocket; Err carries the HTTP status if the upgrade is refused.
    pub async fn terminal(&self, id: &str) -> std::result::Result<Shell, u16> {
        self.terminal_sized(id, 120, 40).await
    }

    /// Opens the terminal WebSocket from a browser whose terminal is `cols` × `rows`.
    pub async fn terminal_sized(
        &self,
        id: &str,
        cols: u16,
        rows: u16,
    ) -> std::result::Result<Shell, u16> {
        Shell::hello(self.terminal_socket(id).await?, cols, rows).await
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal seen through the platform's proxy, speaking ttyd's protocol.
pub struct Shell {
    pub ws: Ws,
    /// Everything the shell printed so far.
    pub screen: String,
    /// The command byte of every server frame received.
    pub frames: Vec<u8>,
}

impl Shell {
    /// The terminal on an open socket, after the browser's hello (its size).
    pub async fn hello(ws: Ws, cols: u16, rows: u16) -> std::result::Result<Shell, u16> {
        let mut shell = Shell {
            ws,
            screen: String::new(),
            frames: Vec::new(),
        };
        let hello =
            serde_json::json!({ "AuthToken": "", "columns": cols, "rows": rows }).to_string();
        shell
            .ws
            .send(Message::Binary(Bytes::from(hello)))
            .await
            .map_err(|_| 0u16)?;
        Ok(shell)
    }

    pub async fn type_line(&mut self, line: &str) -> Result {
        let mut f = vec![b'0'];
        f.extend_from_slice(line.as_bytes());
        f.push(b'\r');
        self.ws.send(Message::Binary(Bytes::from(f))).await?;
        Ok(())
    }

    /// Sends bytes as typed keys (control characters included).
    pub async fn send_keys(&mut self, keys: &[u8]) -> Result {
        let mut f = vec![b'0'];
        f.extend_from_slice(keys);
        self.ws.send(Message::Binary(Bytes::from(f))).await?;
        Ok(())
    }

    /// What the browser sends when its terminal changes size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result {
        let mut f = vec![b'1'];
        f.extend(
            serde_json::json!({ "columns": cols, "rows": rows })
                .to_string()
                .into_bytes(),
        );
        self.ws.send(Message::Binary(Bytes::from(f))).await?;
        Ok(())
    }

    /// Waits up to `left` for the next frame and adds its output to the screen; Err when the
    /// terminal closed or ended.
    async fn read_frame(&mut self, left: Duration) -> Result {
        match tokio::time::timeout(left, self.ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) if !b.is_empty() => {
                self.frames.push(b[0]);
                if b[0] == b'0' {
                    self.screen.push_str(&String::from_utf8_lossy(&b[1..]));
                }
                Ok(())
            }
            Ok(Some(Ok(Message::Close(c)))) => Err(format!(
                "terminal closed: {c:?}; screen (its end):\n{}",
                tail_of(&self.screen, 4000)
            )
            .into()),
            Ok(Some(Ok(_))) | Err(_) => Ok(()),
            Ok(Some(Err(e))) => Err(e.into()),
            Ok(None) => Err(format!(
                "terminal ended; screen (its end):\n{}",
                tail_of(&self.screen, 4000)
            )
            .into()),
        }
    }

    /// Reads until the screen matches `pattern` (a regex) or `timeout` passes.
    pub async fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        let re = regex_lite::Regex::new(pattern)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = re.find(&self.screen) {
                return Ok(m.as_str().to_string());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out waiting for /{pattern}/; screen (its end):\n{}",
                    tail_of(&self.screen, 4000)
                )
                .into());
            }
            self.read_frame(left).await?;
        }
    }

    /// Reads until `needle` shows after what was already on the screen when called; a long
    /// output is searched once, not once per frame.
    pub async fn expect_literal(&mut self, needle: &str, timeout: Duration) -> Result {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut from = 0;
        loop {
            if self.screen[from..].contains(needle) {
                return Ok(());
            }
            from = self.screen.len().saturating_sub(needle.len());
            while !self.screen.is_char_boundary(from) {
                from -= 1;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out waiting for {needle:?}; screen (its end):\n{}",
                    tail_of(&self.screen, 4000)
                )
                .into());
            }
            self.read_frame(left).await?;
        }
    }

    /// Reads until the server closes the terminal; returns the close reason.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return Err(format!("still open; screen:\n{}", self.screen).into()),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Ok(c
                        .map(|c| format!("{} {}", u16::from(c.code), c.reason))
                        .unwrap_or_default())
                }
                Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&b'0') => {
                    self.screen.push_str(&String::from_utf8_lossy(&b[1..]));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => return Ok(String::new()),
            }
        }
    }

    /// Runs a command and returns its output (between unique markers, the status line included).
    pub async fn run(&mut self, cmd: &str, timeout: Duration) -> Result<String> {
        let tag = format!("{:x}", rand_u32());
        let start = self.screen.len();
        self.type_line(&format!("echo B{tag}Q; {cmd}; echo E{tag}Q$?"))
            .await?;
        // The status line's end: `E<tag>Q<status>` then the line break (the typed line has `$?`).
        self.expect_literal(&format!("\nE{tag}Q"), timeout).await?;
        let pat = format!(r"(?s)[\r\n]B{tag}Q.*?[\r\n]E{tag}Q\d+\r");
        let re = regex_lite::Regex::new(&pat)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = re.find(&self.screen[start..]) {
                return Ok(m.as_str().trim_end_matches('\r').to_string());
            }
            // The status line may arrive in pieces: read on (a "\r" already on the screen would
            // satisfy a wait for one at once, and the search would spin without reading).
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out waiting for the end of {cmd:?}; screen (its end):\n{}",
                    tail_of(&self.screen, 4000)
                )
                .into());
            }
            self.read_frame(left).await?;
        }
    }
}

/// The last `n` bytes of a screen (at a character boundary), for failure messages.
pub fn tail_of(screen: &str, n: usize) -> &str {
    let mut from = screen.len().saturating_sub(n);
    while !screen.is_char_boundary(from) {
        from += 1;
    }
    &screen[from..]
}

pub fn base_image() -> String {
    std::env::var("TRYTHIS_TEST_BASE_IMAGE").unwrap_or_else(|_| "trythis/base:bookworm".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rand_u32() % 1_000_000)
}

/// A publish request for `slug` with the given recipe fields (`dockerfile` or `script`).
pub fn project(slug: &str, recipe: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "slug": slug, "name": format!("Tool {slug}"), "summary": "A tool built by the tests.",
        "description": "Run `hello-tool --version`.", "category": "CLI tools", "tags": ["test"],
    });
    for (k, val) in recipe.as_object().into_iter().flatten() {
        v[k] = val.clone();
    }
    v
}

/// A build's log as its SSE endpoint replays it (`event: log\ndata: …` per line, then the state).
pub async fn build_log(app: &TestApp, v: &Visitor, id: &str) -> Result<String> {
    Ok(v.http
        .get(app.url(&format!("/api/builds/{id}/log")))
        .send()
        .await?
        .text()
        .await?)
}

/// Waits for a build to finish; returns its JSON.
pub async fn wait_build(v: &Visitor, id: &str, limit: Duration) -> Result<serde_json::Value> {
    let t0 = std::time::Instant::now();
    loop {
        let r = v.call("GET", &format!("/api/builds/{id}"), None).await?;
        let state = r.body["state"].as_str().unwrap_or("").to_string();
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            return Ok(r.body);
        }
        if t0.elapsed() > limit {
            return Err(format!("build {id} still {state} after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Submits a project; returns its build id.
pub async fn submit(v: &Visitor, body: serde_json::Value) -> Result<String> {
    let r = v.call("POST", "/api/projects", Some(body)).await?;
    assert_eq!(r.status, 202, "{:?}", r.body);
    Ok(r.body["build_id"]
        .as_str()
        .ok_or("no build id")?
        .to_string())
}

/// Submits `slug` built from `dockerfile`; returns its build id.
pub async fn submit_dockerfile(v: &Visitor, slug: &str, dockerfile: &str) -> Result<String> {
    submit(
        v,
        project(slug, serde_json::json!({ "dockerfile": dockerfile })),
    )
    .await
}

/// Asks for a rebuild of `slug` with `recipe` (202 expected); returns its build id.
pub async fn rebuild(v: &Visitor, slug: &str, recipe: serde_json::Value) -> Result<String> {
    let r = v
        .call(
            "POST",
            &format!("/api/projects/{slug}/builds"),
            Some(recipe),
        )
        .await?;
    assert_eq!(r.status, 202, "{:?}", r.body);
    Ok(r.body["build_id"]
        .as_str()
        .ok_or("no build id")?
        .to_string())
}

/// The project's public JSON as `v` sees it.
pub async fn project_json(v: &Visitor, slug: &str) -> Result<serde_json::Value> {
    Ok(v.call("GET", &format!("/api/projects/{slug}"), None)
        .await?
        .body)
}

pub fn rand_u32() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    nanos ^ std::process::id().rotate_left(16)
}

/// Free bytes of the file system holding `path` (the host disk a sandbox must not fill).
pub fn free_bytes(path: &str) -> Result<u64> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail", path])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().nth(1).ok_or("df output")?.trim().parse()?)
}

/// The pids cgroup count of a sandbox's container (cgroup v1), as the host sees it.
pub async fn pids_in_container(sandbox_id: &str) -> Result<u64> {
    Ok(cgroup_value(sandbox_id, "pids", "pids.current")
        .await?
        .trim()
        .parse()?)
}

/// CPU time the sandbox's cgroup has used (gVisor's kernel and everything in it), host-side.
pub async fn cpu_used(sandbox_id: &str) -> Result<Duration> {
    let ns: u64 = cgroup_value(sandbox_id, "cpuacct", "cpuacct.usage")
        .await?
        .trim()
        .parse()?;
    Ok(Duration::from_nanos(ns))
}

/// A file of the sandbox container's cgroup (v1, as on this machine) under `controller`.
async fn cgroup_value(sandbox_id: &str, controller: &str, file: &str) -> Result<String> {
    let path = cgroup_path(sandbox_id, controller).await?;
    Ok(std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{controller}{path}/{file}"
    ))?)
}

/// The sandbox container's cgroup under `controller` (v1), as its init process sees it: e.g.
/// `/trythis-sandboxes/<container id>`.
pub async fn cgroup_path(sandbox_id: &str, controller: &str) -> Result<String> {
    let out = tokio::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &format!("trythis-{sandbox_id}"),
        ])
        .output()
        .await?;
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    Ok(cgroup
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == controller))
        })
        .and_then(|l| l.splitn(3, ':').nth(2))
        .ok_or_else(|| format!("no {controller} cgroup"))?
        .to_string())
}

/// ` ---> 3f2a9c1b7d4e` in a build log: the image a step made (test-side reading of an honest log).
pub fn logged_layer(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> ")?;
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// ` ---> Running in 62c99f4428b0` in a build log: a step's container.
pub fn logged_container(line: &str) -> Option<&str> {
    let id = line.trim().strip_prefix("---> Running in ")?;
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

impl TestApp {
    /// The engine builds run in.
    pub fn build_engine(&self) -> bollard::Docker {
        self.state
            .builds
            .engines()
            .expect("engine-backed builds")
            .build
    }
}

/// A sandbox of the fixture image, started straight through a runtime (no server involved).
pub fn fixture_spec(
    id: &str,
    owner: &str,
    repo: &str,
    digest: &str,
) -> server::sandbox::runtime::LaunchSpec {
    server::sandbox::runtime::LaunchSpec {
        sandbox_id: id.into(),
        owner: owner.into(),
        project: "fixture".into(),
        image: format!("{repo}@{digest}"),
        expires_unix: 0,
        egress: None,
        welcome: None,
    }
}

/// Every container of `engine` (running or not) carrying `label` (`key=value`).
pub async fn containers_labelled(
    engine: &bollard::Docker,
    label: &str,
) -> Result<Vec<bollard::models::ContainerSummary>> {
    let filters = std::collections::HashMap::from([("label", vec![label])]);
    Ok(engine
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?)
}

/// Containers and images of build `id` still in the build engine, found by the build's label.
pub async fn build_leftovers(app: &TestApp, id: &str) -> Result<(usize, usize)> {
    let engine = app.build_engine();
    let label = format!("{}={id}", server::builds::dockerfile::BUILD_LABEL);
    let filters = std::collections::HashMap::from([("label", vec![label.as_str()])]);
    let containers = containers_labelled(&engine, &label).await?;
    let images = engine
        .list_images(Some(
            bollard::query_parameters::ListImagesOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    Ok((containers.len(), images.len()))
}

/// SIGKILL to the ttyd listening on `socket` (its command line names it).
pub fn kill_ttyd_serving(socket: &str) -> Result {
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("ttyd")) && args.iter().any(|a| a == socket) {
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
            return if status.success() {
                Ok(())
            } else {
                Err(format!("kill {pid}: {status}").into())
            };
        }
    }
    Err(format!("no ttyd serves {socket}").into())
}

/// The address of a new, empty PostgreSQL database on the server `scripts/lib.sh
/// ensure_postgres` starts (`TRYTHIS_TEST_POSTGRES_URL`); without it the test fails, it does not
/// skip.
pub async fn fresh_postgres_url() -> Result<String> {
    use db::sea_orm::ConnectionTrait;
    let url = std::env::var("TRYTHIS_TEST_POSTGRES_URL").map_err(|_| {
        "TRYTHIS_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL"
    })?;
    let admin = db::sea_orm::Database::connect(&url).await?;
    let name = format!(
        "trythis_test_{}_{}_{}",
        std::process::id(),
        rand_u32(),
        server::secrets::random_id()[..8].to_lowercase()
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    let base = url.rsplit_once('/').map(|(b, _)| b).ok_or("bad url")?;
    Ok(format!("{base}/{name}"))
}

/// Two replicas (app servers) of one installation over one new PostgreSQL database, named
/// `replica-a` and `replica-b`; B starts after A, in A's data directory (the instance secret:
/// a visitor's cookie is good on both, as behind a load balancer).
pub async fn two_replicas(extra: &[(&str, &str)]) -> Result<(TestApp, TestApp)> {
    let url = fresh_postgres_url().await?;
    let a = replica(&url, "replica-a", None, extra).await?;
    let b = replica(&url, "replica-b", Some(&a), extra).await?;
    Ok((a, b))
}

/// One replica over database `url`, sharing `beside`'s data directory when given.
pub async fn replica(
    url: &str,
    name: &str,
    beside: Option<&TestApp>,
    extra: &[(&str, &str)],
) -> Result<TestApp> {
    let dir = beside.map(|a| a.dir.display().to_string());
    let mut pairs = vec![("TRYTHIS_DATABASE_URL", url), ("TRYTHIS_REPLICA_ID", name)];
    if let Some(dir) = &dir {
        pairs.push(("TRYTHIS_DATA_DIR", dir));
    }
    pairs.extend_from_slice(extra);
    TestApp::start_with(&pairs).await
}

impl Visitor {
    /// The same browser talking to another replica (`base`: its address), as a load balancer
    /// would send it.
    pub fn through(&self, base: &str) -> Visitor {
        Visitor {
            http: self.http.clone(),
            cookie: self.cookie.clone(),
            csrf: self.csrf.clone(),
            base: base.to_string(),
        }
    }
}

/// A new visitor's Try of the fixture with its terminal open (120 × 40).
pub async fn owner_with_terminal(app: &TestApp) -> Result<(Visitor, String, Shell)> {
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("no id")?.to_string();
    let mut sh = v
        .terminal(&id)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    sh.expect("Welcome to the fixture", Duration::from_secs(20))
        .await?;
    Ok((v, id, sh))
}

/// A share link made by `owner`: (share id, token).
pub async fn share(owner: &Visitor, sandbox: &str, mode: &str) -> Result<(String, String)> {
    let r = owner
        .call(
            "POST",
            &format!("/api/sandboxes/{sandbox}/shares"),
            Some(serde_json::json!({ "mode": mode })),
        )
        .await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["mode"], mode);
    let url = r.body["url"].as_str().ok_or("no url")?;
    let token = url
        .strip_prefix(&format!("{}/watch/", owner.base))
        .ok_or_else(|| format!("not a watch link: {url}"))?;
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "a 256-bit hex token: {url}"
    );
    Ok((
        r.body["id"].as_str().ok_or("no id")?.to_string(),
        token.to_string(),
    ))
}

/// The viewer's ticket for a link (`POST /api/shares/{token}/ticket`); Err: the status.
pub async fn watch_ticket(viewer: &Visitor, token: &str) -> std::result::Result<String, u16> {
    let r = viewer
        .call("POST", &format!("/api/shares/{token}/ticket"), None)
        .await
        .map_err(|_| 0u16)?;
    match r.body["ticket"].as_str() {
        Some(t) if r.status == 200 => Ok(t.to_string()),
        _ => Err(r.status),
    }
}

/// Opens the link's terminal as its page does (a fresh ticket, the site's `Origin`, a hello of
/// 33 × 11, which must change nothing); Err: the HTTP status of a refusal.
pub async fn watch(
    viewer: &Visitor,
    share_id: &str,
    token: &str,
) -> std::result::Result<Shell, u16> {
    let ticket = watch_ticket(viewer, token).await?;
    let ws = viewer
        .socket_at(
            &format!("/shares/{share_id}/ws"),
            Some(&ticket),
            Some(&viewer.base.clone()),
        )
        .await?;
    Shell::hello(ws, 33, 11).await
}
