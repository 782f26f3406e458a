//! Publishing: a maintainer's Dockerfile (or converted install script) built through the engine,
//! pushed to the platform's registry as `{namespace}/{slug}:{build-id}`, and made live; or a
//! public image imported by reference (`import`), copied there under the same name.
//!
//! The queue is the `builds` table (it survives restarts) fed to a bounded number of workers.
//! Every build streams its log live to any number of watchers (SSE) and stores it at the end.
//! A project that is already live keeps serving its last good image until a new build has been
//! pushed and resolved: visitors never wait for, or lose, a build.
pub mod check;
pub mod dockerfile;
pub mod edit;
pub mod engine;
#[cfg(test)]
mod fast_tests;
pub mod headline;
pub mod import;
pub mod log;
pub mod publish;
pub mod seed;

pub use engine::{pull, push, DockerBuilder, Engines, ImageBuilder, TransferError};

use crate::config::BuildLimits;
use crate::metrics::Metrics;
use check::{SmokeCheck, SmokeRunner};
use dockerfile::{mark_build, trust_platform_ca, CA_CONTEXT_FILE};
use engine::{BuildSpec, ImageFacts};
use futures::StreamExt;
use log::{parse_step, readable, LogBuffer, Progress};
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use tokio::sync::{broadcast, mpsc, watch, Mutex};

/// Longest unfinished line held back while its end is awaited.
const MAX_PARTIAL_LINE: usize = 64 * 1024;
/// How often a replica running a build renews its claim (`builds.heartbeat_at`).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a running build's log is written to its row when it grew: watchers on other
/// replicas follow it from there (`http/api/builds.rs`), this far behind at most.
pub const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);
/// A claim not renewed for this long is its replica's death (or a partition from the database):
/// another replica takes the build over. Six missed heartbeats, so a slow database or a busy
/// process is not mistaken for one.
pub const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How often an idle worker looks in the database for queued builds its own replica was not
/// told about (queued through another replica, or left by one that died).
pub const QUEUE_POLL: std::time::Duration = std::time::Duration::from_secs(3);
/// A queued build is adopted from the database by a replica it was not submitted to only once it
/// has waited this long: the replica that queued it starts it at once when it has a free worker
/// (and a test's second build service runs its own builds).
pub const ADOPT_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// What watchers of a build receive.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BuildEvent {
    Log {
        line: String,
    },
    Step {
        step: i32,
        steps: i32,
    },
    State {
        state: db::BuildState,
        error: Option<String>,
    },
}

/// A running or queued build's in-memory side: log so far, live events, cancel switch.
struct Live {
    log: StdMutex<LogBuffer>,
    events: broadcast::Sender<BuildEvent>,
    cancel: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            log: StdMutex::new(LogBuffer::default()),
            events: broadcast::channel(1024).0,
            cancel: watch::channel(false).0,
        }
    }
}

/// Why a build failed, in words a maintainer can act on.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Build(String),
    /// A step of the recipe failed: its own error lines, the recipe's line, the engine's words.
    #[error("{0}")]
    Step(headline::Headline),
    #[error("The build took longer than {0} minutes and was stopped.")]
    Timeout(u64),
    #[error("The build was cancelled.")]
    Cancelled,
    #[error("The image is {size_mb} MB; the limit is {limit_mb} MB. Make it smaller (clean apt lists, use slimmer packages).")]
    TooLarge { size_mb: u64, limit_mb: u64 },
    #[error("The image declares {0} VOLUMEs; at most {max} are allowed (each is a separate bounded directory in every Try). Declare fewer, or none: every path is writable in a Try.", max = crate::engine::MAX_IMAGE_VOLUMES)]
    TooManyVolumes(usize),
    #[error("The registry could not be reached, so nothing was published. Start the build again when it is back. ({0})")]
    Registry(String),
    #[error(
        "The build engine is not available right now. Start the build again in a moment. ({0})"
    )]
    Engine(String),
    #[error(
        "The smoke check failed: {0} Its output is at the end of the log; nothing was published."
    )]
    SmokeCheck(String),
    #[error("The smoke check could not run, so nothing was published. Start the build again in a moment. ({0})")]
    CheckNotRun(String),
    /// An import by reference that did not complete (see `import::headline`).
    #[error("{0}")]
    Import(String),
}

/// Why a registry garbage collection did not complete.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("the garbage collection command is empty")]
    EmptyCommand,
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{command}: {status}: {output}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        output: String,
    },
}

