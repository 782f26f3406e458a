//! Several app servers (replicas) over one PostgreSQL database: two real servers (engines,
//! registry, ttyd) in this process, each with its own connections, sharing only the database and
//! the data directory, as two `trythis serve` behind a load balancer would.
mod common;
use common::*;
use db::sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use std::time::Duration;

/// The build's row (a test reads what the database says, whichever replica wrote it).
async fn build_row(app: &TestApp, id: &str) -> Result<db::builds::Model> {
    Ok(db::builds::get(&app.state.db, id)
        .await?
        .ok_or("the build has no row")?)
}

async fn wait_state(app: &TestApp, id: &str, want: &[&str], limit: Duration) -> Result<String> {
    let t0 = std::time::Instant::now();
    loop {
        let state = build_row(app, id).await?.state.as_str().to_string();
        if want.contains(&state.as_str()) {
            return Ok(state);
        }
        if t0.elapsed() > limit {
            return Err(format!("build {id} still {state} after {limit:?}, not {want:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A replica that starts while another runs a build leaves that build alone: it was failed as
/// "interrupted by a restart" by every starting server.
#[tokio::test]
async fn a_build_running_on_one_replica_survives_another_starting() -> Result {
    let url = fresh_postgres_url().await?;
    let a = replica(&url, "replica-a", None, &[]).await?;
    let v = a.user().await?;
    let slug = unique("slow");
    let id =
        submit_dockerfile(&v, &slug, &format!("FROM {}\nRUN sleep 60\n", base_image())).await?;
    wait_state(&a, &id, &["running"], Duration::from_secs(60)).await?;
    let b = replica(&url, "replica-b", Some(&a), &[]).await?;
    // B has recovered (its start-up did): the build is still A's, still running.
    let row = build_row(&b, &id).await?;
    assert_eq!(row.state.as_str(), "running", "{:?}", row.error);
    // Cancelled through B, the replica not running it: A stops it at its next heartbeat.
    let through_b = v.through(&format!("http://{}", b.addr));
    let r = through_b
        .call("DELETE", &format!("/api/builds/{id}"), None)
        .await?;
    assert!(r.status < 300, "cancel through B: {} {}", r.status, r.body);
    let done = wait_state(&a, &id, &["cancelled", "failed"], Duration::from_secs(60)).await?;
    assert_eq!(done, "cancelled");
    Ok(())
}

/// A build left as a replica that died leaves it, which no live replica was told about: in
/// `state` (`running`: its claim never renewed; `queued`: waiting since a minute ago). Written in
/// one transaction, so no worker sees it half-made.
async fn orphan_build(app: &TestApp, state: &str) -> Result<(db::projects::Model, String)> {
    let db = &app.state.db;
    let p = db::projects::upsert(
        db,
        &db::projects::NewProject {
            slug: unique("orphan"),
            name: "Orphan".into(),
            summary: "A build whose server died".into(),
            description: "Taken over.".into(),
            category: db::projects::CATEGORIES[0].into(),
            ..Default::default()
        },
    )
    .await?;
    let id = server::secrets::random_id();
    let dockerfile = format!("FROM {}\nRUN echo taken-over > /taken\n", base_image());
    let txn = db.begin().await?;
    db::builds::insert_queued(
        &txn,
        db::builds::NewBuild {
            id: id.clone(),
            project_id: p.id,
            project_slug: p.slug.clone(),
            owner: vocab::OwnerKey::User(1),
            source_kind: "dockerfile".into(),
            source: dockerfile.clone(),
            dockerfile,
            steps: 2,
            check_command: None,
            check_expect: None,
        },
    )
    .await?;
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE builds SET state = $1, created_at = $2 WHERE id = $3",
        [state.into(), since.into(), id.clone().into()],
    ))
    .await?;
    txn.commit().await?;
    Ok((p, id))
}

/// A queued build no live replica was told about (its replica died before starting it) is
/// found in the database and run by one of them.
#[tokio::test]
async fn a_queued_build_of_a_dead_replica_runs_on_another() -> Result {
    let (a, _b) = two_replicas(&[]).await?;
    let (_, id) = orphan_build(&a, "queued").await?;
    let done = wait_state(
        &a,
        &id,
        &["succeeded", "failed", "cancelled"],
        Duration::from_secs(120),
    )
    .await?;
    let row = build_row(&a, &id).await?;
    assert_eq!(done, "succeeded", "{:?}\n{}", row.error, row.log);
    assert!(
        matches!(row.runner.as_deref(), Some("replica-a" | "replica-b")),
        "{:?}",
        row.runner
    );
    Ok(())
}

/// A build whose replica stopped renewing its claim (died mid-build) is taken over by one
/// replica, once, says so in its log, and runs to the end.
#[tokio::test]
async fn a_build_whose_replica_stopped_is_taken_over_once_and_says_so() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let (p, id) = orphan_build(&a, "running").await?;
    // Both replicas look for stale builds at once.
    let (ra, rb) = tokio::join!(a.state.builds.recover(), b.state.builds.recover());
    ra?;
    rb?;
    let done = wait_state(
        &a,
        &id,
        &["succeeded", "failed", "cancelled"],
        Duration::from_secs(180),
    )
    .await?;
    let row = build_row(&a, &id).await?;
    assert_eq!(done, "succeeded", "{:?}\n{}", row.error, row.log);
    let notes = row.log.matches("stopped; replica-").count();
    assert_eq!(notes, 1, "{}", row.log);
    assert!(
        row.log.starts_with(
            "The app server running this build (an earlier server process) stopped; replica-"
        ),
        "{}",
        row.log
    );
    assert_eq!(row.log.matches("Published ").count(), 1, "{}", row.log);
    let p = db::projects::by_id(&a.state.db, p.id)
        .await?
        .ok_or("project gone")?;
    assert_eq!(p.image_digest, row.image_digest);
    Ok(())
}

/// A cluster-wide periodic job runs on one replica at a time, however many run the job runner.
#[tokio::test]
async fn a_periodic_job_runs_once_per_period_across_replicas() -> Result {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (a, b) = two_replicas(&[]).await?;
    let ran = Arc::new(AtomicUsize::new(0));
    let mut running = Vec::new();
    for (i, app) in [&a, &b].into_iter().enumerate() {
        let metrics = Arc::new(server::metrics::Metrics::default());
        let mut jobs = server::jobs::Jobs::new(metrics)
            .in_cluster(app.state.db.clone(), app.state.builds.replica());
        let ran = ran.clone();
        // Each replica counts in its own byte: which replicas ran shows in the total.
        let bit = 1usize << (8 * i);
        jobs.every("session purge", Duration::from_millis(500), move || {
            ran.fetch_add(bit, Ordering::SeqCst);
            async { Ok::<_, String>(0) }
        });
        running.push(jobs.start());
    }
    // Four periods.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for r in running {
        r.stop().await;
    }
    let n = ran.load(Ordering::SeqCst);
    let (on_a, on_b) = (n & 0xff, n >> 8);
    assert!(
        (on_a > 0) != (on_b > 0),
        "ran {on_a} times on A and {on_b} on B"
    );
    Ok(())
}

/// Wrong log-ins spread over both replicas count against one limit (30 a minute per client).
#[tokio::test]
async fn wrong_log_ins_spread_over_two_replicas_hit_one_limit() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let http = reqwest::Client::new();
    let mut first_refused = None;
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        let base = format!("http://{}", app.addr);
        let (cookie, csrf) = visitor_credentials(&http, &base).await?;
        let status = http
            .post(app.url("/api/auth/login"))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({
                "email": format!("nobody{i}@example.test"),
                "password": "wrong password 1",
            }))
            .send()
            .await?
            .status()
            .as_u16();
        if status == 429 {
            first_refused = Some(i + 1);
            break;
        }
        assert_eq!(status, 401, "attempt {}", i + 1);
    }
    // 30 at once, and one more every two seconds the attempts took.
    assert!(
        first_refused.is_some_and(|n| n <= 35),
        "first refusal at attempt {first_refused:?}: each replica counted its own 30"
    );
    Ok(())
}

