//! The site's static files. Pages name them under `/v/<version>/…`, where the version is a hash
//! of the files themselves: those answers are cached for a year as immutable, and a new build
//! gets new URLs. The plain paths (`/pkg/…`, `/vendor/…`) still answer, revalidated each time.
//! Files ship with brotli and gzip variants (`scripts/build-site.sh`), served as they are.
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// URL prefix of versioned files.
pub const PREFIX: &str = "/v/";

/// A short hash of every file pages load (bundle, styles, terminal scripts): the URL version.
pub fn version(site_root: &Path) -> String {
    let mut hash = Sha256::new();
    for rel in [
        "pkg/trythis.js",
        "pkg/trythis.wasm",
        "pkg/trythis.css",
        "vendor/xterm.js",
        "vendor/xterm.css",
        "vendor/addon-fit.js",
        "terminal.js",
    ] {
        hash.update(rel.as_bytes());
        // A missing file (a test without a built site) still gives a stable version.
        hash.update(std::fs::read(site_root.join(rel)).unwrap_or_default());
    }
    hex::encode(hash.finalize())[..12].to_string()
}

/// Site files, with their brotli and gzip variants where the build made them.
pub fn dir(dir: std::path::PathBuf) -> ServeDir {
    ServeDir::new(dir).precompressed_br().precompressed_gzip()
}

/// `GET /v/{version}/{*file}`: the site file, cached for a year as immutable when the version is
/// the current one (an old version's URL gets today's file: fine to show, not to keep).
pub async fn versioned(
    State(site): State<Arc<Memory>>,
    axum::extract::Path((version, file)): axum::extract::Path<(String, String)>,
    mut req: Request,
) -> Response {
    let inner = format!("/{file}");
    if !is_static(&inner) || inner.starts_with(PREFIX) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match Uri::builder().path_and_query(inner).build() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    }
    let served = dir(site.root.clone()).oneshot(req).await;
    let mut resp = match served {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    };
    if resp.status() == StatusCode::OK {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(site.cache_policy(&version)),
        );
    }
    resp
}

/// Plain static paths are revalidated on each use (their URLs outlive a new build).
pub async fn revalidate(req: Request, next: Next) -> Response {
    let plain = is_static(req.uri().path()) && !req.uri().path().starts_with(PREFIX);
    let mut resp = next.run(req).await;
    if plain && resp.status() == StatusCode::OK {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp
}

/// The files served from the site directory without anyone's identity.
pub fn is_static(path: &str) -> bool {
    path.starts_with("/pkg/")
        || path.starts_with("/vendor/")
        || path.starts_with(PREFIX)
        || matches!(
            path,
            "/favicon.svg" | "/logo.svg" | "/terminal.js" | "/robots.txt"
        )
}

/// One site file held in memory, with the build's compressed variants.
struct File {
    content_type: HeaderValue,
    etag: HeaderValue,
    plain: bytes::Bytes,
    gzip: Option<bytes::Bytes>,
    brotli: Option<bytes::Bytes>,
}

/// The site's files, read once at start-up (a rebuilt site needs a restart anyway: the version
/// in every page's URLs is computed then). Answers without the router, a file read or a
/// blocking-pool hop; what is not here falls through to `ServeDir`.
#[derive(Default)]
pub struct Memory {
    files: std::collections::HashMap<String, File>,
    /// The site directory (what is not in memory is served from there).
    pub root: std::path::PathBuf,
    /// Today's version: the one in the pkg dir handed to Leptos (`v/<version>/pkg`).
    pub version: String,
}

/// Bounds on what is held: the site is a few MB.
const MEMORY_MAX_FILES: usize = 2048;
const MEMORY_MAX_BYTES: usize = 64 * 1024 * 1024;

impl Memory {
    /// A versioned URL's caching: a year, immutable, for today's version; an old version's URL
    /// gets today's file, fine to show but not to keep.
    fn cache_policy(&self, version: &str) -> &'static str {
        if version == self.version {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }
    }

    fn new(files: std::collections::HashMap<String, File>, site_root: &Path) -> Self {
        Self {
            files,
            root: site_root.to_path_buf(),
            version: version(site_root),
        }
    }

    pub fn load(site_root: &Path) -> Self {
        let mut files = std::collections::HashMap::new();
        let mut total = 0usize;
        let mut stack = vec![site_root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = path.to_string_lossy();
                if !kind.is_file() || name.ends_with(".gz") || name.ends_with(".br") {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(site_root) else {
                    continue;
                };
                let url = format!("/{}", rel.to_string_lossy());
                if !is_static(&url) || files.len() >= MEMORY_MAX_FILES {
                    continue;
                }
                let Ok(plain) = std::fs::read(&path) else {
                    continue;
                };
                let variant = |ext: &str| std::fs::read(format!("{name}.{ext}")).ok();
                let (gzip, brotli) = (variant("gz"), variant("br"));
                total += plain.len()
                    + gzip.as_ref().map_or(0, Vec::len)
                    + brotli.as_ref().map_or(0, Vec::len);
                if total > MEMORY_MAX_BYTES {
                    return Self::new(files, site_root);
                }
                let mime = mime_guess::from_path(&path).first_or_octet_stream();
                let content_type = match mime.type_() {
                    mime_guess::mime::TEXT | mime_guess::mime::APPLICATION
                        if mime.subtype() != mime_guess::mime::OCTET_STREAM
                            && mime.subtype() != "wasm" =>
                    {
                        format!("{mime}; charset=utf-8")
                    }
                    _ => mime.to_string(),
                };
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&plain))[..16]);
                let (Ok(content_type), Ok(etag)) = (
                    HeaderValue::from_str(&content_type),
                    HeaderValue::from_str(&etag),
                ) else {
                    continue;
                };
                files.insert(
                    url,
                    File {
                        content_type,
                        etag,
                        plain: plain.into(),
                        gzip: gzip.map(Into::into),
                        brotli: brotli.map(Into::into),
                    },
                );
            }
        }
        Self::new(files, site_root)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Middleware: site files from memory (plain and versioned URLs), before any routing.
pub async fn from_memory(State(site): State<Arc<Memory>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) || !is_static(path)
    {
        return next.run(req).await;
    }
    // `/v/<version>/<file>`: immutable when the version is today's.
    let (file_path, policy) = match path.strip_prefix(PREFIX).and_then(|r| r.split_once('/')) {
        Some((version, file)) => (format!("/{file}"), site.cache_policy(version)),
        None if path.starts_with(PREFIX) => return next.run(req).await,
        None => (path.to_string(), "no-cache"),
    };
    let Some(file) = site.files.get(&file_path) else {
        return next.run(req).await;
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, file.content_type.clone());
    headers.insert(header::ETAG, file.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == file.etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let accepts = |coding: &str| {
        req.headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|c| {
                let mut parts = c.split(';').map(str::trim);
                parts.next() == Some(coding) && !parts.any(|p| p.replace(' ', "") == "q=0")
            })
    };
    let body = match (&file.brotli, &file.gzip) {
        (Some(b), _) if accepts("br") => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            b.clone()
        }
        (_, Some(g)) if accepts("gzip") => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            g.clone()
        }
        _ => file.plain.clone(),
    };
    if req.method() == axum::http::Method::HEAD {
        return (StatusCode::OK, headers).into_response();
    }
    (StatusCode::OK, headers, body).into_response()
}
