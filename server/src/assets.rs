//! The site's static files. Pages name them under `/v/<version>/…`, where the version is a hash
//! of the files themselves: those answers are cached for a year as immutable, and a new build
//! gets new URLs. The plain paths (`/pkg/…`, `/vendor/…`) still answer, revalidated each time.
//! Files ship with brotli and gzip variants (`scripts/build-site.sh`), served as they are.
use crate::state::AppState;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use std::path::Path;
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
    State(st): State<AppState>,
    axum::extract::Path((version, file)): axum::extract::Path<(String, String)>,
    mut req: Request,
) -> Response {
    let inner = format!("/{file}");
    let current = st
        .leptos_options
        .site_pkg_dir
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    if !is_static(&inner) || inner.starts_with(PREFIX) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match Uri::builder().path_and_query(inner).build() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    }
    let served = dir(st.config.site_root.clone()).oneshot(req).await;
    let mut resp = match served {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    };
    if resp.status() == StatusCode::OK {
        let policy = if version == current {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
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