pub struct BuildService {
    db: db::DatabaseConnection,
    /// The engines and the registry (a fake in the fast tests).
    builder: Arc<dyn ImageBuilder>,
    /// The real engines, when the builder is `DockerBuilder` (for tests and benches).
    engines: Option<Engines>,
    /// Where images go: repository names and the registry's address.
    registry: registry::RegistryConfig,
    limits: BuildLimits,
    metrics: Arc<Metrics>,
    live: StdMutex<HashMap<String, Arc<Live>>>,
    queue_tx: mpsc::UnboundedSender<String>,
    queue_rx: Mutex<mpsc::UnboundedReceiver<String>>,
    /// Pushes hold it shared; registry garbage collection holds it alone (a blob uploaded for a
    /// manifest not yet pushed would look unused).
    push_gate: tokio::sync::RwLock<()>,
    /// Build steps run on the isolated build network; its proxy is their only way out.
    networks: Arc<crate::network::Networks>,
    /// Where smoke checks run (sandboxes of the new image).
    checks: Arc<dyn SmokeRunner>,
    /// The build engine's way to this service's registry, open while it lives.
    registry_way: StdMutex<Option<crate::network::RegistryWay>>,
}

impl BuildService {
    pub fn new(
        db: db::DatabaseConnection,
        engines: Engines,
        registry: registry::Registry,
        limits: BuildLimits,
        metrics: Arc<Metrics>,
        networks: Arc<crate::network::Networks>,
        checks: Arc<dyn SmokeRunner>,
    ) -> Arc<Self> {
        let config = registry.config().clone();
        let way = crate::network::open_registry_way(&config.address);
        let builder = Arc::new(DockerBuilder::new(engines.clone(), registry));
        let service = Self::with_builder(
            db,
            builder,
            config,
            limits,
            metrics,
            networks,
            Some(engines),
            checks,
        );
        *service
            .registry_way
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(way);
        service
    }

