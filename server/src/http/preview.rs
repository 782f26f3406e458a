//! Web previews: a server listening in a sandbox, reached from the browser at
//! `{scheme}://{sandbox}-{port}.{TRYTHIS_PREVIEW_BASE}/` — never on the site's own host, so
//! nothing a sandbox serves can read or set the site's cookies or call its API as the visitor.
//!
//! - `dispatch` is the router's outermost layer: a request whose `Host` is under the preview base
//!   never reaches the site's pages, API, identity or headers.
//! - Entry: `GET /preview/{id}/{port}` on the site (owner or admin; a share link's viewer with
//!   `?share=TOKEN`, for as long as the share lives) sends the browser to the
//!   preview host's `/__trythis/enter` with a 60-second signed ticket, which sets a host-only
//!   HttpOnly cookie bound to the sandbox, the port and its owner, checked against the sandbox's
//!   row on every request (it ends with the sandbox: 410).
//! - The bytes travel an engine exec of the relay's `forward PORT` (the sandbox keeps
//!   `network=none`), through hyper's pooled HTTP/1 client; upgrades (WebSocket) are joined.
use crate::config::PreviewBase;
use crate::http::state::AppState;
use crate::sandbox::{exec_io::ExecIo, SandboxService};
use app::model::Identity;
use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    Extension,
};
use hyper_util::client::legacy::{
    connect::{Connected, Connection},
    Client,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The preview host's own cookie; the app behind it never sees it and cannot set it.
pub const COOKIE: &str = "__trythis_preview";
/// Where the preview host takes its entry ticket.
pub const ENTER_PATH: &str = "/__trythis/enter";
const ENTER_PURPOSE: &str = "preview-enter";
const PURPOSE: &str = "preview";
const ENTER_SECONDS: i64 = 60;

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The previews of this server: its base and its client (one pool of connections per sandbox
/// port, each an exec of `relay forward`).
pub struct Previews {
    pub base: PreviewBase,
    client: Client<ExecConnector, Body>,
}

impl Previews {
    pub fn new(base: PreviewBase, sandboxes: Arc<SandboxService>) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(ExecConnector { sandboxes });
        Self { base, client }
    }
}

/// Connects `http://{sandbox}-{port}.sandbox/` to `port` in the sandbox.
#[derive(Clone)]
pub struct ExecConnector {
    sandboxes: Arc<SandboxService>,
}

/// The (sandbox, port) of the client's internal URI host.
fn target_of(uri: &Uri) -> Option<(String, u16)> {
    let label = uri.host()?.strip_suffix(".sandbox")?;
    let (id, port) = label.rsplit_once('-')?;
    Some((id.to_string(), port.parse().ok()?))
}

impl tower::Service<Uri> for ExecConnector {
    type Response = PreviewConn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PreviewConn, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let sandboxes = self.sandboxes.clone();
        Box::pin(async move {
            let (id, port) = target_of(&uri)
                .ok_or_else(|| std::io::Error::other(format!("not a preview target: {uri}")))?;
            let io = sandboxes
                .open_port(&id, port)
                .await
                .map_err(std::io::Error::other)?;
            Ok(PreviewConn(TokioIo::new(io)))
        })
    }
}

/// One exec stream as hyper's connection.
pub struct PreviewConn(TokioIo<ExecIo>);