/// One visitor asking both replicas at once for two different Tries gets one sandbox.
#[tokio::test]
async fn one_identity_cannot_hold_two_sandboxes_via_two_replicas() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let (repo, digest, size) = fixture_image(&a.state.config).await?;
    publish_fixture(
        &a.state.db,
        "fixture-two",
        "Databases",
        &repo,
        &digest,
        size,
    )
    .await?;
    let on_a = a.visitor().await?;
    let on_b = on_a.through(&format!("http://{}", b.addr));
    let (ra, rb) = tokio::join!(on_a.try_project("fixture"), on_b.try_project("fixture-two"));
    let (ra, rb) = (ra?, rb?);
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{} / {}", ra.body, rb.body);
    assert!(
        statuses[1] >= 400,
        "both started: {} / {}",
        ra.body,
        rb.body
    );
    assert_eq!(db::sandboxes::count_active(&a.state.db).await?, 1);
    // And one after the other: the second replica sees the first one's sandbox.
    let (winner, other_slug, other) = if ra.status == 201 {
        (&on_a, "fixture-two", &on_b)
    } else {
        (&on_b, "fixture", &on_a)
    };
    let again = other.try_project(other_slug).await?;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(db::sandboxes::count_active(&a.state.db).await?, 1);
    let id = if ra.status == 201 { &ra.body } else { &rb.body }["id"]
        .as_str()
        .ok_or("no sandbox id")?
        .to_string();
    winner.stop_sandbox(&id).await?;
    Ok(())
}

