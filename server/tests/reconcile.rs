//! Crash safety and the background jobs: SIGKILL the real `trythis` binary mid-session, add a
//! stray labelled container (a crash between "create" and "record"), restart — nothing is
//! leaked; and the job runner's orphan sweep removes such a container on its own.
mod common;
use common::*;
use std::{process::Stdio, time::Duration};

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn spawn_server(dir: &std::path::Path, port: u16) -> Result<tokio::process::Child> {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trythis"))
        .arg("serve")
        .env("TRYTHIS_DATA_DIR", dir)
        .env(
            "TRYTHIS_DATABASE_URL",
            format!("sqlite://{}/t.db", dir.display()),
        )
        .env("TRYTHIS_TTYD_PATH", ttyd_path())
        .env("TRYTHIS_RELAY_PATH", relay_path())
        .env("TRYTHIS_EGRESS_PROXY_PORT", "0")
        .env("TRYTHIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRYTHIS_LOG", "warn")
        .env("TRYTHIS_CONFIG", "/dev/null")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("server did not come up".into())
}

#[tokio::test]
async fn sigkill_mid_session_then_restart_leaks_nothing() -> Result {
    let dir = std::env::temp_dir().join(format!("trythis-crash-{}", server::secrets::random_id()));
    std::fs::create_dir_all(&dir)?;
    let config = test_config(&dir, &[])?;
    let (repo, digest, size) = fixture_image(&config).await?;
    let db = db::connect_and_migrate(&config.database_url).await?;
    publish_fixture(&db, "fixture", "Databases", &repo, &digest, size).await?;

    let port = free_port()?;
    let mut server = spawn_server(&dir, port).await?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let (cookie, csrf) = visitor_credentials(&http, &base).await?;
    let kept = press_try(&http, &base, "fixture", (&cookie, &csrf)).await?;

    // A launch cut short: the row says "starting", and a container exists for it.
    let instance = db::instance_id(&db, server::secrets::random_id).await?;
    let docker = server::engine::connect_docker(&config).await?;
    let runtime = server::sandbox_runtime_of(&config, &docker, instance).await?;
    // Another installation's sandbox on the same engine: never ours to remove.
    let neighbour =
        server::sandbox_runtime_of(&config, &docker, "another-installation".into()).await?;
    let theirs = server::secrets::random_id();
    neighbour
        .launch(&fixture_spec(&theirs, "v:neighbour", &repo, &digest))
        .await?;
    let starting = |id: &str, owner: &str| db::sandboxes::NewSandbox {
        id: id.to_string(),
        owner: vocab::OwnerKey::Visitor(owner.into()),
        project_id: 1,
        project_slug: "fixture".into(),
        category: "Databases".into(),
        image: format!("{repo}@{digest}"),
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(5),
        client_ip: None,
    };
    // Started three minutes ago and never finished: longer than any launch takes.
    let stray = server::secrets::random_id();
    db::sandboxes::insert_starting(&db, starting(&stray, "crashed")).await?;
    {
        use db::sea_orm::{ActiveModelTrait, ActiveValue::Set};
        db::entities::sandbox::ActiveModel {
            id: Set(stray.clone()),
            created_at: Set(chrono::Utc::now() - chrono::Duration::minutes(3)),
            ..Default::default()
        }
        .update(&db)
        .await?;
    }
    runtime
        .launch(&fixture_spec(&stray, "v:crashed", &repo, &digest))
        .await?;
    // Another app server of the cluster launching one right now: not this start's to end.
    let launching = server::secrets::random_id();
    db::sandboxes::insert_starting(&db, starting(&launching, "launching")).await?;
    runtime
        .launch(&fixture_spec(&launching, "v:launching", &repo, &digest))
        .await?;
    server.kill().await?; // SIGKILL
    let _ = server.wait().await;

    let mut server = spawn_server(&dir, port).await?;
    let listed = runtime.list().await?;
    assert!(
        listed.iter().all(|l| l.sandbox_id != stray),
        "stray container survived the restart"
    );
    let stray_row = db::sandboxes::get(&db, &stray).await?.ok_or("row")?;
    assert_eq!(
        (stray_row.state.as_str(), stray_row.active),
        ("failed", false)
    );
    assert!(
        listed.iter().any(|l| l.sandbox_id == launching),
        "a launch in progress lost its container to another server's start"
    );
    let launching_row = db::sandboxes::get(&db, &launching).await?.ok_or("row")?;
    assert_eq!(
        (launching_row.state.as_str(), launching_row.active),
        ("starting", true)
    );
    runtime.destroy(&launching).await?;
    // The healthy session survives the restart and still works.
    assert!(listed.iter().any(|l| l.sandbox_id == kept));
    let mut v = Visitor {
        http: reqwest::Client::new(),
        cookie,
        csrf: String::new(),
        base: base.clone(),
    };
    v.refresh_csrf().await?;
    let mut sh = v
        .terminal(&kept)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    sh.run("echo after-restart", Duration::from_secs(20))
        .await?;
    let r = v.stop_sandbox(&kept).await?;
    assert_eq!(r.status, 204);
    assert!(runtime.list().await?.iter().all(|l| l.sandbox_id != kept));
    assert!(
        neighbour
            .list()
            .await?
            .iter()
            .any(|l| l.sandbox_id == theirs),
        "another installation's sandbox was removed"
    );
    neighbour.destroy(&theirs).await?;
    server.kill().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Background work runs from the one job runner `compose` fills: every job is registered with
/// its period, and the orphan sweep, started by the runner alone (no test calls it), removes a
/// labelled container that has no live owner and counts its runs.
#[tokio::test]
async fn the_job_runner_sweeps_orphans_on_its_own() -> Result {
    let dir = std::env::temp_dir().join(format!("trythis-jobs-{}", server::secrets::random_id()));
    std::fs::create_dir_all(&dir)?;
    let config = test_config(&dir, &[])?;
    let (repo, digest, _) = fixture_image(&config).await?;
    let platform = server::compose(config, None).await?;
    let mut registered: Vec<(String, Option<Duration>)> = platform
        .jobs
        .list()
        .into_iter()
        .map(|(name, _, every)| (name.to_string(), every))
        .collect();
    registered.dedup();
    let five = Some(Duration::from_secs(5));
    assert_eq!(
        registered,
        [
            ("build worker".to_string(), None),
            ("build takeover".into(), Some(Duration::from_secs(10))),
            ("reaper".into(), five),
            ("warm pool".into(), five),
            ("orphan sweep".into(), five),
            ("share revocations".into(), Some(Duration::from_secs(2))),
            ("terminal activity".into(), five),
            ("mail outbox".into(), None),
            ("session purge".into(), Some(Duration::from_secs(3600))),
            ("page cache follow".into(), Some(Duration::from_secs(1))),
        ]
    );
    let state = platform.state.clone();
    let runtime = state.sandboxes.runtime().clone();
    let orphan = format!("orphan-{}", server::secrets::random_id());
    runtime
        .launch(&fixture_spec(&orphan, "nobody", &repo, &digest))
        .await?;
    let jobs = platform.jobs.start_only(&[server::jobs::Kind::Periodic]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let gone = loop {
        let listed = runtime.list().await?;
        if !listed.iter().any(|l| l.sandbox_id == orphan) {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    jobs.stop().await;
    if !gone {
        let _ = runtime.destroy(&orphan).await;
    }
    assert!(gone, "the orphan sweep did not remove {orphan} within 30 s");
    let metrics = state.metrics.render(0, 0);
    let runs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("trythis_job_runs_total{job=\"orphan sweep\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or(format!("no orphan sweep runs in:\n{metrics}"))?;
    assert!(runs >= 1, "{runs}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