impl hyper::rt::Read for PreviewConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PreviewConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for PreviewConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// A small page of the platform's own on a preview host (nothing of the site's is loaded there).
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · trythis preview</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:12vh auto;padding:0 1.25rem;color:#1d2330;background:#f7f8fb}}h1{{font-size:1.4rem}}code{{background:#e9ecf3;padding:.1em .35em;border-radius:4px}}p.brand{{color:#5b6477;font-size:.9rem}}</style></head>\
<body><p class=\"brand\">trythis · web preview</p><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = text, // trusted markup of ours; values in it are escaped by the callers
    );
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `?next=` kept only as a path of the same host (never `//host` or `/\host`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let pair = (b == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (b, pair) {
            (_, Some(v)) => {
                out.push(v as u8);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// Who a preview is for: the sandbox's owner (`o~{owner key}`).
fn owner_grant(owner: &app::model::OwnerKey) -> String {
    format!("o~{owner}")
}

fn object(id: &str, port: u16) -> String {
    format!("{id}:{port}")
}

/// `GET /preview/{id}/{port}?next=/path` on the site: the owner (or an admin) is sent to the
/// preview host with a short-lived entry ticket.
pub async fn entry(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((id, port)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let Some(previews) = st.previews.as_ref() else {
        return page(
            StatusCode::NOT_FOUND,
            "Previews are off",
            "This installation serves no web previews (<code>TRYTHIS_PREVIEW_BASE</code> is off).",
        );
    };
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not a port",
            "A preview is of a TCP port from 1 to 65535.",
        );
    };
    // A viewer of a share link enters with its token: the grant is the share's, and ends with it.
    if let Some(token) = query_param(&uri, "share") {
        let grant = match st.sandboxes.shared(&token).await {
            Ok(shared) if shared.sandbox.id == id => format!("s~{}", shared.share.id),
            Ok(_) => {
                return page(
                    StatusCode::FORBIDDEN,
                    "Not this session's",
                    "This share link is for another sandbox.",
                )
            }
            Err(e) => return share_refusal(&e),
        };
        return ticket_redirect(&st, previews, &id, port, &grant, &uri);
    }
    let s = match st
        .sandboxes
        .owned(&crate::http::api::sandboxes::caller(&me), &id)
        .await
    {
        Ok(s) => s,
        Err(crate::sandbox::SandboxError::NotYours) => {
            return page(
                StatusCode::FORBIDDEN,
                "Not your sandbox",
                "Only the person who started this sandbox can open its previews.",
            )
        }
        Err(crate::sandbox::SandboxError::NoSuchSandbox) => {
            return page(
                StatusCode::NOT_FOUND,
                "No such sandbox",
                "There is no sandbox with this address.",
            )
        }
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    if !s.active {
        return ended();
    }
    ticket_redirect(&st, previews, &id, port, &owner_grant(&s.owner), &uri)
}

/// To the preview host's entry with a 60-second ticket for `grant`.
fn ticket_redirect(
    st: &AppState,
    previews: &Previews,
    id: &str,
    port: u16,
    grant: &str,
    uri: &Uri,
) -> Response {
    let expires = chrono::Utc::now().timestamp() + ENTER_SECONDS;
    let ticket = st
        .signer
        .ticket(ENTER_PURPOSE, grant, &object(id, port), expires);
    let next = safe_next(query_param(uri, "next").as_deref());
    let location = format!(
        "{}{ENTER_PATH}?g={}&t={}&next={}",
        previews.base.origin(id, port),
        hex::encode(grant.as_bytes()),
        ticket,
        percent_encode(&next)
    );
    redirect(&location)
}

/// A share link that no longer opens anything, as a page.
fn share_refusal(e: &crate::sandbox::SandboxError) -> Response {
    use crate::sandbox::SandboxError as E;
    match e {
        E::ShareRevoked | E::ShareEnded => page(
            StatusCode::GONE,
            "This shared session has ended",
            "Its owner stopped sharing it, or the sandbox ended, and its previews went with it.",
        ),
        _ => page(
            StatusCode::NOT_FOUND,
            "No such share link",
            "This link does not open a shared session.",
        ),
    }
}

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn ended() -> Response {
    page(
        StatusCode::GONE,
        "This sandbox has ended",
        "Its servers went with it. Start a new Try to run them again.",
    )
}

/// The outermost layer: requests for a preview host go to the sandbox, all else to the site.
pub async fn dispatch(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(previews) = st.previews.as_ref() else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    match previews.base.parse_host(host) {
        None => next.run(req).await,
        Some(None) => page(
            StatusCode::NOT_FOUND,
            "No such preview",
            "A preview's address is <code>{sandbox}-{port}</code> under the preview host.",
        ),
        Some(Some((id, port))) => {
            let t0 = std::time::Instant::now();
            let resp = serve(&st, previews, &id, port, req).await;
            st.metrics.preview(t0.elapsed());
            resp
        }
    }
}

/// The grant in the preview cookie, if it is ours and for this sandbox port.
fn grant_in(st: &AppState, headers: &HeaderMap, id: &str, port: u16) -> Option<String> {
    let value = crate::http::identity::cookie_value(headers, COOKIE)?;
    let (grant_hex, ticket) = value.split_once('.')?;
    let grant = String::from_utf8(hex::decode(grant_hex).ok()?).ok()?;
    st.signer
        .check_ticket(
            ticket,
            PURPOSE,
            &grant,
            &object(id, port),
            chrono::Utc::now().timestamp(),
        )
        .then_some(grant)
}

async fn serve(st: &AppState, previews: &Previews, id: &str, port: u16, req: Request) -> Response {
    if req.uri().path() == ENTER_PATH {
        return enter(st, id, port, req.uri()).await;
    }
    let Some(grant) = grant_in(st, req.headers(), id, port) else {
        return if matches!(*req.method(), Method::GET | Method::HEAD) {
            let next = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            redirect(&format!(
                "{}/preview/{id}/{port}?next={}",
                st.config.public_url,
                percent_encode(next)
            ))
        } else {
            page(
                StatusCode::FORBIDDEN,
                "Open this preview from its Try first",
                "Previews are reached through the sandbox's page on the site.",
            )
        };
    };
    // A share's grant holds while the share does (revoked or ended: 410 at once).
    if let Some(share_id) = grant.strip_prefix("s~") {
        return match st.sandboxes.shared_by_id(share_id).await {
            Ok(shared) if shared.sandbox.id == id => proxy(previews, id, port, req).await,
            Ok(_) => page(
                StatusCode::FORBIDDEN,
                "Not this session's",
                "This share link is for another sandbox.",
            ),
            Err(e) => share_refusal(&e),
        };
    }
    match db::sandboxes::get(&st.db, id).await {
        Ok(Some(s)) if s.active && owner_grant(&s.owner) == grant => {}
        Ok(Some(s)) if !s.active => return ended(),
        Ok(_) => {
            return page(
                StatusCode::FORBIDDEN,
                "Not yours",
                "This preview belongs to someone else's sandbox.",
            )
        }
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    }
    proxy(previews, id, port, req).await
}

/// `/__trythis/enter?g=&t=&next=` on the preview host: the site's ticket becomes this host's
/// own cookie (host-only, HttpOnly), valid as long as the sandbox.
async fn enter(st: &AppState, id: &str, port: u16, uri: &Uri) -> Response {
    let refused = || {
        page(
            StatusCode::FORBIDDEN,
            "This link has expired",
            "Preview links work for a minute. Open the preview again from your Try.",
        )
    };
    let (Some(g), Some(t)) = (query_param(uri, "g"), query_param(uri, "t")) else {
        return refused();
    };
    let Some(grant) = hex::decode(&g).ok().and_then(|b| String::from_utf8(b).ok()) else {
        return refused();
    };
    let now = chrono::Utc::now().timestamp();
    if !st
        .signer
        .check_ticket(&t, ENTER_PURPOSE, &grant, &object(id, port), now)
    {
        return refused();
    }
    let expires = match db::sandboxes::get(&st.db, id).await {
        Ok(Some(s)) if s.active => s.expires_at.timestamp().max(now + 60),
        Ok(_) => return ended(),
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    let ticket = st
        .signer
        .ticket(PURPOSE, &grant, &object(id, port), expires);
    let secure = if st
        .previews
        .as_ref()
        .is_some_and(|p| p.base.scheme == "https")
    {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={g}.{ticket}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        expires - now
    );
    let mut resp = redirect(&safe_next(query_param(uri, "next").as_deref()));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The request's `Cookie` without the platform's own cookie (the app never sees it).
fn strip_own_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(COOKIE))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

/// A `Set-Cookie` of the app as the browser may get it: never the platform's cookie, and never
/// with `Domain=` (a cookie of one preview host stays on it).
fn rewrite_set_cookie(value: &str) -> Option<String> {
    let name = value.split('=').next()?.trim();
    if name == COOKIE {
        return None;
    }
    Some(
        value
            .split(';')
            .filter(|part| {
                !part
                    .trim()
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("domain="))
            })
            .collect::<Vec<_>>()
            .join(";"),
    )
}

fn nothing_listens(port: u16) -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        &format!("Nothing answers on port {port} yet"),
        &format!(
            "Start a server in your Try's terminal that listens on port {port}, for example \
<code>python3 -m http.server {port}</code>, then reload this page."
        ),
    )
}

async fn proxy(previews: &Previews, id: &str, port: u16, mut req: Request) -> Response {
    let wants_upgrade = req.headers().contains_key(header::UPGRADE);
    let client_side = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(uri) = format!("http://{id}-{port}.sandbox{path}").parse::<Uri>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad address",
            "This path cannot be forwarded.",
        );
    };
    let mut headers = parts.headers;
    let upgrade = headers.get(header::UPGRADE).cloned();
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::UPGRADE);
    strip_own_cookie(&mut headers);
    if let (true, Some(u)) = (wants_upgrade, upgrade) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, u);
    }
    let mut out = hyper::Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = headers;
    let mut resp = match previews.client.request(out).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, sandbox = id, port, "preview: no answer");
            return nothing_listens(port);
        }
    };
    let status = resp.status();
    let upgraded =
        (status == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut resp));
    let mut headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || (n == "upgrade" && upgraded.is_none()) {
            continue;
        }
        if name == header::SET_COOKIE {
            if let Some(v) = value
                .to_str()
                .ok()
                .and_then(rewrite_set_cookie)
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                headers.append(header::SET_COOKIE, v);
            }
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let (Some(server_side), Some(client_side)) = (upgraded, client_side) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = futures::future::join(client_side, server_side).await {
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        return r;
    }
    let mut r = Response::new(Body::new(resp.into_body()));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_never_sets_the_platform_cookie_nor_a_domain_cookie() {
        assert_eq!(rewrite_set_cookie("__trythis_preview=x; Path=/"), None);
        assert_eq!(
            rewrite_set_cookie("sid=1; Domain=preview.localhost; Path=/").as_deref(),
            Some("sid=1; Path=/")
        );
        assert_eq!(
            rewrite_set_cookie("a=b; path=/; DOMAIN=.localhost").as_deref(),
            Some("a=b; path=/")
        );
    }

    #[test]
    fn the_app_never_sees_the_platform_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __trythis_preview=secret; b=2"),
        );
        strip_own_cookie(&mut h);
        assert_eq!(
            h.get(header::COOKIE).and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
        let mut only = HeaderMap::new();
        only.append(
            header::COOKIE,
            HeaderValue::from_static("__trythis_preview=secret"),
        );
        strip_own_cookie(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn next_stays_on_the_preview_host() {
        assert_eq!(safe_next(Some("/a?b=c")), "/a?b=c");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(percent_decode(&percent_encode("/a b?c=d&e")), "/a b?c=d&e");
    }
}