/// The fixture's page as a new anonymous visitor of `app` gets it: the page cache's verdict and
/// whether it is the cached copy.
async fn shared_page(app: &TestApp) -> Result<String> {
    let v = app.visitor().await?;
    let resp = v
        .http
        .get(app.url("/p/fixture"))
        .header("cookie", &v.cookie)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    Ok(resp
        .headers()
        .get("x-page-cache")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string())
}

/// A change through A empties B's page cache at B's next look at the site generation (each
/// second in `serve`; here the test looks, at the moment it chooses).
#[tokio::test]
async fn a_change_through_one_replica_empties_the_others_page_cache() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    // Each names itself in `/healthz` (the load balancer's view of which one answered).
    for (app, name) in [(&a, "replica-a"), (&b, "replica-b")] {
        let health: serde_json::Value = reqwest::get(app.url("/healthz")).await?.json().await?;
        assert_eq!(health["replica"], name, "{health}");
    }
    b.state.pages.follow(&b.state.db).await?;
    shared_page(&b).await?;
    assert_eq!(shared_page(&b).await?, "hit");
    // Nothing changed: B keeps its pages.
    assert!(!b.state.pages.follow(&b.state.db).await?);
    assert_eq!(shared_page(&b).await?, "hit");
    // A change through A (any successful POST empties the cache).
    let v = a.visitor().await?;
    let r = v.call("POST", "/api/auth/logout", None).await?;
    assert!(r.status < 300, "{} {}", r.status, r.body);
    assert!(b.state.pages.follow(&b.state.db).await?);
    assert_eq!(shared_page(&b).await?, "miss");
    Ok(())
}

