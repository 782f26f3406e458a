//! Whole pages for visitors who see what everyone sees: not signed in and no Try yet (a README
//! badge's crowd). Such a page is rendered once per catalogue change or `TTL`, then served from
//! memory with this visitor's CSRF token and a fresh CSP nonce put in; everyone else gets a
//! render of their own. A change through the API (any successful POST/PUT/PATCH/DELETE) empties
//! the cache; background changes (a build going live) show within `TTL`. Several replicas: a
//! change through one bumps the site generation in the database, and every replica empties its
//! cache when it sees a new one (`follow`, each second): within `FOLLOW_EVERY` plus one query.
use app::model::Identity;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// How long a page may show a background change late.
const TTL: Duration = Duration::from_secs(2);
/// How often each replica looks for a change made through another (`follow`).
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Distinct URLs kept (search queries vary without bound).
const MAX_ENTRIES: usize = 512;
/// Longest path and query cached.
const MAX_KEY: usize = 256;
/// Largest page kept.
const MAX_BODY: usize = 1024 * 1024;
/// What stands for the visitor's CSRF token in one render of a shared page: random per render,
/// so only the slots the server put there are replaced. A fixed marker could be typed into a
/// project's description by its maintainer, and every visitor's token would land in their link.
pub fn csrf_marker() -> String {
    format!("csrf-slot-{}", crate::secrets::random_secret())
}
/// The identity a shared page is rendered for: no account, no history (`v:page-cache`).
fn shared_key() -> app::model::OwnerKey {
    app::model::OwnerKey::Visitor("page-cache".into())
}

#[derive(Clone)]
enum Part {
    Text(Bytes),
    Csrf,
    Nonce,
}

struct Page {
    made: Instant,
    /// Set by the one request that renders this page again once it is older than `TTL`; the
    /// others keep getting it meanwhile (no stampede of renders every `TTL`).
    refreshing: std::sync::atomic::AtomicBool,
    generation: u64,
    headers: HeaderMap,
    /// The page with its per-visitor parts cut out.
    parts: Vec<Part>,
    len: usize,
}

#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, Arc<Page>>>,
    generation: AtomicU64,
    /// README badges by (slug, style): the SVG and its ETag.
    pub badges: Memo<(String, String)>,
    /// Search API answers by (catalogue version, query): the JSON.
    pub searches: Memo<Bytes>,
    /// The site generation `follow` read last (None: not read yet).
    followed: Mutex<Option<Option<String>>>,
}

/// Small values shared by every visitor, kept for `TTL` or until the catalogue changes (the
/// page cache's generation).
pub struct Memo<V> {
    entries: Mutex<HashMap<String, (Instant, u64, V)>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<V: Clone> Memo<V> {
    pub fn get(&self, cache: &PageCache, key: &str) -> Option<V> {
        let generation = cache.generation.load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(made, g, _)| *g == generation && made.elapsed() < TTL)
            .map(|(_, _, v)| v.clone())
    }

    /// `generation`: read before the value was computed (a change meanwhile keeps it out).
    pub fn put(&self, cache: &PageCache, generation: u64, key: String, value: V) {
        if generation != cache.generation.load(Ordering::SeqCst) || key.len() > MAX_KEY {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (made, g, _)| *g == generation && made.elapsed() < TTL);
        }
        if entries.len() < MAX_ENTRIES {
            entries.insert(key, (Instant::now(), generation, value));
        }
    }
}

impl PageCache {
    /// Something visitors see may have changed: every page renders again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.badges
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.searches
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Empties the cache if a change was made through any replica (this one included) since the
    /// last look: the site generation in the database moved. Returns whether it did.
    pub async fn follow(&self, db: &db::DatabaseConnection) -> Result<bool, db::DbErr> {
        let now = db::settings::site_generation(db).await?;
        let changed = {
            let mut seen = self.followed.lock().unwrap_or_else(|p| p.into_inner());
            let changed = seen.as_ref().is_some_and(|s| *s != now);
            *seen = Some(now);
            changed
        };
        if changed {
            self.invalidate();
        }
        Ok(changed)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached page, unless it is from before a change; past `TTL`, `None` for the one caller
    /// that should render it again and the old page for everyone else meanwhile.
    fn get(&self, key: &str) -> Option<Arc<Page>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        let page = pages.get(key).filter(|p| p.generation == generation)?;
        if page.made.elapsed() < TTL || page.refreshing.swap(true, Ordering::SeqCst) {
            return Some(page.clone());
        }
        None
    }

    fn put(&self, key: String, page: Page) -> Arc<Page> {
        let page = Arc::new(page);
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if page.generation != self.generation.load(Ordering::SeqCst) {
            return page; // rendered across a change: serve it once, keep nothing
        }
        if pages.len() >= MAX_ENTRIES {
            pages.retain(|_, p| p.made.elapsed() < TTL);
        }
        if pages.len() < MAX_ENTRIES {
            pages.insert(key, page.clone());
        }
        page
    }