    /// A build service over any `ImageBuilder` and `SmokeRunner` (the fast tests' fakes).
    #[allow(clippy::too_many_arguments)]
    pub fn with_builder(
        db: db::DatabaseConnection,
        builder: Arc<dyn ImageBuilder>,
        registry: registry::RegistryConfig,
        limits: BuildLimits,
        metrics: Arc<Metrics>,
        networks: Arc<crate::network::Networks>,
        engines: Option<Engines>,
        checks: Arc<dyn SmokeRunner>,
    ) -> Arc<Self> {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            checks,
            registry_way: StdMutex::new(None),
            networks,
            db,
            builder,
            engines,
            push_gate: tokio::sync::RwLock::new(()),
            registry,
            limits,
            metrics,
            live: StdMutex::new(HashMap::new()),
            queue_tx,
            queue_rx: Mutex::new(queue_rx),
        })
    }

    pub fn limits(&self) -> &BuildLimits {
        &self.limits
    }

    pub fn networks(&self) -> &Arc<crate::network::Networks> {
        &self.networks
    }

    /// Where this service's smoke checks run (for a second service of the same installation).
    pub fn checks(&self) -> Arc<dyn SmokeRunner> {
        self.checks.clone()
    }

    /// The platform registry's address (`host:port`).
    pub fn registry_address(&self) -> String {
        self.registry.address.clone()
    }

    /// The registry namespace of the projects' repositories.
    pub fn registry_namespace(&self) -> &str {
        &self.registry.namespace
    }

    pub(crate) fn db(&self) -> &db::DatabaseConnection {
        &self.db
    }

    /// Whether a build can start from `image`: the build engine has it, or the platform's
    /// registry does. An engine that does not answer is an error, not a missing image.
    pub async fn image_available(&self, image: &str) -> Result<bool, bollard::errors::Error> {
        self.builder.image_available(image).await
    }

    /// The real engines (None under a fake builder).
    pub fn engines(&self) -> Option<Engines> {
        self.engines.clone()
    }

    pub async fn ping_engine(&self) -> Result<(), String> {
        self.builder.ping().await
    }

    /// Removes what builds interrupted by a crash or restart left in the build engine: only
    /// what is older than any build can be (a step container of a build running now, in another
    /// server process or the seed command, is briefly "created", not running).
    pub async fn clean_build_engine(&self) {
        self.builder
            .clean(self.limits.timeout + std::time::Duration::from_secs(600))
            .await;
    }

    /// This app server's replica id: the builds it runs carry it.
    pub fn replica(&self) -> &str {
        &self.limits.replica
    }

    /// At start-up: builds whose runner stopped renewing its claim are taken over (never the
    /// builds another live replica runs), the build engine is cleaned, queued builds are handed
    /// to the workers again.
    pub async fn recover(&self) -> Result<(), db::DbErr> {
        self.take_over_stale().await?;
        self.clean_build_engine().await;
        for b in db::builds::queued(&self.db).await? {
            self.enqueue(&b.id);
        }
        Ok(())
    }

    /// Puts back in the queue, with a line in their log saying so, the running builds whose
    /// replica has not renewed its claim for `CLAIM_TTL` (it died, or lost the database), and
    /// hands them to this replica's workers. Each is taken over by one replica, once (an atomic
    /// compare-and-set on the stale claim); the run starts again from the beginning. Returns how
    /// many this replica took over.
    pub async fn take_over_stale(&self) -> Result<usize, db::DbErr> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(CLAIM_TTL).unwrap_or(chrono::Duration::seconds(30));
        let mut taken = 0;
        for b in db::builds::stale(&self.db, cutoff).await? {
            let was = b.runner.as_deref().unwrap_or("an earlier server process");
            let note = format!(
                "The app server running this build ({was}) stopped; {} starts it again.",
                self.replica()
            );
            if db::builds::take_over(&self.db, &b, cutoff, &note).await? {
                tracing::warn!(build = %b.id, from = was, "took over a build whose app server stopped");
                self.enqueue(&b.id);
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Whether a build runs on any replica now (registry garbage collection waits for none).
    pub async fn any_running(&self) -> Result<bool, db::DbErr> {
        db::builds::any_running(&self.db).await
    }

    /// One build worker: runs queued builds one at a time until the queue closes. The job
    /// runner runs `BuildLimits::concurrency` of them. Builds come from this replica's channel,
    /// and, when it is quiet for `QUEUE_POLL`, from the database (queued through another replica,
    /// or left by one that died); a claim in the database decides which replica runs each.
    pub async fn worker(self: Arc<Self>) {
        loop {
            let next = tokio::select! {
                next = async { self.queue_rx.lock().await.recv().await } => match next {
                    Some(id) => {
                        self.metrics.builds_queued.dec();
                        id
                    }
                    None => break,
                },
                () = tokio::time::sleep(QUEUE_POLL) => match self.adopt_queued().await {
                    Some(id) => id,
                    None => continue,
                },
            };
            self.run(&next).await;
        }
    }

    /// The oldest queued build, waiting for `ADOPT_AFTER` at least, that this replica has not
    /// been handed (registered for its watchers here, so no other worker of this replica adopts
    /// it too).
    async fn adopt_queued(&self) -> Option<String> {
        let waited = chrono::Utc::now()
            - chrono::Duration::from_std(ADOPT_AFTER).unwrap_or(chrono::Duration::seconds(10));
        let queued = match db::builds::queued(&self.db).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "build queue not read");
                return None;
            }
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let b = queued
            .into_iter()
            .find(|b| b.created_at <= waited && !live.contains_key(&b.id))?;
        live.insert(b.id.clone(), Arc::new(Live::default()));
        Some(b.id)
    }

    /// Registers a build for watchers before it runs (the `seed` command runs builds itself).
    pub fn register(&self, id: &str) {
        self.live_entry(id);
    }

    /// Registers a queued build (its row exists) and hands it to the workers.
    pub fn enqueue(&self, id: &str) {
        self.live_entry(id);
        self.metrics.builds_queued.inc();
        let _ = self.queue_tx.send(id.to_string());
    }

    fn live_entry(&self, id: &str) -> Arc<Live> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(live.entry(id.to_string()).or_default())
    }

    /// For a watcher: the log so far and a receiver of what follows; None once the build is over
    /// (then the stored row has everything).
    pub fn watch(&self, id: &str) -> Option<(String, broadcast::Receiver<BuildEvent>)> {
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        // Subscribe before copying the log, under the log lock, so no line is lost or doubled.
        let log = live.log.lock().unwrap_or_else(|e| e.into_inner());
        let rx = live.events.subscribe();
        Some((log.stored(), rx))
    }

    /// Cancels a queued or running build. Returns false if it had already finished.
    pub async fn cancel(&self, id: &str) -> Result<bool, db::DbErr> {
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match live {
            Some(live) => {
                let _ = live.cancel.send(true);
                // A queued build is finished here; a running one by its worker, which is watching.
                let row = db::builds::get(&self.db, id).await?;
                if row
                    .as_ref()
                    .is_some_and(|b| b.state == db::BuildState::Queued)
                {
                    self.finish(id, &live, Err(Failure::Cancelled), None, None)
                        .await?;
                }
                Ok(true)
            }
            None => {
                // Queued or running through another replica: cancelled in the database; the
                // replica running it sees that at its next heartbeat and stops.
                let active = db::builds::get(&self.db, id)
                    .await?
                    .is_some_and(|b| !b.state.is_finished());
                if !active {
                    return Ok(false);
                }
                let live = Arc::new(Live::default());
                self.finish(id, &live, Err(Failure::Cancelled), None, None)
                    .await?;
                Ok(true)
            }
        }
    }

    /// Runs one build to its end (the `seed` command calls this directly, without workers).
    pub async fn run(&self, id: &str) {
        let live = self.live_entry(id);
        if let Err(e) = self.run_inner(id, &live).await {
            tracing::error!(build = id, error = %e, "build bookkeeping failed");
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    async fn run_inner(&self, id: &str, live: &Arc<Live>) -> Result<(), db::DbErr> {
        let Some(build) = db::builds::get(&self.db, id).await? else {
            return Ok(());
        };
        if build.state != db::BuildState::Queued || *live.cancel.borrow() {
            return Ok(()); // cancelled while waiting
        }
        let Some(project) = db::projects::by_id(&self.db, build.project_id).await? else {
            // Ended, so that it does not wait in the queue (and head the database's) for ever.
            db::builds::finish(
                &self.db,
                id,
                db::BuildState::Failed,
                Some("The project was removed."),
                "",
                None,
            )
            .await?;
            return Ok(());
        };
        if !db::builds::claim(&self.db, id, self.replica()).await? {
            return Ok(()); // cancelled, or claimed by another replica, between the check and now
        }
        if !build.log.is_empty() {
            // What the row's log says already (a take-over's note) stays at its top.
            let mut log = live.log.lock().unwrap_or_else(|e| e.into_inner());
            for line in build.log.lines() {
                log.push(line);
            }
        }
        self.emit(
            live,
            BuildEvent::State {
                state: db::BuildState::Running,
                error: None,
            },
        );
        self.metrics.builds_running.inc();
        let started = std::time::Instant::now();
        // The claim is renewed while the build runs; once it is no longer this replica's
        // (cancelled through another replica, or taken over after this one stalled past
        // `CLAIM_TTL`) the build stops here and writes nothing more.
        let result = tokio::select! {
            r = self.build_and_push(&build, &project, live) => Some(r),
            () = self.hold_claim(id, live) => None,
        };
        self.metrics.builds_running.dec();
        let Some(result) = result else {
            return self.claim_lost(id, live).await;
        };
        let pushed = match result {
            Ok(p) => p,
            Err(f) => {
                for line in f.to_string().lines() {
                    self.log(live, &format!("error: {line}"));
                }
                return self
                    .finish(id, live, Err(f), Some(&project), Some(self.replica()))
                    .await;
            }
        };
        // Publish only while the build is still this replica's.
        if !db::builds::renew(&self.db, id, self.replica()).await? {
            return self.claim_lost(id, live).await;
        }
        db::projects::set_image(
            &self.db,
            project.id,
            &pushed.repo,
            &pushed.digest,
            pushed.size,
        )
        .await?;
        self.log(
            live,
            &format!(
                "Published {}@{} in {:.1} s",
                pushed.repo,
                pushed.digest,
                started.elapsed().as_secs_f64()
            ),
        );
        let log = live.log.lock().unwrap_or_else(|e| e.into_inner()).stored();
        db::builds::finish_as(
            &self.db,
            id,
            Some(self.replica()),
            db::BuildState::Succeeded,
            None,
            &log,
            Some(&pushed),
        )
        .await?;
        self.finish(id, live, Ok(()), Some(&project), Some(self.replica()))
            .await?;
        self.retain(&project, &pushed.repo, Some(&pushed.digest))
            .await;
        Ok(())
    }

    /// Renews this replica's claim on build `id` every `HEARTBEAT`, and writes its log out every
    /// `LOG_FLUSH` when it grew (other replicas' watchers follow the row); returns once the claim
    /// is no longer its own. A database error is not a lost claim: renewing goes on.
    async fn hold_claim(&self, id: &str, live: &Live) {
        let mut written = 0;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(LOG_FLUSH).await;
            let (lines, log) = {
                let log = live.log.lock().unwrap_or_else(|e| e.into_inner());
                (log.lines(), (log.lines() != written).then(|| log.stored()))
            };
            // Each write runs as a task of its own: this loop is dropped when the build ends,
            // and a query dropped midway would cost its pooled connection.
            let (db, build, runner) = (self.db.clone(), id.to_string(), self.replica().to_string());
            if let Some(log) = log {
                let saved =
                    tokio::spawn(
                        async move { db::builds::save_log(&db, &build, &runner, &log).await },
                    );
                match saved.await {
                    Ok(Ok(true)) => written = lines,
                    Ok(Ok(false)) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(build = id, error = %e, "build log not written out")
                    }
                    Err(e) => tracing::warn!(build = id, error = %e, "build log not written out"),
                }
            }
            if renewed.elapsed() < HEARTBEAT {
                continue;
            }
            renewed = tokio::time::Instant::now();
            let (db, build, runner) = (self.db.clone(), id.to_string(), self.replica().to_string());
            let renewing =
                tokio::spawn(async move { db::builds::renew(&db, &build, &runner).await });
            match renewing.await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(build = id, error = %e, "build claim not renewed"),
                Err(e) => tracing::warn!(build = id, error = %e, "build claim not renewed"),
            }
        }
    }

    /// This replica's build stopped because its claim went elsewhere: the watchers here learn
    /// what the row says now; nothing is written.
    async fn claim_lost(&self, id: &str, live: &Live) -> Result<(), db::DbErr> {
        let row = db::builds::get(&self.db, id).await?;
        tracing::warn!(
            build = id,
            now = ?row.as_ref().map(|b| b.state),
            "build no longer this replica's (cancelled elsewhere or taken over); stopped it"
        );
        if let Some(b) = row {
            self.emit(
                live,
                BuildEvent::State {
                    state: b.state,
                    error: b.error,
                },
            );
        }
        Ok(())
    }

    /// Records the end of a build and tells the watchers. A project that never went live is
    /// marked failed; a live one keeps its image. `runner`: the replica whose claim the end is
    /// written under (None: a queued build, nobody's yet); a build no longer its own is left
    /// as it is.
    async fn finish(
        &self,
        id: &str,
        live: &Arc<Live>,
        outcome: Result<(), Failure>,
        project: Option<&db::projects::Model>,
        runner: Option<&str>,
    ) -> Result<(), db::DbErr> {
        let (state, error) = match &outcome {
            Ok(()) => (db::BuildState::Succeeded, None),
            Err(Failure::Cancelled) => (
                db::BuildState::Cancelled,
                Some(Failure::Cancelled.to_string()),
            ),
            Err(f) => (db::BuildState::Failed, Some(f.to_string())),
        };
        if outcome.is_err() {
            let log = live.log.lock().unwrap_or_else(|e| e.into_inner()).stored();
            let ended =
                db::builds::finish_as(&self.db, id, runner, state, error.as_deref(), &log, None)
                    .await?;
            if !ended && runner.is_some() {
                return self.claim_lost(id, live).await;
            }
            let project = match project {
                Some(p) => Some(p.clone()),
                None => match db::builds::get(&self.db, id).await? {
                    Some(b) => db::projects::by_id(&self.db, b.project_id).await?,
                    None => None,
                },
            };
            if let Some(p) = project.filter(|p| p.image_digest.is_none()) {
                db::projects::set_status(&self.db, p.id, db::ProjectStatus::Failed).await?;
            }
            self.metrics.builds_failed.inc();
        } else {
            self.metrics.builds_succeeded.inc();
        }
        self.emit(live, BuildEvent::State { state, error });
        Ok(())
    }

    /// Moves a running build on to `state` and tells the watchers; a build cancelled meanwhile
    /// (the transition table refuses the move) stops here.
    async fn advance(&self, id: &str, live: &Live, state: db::BuildState) -> Result<(), Failure> {
        if !db::builds::advance_as(&self.db, id, self.replica(), state)
            .await
            .map_err(|e| Failure::Engine(e.to_string()))?
        {
            return Err(Failure::Cancelled);
        }
        self.emit(live, BuildEvent::State { state, error: None });
        Ok(())
    }

    fn emit(&self, live: &Live, ev: BuildEvent) {
        let _ = live.events.send(ev);
    }

    fn log(&self, live: &Live, line: &str) {
        let line = readable(line);
        let mut log = live.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(&line);
        let _ = live.events.send(BuildEvent::Log { line });
    }

    async fn build_and_push(
        &self,
        build: &db::builds::Model,
        project: &db::projects::Model,
        live: &Arc<Live>,
    ) -> Result<db::builds::Pushed, Failure> {
        let repo = self.registry.repository_for(&project.slug);
        let tag = build.id.clone();
        if build.source_kind == "image" {
            let pushed = self.import_push_pull(build, &repo, live).await;
            return match pushed {
                Ok(pushed) => self.checked(build, project, pushed, live).await,
                Err(f) => {
                    // Copied but not published (e.g. too many VOLUMEs): its tag goes.
                    self.retain(project, &repo, project.image_digest.as_deref())
                        .await;
                    Err(f)
                }
            };
        }
        let image = format!("{repo}:{tag}");
        let steps = self.step_map(build);
        // The image policy once more: what the recipe reads may have stopped being served while
        // the build waited in the queue.
        publish::recheck_images(self, &build.dockerfile)
            .await
            .map_err(Failure::Build)?;
        let pulled = self.to_be_pulled(&build.dockerfile).await;
        let result = self
            .build_push_pull(&build.dockerfile, &steps, &repo, &tag, &image, live)
            .await;
        // Whatever the outcome, the build engine keeps nothing of this build: the registry and the
        // sandbox engine have the image, and a failed build's layers are garbage; so are the
        // images it pulled (a maintainer could otherwise fill the engine's disk with them).
        self.builder.remove_leftovers(&image, &build.id).await;
        self.builder.remove_pulled(&pulled).await;
        let pushed = result?;
        self.checked(build, project, pushed, live).await
    }

    /// A pushed image's smoke check, if the build has one; a failure unpublishes it.
    async fn checked(
        &self,
        build: &db::builds::Model,
        project: &db::projects::Model,
        pushed: db::builds::Pushed,
        live: &Arc<Live>,
    ) -> Result<db::builds::Pushed, Failure> {
        let check = build.check_command.clone().map(|command| SmokeCheck {
            command,
            expect: build.check_expect.clone(),
        });
        if let Some(check) = check {
            if let Err(f) = self.smoke_check(build, &check, &pushed, live).await {
                // Pushed but not published: its tag and pulled image go (the live one stays).
                self.retain(project, &pushed.repo, project.image_digest.as_deref())
                    .await;
                return Err(f);
            }
        }
        Ok(pushed)
    }

    /// The engine's steps of this build mapped to the maintainer's recipe: the platform adds
    /// a LABEL after every FROM, and the CA bundle's COPY and ARG when it has one; the engine's
    /// `labels` option (`DockerBuilder::build`) is one more LABEL step at the end.
    fn step_map(&self, build: &db::builds::Model) -> headline::StepMap {
        let injected = if self.networks.ca_bundle.is_some() {
            3
        } else {
            1
        };
        let converted = (build.source_kind == "script")
            .then(|| recipe::convert_script(&build.source, &self.limits.base_image).ok())
            .flatten()
            // The same Dockerfile as built (not one converted under another default base).
            .filter(|c| c.dockerfile == build.dockerfile);
        match &converted {
            Some(c) => headline::StepMap::new(
                &build.dockerfile,
                injected,
                1,
                Some((&build.source, &c.script_lines)),
            ),
            None => headline::StepMap::new(&build.dockerfile, injected, 1, None),
        }
    }

    /// The images the build will pull (the engine does not have them yet), never the platform's
    /// base image.
    async fn to_be_pulled(&self, dockerfile: &str) -> Vec<String> {
        let Ok((images, copied)) = publish::images_of(dockerfile) else {
            return Vec::new();
        };
        let mut pulled = Vec::new();
        for (_, image) in images.into_iter().chain(copied) {
            if image != self.limits.base_image
                && !pulled.contains(&image)
                && self.builder.missing(&image).await
            {
                pulled.push(image);
            }
        }
        pulled
    }

    /// Runs the build's smoke check in a sandbox of the pushed image; its output goes to the log.
    async fn smoke_check(
        &self,
        build: &db::builds::Model,
        check: &SmokeCheck,
        pushed: &db::builds::Pushed,
        live: &Arc<Live>,
    ) -> Result<(), Failure> {
        self.advance(&build.id, live, db::BuildState::Checking)
            .await?;
        self.log(
            live,
            &format!("Smoke check in a sandbox: $ {}", check.command),
        );
        let mut cancel = live.cancel.subscribe();
        let image = format!("{}@{}", pushed.repo, pushed.digest);
        let job = check::CheckJob {
            build_id: &build.id,
            project: &build.project_slug,
            image: &image,
            command: &check.command,
        };
        let running = self.checks.run(&job);
        let run = tokio::select! {
            r = running => r.map_err(|e| Failure::CheckNotRun(e.to_string()))?,
            _ = cancelled(&mut cancel) => return Err(Failure::Cancelled),
        };
        for line in run.output.lines() {
            self.log(live, &format!("  {line}"));
        }
        if run.truncated {
            self.log(live, "  [… more output not kept …]");
        }
        match check::verdict(check, &run) {
            None => {
                self.log(live, "Smoke check passed.");
                Ok(())
            }
            Some(why) => Err(Failure::SmokeCheck(why)),
        }
    }

    async fn build_push_pull(
        &self,
        dockerfile: &str,
        steps: &headline::StepMap,
        repo: &str,
        tag: &str,
        image: &str,
        live: &Arc<Live>,
    ) -> Result<db::builds::Pushed, Failure> {
        let mut cancel = live.cancel.subscribe();
        let timeout = self.limits.timeout;
        // The tag is the build's id.
        let building = self.engine_build(dockerfile, steps, image, tag, live);
        tokio::select! {
            r = building => r?,
            // Dropping the build request closes the connection; the engine then stops the build
            // and removes its containers (forcerm).
            _ = tokio::time::sleep(timeout) => {
                return Err(Failure::Timeout(timeout.as_secs().div_ceil(60)));
            }
            _ = cancelled(&mut cancel) => return Err(Failure::Cancelled),
        }
        let ImageFacts { size, volumes } = self.builder.inspect(image).await?;
        if volumes > crate::engine::MAX_IMAGE_VOLUMES {
            return Err(Failure::TooManyVolumes(volumes));
        }
        let limit = self.limits.max_image_mb * 1024 * 1024;
        if size > limit {
            return Err(Failure::TooLarge {
                size_mb: size / (1024 * 1024),
                limit_mb: self.limits.max_image_mb,
            });
        }
        self.advance(tag, live, db::BuildState::Pushing).await?;
        self.log(live, &format!("Pushing {image}"));
        let pushing = async {
            let _no_gc_meanwhile = self.push_gate.read().await;
            let pushed = self.builder.push(repo, tag).await?;
            // Into the sandbox engine now, so the first Try does not wait for a pull.
            self.log(live, "Pulling into the sandbox engine");
            self.builder
                .pull_for_sandboxes(&format!("{repo}@{}", pushed.digest))
                .await?;
            Ok::<_, Failure>(pushed)
        };
        let resolved = tokio::select! {
            r = pushing => r?,
            _ = cancelled(&mut cancel) => return Err(Failure::Cancelled),
        };
        Ok(db::builds::Pushed {
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest: resolved.digest,
            size: resolved.size,
        })
    }

    /// An import by reference: the reference checked again (the policy may have changed while
    /// the build waited), the image copied into `repo:{build id}` through the import's egress
    /// proxy (this build's own credential: its refusals land in this build's log), then pulled
    /// into the sandbox engine and held to the VOLUME limit like a built image.
    async fn import_push_pull(
        &self,
        build: &db::builds::Model,
        repo: &str,
        live: &Arc<Live>,
    ) -> Result<db::builds::Pushed, Failure> {
        let tag = build.id.as_str();
        let accepted = import::check_reference(
            &build.source,
            &self.limits.import_registries,
            &self.registry.address,
            &self.registry.namespace,
        )
        .map_err(Failure::Import)?;
        let source = &accepted.source;
        let mut grant = self.networks.import.grant(&format!("import-{tag}"));
        let proxy = grant.proxy_url("127.0.0.1");
        let from = registry::ImportFrom {
            source,
            plain_http: accepted.plain_http,
            proxy: Some(&proxy),
        };
        let max_bytes = self.limits.import_max_mb.saturating_mul(1024 * 1024);
        let log = |line: &str| self.log(live, line);
        let mut cancel = live.cancel.subscribe();
        let importing = async {
            let _no_gc_meanwhile = self.push_gate.read().await;
            self.builder.import(&from, repo, tag, max_bytes, &log).await
        };
        let timeout = self.limits.timeout;
        let result = tokio::select! {
            r = importing => r,
            _ = tokio::time::sleep(timeout) => {
                return Err(Failure::Timeout(timeout.as_secs().div_ceil(60)));
            }
            _ = cancelled(&mut cancel) => return Err(Failure::Cancelled),
        };
        let mut refused = Vec::new();
        while let Ok(refusal) = grant.refusals().try_recv() {
            self.log(live, &format!("trythis egress proxy: {refusal}"));
            refused.push(refusal);
        }
        drop(grant);
        let imported =
            result.map_err(|e| Failure::Import(import::headline(source, &e, &refused)))?;
        self.advance(tag, live, db::BuildState::Pushing).await?;
        let image = format!("{repo}@{}", imported.digest);
        self.log(live, "Pulling into the sandbox engine");
        let pulling = async {
            self.builder.pull_for_sandboxes(&image).await?;
            self.builder.served_volumes(&image).await
        };
        let volumes = tokio::select! {
            r = pulling => r?,
            _ = cancelled(&mut cancel) => return Err(Failure::Cancelled),
        };
        if volumes > crate::engine::MAX_IMAGE_VOLUMES {
            return Err(Failure::TooManyVolumes(volumes));
        }
        Ok(db::builds::Pushed {
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest: imported.digest,
            size: imported.size,
        })
    }

    /// Garbage-collects the registry's blobs with the configured command while no build of this
    /// server pushes (a blob uploaded for a manifest not yet pushed would look unused). Served
    /// images keep their tags (see `retain`), so their manifests and blobs stay.
    pub async fn collect_registry_garbage(&self, command: &str) -> Result<String, GcError> {
        let gate = self.push_gate.write().await;
        let mut words = command.split_whitespace();
        let program = words.next().ok_or(GcError::EmptyCommand)?;
        let out = tokio::process::Command::new(program)
            .args(words)
            .output()
            .await
            .map_err(|source| GcError::Spawn {
                program: program.to_string(),
                source,
            })?;
        drop(gate);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(text)
        } else {
            Err(GcError::Failed {
                command: command.to_string(),
                status: out.status,
                output: text.trim().to_string(),
            })
        }
    }

    async fn engine_build(
        &self,
        dockerfile: &str,
        steps: &headline::StepMap,
        image: &str,
        build_id: &str,
        live: &Arc<Live>,
    ) -> Result<(), Failure> {
        // A proxy credential of this build's own: refusals land in this build's log.
        let (mut grant, proxy_url) = self.networks.build.grant(&format!("build-{build_id}"));
        let build_args: HashMap<String, String> = crate::engine::proxy_env(&proxy_url)
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let mut files = vec![];
        let dockerfile = match &self.networks.ca_bundle {
            Some(path) => {
                let bundle = tokio::fs::read(path)
                    .await
                    .map_err(|e| Failure::Engine(format!("CA bundle {}: {e}", path.display())))?;
                files.push((CA_CONTEXT_FILE, bundle));
                trust_platform_ca(dockerfile)
            }
            None => dockerfile.to_string(),
        };
        files.push(("Dockerfile", mark_build(&dockerfile, build_id).into_bytes()));
        let mut stream = self.builder.build(BuildSpec {
            build_id: build_id.to_string(),
            image: image.to_string(),
            files,
            build_args,
            network: self.networks.build.network.clone(),
            memory_mb: self.limits.memory_mb,
            cpus: self.limits.cpus,
        });
        let mut progress = Progress::default();
        let result = self
            .follow_build(
                &mut stream,
                &mut grant,
                &mut progress,
                steps,
                build_id,
                live,
            )
            .await;
        if let Some(last) = progress.last {
            let (step, total) = shown(steps, last);
            let _ = db::builds::set_step(&self.db, build_id, step, total).await;
        }
        result
    }

    /// Streams the engine's build output into the log until the build ends.
    async fn follow_build(
        &self,
        stream: &mut futures::stream::BoxStream<'static, Result<String, Failure>>,
        grant: &mut egress::Grant,
        progress: &mut Progress,
        steps: &headline::StepMap,
        build_id: &str,
        live: &Arc<Live>,
    ) -> Result<(), Failure> {
        // What the current step printed, for the headline if it fails.
        let mut output: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        // The engine's chunks are not lines: a line can arrive in two ("E" then ": Unable to…").
        // Lines are taken whole; the rest waits for its end (or the build's).
        let mut partial = String::new();
        // The platform's own steps share the maintainer's number: one event per number shown.
        let mut last_shown = None;
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                Some(refusal) = grant.refusals().recv() => {
                    self.log(live, &format!("trythis egress proxy: {refusal}"));
                    continue;
                }
                // A step accepted within the last second is written once the second is over
                // (a long step prints nothing more that would carry it).
                _ = tokio::time::sleep(progress.flush_in()), if progress.unwritten => {
                    if let Some(last) = progress.take_unwritten() {
                        let (step, total) = shown(steps, last);
                        let _ = db::builds::set_step(&self.db, build_id, step, total).await;
                    }
                    continue;
                }
            };
            let (text, end) = match item {
                Some(Ok(s)) => {
                    partial.push_str(&s);
                    match partial.rfind('\n') {
                        Some(i) => {
                            let rest = partial.split_off(i + 1);
                            (std::mem::replace(&mut partial, rest), None)
                        }
                        // A step printing without a line break is logged in bounded pieces.
                        None if partial.len() > MAX_PARTIAL_LINE => {
                            (std::mem::take(&mut partial), None)
                        }
                        None => continue,
                    }
                }
                Some(Err(failure)) => (std::mem::take(&mut partial), Some(Err(failure))),
                None => (std::mem::take(&mut partial), Some(Ok(()))),
            };
            if end.is_some() {
                while let Ok(refusal) = grant.refusals().try_recv() {
                    self.log(live, &format!("trythis egress proxy: {refusal}"));
                }
            }
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A step's own output can print "Step 1/2 : …" too (`RUN yes 'Step 1/2 : x'`):
                // only the next step of the same build counts, and the row is written at most
                // once a second (and once more when the build ends).
                let accepted = parse_step(line).filter(|s| progress.accepts(*s));
                if let Some(engine_step) = accepted {
                    // Numbered as the maintainer counts (the platform's steps left out).
                    let (step, total) = shown(steps, engine_step);
                    if last_shown != Some((step, total)) {
                        last_shown = Some((step, total));
                        self.emit(live, BuildEvent::Step { step, steps: total });
                    }
                    if progress.due() {
                        let _ = db::builds::set_step(&self.db, build_id, step, total).await;
                    }
                    output.clear();
                } else {
                    if output.len() >= 200 {
                        output.pop_front();
                    }
                    output.push_back(readable(line));
                }
                self.log(live, &steps.log_line(line.trim_end(), accepted));
            }
            match end {
                None => {}
                Some(Ok(())) => return Ok(()),
                Some(Err(failure)) => {
                    return Err(match failure {
                        // A step of the recipe failed: say what it printed and which line it was.
                        Failure::Build(msg) if msg.contains("returned a non-zero code") => {
                            let output: Vec<String> = output.into_iter().collect();
                            Failure::Step(steps.headline(&output, &msg, progress.last))
                        }
                        other => other,
                    });
                }
            }
        }
    }

    /// Keeps the newest `retention` successful builds of the project (and the image `protect`,
    /// the one it serves); deletes other tags from the registry and the engine.
    async fn retain(&self, project: &db::projects::Model, repo: &str, protect: Option<&str>) {
        let keep_n = self.limits.retention as usize;
        let builds = match db::builds::for_project(&self.db, project.id, 200).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "retention skipped");
                return;
            }
        };
        let succeeded: Vec<_> = builds
            .iter()
            .filter(|b| b.state == db::BuildState::Succeeded && b.image_tag.is_some())
            .collect();
        let keep: Vec<String> = succeeded
            .iter()
            .take(keep_n)
            .filter_map(|b| b.image_tag.clone())
            .collect();
        let protect: Vec<String> = protect.map(String::from).into_iter().collect();
        if let Err(e) = self.builder.retain(repo, &keep, &protect).await {
            tracing::warn!(error = %e, repo, "registry retention failed");
        }
    }
}

/// Resolves once the cancel switch is on (the watch guard never lives across an await).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

/// An engine step as the maintainer counts it (unchanged when the map does not know it).
fn shown(steps: &headline::StepMap, (step, total): (i32, i32)) -> (i32, i32) {
    match steps.own_step(step, total) {
        Some(own) => (own as i32, steps.total() as i32),
        None => (step, total),
    }
}
