//! The fast tier: `SandboxService`'s own logic (launch and stop races, replace, queue, rate
//! limits, reaper, reconciliation) against a fake runtime behind the `Runtime` trait and an
//! in-memory SQLite, in milliseconds. The real engine, registry and ttyd are in `server/tests`.
use super::*;
use crate::engine::Isolation;
use crate::sandbox::runtime::{LaunchSpec, Launched, Listed, TerminalUpstream};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::collections::BTreeSet;
use tokio_tungstenite::tungstenite::{http::HeaderValue, Message};

/// Containers that "run" in memory; each terminal is a tiny ttyd that prints a prompt.
#[derive(Default)]
struct FakeRuntime {
    running: Mutex<BTreeSet<String>>,
    launches: std::sync::atomic::AtomicUsize,
    /// When set, launches wait for a permit (to stop a sandbox while it starts).
    gate: Option<tokio::sync::Semaphore>,
    launch_started: tokio::sync::Notify,
}

impl FakeRuntime {
    fn running(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError> {
        self.launches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.launch_started.notify_waiters();
        if let Some(gate) = &self.gate {
            let _ = gate
                .acquire()
                .await
                .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.sandbox_id.clone());
        Ok(Launched {
            container_id: format!("c-{}", spec.sandbox_id),
            node: None,
        })
    }
    async fn destroy(&self, id: &str) -> Result<(), RuntimeError> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }
    async fn open_terminal(&self, _: &str) -> Result<TerminalUpstream, RuntimeError> {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            #[allow(clippy::result_large_err)] // tungstenite's callback error type
            let agree = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("tty"));
                Ok(resp)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(theirs, agree).await else {
                return;
            };
            let _hello = ws.next().await;
            let _ = ws.send(Message::Binary(Bytes::from_static(b"0$ "))).await;
            while let Some(Ok(_)) = ws.next().await {}
        });
        Ok(TerminalUpstream::direct(ours))
    }
    fn isolation(&self) -> Isolation {
        Isolation::Runc
    }
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        Ok(self
            .running()
            .into_iter()
            .map(|id| Listed {
                container_id: format!("c-{id}"),
                sandbox_id: id,
            })
            .collect())
    }
    async fn ping(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
}

struct Fixture {
    service: SandboxService,
    runtime: Arc<FakeRuntime>,
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
}