    pub fn len(&self) -> usize {
        self.pages.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Cuts `body` at every occurrence of this render's CSRF `marker` and of `nonce`.
fn split(body: &[u8], marker: &str, nonce: Option<&str>) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut at = 0;
    while at < body.len() {
        let rest = &body[at..];
        let hit = if rest.starts_with(marker.as_bytes()) {
            Some((Part::Csrf, marker.len()))
        } else {
            nonce
                .filter(|n| !n.is_empty() && rest.starts_with(n.as_bytes()))
                .map(|n| (Part::Nonce, n.len()))
        };
        match hit {
            Some((part, len)) => {
                if text_start < at {
                    parts.push(Part::Text(Bytes::copy_from_slice(&body[text_start..at])));
                }
                parts.push(part);
                at += len;
                text_start = at;
            }
            None => at += 1,
        }
    }
    if text_start < body.len() {
        parts.push(Part::Text(Bytes::copy_from_slice(&body[text_start..])));
    }
    parts
}

/// The nonce named in a Content-Security-Policy (`'nonce-…'`).
fn nonce_of(csp: &str) -> Option<String> {
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let len = csp[start..].find('\'')?;
    Some(csp[start..start + len].to_string())
}

fn fresh_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn respond(page: &Page, csrf: &str) -> Response {
    let nonce = fresh_nonce();
    let mut body = BytesMut::with_capacity(page.len + 64);
    for part in &page.parts {
        match part {
            Part::Text(t) => body.extend_from_slice(t),
            Part::Csrf => body.extend_from_slice(csrf.as_bytes()),
            Part::Nonce => body.extend_from_slice(nonce.as_bytes()),
        }
    }
    let mut headers = page.headers.clone();
    if let Some(csp) = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .and_then(|csp| {
            let old = nonce_of(csp)?;
            HeaderValue::from_str(&csp.replace(&old, &nonce)).ok()
        })
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert("x-page-cache", HeaderValue::from_static("hit"));
    let mut resp = Response::new(Body::from(body.freeze()));
    *resp.headers_mut() = headers;
    resp
}

/// Marks a request whose visitor identity was minted just now (no history can exist).
#[derive(Clone, Copy)]
pub struct NewVisitor;

/// Middleware on the page routes (inside `identity::identify`).
pub async fn serve(
    State((pages, db)): State<(Arc<PageCache>, db::DatabaseConnection)>,
    mut req: Request,
    next: Next,
) -> Response {
    let key = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(identity) = req.extensions().get::<Identity>().cloned() else {
        return next.run(req).await;
    };
    if req.method() != Method::GET || identity.signed_in || key.len() > MAX_KEY {
        return next.run(req).await;
    }
    // A returning visitor with a Try of their own sees it (and may-like picks): one indexed lookup.
    if req.extensions().get::<NewVisitor>().is_none() {
        match db::sandboxes::owner_has_any(&db, &identity.key).await {
            Ok(false) => {}
            Ok(true) => return next.run(req).await,
            Err(e) => {
                tracing::warn!(error = %e, "page cache: history lookup failed; rendering for this visitor");
                return next.run(req).await;
            }
        }
    }
    if let Some(page) = pages.get(&key) {
        return respond(&page, &identity.csrf);
    }
    let generation = pages.generation.load(Ordering::SeqCst);
    let mut shared = identity.clone();
    shared.key = shared_key();
    let marker = csrf_marker();
    shared.csrf = marker.clone();
    req.extensions_mut().insert(shared);
    let resp = next.run(req).await;
    let cacheable = resp.status() == StatusCode::OK
        && !resp.headers().contains_key(header::SET_COOKIE)
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"));
    let (head, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, path = %key, "page render failed");
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from("The page could not be rendered. Please reload."))
                .unwrap_or_default();
        }
    };
    let nonce = head
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .and_then(nonce_of);
    let page = Page {
        made: Instant::now(),
        refreshing: false.into(),
        generation,
        headers: head.headers.clone(),
        parts: split(&bytes, &marker, nonce.as_deref()),
        len: bytes.len(),
    };
    if !cacheable {
        // Not shareable (an error page, a redirect): this visitor's own token goes in.
        let mut resp = respond(&page, &identity.csrf);
        *resp.status_mut() = head.status;
        resp.headers_mut().remove("x-page-cache");
        return resp;
    }
    let page = pages.put(key, page);
    let mut resp = respond(&page, &identity.csrf);
    resp.headers_mut()
        .insert("x-page-cache", HeaderValue::from_static("miss"));
    resp
}

/// Middleware on the whole router: a successful change through the API empties the cache, here
/// at once and on the other replicas at their next `follow`.
pub async fn invalidate_on_change(
    State((pages, db)): State<(Arc<PageCache>, db::DatabaseConnection)>,
    req: Request,
    next: Next,
) -> Response {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let resp = next.run(req).await;
    if changes && resp.status().is_success() {
        pages.invalidate();
        if let Err(e) = db::settings::bump_site_generation(&db).await {
            // The others then show the change within `TTL`, as a background change.
            tracing::warn!(error = %e, "site generation not bumped");
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(parts: &[Part], csrf: &str, nonce: &str) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Part::Csrf => csrf.into(),
                Part::Nonce => nonce.into(),
            })
            .collect()
    }

    #[test]
    fn every_marker_and_nonce_is_replaced() {
        let marker = csrf_marker();
        assert_ne!(marker, csrf_marker(), "a marker per render");
        let body = format!(
            "<meta content=\"{marker}\"><script nonce=\"abc123\">x</script>{{\"csrf_token\":\"{marker}\"}}<script nonce=\"abc123\"></script>"
        );
        let parts = split(body.as_bytes(), &marker, Some("abc123"));
        let out = join(&parts, "TOKEN", "NEW");
        assert_eq!(
            out,
            "<meta content=\"TOKEN\"><script nonce=\"NEW\">x</script>{\"csrf_token\":\"TOKEN\"}<script nonce=\"NEW\"></script>"
        );
        assert!(!out.contains(&marker) && !out.contains("abc123"));
    }

    #[test]
    fn nonce_is_read_from_the_policy() {
        assert_eq!(
            nonce_of("script-src 'self' 'nonce-Zx9/+=' 'wasm-unsafe-eval'").as_deref(),
            Some("Zx9/+=")
        );
        assert_eq!(nonce_of("script-src 'self'"), None);
    }
}
