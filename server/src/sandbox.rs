//! The sandbox service: the one place that starts, stops, reaps and reconciles sandboxes.
//!
//! Lifecycle (the `state` column): `starting` → `ready` → `stopping` → `ended`, or `failed` from
//! any step. The database row is written first and is the truth; the engine is reconciled to it.
pub mod checks;
pub mod docker;
pub mod exec_io;
pub mod files;
pub mod ports;
pub mod runtime;
mod seed;
pub mod shares;
pub mod swarm;
pub mod terminal;
pub mod ttyd_host;

use crate::{config::SandboxLimits, metrics::Metrics};
use db::DatabaseConnection;
use db::SandboxState;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use runtime::{LaunchSpec, Runtime, RuntimeError};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use terminal::{TerminalError, Terminals};
use vocab::{EndReason, OwnerKey};

/// Why the sandbox service refused or failed: a domain answer, each with the sentence a person
/// reads. `http::error` maps each to its status; the causes of internal failures are kept.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("There is no such sandbox.")]
    NoSuchSandbox,
    #[error("This sandbox belongs to someone else.")]
    NotYours,
    #[error("There is no project called {0:?}.")]
    NoSuchProject(String),
    #[error("{0} has no image yet (it is still being built), so it can't be tried right now.")]
    NoImageYet(String),
    /// The identity runs a sandbox of another project; replacing it needs a confirmation.
    #[error("You already have a sandbox running. Stop it or confirm replacing it.")]
    OtherRunning { id: String, project: String },
    #[error("You already have a sandbox starting. Try again in a second.")]
    AlreadyStarting,
    #[error("Your previous sandbox is still stopping. Try again in a second.")]
    PreviousStopping,
    #[error("You're starting sandboxes too quickly. Please wait {retry_after_secs} seconds and try again.")]
    TooFast { retry_after_secs: u64 },
    #[error("Your network already runs {running} sandboxes, its share of this site. Stop one (My containers) and try again.")]
    NetworkShare { running: u64 },
    #[error(
        "Your network already holds its share of places in line. Please wait for those first."
    )]
    NetworkLineShare,
    /// Capacity is full: the request holds this place in line.
    #[error("All sandboxes are busy; you are number {position} in line.")]
    Queued { position: u64 },
    #[error("Every sandbox is busy and the line is full. Please try again in a few minutes.")]
    LineFull,
    #[error("This sandbox was stopped before it was ready.")]
    StoppedMeanwhile,
    #[error("This sandbox has already ended.")]
    Ended,
    #[error("This sandbox can't be extended any further.")]
    ExtendLimit,
    #[error("There is no such share link.")]
    NoSuchShare,
    #[error("The owner stopped sharing this session.")]
    ShareRevoked,
    #[error("This session has ended.")]
    ShareEnded,
    #[error("This sandbox already has {0} share links. Revoke one before making another.")]
    TooManyShares(u64),
    #[error("The image of {0} is missing from the registry, so it can't start. Its maintainer needs to rebuild it.")]
    ImageMissing(String),
    #[error("The sandbox engine is not answering right now. Please try again in a minute.")]
    EngineDown(#[source] RuntimeError),
    #[error("The sandbox engine did not answer; the sandbox will be removed shortly.")]
    NotRemovedYet(#[source] RuntimeError),
    #[error("sandbox {0}: its row vanished")]
    RowVanished(String),
    #[error("sandbox runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
}

/// Try requests waiting for capacity, in arrival order. A waiting client re-asks every few
/// seconds; one that stops asking loses its place. Bounded in length and per client address, so
/// one client (however many identities it mints) cannot fill the line; joining and re-asking are
/// map operations, the place is counted over the places ahead only.
#[derive(Default)]
struct Queue {
    by_owner: HashMap<OwnerKey, Place>,
    /// Ticket → owner, in arrival order.
    line: BTreeMap<u64, OwnerKey>,
    per_ip: HashMap<IpAddr, usize>,
    next_ticket: u64,
    swept: Option<Instant>,
}

struct Place {
    ticket: u64,
    seen: Instant,
    ip: IpAddr,
}

const QUEUE_STALE: Duration = Duration::from_secs(12);
/// How often a replica looks for revocations of the links its watchers use (made through
/// another replica): a revoked viewer is cut off within this anywhere.
pub const REVOCATION_FOLLOW: Duration = Duration::from_secs(2);
/// A launch takes seconds; one whose row still says `starting` after this was cut short.
const LAUNCH_BOUND: chrono::TimeDelta = chrono::TimeDelta::seconds(120);
/// Keystrokes move a row's `last_activity_at` in steps of this (a write per step, not per key).
const ACTIVITY_STEP: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// How far back the warm pool looks for demand; a quiet window gives the pool back.
const POOL_DEMAND_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Why a Try could not join the line.
#[derive(Debug, PartialEq, Eq)]
enum QueueRefusal {
    Full,
    ClientShare,
}

impl Queue {
    /// 1-based place of `owner`, joining at the back if new (unless the line, or this client's
    /// share of it, is full).
    fn place(
        &mut self,
        owner: &OwnerKey,
        ip: IpAddr,
        max_len: usize,
        per_ip: usize,
    ) -> Result<usize, QueueRefusal> {
        let now = Instant::now();
        // Leavers are swept at most once a second, not on every request.
        if self
            .swept
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.swept = Some(now);
            let stale: Vec<OwnerKey> = self
                .by_owner
                .iter()
                .filter(|(_, p)| now.duration_since(p.seen) >= QUEUE_STALE)
                .map(|(o, _)| o.clone())
                .collect();
            for o in stale {
                self.leave(&o);
            }
        }
        let ticket = match self.by_owner.get_mut(owner) {
            Some(p) => {
                p.seen = now;
                p.ticket
            }
            None => {
                if self.line.len() >= max_len {
                    return Err(QueueRefusal::Full);
                }
                let held = self.per_ip.entry(ip).or_default();
                if *held >= per_ip {
                    return Err(QueueRefusal::ClientShare);
                }
                *held += 1;
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.line.insert(ticket, owner.clone());
                self.by_owner.insert(
                    owner.clone(),
                    Place {
                        ticket,
                        seen: now,
                        ip,
                    },
                );
                ticket
            }
        };
        Ok(self.line.range(..ticket).count() + 1)
    }

    fn leave(&mut self, owner: &OwnerKey) {
        if let Some(p) = self.by_owner.remove(owner) {
            self.line.remove(&p.ticket);
            if let Some(n) = self.per_ip.get_mut(&p.ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&p.ip);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.line.len()
    }
}

pub struct SandboxService {
    db: DatabaseConnection,
    runtime: Arc<dyn Runtime>,
    terminals: Terminals,
    ports: ports::PortWatches,
    /// Woken whenever a sandbox of this server becomes ready or ends (terminals waiting for a
    /// concurrent Try's sandbox re-read its row then, instead of polling).
    state_changed: Arc<tokio::sync::Notify>,
    limits: SandboxLimits,
    metrics: Arc<Metrics>,
    per_identity: DefaultKeyedRateLimiter<OwnerKey>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    queue: Mutex<Queue>,
    networks: Arc<crate::network::Networks>,
    /// Proxy credentials of running egress sandboxes (dropped, and so revoked, at stop).
    egress_grants: Arc<Mutex<std::collections::HashMap<String, egress::Grant>>>,
}

/// Why `bring_up` left a sandbox not running.
#[derive(Debug, thiserror::Error)]
enum BringUpError {
    #[error("stopped while starting")]
    StoppedMeanwhile,
    #[error(transparent)]
    Launch(RuntimeError),
    #[error(transparent)]
    Db(#[from] db::DbErr),
}

/// Who asks the sandbox service (the http layer makes it from the request's identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The visitor's or the account's key: the owner of the sandboxes it starts.
    pub owner: OwnerKey,
    /// Signed in: an account's sandboxes live longer.
    pub signed_in: bool,
    /// May use and stop anyone's sandbox.
    pub is_admin: bool,
}

/// A sandbox as the service reports it: its row, and the clock only the service keeps.
#[derive(Debug, Clone)]
pub struct Status {
    pub row: db::sandboxes::Model,
    /// Seconds until the idle timeout ends it, while it runs.
    pub idle_seconds_left: Option<i64>,
    /// More time may still be added (`extend`).
    pub can_extend: bool,
}

/// The answer to a Try: a new sandbox (201) or the one already running for this project (200).
pub struct TryOutcome {
    pub created: bool,
    pub info: Status,
}

/// Why a sandbox whose container stopped by itself ended.
fn end_reason_of(exit: runtime::Exit) -> EndReason {
    match exit {
        runtime::Exit::OutOfMemory => EndReason::OutOfMemory,
        runtime::Exit::Ended => EndReason::Exited,
        runtime::Exit::NodeLost => EndReason::NodeLost,
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl SandboxService {
    pub fn new(
        db: DatabaseConnection,
        runtime: Arc<dyn Runtime>,
        limits: SandboxLimits,
        metrics: Arc<Metrics>,
        networks: Arc<crate::network::Networks>,
    ) -> Self {
        Self {
            networks,
            egress_grants: Arc::default(),
            per_identity: RateLimiter::keyed(per_minute(limits.rate_per_identity)),
            per_ip: RateLimiter::keyed(per_minute(limits.rate_per_ip)),
            db,
            terminals: Terminals::new(runtime.clone()),
            ports: ports::PortWatches::new(runtime.clone()),
            state_changed: Arc::new(tokio::sync::Notify::new()),
            runtime,
            limits,
            metrics,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// The runtime itself, for integration tests that inspect the engine; the edge asks the
    /// service (`usage`, `ping_engine`, `engine_version`), never the runtime.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Live CPU and memory use of each sandbox in `ids`, in order (None: not running or not
    /// measurable). The engine samples each for about a second, so all are asked at once.
    pub async fn usage(&self, ids: &[&str]) -> Vec<Option<runtime::Usage>> {
        futures::future::join_all(ids.iter().map(|id| self.runtime.usage(id)))
            .await
            .into_iter()
            .map(|u| u.ok().flatten())
            .collect()
    }

    /// The sandbox nodes with their state and capacity (cluster runtime; None on one engine).
    pub async fn nodes(&self) -> Option<Vec<runtime::NodeInfo>> {
        self.runtime.nodes().await
    }

    /// Drains a sandbox node (no new sandboxes; its running ones run on) or activates it again.
    pub async fn set_node_drained(&self, node: &str, drained: bool) -> Result<(), RuntimeError> {
        self.runtime.set_node_drained(node, drained).await
    }

    /// Whether the sandbox engine answers.
    pub async fn ping_engine(&self) -> Result<(), RuntimeError> {
        self.runtime.ping().await
    }

    /// The sandboxes' isolation (`gvisor`, `runc`) and its version, as the health check and the
    /// admin page show them.
    pub fn engine_facts(&self) -> (&'static str, String) {
        (self.runtime.isolation().as_str(), self.runtime.version())
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    pub fn info(&self, s: &db::sandboxes::Model) -> Status {
        let idle_seconds_left = (s.active && s.state == SandboxState::Ready).then(|| {
            let idle = chrono::Duration::from_std(self.limits.idle_timeout).unwrap_or_default();
            let quiet = chrono::Utc::now() - self.last_input(s);
            (idle - quiet).num_seconds().max(0)
        });
        Status {
            row: s.clone(),
            idle_seconds_left,
            can_extend: s.active && s.extensions < self.limits.max_extensions,
        }
    }

    /// The last keystroke into a sandbox (its terminal session's, else the stored one).
    fn last_input(&self, s: &db::sandboxes::Model) -> chrono::DateTime<chrono::Utc> {
        self.terminals
            .last_input_ms(&s.id)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or(s.last_activity_at)
            .max(s.last_activity_at)
    }

    /// "I'm still here" from the sandbox's page: counts as a keystroke for the idle timeout.
    pub async fn still_here(&self, s: &db::sandboxes::Model) -> Result<Status, SandboxError> {
        if !s.active {
            return Err(SandboxError::Ended);
        }
        let now = chrono::Utc::now();
        self.terminals.mark_input(&s.id, now.timestamp_millis());
        db::sandboxes::touch(&self.db, &s.id, now).await?;
        let row = db::sandboxes::get(&self.db, &s.id)
            .await?
            .ok_or_else(|| SandboxError::RowVanished(s.id.clone()))?;
        Ok(self.info(&row))
    }

    pub fn queue_length(&self) -> u64 {
        self.queue.lock().map(|q| q.len() as u64).unwrap_or(0)
    }

    /// The sandbox `id` if `who` may use it: its owner, or an admin.
    pub async fn owned(
        &self,
        who: &Caller,
        id: &str,
    ) -> Result<db::sandboxes::Model, SandboxError> {
        if id.len() != 26 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SandboxError::NoSuchSandbox);
        }
        let s = db::sandboxes::get(&self.db, id)
            .await?
            .ok_or(SandboxError::NoSuchSandbox)?;
        if s.owner != who.owner && !who.is_admin {
            return Err(SandboxError::NotYours);
        }
        Ok(s)
    }

    /// Joins the shell of sandbox `id` (whose owner the caller checked with `owned`): waits up to
    /// 15 s for a sandbox a concurrent Try is still starting.
    pub async fn attach(
        &self,
        id: &str,
        cols: u16,
        rows: u16,
    ) -> Result<terminal::Attachment, TerminalError> {
        if !self.wait_ready(id).await {
            return Err(TerminalError::NotRunning);
        }
        self.terminals.attach(id, cols, rows).await
    }

    /// The TCP ports listening in the running sandbox `id` (web previews).
    pub async fn open_ports(&self, id: &str) -> Vec<u16> {
        self.ports.ports(id).await
    }

    /// A byte stream to `port` on the sandbox's own loopback, through an engine exec of the relay
    /// (the sandbox has no network). When nothing listens it ends at once without a byte.
    pub async fn open_port(&self, id: &str, port: u16) -> Result<exec_io::ExecIo, RuntimeError> {
        let port = port.to_string();
        self.runtime.relay(id, &["forward", &port]).await
    }

    /// Ends the sandbox's shell as a closing terminal would (its session gets SIGHUP) and keeps
    /// the sandbox: the next browser to attach gets a new shell.
    pub async fn hang_up_terminal(&self, id: &str) {
        self.terminals.close(id).await;
    }

    /// Starts (or reuses, or — with `replace` — swaps to) the identity's sandbox for `slug`.
    pub async fn try_project(
        &self,
        who: &Caller,
        ip: IpAddr,
        slug: &str,
        replace: bool,
    ) -> Result<TryOutcome, SandboxError> {
        let project = db::projects::by_slug(&self.db, slug)
            .await?
            .filter(|p| p.status != db::ProjectStatus::Hidden || who.is_admin)
            .ok_or_else(|| SandboxError::NoSuchProject(slug.to_string()))?;
        let (Some(repo), Some(digest)) = (&project.image_repo, &project.image_digest) else {
            return Err(SandboxError::NoImageYet(project.name.clone()));
        };

        let replacing = match db::sandboxes::active_for_owner(&self.db, &who.owner).await? {
            Some(current) if current.project_id == project.id => {
                return Ok(TryOutcome {
                    created: false,
                    info: self.info(&current),
                });
            }
            Some(current) if !replace => {
                return Err(SandboxError::OtherRunning {
                    id: current.id,
                    project: current.project_slug,
                });
            }
            other => other,
        };

        // Capacity first: waiting in line must not use up the person's launch allowance. The
        // sandbox being replaced counts as free, and stays until the new one may start.
        self.wait_for_capacity(&who.owner, ip, replacing.is_some())
            .await?;
        if let Err(e) = self.check_rate(&who.owner, ip).await {
            if let Ok(mut q) = self.queue.lock() {
                q.leave(&who.owner);
            }
            return Err(e);
        }
        if let Some(current) = replacing {
            self.stop(&current.id, EndReason::Replaced).await?;
        }

        let lifetime = if who.signed_in {
            self.limits.lifetime_user
        } else {
            self.limits.lifetime_visitor
        };
        let expires_at =
            chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
        let image = format!("{repo}@{digest}");
        if self.limits.warm_pool > 0 || self.limits.warm_pool_max > 0 {
            let started = Instant::now();
            match db::sandboxes::claim_pool(
                &self.db,
                project.id,
                &image,
                &who.owner,
                expires_at,
                Some(ip.to_string()),
                &self.runtime.avoided_nodes(),
            )
            .await
            {
                Ok(Some(row)) => {
                    if let Ok(mut q) = self.queue.lock() {
                        q.leave(&who.owner);
                    }
                    db::projects::count_try(&self.db, project.id, &who.owner).await?;
                    self.metrics.observe_launch(started.elapsed().as_secs_f64());
                    tracing::info!(sandbox = %row.id, project = %project.slug, "warm-pool sandbox assigned");
                    return Ok(TryOutcome {
                        created: true,
                        info: self.info(&row),
                    });
                }
                Ok(None) => {}
                Err(db::sandboxes::InsertError::OwnerBusy) => {
                    return Err(SandboxError::AlreadyStarting)
                }
                Err(db::sandboxes::InsertError::Db(e)) => return Err(e.into()),
            }
        }
        let id = crate::secrets::random_id();
        let row = db::sandboxes::NewSandbox {
            id: id.clone(),
            owner: who.owner.clone(),
            project_id: project.id,
            project_slug: project.slug.clone(),
            category: project.category.clone(),
            image: image.clone(),
            expires_at,
            client_ip: Some(ip.to_string()),
        };
        match db::sandboxes::insert_starting(&self.db, row).await {
            Ok(_) => {}
            Err(db::sandboxes::InsertError::OwnerBusy) => {
                // A concurrent request of the same identity won the slot.
                let current = db::sandboxes::active_for_owner(&self.db, &who.owner).await?;
                return match current {
                    Some(c) if c.project_id == project.id => Ok(TryOutcome {
                        created: false,
                        info: self.info(&c),
                    }),
                    Some(c) => Err(SandboxError::OtherRunning {
                        id: c.id,
                        project: c.project_slug,
                    }),
                    None => Err(SandboxError::PreviousStopping),
                };
            }
            Err(db::sandboxes::InsertError::Db(e)) => return Err(e.into()),
        }
        if let Ok(mut q) = self.queue.lock() {
            q.leave(&who.owner);
        }

        match self
            .bring_up(&id, &who.owner, &project, &image, expires_at)
            .await
        {
            Ok(elapsed) => {
                db::projects::count_try(&self.db, project.id, &who.owner).await?;
                self.metrics.observe_launch(elapsed.as_secs_f64());
                tracing::info!(sandbox = %id, project = %project.slug, ms = elapsed.as_millis() as u64, "sandbox ready");
                let row = db::sandboxes::get(&self.db, &id)
                    .await?
                    .ok_or_else(|| SandboxError::RowVanished(id.clone()))?;
                Ok(TryOutcome {
                    created: true,
                    info: self.info(&row),
                })
            }
            Err(BringUpError::StoppedMeanwhile) => Err(SandboxError::StoppedMeanwhile),
            Err(BringUpError::Db(e)) => Err(e.into()),
            Err(BringUpError::Launch(e)) => {
                self.metrics.launch_failed();
                tracing::warn!(sandbox = %id, project = %project.slug, error = %e, "launch failed");
                Err(match e {
                    RuntimeError::ImageMissing(_) => SandboxError::ImageMissing(project.name),
                    down @ RuntimeError::EngineDown(_) => SandboxError::EngineDown(down),
                    other => SandboxError::Runtime(other),
                })
            }
        }
    }

    /// Launches the container and shell of a `starting` row and marks it ready — the one launch
    /// sequence of a Try and of the warm pool. On failure nothing is left running and the row is
    /// `failed`; a row stopped meanwhile stays stopped and its container goes.
    async fn bring_up(
        &self,
        id: &str,
        owner: &OwnerKey,
        project: &db::projects::Model,
        image: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Duration, BringUpError> {
        let started = Instant::now();
        let spec = LaunchSpec {
            sandbox_id: id.to_string(),
            owner: owner.to_string(),
            project: project.slug.clone(),
            image: image.to_string(),
            expires_unix: expires_at.timestamp(),
            egress: self.egress_for(id, project.egress),
            welcome: project.welcome.clone(),
        };
        let result = match self.launch(&spec).await {
            Ok(launched) => {
                let elapsed = started.elapsed();
                match db::sandboxes::mark_ready(
                    &self.db,
                    id,
                    (&launched.container_id, launched.node.as_deref()),
                    elapsed.as_millis() as i64,
                )
                .await
                {
                    Ok(true) => {
                        self.watch_exit(id);
                        Ok(elapsed)
                    }
                    Ok(false) => {
                        // Stopped while it started (Stop, a replace, an admin): its container,
                        // made after the stop looked, goes now.
                        self.close_sandbox(id).await;
                        Err(BringUpError::StoppedMeanwhile)
                    }
                    Err(e) => {
                        self.close_sandbox(id).await;
                        Err(BringUpError::Db(e))
                    }
                }
            }
            Err(e) => {
                remove_container(&*self.runtime, id).await;
                // The error is the caller's to log (with the project); the row keeps the event.
                db::sandboxes::finish(&self.db, id, SandboxState::Failed, EndReason::LaunchFailed)
                    .await?;
                Err(BringUpError::Launch(e))
            }
        };
        self.state_changed.notify_waiters();
        result
    }

    /// The launch rate per identity and per client: this process's limiter first (no database
    /// work for a flood), then the same limits counted in the database, shared by every replica.
    async fn check_rate(&self, key: &OwnerKey, ip: IpAddr) -> Result<(), SandboxError> {
        let clock = governor::clock::DefaultClock::default();
        let refuse = |wait: Duration, metrics: &Metrics| {
            metrics.rate_limited();
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            SandboxError::TooFast {
                retry_after_secs: secs,
            }
        };
        use governor::clock::Clock;
        if let Err(not_until) = self.per_identity.check_key(key) {
            return Err(refuse(not_until.wait_time_from(clock.now()), &self.metrics));
        }
        if let Err(not_until) = self.per_ip.check_key(&ip) {
            return Err(refuse(not_until.wait_time_from(clock.now()), &self.metrics));
        }
        let shared = [
            (format!("try-identity:{key}"), self.limits.rate_per_identity),
            (format!("try-ip:{ip}"), self.limits.rate_per_ip),
        ];
        for (key, n) in shared {
            if let Some(wait) = crate::accounts::shared_limit(&self.db, &key, n).await? {
                return Err(refuse(wait, &self.metrics));
            }
        }
        Ok(())
    }

    async fn wait_for_capacity(
        &self,
        owner: &OwnerKey,
        ip: IpAddr,
        replacing: bool,
    ) -> Result<(), SandboxError> {
        let running = db::sandboxes::count_active(&self.db)
            .await?
            .saturating_sub(u64::from(replacing));
        // One client's share of the machines: its running sandboxes (the one being replaced
        // aside) and its places in line together.
        let from_client = db::sandboxes::count_active_from(&self.db, &ip.to_string())
            .await?
            .saturating_sub(u64::from(replacing));
        if from_client >= self.limits.running_per_ip {
            return Err(SandboxError::NetworkShare {
                running: from_client,
            });
        }
        let mut free = self.limits.max_running.saturating_sub(running);
        // On a cluster, the nodes' own room too: a drained or lost node's share queues visitors
        // instead of failing their launches.
        if let Some(room) = self.runtime.room().await {
            free = free.min(room);
        }
        let free = free as usize;
        // The line's state stays consistent at every await-free step, so a panic elsewhere
        // while holding it leaves nothing to repair.
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let share = self
            .limits
            .running_per_ip
            .saturating_sub(from_client)
            .max(1) as usize;
        match q.place(owner, ip, self.limits.queue_max as usize, share) {
            Ok(place) if place <= free => Ok(()),
            Ok(place) => Err(SandboxError::Queued {
                position: (place - free) as u64,
            }),
            Err(QueueRefusal::Full) => Err(SandboxError::LineFull),
            Err(QueueRefusal::ClientShare) => Err(SandboxError::NetworkLineShare),
        }
    }

    /// Sizes the warm pool to demand: each project tried n times in the last
    /// [`POOL_DEMAND_WINDOW`] keeps min(n, `warm_pool_max`) ready members, the three most-tried
    /// at least `warm_pool`; all of it within the places no visitor uses, most-wanted first.
    /// Members of a replaced image, of a project no longer wanted, or beyond its share are
    /// given back before any launch; launches run one at a time so a refill never competes
    /// with visitors' own starts for the CPU. Returns how many members it started.
    pub async fn refill_pool(&self) -> Result<usize, SandboxError> {
        const POOLED_PROJECTS: u64 = 3;
        let (floor, most) = (
            self.limits.warm_pool as i64,
            self.limits.warm_pool_max as i64,
        );
        let mut wanted: Vec<(db::projects::Model, i64)> = Vec::new();
        if floor > 0 {
            for p in db::projects::most_tried(&self.db, POOLED_PROJECTS).await? {
                wanted.push((p, floor));
            }
        }
        if most > 0 {
            let since = chrono::Utc::now() - POOL_DEMAND_WINDOW;
            for (project_id, tries) in
                db::sandboxes::tries_by_project_since(&self.db, since).await?
            {
                let n = tries.min(most);
                if let Some(w) = wanted.iter_mut().find(|(p, _)| p.id == project_id) {
                    w.1 = w.1.max(n);
                } else if let Some(p) = db::projects::by_id(&self.db, project_id)
                    .await?
                    .filter(|p| p.status == db::ProjectStatus::Live)
                {
                    wanted.push((p, n));
                }
            }
        }
        wanted.sort_by_key(|w| std::cmp::Reverse(w.1));

        let mut room = self
            .limits
            .max_running
            .saturating_sub(db::sandboxes::count_active(&self.db).await?);
        if let Some(nodes_room) = self.runtime.room().await {
            // Members already running hold their slots: what the nodes have left comes on top.
            let members = db::sandboxes::pool_members(&self.db).await?.len() as u64;
            room = room.min(nodes_room + members);
        }
        let mut room = room as i64;
        let mut targets: Vec<(&db::projects::Model, String, i64)> = Vec::new();
        for (p, n) in &wanted {
            let (Some(repo), Some(digest)) = (&p.image_repo, &p.image_digest) else {
                continue;
            };
            let n = (*n).min(room);
            room -= n;
            targets.push((p, format!("{repo}@{digest}"), n));
        }

        let mut have: HashMap<i32, i64> = HashMap::new();
        for m in db::sandboxes::pool_members(&self.db)
            .await?
            .into_iter()
            .rev()
        {
            let target = targets
                .iter()
                .find(|(p, image, _)| p.id == m.project_id && *image == m.image)
                .map_or(0, |t| t.2);
            let kept = have.entry(m.project_id).or_default();
            // A member on a node that takes no new sandboxes (drained, down) is replaced by one
            // on a node that does.
            let placed_well = m
                .node
                .as_deref()
                .is_none_or(|n| self.runtime.node_accepts(n));
            if *kept < target && placed_well {
                *kept += 1;
            } else if let Err(e) = self.give_back(&m.id, EndReason::PoolNotNeeded).await {
                tracing::warn!(sandbox = %m.id, error = %e, "could not give back a warm-pool member");
            }
        }

        let mut started = 0;
        for (p, image, target) in targets {
            for _ in have.get(&p.id).copied().unwrap_or(0)..target {
                let id = crate::secrets::random_id();
                let expires_at = chrono::Utc::now() + chrono::Duration::hours(24);
                let row = db::sandboxes::NewSandbox {
                    id: id.clone(),
                    owner: OwnerKey::Pool,
                    project_id: p.id,
                    project_slug: p.slug.clone(),
                    category: p.category.clone(),
                    image: image.clone(),
                    expires_at,
                    client_ip: None,
                };
                match db::sandboxes::insert_starting(&self.db, row).await {
                    Ok(_) => {}
                    // The pool owner never holds the one-per-owner slot; only the database fails.
                    Err(db::sandboxes::InsertError::OwnerBusy) => continue,
                    Err(db::sandboxes::InsertError::Db(e)) => return Err(e.into()),
                }
                // The project as it is now, read after the row exists: an edit of its welcome
                // text committed before this read shows in this member, and one committed after
                // it finds the row and gives the member back (`renew_pool`).
                let now = db::projects::by_id(&self.db, p.id).await?;
                let p = now.as_ref().unwrap_or(p);
                match self
                    .bring_up(&id, &OwnerKey::Pool, p, &image, expires_at)
                    .await
                {
                    Ok(_) => started += 1,
                    Err(BringUpError::StoppedMeanwhile) => {}
                    Err(BringUpError::Db(e)) => return Err(e.into()),
                    Err(BringUpError::Launch(e)) => {
                        tracing::warn!(project = %p.slug, error = %e, "warm-pool launch failed");
                        break;
                    }
                }
            }
        }
        Ok(started)
    }

    /// After a change of what project `project_id`'s sandboxes print as they start (its welcome
    /// text): its warm-pool members, started with the old text, are given back at once (no Try
    /// is handed one from here on) and the next refill starts new ones. Returns how many went.
    pub async fn renew_pool(&self, project_id: i32) -> Result<usize, SandboxError> {
        let members = db::sandboxes::pool_members(&self.db).await?;
        let stops = members
            .iter()
            .filter(|m| m.project_id == project_id)
            .map(|m| self.give_back(&m.id, EndReason::PoolNotNeeded));
        let mut renewed = 0;
        for result in futures::future::join_all(stops).await {
            match result {
                Ok(true) => renewed += 1,
                Ok(false) => {}
                // Mostly a stop that failed after the release (no Try gets the member any more):
                // the reaper finishes it.
                Err(e) => {
                    tracing::warn!(project = project_id, error = %e, "a warm-pool member of an edited project did not stop yet")
                }
            }
        }
        Ok(renewed)
    }

    /// Ends warm-pool member `id` unless a visitor claimed it since it was read (then it is
    /// theirs and keeps running: false).
    async fn give_back(&self, id: &str, reason: EndReason) -> Result<bool, SandboxError> {
        if !db::sandboxes::release_pool_member(&self.db, id).await? {
            return Ok(false);
        }
        self.stop(id, reason).await?;
        Ok(true)
    }

    /// For a project that opted into egress: its network and a proxy credential of its own.
    fn egress_for(&self, sandbox_id: &str, opted_in: bool) -> Option<runtime::Egress> {
        if !opted_in {
            return None;
        }
        let (grant, proxy_url) = self
            .networks
            .sandbox
            .grant(&format!("sandbox-{sandbox_id}"));
        self.egress_grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sandbox_id.to_string(), grant);
        Some(runtime::Egress {
            network: self.networks.sandbox.network.clone(),
            proxy_url,
        })
    }

    fn revoke_egress(&self, sandbox_id: &str) {
        self.egress_grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox_id);
    }

    /// Starts the container and its shell: a sandbox is ready once ttyd has answered through the
    /// relay, so the visitor's first byte is already waiting.
    async fn launch(&self, spec: &LaunchSpec) -> Result<runtime::Launched, RuntimeError> {
        let started = Instant::now();
        let launched = match self.runtime.launch(spec).await {
            Ok(l) => l,
            Err(e) => {
                self.revoke_egress(&spec.sandbox_id);
                return Err(e);
            }
        };
        let engine = started.elapsed();
        if let Err(e) = self.terminals.open_idle(&spec.sandbox_id).await {
            remove_container(&*self.runtime, &spec.sandbox_id).await;
            self.revoke_egress(&spec.sandbox_id);
            return Err(RuntimeError::NotReady(e.to_string()));
        }
        self.metrics
            .observe_launch_phases(engine, started.elapsed() - engine);
        Ok(launched)
    }

    /// Waits (up to 15 s) while a concurrent Try is still starting `id`; true once it is ready.
    /// Re-reads the row when this server's sandboxes change state, and every second in case
    /// another server process started it.
    async fn wait_ready(&self, id: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let changed = self.state_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match db::sandboxes::get(&self.db, id).await {
                Ok(Some(s)) if s.state == SandboxState::Ready => return true,
                Ok(Some(s)) if s.active => {}
                _ => return false,
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), changed).await;
        }
    }

    /// Ends the row of a sandbox whose container stops by itself (out of memory, its processes
    /// ended), so its owner's slot frees at once and the page can say why.
    fn watch_exit(&self, id: &str) {
        let (db, runtime, changed, grants) = (
            self.db.clone(),
            self.runtime.clone(),
            self.state_changed.clone(),
            self.egress_grants.clone(),
        );
        let id = id.to_string();
        tokio::spawn(async move {
            let exit = runtime.wait_exit(&id).await;
            // The container is dead either way; gone before the row says so.
            remove_container(&*runtime, &id).await;
            let reason = end_reason_of(exit);
            match db::sandboxes::end_if_ready(&db, &id, reason).await {
                Ok(true) => {
                    grants.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    changed.notify_waiters();
                    tracing::info!(sandbox = %id, %reason, "sandbox ended by itself");
                }
                Ok(false) => {} // stopped by the platform, which recorded why
                Err(e) => {
                    tracing::warn!(sandbox = %id, error = %e, "could not record a sandbox's end")
                }
            }
        });
    }

    /// Drops what the server holds for a sandbox (shell session, egress credential) and removes
    /// its container; the row is left as it is.
    async fn close_sandbox(&self, id: &str) {
        self.revoke_egress(id);
        remove_container(&*self.runtime, id).await;
        self.terminals.close(id).await;
    }

    /// Stops a sandbox and frees its owner's slot. Idempotent.
    pub async fn stop(&self, id: &str, reason: EndReason) -> Result<(), SandboxError> {
        db::sandboxes::set_stopping(&self.db, id).await?;
        self.revoke_egress(id);
        // The container first, then the terminal: closing the terminal hangs its shell up through
        // an exec, which a sandbox being killed need not serve (gVisor with 256 processes took
        // minutes to die while one ran).
        let destroyed = self.runtime.destroy(id).await;
        self.terminals.close(id).await;
        if let Err(e) = destroyed {
            tracing::warn!(sandbox = %id, error = %e, "destroy failed; the reaper will retry");
            return Err(SandboxError::NotRemovedYet(e));
        }
        db::sandboxes::finish(&self.db, id, SandboxState::Ended, reason).await?;
        self.state_changed.notify_waiters();
        tracing::info!(sandbox = %id, %reason, "sandbox ended");
        Ok(())
    }

    /// Adds time to a running sandbox (bounded by `max_extensions`).
    pub async fn extend(&self, s: &db::sandboxes::Model) -> Result<Status, SandboxError> {
        if !s.active {
            return Err(SandboxError::Ended);
        }
        if s.extensions >= self.limits.max_extensions {
            return Err(SandboxError::ExtendLimit);
        }
        let by = chrono::Duration::from_std(self.limits.extend_by).unwrap_or_default();
        db::sandboxes::extend(&self.db, &s.id, s.expires_at + by, s.extensions + 1).await?;
        let row = db::sandboxes::get(&self.db, &s.id)
            .await?
            .ok_or_else(|| SandboxError::RowVanished(s.id.clone()))?;
        Ok(self.info(&row))
    }

    /// Writes the last keystroke of each shell this server carries to its row (when it moved on
    /// by `ACTIVITY_STEP` or more): the reaper runs on one replica of the cluster and sees only
    /// its own sessions, the rows of the others. A per-replica job, every few seconds.
    pub async fn record_input(&self) -> Result<usize, SandboxError> {
        if self.terminals.open_count() == 0 {
            return Ok(0);
        }
        let mut written = 0;
        for s in db::sandboxes::all_active(&self.db).await? {
            let Some(last) = self
                .terminals
                .last_input_ms(&s.id)
                .and_then(chrono::DateTime::from_timestamp_millis)
            else {
                continue;
            };
            if last > s.last_activity_at + ACTIVITY_STEP {
                db::sandboxes::touch(&self.db, &s.id, last).await?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// One reaper pass: ends expired and idle sandboxes, and retries stuck stops.
    pub async fn reap(&self) -> Result<usize, SandboxError> {
        let now = chrono::Utc::now();
        let idle = chrono::Duration::from_std(self.limits.idle_timeout).unwrap_or_default();
        let mut stopped = 0;
        for s in db::sandboxes::all_active(&self.db).await? {
            let last_input = self.last_input(&s);
            if last_input > s.last_activity_at + ACTIVITY_STEP {
                db::sandboxes::touch(&self.db, &s.id, last_input).await?;
            }
            let reason = if s.expires_at <= now {
                Some(EndReason::Expired)
            } else if s.state == SandboxState::Ready && now - last_input > idle {
                Some(EndReason::Idle)
            } else if s.state == SandboxState::Stopping {
                Some(EndReason::Stopped)
            } else if s.state == SandboxState::Starting && now - s.created_at > LAUNCH_BOUND {
                Some(EndReason::StartTimedOut)
            } else {
                None
            };
            if let Some(reason) = reason {
                if self.stop(&s.id, reason).await.is_ok() {
                    stopped += 1;
                }
            }
        }
        Ok(stopped)
    }

    /// At start-up: make the engine and the database agree. Containers without an active row
    /// are removed; rows whose container is gone are ended; launches cut short by a crash fail.
    pub async fn reconcile(&self) -> Result<(usize, usize), SandboxError> {
        let active = db::sandboxes::all_active(&self.db).await?;
        for s in &active {
            if let Some(node) = &s.node {
                self.runtime.locate(&s.id, node);
            }
        }
        let listed = self.runtime.list().await?;
        let alive: HashSet<&str> = listed.iter().map(|l| l.sandbox_id.as_str()).collect();
        // Another app server of the cluster may be launching a sandbox right now (its row says
        // `starting`, young), or running a build's smoke check: neither is this start's to end.
        let started_since = chrono::Utc::now() - LAUNCH_BOUND;
        let launching = |s: &db::sandboxes::Model| {
            s.state == SandboxState::Starting && s.created_at > started_since
        };
        let keep: HashSet<&str> = active
            .iter()
            .filter(|s| s.state == SandboxState::Ready || launching(s))
            .map(|s| s.id.as_str())
            .collect();
        let mut removed = 0;
        for l in &listed {
            if keep.contains(l.sandbox_id.as_str()) || self.checking(&l.sandbox_id).await? {
                continue;
            }
            self.runtime.destroy(&l.sandbox_id).await?;
            removed += 1;
        }
        let mut ended = 0;
        for s in &active {
            if launching(s) {
                // Cut short by a crash, the reaper ends it once it is older than the bound.
                continue;
            }
            if s.state != SandboxState::Ready {
                db::sandboxes::finish(
                    &self.db,
                    &s.id,
                    SandboxState::Failed,
                    EndReason::ServerRestarted,
                )
                .await?;
                ended += 1;
            } else if !alive.contains(s.id.as_str()) {
                // Gone with its machine (a node the cluster lists as down) or by itself.
                let reason = match &s.node {
                    Some(node) if !self.runtime.node_accepts(node) => EndReason::NodeLost,
                    _ => EndReason::ContainerLost,
                };
                db::sandboxes::finish(&self.db, &s.id, SandboxState::Ended, reason).await?;
                ended += 1;
            } else {
                self.watch_exit(&s.id);
            }
        }
        Ok((removed, ended))
    }
}

impl SandboxService {
    /// Removes (and logs) every container of this installation that has no live owner: no
    /// active sandbox row (Try or warm-pool member) and not the smoke check of a build that is
    /// checking now. Containers are listed before rows and builds are read, so a launch under way
    /// (its row, or its build's `checking` state, is written before its container) is kept.
    pub async fn sweep(&self) -> Result<usize, SandboxError> {
        let listed = self.runtime.list().await?;
        if listed.is_empty() {
            return Ok(0);
        }
        let active: HashSet<String> = db::sandboxes::all_active(&self.db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let mut removed = 0;
        for l in &listed {
            if active.contains(&l.sandbox_id) {
                continue;
            }
            if self.checking(&l.sandbox_id).await? {
                continue;
            }
            tracing::warn!(sandbox = %l.sandbox_id, container = %l.container_id, "removing a container without a live owner");
            self.runtime.destroy(&l.sandbox_id).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Whether `sandbox_id` is the smoke check of a build in its checking step (it has no row;
    /// its build's runner, this server or another, removes it).
    async fn checking(&self, sandbox_id: &str) -> Result<bool, SandboxError> {
        let Some(build) = sandbox_id.strip_prefix(checks::CHECK_PREFIX) else {
            return Ok(false);
        };
        Ok(db::builds::get(&self.db, build)
            .await?
            .is_some_and(|b| b.state == db::BuildState::Checking))
    }

    /// At shutdown: the smoke checks of this server's builds cannot finish once it is gone;
    /// another replica's are its own.
    pub async fn remove_checks(&self, replica: &str) -> Result<usize, SandboxError> {
        let mut removed = 0;
        for l in self.runtime.list().await? {
            let Some(build) = l.sandbox_id.strip_prefix(checks::CHECK_PREFIX) else {
                continue;
            };
            let elsewhere = db::builds::get(&self.db, build).await?.is_some_and(|b| {
                b.state == db::BuildState::Checking
                    && b.runner.as_deref().is_some_and(|r| r != replica)
            });
            if !elsewhere {
                self.runtime.destroy(&l.sandbox_id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Removes a sandbox's container where no caller can act on a failure: the failure is logged,
/// and the orphan sweep (`SandboxService::sweep`, a periodic job) removes the container on a
/// later pass, once its row is no longer active.
async fn remove_container(runtime: &dyn Runtime, id: &str) {
    if let Err(e) = runtime.destroy(id).await {
        tracing::warn!(sandbox = %id, error = %e, "could not remove the container; the orphan sweep will retry");
    }
}

#[cfg(test)]
pub(crate) mod fast_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn k(visitor: &str) -> OwnerKey {
        OwnerKey::Visitor(visitor.into())
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn queue_keeps_places_and_forgets_leavers() {
        let mut q = Queue::default();
        let place = |q: &mut Queue, o: &str| q.place(&k(o), A, 100, 100).expect("room");
        assert_eq!(place(&mut q, "a"), 1);
        assert_eq!(place(&mut q, "b"), 2);
        assert_eq!(place(&mut q, "a"), 1);
        q.leave(&k("a"));
        assert_eq!(place(&mut q, "b"), 1);
        assert_eq!(place(&mut q, "c"), 2);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn the_line_is_bounded_in_length_and_per_client() {
        let mut q = Queue::default();
        assert_eq!(q.place(&k("a"), A, 3, 2), Ok(1));
        assert_eq!(q.place(&k("b"), A, 3, 2), Ok(2));
        // A third identity from the same client: refused, whatever the line's room.
        assert_eq!(q.place(&k("c"), A, 3, 2), Err(QueueRefusal::ClientShare));
        // Re-asking keeps the place.
        assert_eq!(q.place(&k("b"), A, 3, 2), Ok(2));
        assert_eq!(q.place(&k("d"), B, 3, 2), Ok(3));
        assert_eq!(q.place(&k("e"), B, 3, 2), Err(QueueRefusal::Full));
        // A leaver frees both the line's room and the client's share.
        q.leave(&k("a"));
        assert_eq!(q.place(&k("c"), A, 3, 2), Ok(3));
    }

    #[test]
    fn places_of_clients_that_stop_asking_are_dropped() {
        let mut q = Queue::default();
        assert_eq!(q.place(&k("gone"), A, 10, 10), Ok(1));
        let long_ago = Instant::now() - QUEUE_STALE - Duration::from_secs(1);
        q.by_owner.get_mut(&k("gone")).expect("place").seen = long_ago;
        q.swept = Some(long_ago);
        assert_eq!(q.place(&k("new"), B, 10, 10), Ok(1));
        assert_eq!(q.len(), 1);
        assert!(!q.per_ip.contains_key(&A));
    }
}
