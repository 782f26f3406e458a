//! trythis server. The tree reads top-down:
//! - `http` — the edge: router, handlers (`http::api`), the one HTTP error type, identity and
//!   CSRF middleware, OAuth routes, page cache, `AppState` (the services together);
//! - `sandbox` — Tries: the service (owner checks, queue, limits, reaper), the `Runtime` trait
//!   and its Docker engine implementation (`sandbox::docker`, runc seeds in `sandbox::seed`),
//!   terminals, smoke checks in sandboxes (`sandbox::checks`);
//! - `builds` — publishing: submissions, the build queue and worker, Dockerfile rewrites, build
//!   logs, seeding the catalogue;
//! - `accounts` — passwords, sessions, OAuth, visitor identities, mail;
//! - below them: `config`, `metrics`, `network` (isolation networks), `engine` (engine
//!   connections, the isolation probe, proxy and CA variables: what sandboxes and builds share);
//!   leaves: `secrets` (ids, tokens, hashes, constant-time compare), `tar`, `cidr`;
//! - `jobs` — the one runner of background work.
//!
//! `compose` is the composition root: it connects the services (database, engines, registry)
//! into `AppState` and registers every background job with the runner (`jobs`).
pub mod accounts;
pub mod builds;
pub mod cidr;
pub mod config;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod network;
pub mod sandbox;
pub mod secrets;
pub mod tar;

pub use http::{leptos_options, router, serve};

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_files_are_found_in_database_urls() {
        use super::sqlite_file;
        assert_eq!(
            sqlite_file("sqlite:///d/t.db?mode=rwc"),
            Some("/d/t.db".into())
        );
        assert_eq!(sqlite_file("sqlite://data/t.db"), Some("data/t.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
use crate::http::state::AppState;
use std::{sync::Arc, time::Duration};

/// Why the server could not start; each names the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("sandboxes: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("networks: {0}")]
    Network(#[from] network::NetworkError),
    #[error("instance secret: {0}")]
    Secret(#[from] std::io::Error),
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("mail: {0}")]
    Mail(#[from] accounts::mail::MailError),
    #[error("TRYTHIS_ADMIN_EMAIL: {0}")]
    Admin(#[from] accounts::AuthError),
}

/// The sandbox runtime of this installation on `docker`, its isolation detected (gVisor unless
/// configured or unavailable; see `Isolation::choose`).
pub async fn sandbox_runtime(
    config: &config::Config,
    db: &db::DatabaseConnection,
    docker: &bollard::Docker,
) -> Result<Arc<dyn sandbox::runtime::Runtime>, StartError> {
    let instance = db::instance_id(db, secrets::random_id).await?;
    sandbox_runtime_of(config, docker, instance).await
}

/// `sandbox_runtime` for the installation `instance` (a test also starts another
/// installation's sandbox on the same engine).
pub async fn sandbox_runtime_of(
    config: &config::Config,
    docker: &bollard::Docker,
    instance: String,
) -> Result<Arc<dyn sandbox::runtime::Runtime>, StartError> {
    let isolation = engine::detect_isolation(docker, config.sandbox_runtime).await?;
    let version = engine::runtime_version(docker, isolation.0).await;
    let runtime = sandbox::docker::DockerRuntime::new(
        docker.clone(),
        &config.docker_endpoint,
        config,
        instance.clone(),
        isolation,
    )
    .with_version(version);
    match &config.swarm {
        // The cluster runtime: sandboxes on the Swarm's sandbox nodes; this host's engine keeps
        // the sandboxes that need the egress proxy.
        Some(swarm) => Ok(sandbox::swarm::SwarmRuntime::start(
            config,
            swarm.clone(),
            instance,
            Arc::new(runtime),
        )
        .await?),
        None => Ok(Arc::new(runtime)),
    }
}

/// The SQLite file of a `sqlite:` database URL (none for PostgreSQL or in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// The data directory and the SQLite database belong to the service user: the database holds
/// password hashes, session and token hashes and every visitor's history. The directory is
/// 0711 (others may pass through it to the files the sandboxes mount, never list it); the
/// database 0600, created so before SQLite opens it (SQLite gives its -wal and -shm files the
/// database's mode), and made so when an older one was readable by others.
pub fn private_data_dir(config: &config::Config) -> Result<(), StartError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StartError::DataDir { path, source }
    };
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(fail(dir))?;
    if let Some(db) = sqlite_file(&config.database_url) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .map_err(fail(&db))?;
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            match std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)) {
                // No -wal or -shm file while no connection is open.
                Err(e) if !suffix.is_empty() && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(&f)(e)),
                Ok(()) => {}
            }
        }
    }
    Ok(())
}

