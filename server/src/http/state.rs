//! Application state: cheap handles to the database, the engine, the registry and the services.
use crate::{config::Config, metrics::Metrics, sandbox::SandboxService, secrets::Signer};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;

/// What every handler shares, behind one `Arc`: a request's middlewares and handler each take a
/// copy, and one reference count is much cheaper to share across cores than one per service
/// (measured: cloning the field-wise state was 40 % of a cached page's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The last `/healthz` probe: when, its status and its body.
pub type HealthCache = tokio::sync::Mutex<
    Option<(
        std::time::Instant,
        axum::http::StatusCode,
        serde_json::Value,
    )>,
>;

impl FromRef<AppState> for Arc<crate::http::assets::Memory> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.static_files)
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub db: db::DatabaseConnection,
    pub search: Arc<db::search::SearchIndex>,
    pub registry: registry::Registry,
    pub sandboxes: Arc<SandboxService>,
    pub builds: Arc<crate::builds::BuildService>,
    /// Bans, account deletions, project removals (across the domains).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub signer: Signer,
    pub auth: Arc<crate::accounts::Auth>,
    pub mail: Arc<crate::accounts::mail::Mailer>,
    /// Caps on open terminal sockets and log streams.
    pub streams: crate::http::caps::StreamCaps,
    /// The last `/healthz` probe.
    pub health: Arc<HealthCache>,
    /// Set on SIGTERM: `/healthz` answers 503 "draining" from then on (`main.rs` serve).
    pub draining: std::sync::atomic::AtomicBool,
    /// The site's files, in memory.
    pub static_files: Arc<crate::http::assets::Memory>,
    /// Shared pages for visitors without history.
    pub pages: Arc<crate::http::page_cache::PageCache>,
    pub leptos_options: LeptosOptions,
    /// Web previews (None: `TRYTHIS_PREVIEW_BASE=off`, or a public site without one).
    pub previews: Option<crate::http::preview::Previews>,
}