/// Replicas starting at once over a new database: one migrates it while the other waits (the
/// migrator takes no lock of its own); both start.
#[tokio::test]
async fn replicas_starting_at_once_over_a_new_database_both_start() -> Result {
    let url = fresh_postgres_url().await?;
    let mut configs = Vec::new();
    for name in ["replica-a", "replica-b"] {
        let dir =
            std::env::temp_dir().join(format!("trythis-test-{}", server::secrets::random_id()));
        std::fs::create_dir_all(&dir)?;
        configs.push(test_config(
            &dir,
            &[("TRYTHIS_DATABASE_URL", &url), ("TRYTHIS_REPLICA_ID", name)],
        )?);
    }
    let b = configs.pop().ok_or("config")?;
    let a = configs.pop().ok_or("config")?;
    let (a, b) = tokio::join!(server::build_state(a), server::build_state(b));
    let (a, b) = (a?, b?);
    assert_eq!(
        (a.config.replica_id.as_str(), b.config.replica_id.as_str()),
        ("replica-a", "replica-b")
    );
    for dir in [&a.config.data_dir, &b.config.data_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// Keystrokes typed through one replica keep the sandbox alive for the reaper on another: the
/// reaper runs on one replica of the cluster (its lease) and reads the others' activity from
/// the rows, which each replica writes for the shells it carries.
#[tokio::test]
async fn keystrokes_through_one_replica_keep_the_reaper_on_another_away() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let (v, id, mut sh) = owner_with_terminal(&a).await?;
    // The row last saw activity 20 minutes ago, past the 10-minute idle timeout...
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(20);
    db::sandboxes::touch(&a.state.db, &id, long_ago).await?;
    // ...but the visitor types now, through A.
    sh.run("echo typing-$((3*3))", Duration::from_secs(20))
        .await?;
    a.state.sandboxes.record_input().await?;
    b.state.sandboxes.reap().await?;
    let row = db::sandboxes::get(&b.state.db, &id)
        .await?
        .ok_or("no row")?;
    assert!(row.active, "reaped as idle: {:?}", row.end_reason);
    v.stop_sandbox(&id).await?;
    Ok(())
}

/// A build's log streams live through a replica that does not run the build: the runner writes
/// its log out every second and the other replica follows the row, to the build's end.
#[tokio::test]
async fn a_builds_log_streams_live_through_another_replica() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let v = a.user().await?;
    let slug = unique("follow");
    let df = format!(
        "FROM {}\nRUN for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 1; done\n",
        base_image()
    );
    let id = submit_dockerfile(&v, &slug, &df).await?;
    wait_state(&a, &id, &["running"], Duration::from_secs(60)).await?;
    let on_b = v.through(&format!("http://{}", b.addr));
    let mut stream = on_b
        .http
        .get(b.url(&format!("/api/builds/{id}/log")))
        .header("cookie", &on_b.cookie)
        .send()
        .await?;
    assert_eq!(stream.status().as_u16(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut text = String::new();
    let mut live = false;
    while let Some(chunk) = tokio::time::timeout_at(deadline, stream.chunk()).await?? {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if !live && text.contains("data: line-2\n") {
            // Seen while the build still runs (on A): followed, not replayed at the end.
            live = !build_row(&a, &id).await?.state.is_finished();
        }
    }
    assert!(live, "no line arrived while the build ran:\n{text}");
    assert!(text.contains("data: line-8\n"), "{text}");
    assert!(text.contains(r#""state":"succeeded""#), "{text}");
    assert_eq!(
        build_row(&a, &id).await?.runner.as_deref(),
        Some("replica-a")
    );
    Ok(())
}

/// A link revoked through one replica cuts off its viewers on another: each replica looks for
/// revocations of the links its watchers use (`follow_revocations`, every 2 s).
#[tokio::test]
async fn a_revocation_through_one_replica_cuts_off_viewers_on_another() -> Result {
    let (a, b) = two_replicas(&[]).await?;
    let (owner, id, mut sh) = owner_with_terminal(&a).await?;
    sh.run("echo shared-$((5*5))", Duration::from_secs(20))
        .await?;
    let (share_id, token) = share(&owner, &id, "view").await?;
    // The viewer watches through B, which holds no connection to the owner's shell.
    let viewer = b.visitor().await?;
    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    w.expect("shared-25", Duration::from_secs(20)).await?;
    let revoked = owner
        .status_of("DELETE", &format!("/api/sandboxes/{id}/shares/{share_id}"))
        .await?;
    assert_eq!(revoked, 204);
    assert_eq!(b.state.sandboxes.follow_revocations().await?, 1);
    let closed = w.wait_closed(Duration::from_secs(10)).await?;
    assert!(closed.starts_with("4003"), "{closed:?}");
    owner.stop_sandbox(&id).await?;
    Ok(())
}