/// The platform, connected: the services behind `state`, and the background `jobs` that keep
/// them (registered, not started). The one place services are built, for `serve`, `seed`, the
/// tests and the benchmarks.
pub struct Platform {
    pub state: AppState,
    pub jobs: jobs::Jobs,
}

impl Platform {
    /// What `trythis serve` does before it listens: fail the builds a restart interrupted and
    /// requeue the queued ones, make the engine and the database agree, then start every job.
    pub async fn start(self) -> Result<(AppState, jobs::Running), StartError> {
        self.state.builds.recover().await?;
        let (removed, ended) = self.state.sandboxes.reconcile().await?;
        tracing::info!(removed, ended, "reconciled engine and database");
        Ok((self.state, self.jobs.start()))
    }
}

/// Connects the platform: data directory, database (migrated), engines, networks, registry, the
/// services, and registers the background jobs with their periods. `runtime` replaces the
/// engine's sandbox runtime (`None`: detected as `sandbox_runtime` does); the terminal benchmark
/// passes an in-process stand-in to hold 10,000 terminals on one machine.
pub async fn compose(
    config: config::Config,
    runtime: Option<Arc<dyn sandbox::runtime::Runtime>>,
) -> Result<Platform, StartError> {
    private_data_dir(&config)?;
    let db = db::connect_and_migrate(&config.database_url).await?;
    let docker = engine::connect_docker(&config).await?;
    let build_engine = engine::connect_build_engine(&config).await?;
    let networks = network::Networks::setup(&config, &docker, &build_engine).await?;
    let runtime: Arc<dyn sandbox::runtime::Runtime> = match runtime {
        Some(r) => r,
        None => sandbox_runtime(&config, &db, &docker).await?,
    };
    tracing::info!(runtime = runtime.isolation().as_str(), build_network = %networks.build.network, "sandbox isolation");
    let metrics = Arc::new(metrics::Metrics::default());
    tracing::info!(replica = %config.replica_id, "this app server's replica id");
    // Which periodic jobs are cluster-wide (one lease holder runs them) and which run on every
    // replica: docs/ARCHITECTURE.md, "Several app servers".
    let mut jobs = jobs::Jobs::new(metrics.clone()).in_cluster(db.clone(), &config.replica_id);
    let registry = config.registry_client();
    let checks = sandbox::checks::SandboxChecks::new(runtime.clone());
    let builds = builds::BuildService::new(
        db.clone(),
        builds::Engines {
            build: build_engine,
            serve: docker.clone(),
        },
        registry.clone(),
        config.builds.clone(),
        metrics.clone(),
        networks.clone(),
        checks,
    );
    for _ in 0..config.builds.concurrency {
        jobs.worker("build worker", builds.clone().worker());
    }
    {
        // Per replica: every replica looks for builds whose runner stopped renewing its claim
        // (the take-over itself is an atomic compare-and-set, so one replica gets each).
        let builds = builds.clone();
        jobs.every_here("build takeover", builds::HEARTBEAT * 2, move || {
            let builds = builds.clone();
            async move { builds.take_over_stale().await }
        });
    }
    if let Some(command) = config.registry_gc_command.clone() {
        let builds = builds.clone();
        jobs.every("registry gc", config.registry_gc_interval, move || {
            let (builds, command) = (builds.clone(), command.clone());
            async move {
                // The push lock is this replica's own: while a build runs on any replica (its
                // push may come), the collection waits for the next period.
                if builds.any_running().await.map_err(|e| e.to_string())? {
                    return Ok(0);
                }
                builds
                    .collect_registry_garbage(&command)
                    .await
                    .map(|_| 1)
                    .map_err(|e| e.to_string())
            }
        });
    }
    let sandboxes = Arc::new(sandbox::SandboxService::new(
        db.clone(),
        runtime,
        config.limits.clone(),
        metrics.clone(),
        networks,
    ));
    {
        let every = Duration::from_secs(5);
        let s = sandboxes.clone();
        jobs.every("reaper", every, move || {
            let s = s.clone();
            async move { s.reap().await }
        });
        let s = sandboxes.clone();
        jobs.every("warm pool", every, move || {
            let s = s.clone();
            async move { s.refill_pool().await }
        });
        let s = sandboxes.clone();
        jobs.every("orphan sweep", every, move || {
            let s = s.clone();
            async move { s.sweep().await }
        });
        // Per replica: its watchers of a link revoked through another replica are cut off.
        let s = sandboxes.clone();
        jobs.every_here("share revocations", sandbox::REVOCATION_FOLLOW, move || {
            let s = s.clone();
            async move { s.follow_revocations().await }
        });
        // Per replica: the keystrokes of the shells it carries reach the rows the reaper reads.
        let s = sandboxes.clone();
        jobs.every_here("terminal activity", every, move || {
            let s = s.clone();
            async move { s.record_input().await }
        });
    }
    let signer = secrets::Signer::new(secrets::load_or_create_instance_secret(&config.data_dir)?);
    let auth = Arc::new(accounts::Auth::new(config.auth.clone(), &config.public_url));
    let (mail, outbox) = accounts::mail::Mailer::new(&config.mail, &config.public_url)?;
    jobs.worker("mail outbox", outbox);
    tracing::info!(to = mail.describe(), "mail");
    if let (Some(email), Some(password)) = (&config.auth.admin_email, &config.auth.admin_password) {
        accounts::ensure_admin(&auth, &db, email, Some(password)).await?;
    }
    {
        // Expired sessions, abandoned OAuth flows, unused mailed links and rate-limit keys
        // whose events aged out go hourly.
        let db = db.clone();
        jobs.every("session purge", Duration::from_secs(3600), move || {
            let db = db.clone();
            async move {
                let n = db::accounts::purge_expired(&db).await?;
                Ok::<_, db::DbErr>((n + db::cluster::purge_rate_limits(&db).await?) as usize)
            }
        });
    }
    let lifecycle = Arc::new(lifecycle::Lifecycle::new(
        db.clone(),
        sandboxes.clone(),
        builds.clone(),
        registry.clone(),
        mail.clone(),
    ));
    let pages: Arc<http::page_cache::PageCache> = Arc::default();
    {
        // Per replica: each empties its own page cache when a change was made through another.
        let (pages, db) = (pages.clone(), db.clone());
        jobs.every_here(
            "page cache follow",
            http::page_cache::FOLLOW_EVERY,
            move || {
                let (pages, db) = (pages.clone(), db.clone());
                // Not counted as work done: it would log every second on a busy site.
                async move { pages.follow(&db).await.map(|_| 0) }
            },
        );
    }
    let static_files = Arc::new(http::assets::Memory::load(&config.site_root));
    let previews = config
        .preview
        .clone()
        .map(|base| http::preview::Previews::new(base, sandboxes.clone()));
    let state = AppState::new(http::state::Shared {
        previews,
        lifecycle,
        auth,
        mail,
        streams: http::caps::StreamCaps::default(),
        health: Arc::default(),
        draining: Default::default(),
        pages,
        leptos_options: http::leptos_options(&config, &static_files.version),
        static_files,
        registry,
        builds,
        config: Arc::new(config),
        db,
        search: Arc::new(db::search::SearchIndex::new()),
        sandboxes,
        metrics,
        signer,
    });
    Ok(Platform { state, jobs })
}

/// The platform for integration tests and benchmarks: composed, builds recovered, and only the
/// workers (build queue, mail) started — a test runs the periodic passes (reap, sweep, refill)
/// itself, when it chooses.
pub async fn build_state(config: config::Config) -> Result<AppState, StartError> {
    build_state_with(config, None).await
}

/// `build_state` with the sandbox runtime given (see `compose`).
pub async fn build_state_with(
    config: config::Config,
    runtime: Option<Arc<dyn sandbox::runtime::Runtime>>,
) -> Result<AppState, StartError> {
    let platform = compose(config, runtime).await?;
    platform.state.builds.recover().await?;
    // The workers run as long as the process; their handle is not needed.
    let _workers = platform.jobs.start_only(&[jobs::Kind::Worker]);
    Ok(platform.state)
}