async fn fixture(runtime: FakeRuntime, config: &[(&str, &str)]) -> Fixture {
    let config = crate::config::Config::from_pairs(config.iter().copied())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let db = db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap_or_else(|e| panic!("db: {e}"));
    for slug in ["jq", "redis"] {
        let p = db::projects::upsert(
            &db,
            &db::projects::NewProject {
                slug: slug.into(),
                name: slug.into(),
                summary: "s".into(),
                category: "CLI tools".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("project: {e}"));
        db::projects::set_image(&db, p.id, "r/x", "sha256:1", 1)
            .await
            .unwrap_or_else(|e| panic!("image: {e}"));
    }
    let runtime = Arc::new(runtime);
    let metrics = Arc::new(Metrics::default());
    let service = SandboxService::new(
        db.clone(),
        runtime.clone(),
        config.limits.clone(),
        metrics.clone(),
        crate::network::loopback_networks().await,
    );
    Fixture {
        service,
        runtime,
        db,
        metrics,
    }
}

fn visitor(n: u32) -> Caller {
    Caller {
        owner: OwnerKey::Visitor(format!("visitor{n}")),
        signed_in: false,
        is_admin: false,
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

#[tokio::test]
async fn a_sandbox_stopped_while_it_starts_is_not_left_running() {
    let fx = fixture(
        FakeRuntime {
            gate: Some(tokio::sync::Semaphore::new(0)),
            ..Default::default()
        },
        &[],
    )
    .await;
    let me = visitor(1);
    let started = fx.runtime.launch_started.notified();
    tokio::pin!(started);
    started.as_mut().enable();
    let svc = &fx.service;
    let trying = svc.try_project(&me, ip(1), "jq", false);
    tokio::pin!(trying);
    // Run the Try until the engine is creating the container.
    tokio::select! {
        _ = &mut trying => panic!("the launch did not wait at the gate"),
        _ = &mut started => {}
    }
    let row = db::sandboxes::active_for_owner(&fx.db, &me.owner)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no starting row"));
    assert_eq!(row.state, SandboxState::Starting);
    svc.stop(&row.id, EndReason::StoppedByOwner)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    fx.runtime
        .gate
        .as_ref()
        .unwrap_or_else(|| panic!("gate"))
        .add_permits(1);
    let out = trying.await;
    assert!(
        matches!(out, Err(SandboxError::StoppedMeanwhile)),
        "{:?}",
        out.map(|o| o.info.row.id)
    );
    assert!(
        fx.runtime.running().is_empty(),
        "a container was left running"
    );
    let row = db::sandboxes::get(&fx.db, &row.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("row"));
    assert_eq!((row.state, row.active), (SandboxState::Ended, false));
}

#[tokio::test]
async fn replace_swaps_the_sandbox_and_a_second_try_reuses_it() {
    let fx = fixture(FakeRuntime::default(), &[]).await;
    let me = visitor(1);
    let first = fx
        .service
        .try_project(&me, ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    assert!(first.created);
    let again = fx
        .service
        .try_project(&me, ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    assert!(!again.created);
    assert_eq!(again.info.row.id, first.info.row.id);
    assert!(matches!(
        fx.service.try_project(&me, ip(1), "redis", false).await,
        Err(SandboxError::OtherRunning { .. })
    ));
    let second = fx
        .service
        .try_project(&me, ip(1), "redis", true)
        .await
        .unwrap_or_else(|e| panic!("replace: {e}"));
    assert_eq!(fx.runtime.running(), vec![second.info.row.id.clone()]);
    assert_eq!(
        fx.runtime
            .launches
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    // Both launches are in the phase metrics (the reuse is not a launch).
    let text = fx.metrics.render(1, 0);
    for phase in ["engine", "shell"] {
        let line = format!("trythis_sandbox_launch_phase_seconds_count{{phase=\"{phase}\"}} 2");
        assert!(text.contains(&line), "{line} in {text}");
    }
}

#[tokio::test]
async fn capacity_queues_in_order_and_rate_limits_hold() {
    let fx = fixture(
        FakeRuntime::default(),
        &[
            ("TRYTHIS_MAX_SANDBOXES", "1"),
            ("TRYTHIS_RATE_TRIES_PER_MIN", "2"),
        ],
    )
    .await;
    let svc = &fx.service;
    let a = svc
        .try_project(&visitor(1), ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    for (n, place) in [(2, 1), (3, 2), (2, 1)] {
        match svc.try_project(&visitor(n), ip(n as u8), "jq", false).await {
            Err(SandboxError::Queued { position }) => assert_eq!(position, place, "visitor {n}"),
            other => panic!("visitor {n}: {:?}", other.map(|o| o.info.row.id)),
        }
    }
    svc.stop(&a.info.row.id, EndReason::StoppedByOwner)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    // The head of the line gets the freed place; the one behind still waits.
    assert!(svc
        .try_project(&visitor(3), ip(3), "jq", false)
        .await
        .is_err());
    assert!(svc
        .try_project(&visitor(2), ip(2), "jq", false)
        .await
        .is_ok());

    // Per identity: two launches a minute, then 429 with a wait.
    let fx = fixture(
        FakeRuntime::default(),
        &[("TRYTHIS_RATE_TRIES_PER_MIN", "2")],
    )
    .await;
    let me = visitor(9);
    for slug in ["jq", "redis"] {
        fx.service
            .try_project(&me, ip(9), slug, true)
            .await
            .unwrap_or_else(|e| panic!("try {slug}: {e}"));
    }
    let current = db::sandboxes::active_for_owner(&fx.db, &me.owner)
        .await
        .ok()
        .flatten();
    assert!(matches!(
        fx.service.try_project(&me, ip(9), "jq", true).await,
        Err(SandboxError::TooFast { retry_after_secs }) if retry_after_secs >= 1
    ));
    // A refused replace keeps the sandbox the person has.
    let still = db::sandboxes::active_for_owner(&fx.db, &me.owner)
        .await
        .ok()
        .flatten();
    assert_eq!(still.map(|s| s.id), current.map(|s| s.id));
    assert_eq!(fx.runtime.running().len(), 1);
}

#[tokio::test]
async fn the_reaper_ends_expired_sandboxes_and_reconcile_makes_engine_and_rows_agree() {
    let fx = fixture(FakeRuntime::default(), &[]).await;
    let a = fx
        .service
        .try_project(&visitor(1), ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    let b = fx
        .service
        .try_project(&visitor(2), ip(2), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    db::sandboxes::extend(&fx.db, &a.info.row.id, chrono::Utc::now(), 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fx.service.reap().await.ok(), Some(1));
    assert_eq!(fx.runtime.running(), vec![b.info.row.id.clone()]);
    let ended = db::sandboxes::get(&fx.db, &a.info.row.id)
        .await
        .ok()
        .flatten();
    assert_eq!(
        ended.map(|s| (s.state, s.end_reason)),
        Some((SandboxState::Ended, Some(EndReason::Expired)))
    );

    // A container without a row goes; a ready row whose container is gone ends.
    fx.runtime
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert("orphan".into());
    fx.runtime
        .destroy(&b.info.row.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fx.service.reconcile().await.ok(), Some((1, 1)));
    assert!(fx.runtime.running().is_empty());
    let lost = db::sandboxes::get(&fx.db, &b.info.row.id)
        .await
        .ok()
        .flatten();
    assert_eq!(
        lost.map(|s| (s.state, s.end_reason)),
        Some((SandboxState::Ended, Some(EndReason::ContainerLost)))
    );
}

/// One client minting identities (a script without cookies) holds at most its share of the
/// machines: running sandboxes and places in line from its address are capped together.
#[tokio::test]
async fn one_client_holds_at_most_its_share_of_capacity() {
    let fx = fixture(
        FakeRuntime::default(),
        &[
            ("TRYTHIS_MAX_SANDBOXES", "3"),
            ("TRYTHIS_SANDBOXES_PER_IP", "2"),
        ],
    )
    .await;
    let svc = &fx.service;
    for n in 1..=2 {
        svc.try_project(&visitor(n), ip(7), "jq", false)
            .await
            .unwrap_or_else(|e| panic!("try {n}: {e}"));
    }
    assert!(matches!(
        svc.try_project(&visitor(3), ip(7), "jq", false).await,
        Err(SandboxError::NetworkShare { running: 2 })
    ));
    // Another client gets the machine that is left, then a place in line.
    svc.try_project(&visitor(4), ip(8), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("other client: {e}"));
    assert!(matches!(
        svc.try_project(&visitor(5), ip(8), "jq", false).await,
        Err(SandboxError::Queued { position: 1 })
    ));
    assert_eq!(fx.runtime.running().len(), 3);
}

/// The idle clock the page shows: it counts down from the idle timeout, "I'm here" resets it,
/// and a sandbox nobody typed in for that long ends with the reason "idle".
#[tokio::test]
async fn the_idle_clock_is_shown_reset_by_im_here_and_ends_with_its_reason() {
    let fx = fixture(FakeRuntime::default(), &[("TRYTHIS_SANDBOX_IDLE_MIN", "1")]).await;
    let svc = &fx.service;
    let t = svc
        .try_project(&visitor(1), ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    let id = t.info.row.id.clone();
    let left = t.info.idle_seconds_left.unwrap_or(-1);
    assert!((55..=60).contains(&left), "{left}");
    // Nobody typed for 50 s.
    let quiet = |secs: i64| {
        let at = chrono::Utc::now() - chrono::Duration::seconds(secs);
        if let Some(s) = svc.terminals.get(&id) {
            s.last_input_ms
                .store(at.timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
        }
        db::sandboxes::touch(&fx.db, &id, at)
    };
    quiet(50).await.unwrap_or_else(|e| panic!("{e}"));
    let row = db::sandboxes::get(&fx.db, &id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("row"));
    let left = svc.info(&row).idle_seconds_left.unwrap_or(-1);
    assert!((5..=10).contains(&left), "{left}");
    let info = svc.still_here(&row).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(info.idle_seconds_left.unwrap_or(0) >= 55, "{info:?}");
    assert_eq!(svc.reap().await.ok(), Some(0));
    quiet(61).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(svc.reap().await.ok(), Some(1));
    let row = db::sandboxes::get(&fx.db, &id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("row"));
    assert_eq!(row.end_reason, Some(EndReason::Idle));
    assert_eq!(svc.info(&row).idle_seconds_left, None);
}

/// Tries of `slug` by `n` distinct visitors, each stopped again (their demand stays counted).
async fn tries_then_stop(fx: &Fixture, slug: &str, first: u32, n: u32) {
    for i in first..first + n {
        let t = fx
            .service
            .try_project(&visitor(i), ip(i as u8), slug, false)
            .await
            .unwrap_or_else(|e| panic!("try {i}: {e}"));
        fx.service
            .stop(&t.info.row.id, EndReason::StoppedByOwner)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
}

async fn pool_of(fx: &Fixture, slug: &str) -> Vec<db::sandboxes::Model> {
    db::sandboxes::pool_members(&fx.db)
        .await
        .unwrap_or_else(|e| panic!("pool: {e}"))
        .into_iter()
        .filter(|m| m.project_slug == slug)
        .collect()
}

/// Moves every sandbox's start back by `minutes` (the demand window is measured on it).
async fn age_tries(fx: &Fixture, minutes: i64) {
    use db::entities::sandbox;
    use db::sea_orm::{sea_query::Expr, EntityTrait};
    sandbox::Entity::update_many()
        .col_expr(
            sandbox::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(minutes)),
        )
        .exec(&fx.db)
        .await
        .unwrap_or_else(|e| panic!("age: {e}"));
}

#[tokio::test]
async fn the_warm_pool_follows_demand_within_free_capacity_and_gives_back_what_it_no_longer_needs()
{
    // Defaults: no fixed pool, demand-following on.
    let fx = fixture(FakeRuntime::default(), &[("TRYTHIS_MAX_SANDBOXES", "6")]).await;
    let svc = &fx.service;
    assert_eq!(svc.refill_pool().await.ok(), Some(0), "no demand, no pool");
    tries_then_stop(&fx, "jq", 1, 4).await;
    tries_then_stop(&fx, "redis", 10, 1).await;
    assert_eq!(svc.refill_pool().await.ok(), Some(5));
    assert_eq!(
        pool_of(&fx, "jq").await.len(),
        4,
        "one spare per recent try"
    );
    assert_eq!(pool_of(&fx, "redis").await.len(), 1);
    assert_eq!(fx.runtime.running().len(), 5);

    // The next visitor of jq gets a member; the pool tops up behind them.
    let warm = svc
        .try_project(&visitor(20), ip(20), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    assert_eq!(
        fx.runtime.running().len(),
        5,
        "no new launch for a warm Try"
    );
    // The pool tops up behind them within the 5 places left, the most-wanted project first:
    // jq (5 recent tries) takes them all and redis's member is given back.
    assert_eq!(svc.refill_pool().await.ok(), Some(2));
    assert_eq!(pool_of(&fx, "jq").await.len(), 5);
    assert!(pool_of(&fx, "redis").await.is_empty());

    // Capacity is for visitors: with 2 of 6 places taken, the pool keeps to the 4 left.
    let other = svc
        .try_project(&visitor(21), ip(21), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    svc.refill_pool().await.unwrap_or_else(|e| panic!("{e}"));
    let (jq, redis) = (
        pool_of(&fx, "jq").await.len(),
        pool_of(&fx, "redis").await.len(),
    );
    assert_eq!((jq, redis), (4, 0));
    assert_eq!(fx.runtime.running().len(), 6);

    // Five minutes without a try: the pool goes (no fixed floor is set).
    for id in [&warm.info.row.id, &other.info.row.id] {
        svc.stop(id, EndReason::StoppedByOwner)
            .await
            .unwrap_or_else(|e| panic!("stop: {e}"));
    }
    age_tries(&fx, 6).await;
    svc.refill_pool().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(pool_of(&fx, "jq").await.is_empty());
    assert_eq!(fx.runtime.running(), Vec::<String>::new());

    // TRYTHIS_WARM_POOL_MAX=0 turns it off.
    let off = fixture(FakeRuntime::default(), &[("TRYTHIS_WARM_POOL_MAX", "0")]).await;
    tries_then_stop(&off, "jq", 1, 3).await;
    assert_eq!(off.service.refill_pool().await.ok(), Some(0));
}

#[tokio::test]
async fn a_republished_image_is_never_served_from_the_pool_of_the_old_one() {
    let fx = fixture(FakeRuntime::default(), &[("TRYTHIS_WARM_POOL", "2")]).await;
    let svc = &fx.service;
    tries_then_stop(&fx, "jq", 1, 1).await;
    svc.refill_pool().await.unwrap_or_else(|e| panic!("{e}"));
    let stale: Vec<String> = pool_of(&fx, "jq").await.into_iter().map(|m| m.id).collect();
    assert_eq!(stale.len(), 2);
    // The maintainer ships a fix.
    let jq = db::projects::by_slug(&fx.db, "jq")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("jq"));
    db::projects::set_image(&fx.db, jq.id, "r/x", "sha256:2", 1)
        .await
        .unwrap_or_else(|e| panic!("image: {e}"));
    let t = svc
        .try_project(&visitor(2), ip(2), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    assert!(
        !stale.contains(&t.info.row.id),
        "a member of the old image was handed out"
    );
    let row = db::sandboxes::get(&fx.db, &t.info.row.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("row"));
    assert_eq!(row.image, "r/x@sha256:2");
    // The next refill replaces the old image's members.
    svc.refill_pool().await.unwrap_or_else(|e| panic!("{e}"));
    let now: Vec<_> = pool_of(&fx, "jq").await;
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|m| m.image == "r/x@sha256:2"), "{now:?}");
    for id in &stale {
        assert!(!fx.runtime.running().contains(id), "{id} still runs");
    }
}

/// A refill reads the pool, a visitor claims a member, then the refill gives back what it read:
/// the claimed member is the visitor's now and keeps running.
#[tokio::test]
async fn a_member_claimed_after_the_refill_read_it_is_never_given_back() {
    let fx = fixture(FakeRuntime::default(), &[("TRYTHIS_WARM_POOL", "1")]).await;
    let svc = &fx.service;
    svc.refill_pool().await.unwrap_or_else(|e| panic!("{e}"));
    let read = pool_of(&fx, "jq").await;
    assert_eq!(read.len(), 1);
    let t = svc
        .try_project(&visitor(1), ip(1), "jq", false)
        .await
        .unwrap_or_else(|e| panic!("try: {e}"));
    assert_eq!(t.info.row.id, read[0].id, "the visitor got the member");
    assert_eq!(
        svc.give_back(&read[0].id, EndReason::PoolNotNeeded)
            .await
            .ok(),
        Some(false)
    );
    assert!(fx.runtime.running().contains(&t.info.row.id));
    let row = db::sandboxes::get(&fx.db, &t.info.row.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("row"));
    assert_eq!(row.state, SandboxState::Ready);
}
