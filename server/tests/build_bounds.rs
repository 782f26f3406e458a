//! Build bounds: a build step's disk, processes and identity are bounded by the build engine;
//! nothing of a finished build stays in it; registry garbage collection frees what retention
//! deleted and keeps every served image. Each test replays what a hostile Dockerfile does.
mod common;
use common::*;
use std::time::Duration;

/// The disk-fill test fills the build engine's disk for a moment: other builds of this binary
/// wait, so their failures are never the fill's.
static ONE_BUILD_TEST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Publishes `dockerfile` as a new project and waits for its build: (state, stored log).
async fn publish(v: &Visitor, app: &TestApp, dockerfile: String) -> Result<(String, String)> {
    let slug = unique("bounds");
    let id = submit(
        v,
        project(&slug, serde_json::json!({ "dockerfile": dockerfile })),
    )
    .await?;
    let b = wait_build(v, &id, Duration::from_secs(300)).await?;
    let row = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    Ok((b["state"].as_str().unwrap_or("").to_string(), row.log))
}

/// The images a build's steps made, from its log (` ---> 3f2a9c1b7d4e`).
fn layers_in(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(logged_layer)
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_build_step_cannot_fill_the_disk_fork_without_bound_or_be_host_root() -> Result {
    let _alone = ONE_BUILD_TEST_AT_A_TIME.lock().await;
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let build_engine = app.build_engine();

    // Root in a build step is not root on the host, and a fork bomb meets the build cgroup's
    // pids limit (2048 for all builds together) long before 3000 processes. (Markers are split
    // with "" so that only what the shell prints can match, not the step's echoed text.)
    let (state, log) = publish(
        &v,
        &app,
        format!(
            "FROM {}\nRUN awk '{{print \"uid-map:\", $1, $2}}' /proc/self/uid_map && echo one > /one\nRUN for i in $(seq 1 3000); do sleep 60 & done; echo ALL-\"\"FORKED\n",
            base_image()
        ),
    )
    .await?;
    assert_eq!(state, "failed", "{log}");
    assert!(log.contains("uid-map: 0 "), "{log}");
    assert!(
        !log.contains("uid-map: 0 0"),
        "root in a build step is root on the host: {log}"
    );
    assert!(log.contains("Cannot fork"), "{log}");
    assert!(!log.contains("ALL-FORKED"), "{log}");
    // Nothing of the failed build stays in the build engine: the first step's layer is gone.
    // (The `FROM` line prints the base image's id too: that one stays.)
    let base = build_engine
        .inspect_image(&base_image())
        .await?
        .id
        .ok_or("base id")?;
    let made: Vec<String> = layers_in(&log)
        .into_iter()
        .filter(|l| !base.contains(l.as_str()))
        .collect();
    assert!(!made.is_empty(), "the first step made a layer: {log}");
    for layer in &made {
        assert!(
            build_engine.inspect_image(layer).await.is_err(),
            "layer {layer} of a failed build was left in the build engine"
        );
    }

    // A disk fill ends in the build engine's bounded file system (16 GB by default), not on the
    // host's disk.
    let host_free = free_bytes("/var/lib/docker")?;
    let (state, log) = publish(
        &v,
        &app,
        format!(
            "FROM {}\nRUN fallocate -l 40G /fill && echo FILL\"\"ED\n",
            base_image()
        ),
    )
    .await?;
    assert_eq!(state, "failed", "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains("FILLED"), "{log}");
    let after = free_bytes("/var/lib/docker")?;
    assert!(
        after + (1 << 30) > host_free,
        "the host disk lost {} MB",
        host_free.saturating_sub(after) >> 20
    );
    Ok(())
}

#[tokio::test]
async fn registry_gc_frees_what_retention_deleted_and_keeps_served_images() -> Result {
    let _alone = ONE_BUILD_TEST_AT_A_TIME.lock().await;
    let command = std::env::var("TRYTHIS_REGISTRY_GC_COMMAND").map_err(|_| {
        "TRYTHIS_REGISTRY_GC_COMMAND is not set: run the suite with scripts/test.sh"
    })?;
    let app = TestApp::start_with(&[("TRYTHIS_BUILD_RETENTION", "1")]).await?;
    let v = app.user().await?;
    let registry = app.state.config.registry_client();
    let slug = unique("gc");
    let marker = rand_u32();
    let dockerfile = |n: &str| format!("FROM {}\nRUN echo {n}-{marker} > /marker\n", base_image());
    let id = submit(
        &v,
        project(
            &slug,
            serde_json::json!({ "dockerfile": dockerfile("one") }),
        ),
    )
    .await?;
    assert_eq!(
        wait_build(&v, &id, Duration::from_secs(300)).await?["state"],
        "succeeded"
    );
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    let repo = p.image_repo.clone().ok_or("repo")?;
    let first = registry
        .manifest(&repo, p.image_digest.as_deref().ok_or("digest")?)
        .await?;
    // The marker layer is this image's alone.
    let only_first = first.layers.last().ok_or("layers")?.digest.clone();

    let id = rebuild(
        &v,
        &slug,
        serde_json::json!({ "dockerfile": dockerfile("two") }),
    )
    .await?;
    assert_eq!(
        wait_build(&v, &id, Duration::from_secs(300)).await?["state"],
        "succeeded"
    );
    // Retention (1) deleted the first manifest; its blob stays until garbage collection.
    assert!(registry.blob_exists(&repo, &only_first).await?);

    app.state
        .builds
        .collect_registry_garbage(&command)
        .await
        .map_err(|e| format!("garbage collection: {e}"))?;
    assert!(
        !registry.blob_exists(&repo, &only_first).await?,
        "the deleted image's layer is still stored"
    );
    // The served image and the fixture (another project) lost nothing: every blob is there, and
    // the sandbox engine pulls the served image afresh.
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    let served = p.image_digest.ok_or("digest")?;
    let fixture = db::projects::by_slug(&app.state.db, "fixture")
        .await?
        .ok_or("fixture")?;
    for (repo, digest) in [
        (repo.clone(), served.clone()),
        (
            fixture.image_repo.ok_or("repo")?,
            fixture.image_digest.ok_or("digest")?,
        ),
    ] {
        let m = registry.manifest(&repo, &digest).await?;
        for layer in m.layers {
            assert!(
                registry.blob_exists(&repo, &layer.digest).await?,
                "{repo}@{digest} lost {}",
                layer.digest
            );
        }
    }
    let serve = app
        .state
        .builds
        .engines()
        .expect("engine-backed builds")
        .serve;
    let image = format!("{repo}@{served}");
    serve
        .remove_image(
            &image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await?;
    server::builds::pull(&serve, &image).await?;
    let r = v.try_project(&slug).await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    Ok(())
}

/// Every VOLUME costs a bounded directory (and under runc a seed copy) in each Try: an image
/// declaring more than the cap is refused when it is published, with the reason, not at its
/// first Try.
#[tokio::test]
async fn an_image_with_too_many_volumes_is_refused_at_publish_time() -> Result {
    let _alone = ONE_BUILD_TEST_AT_A_TIME.lock().await;
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let volumes: Vec<String> = (0..9).map(|i| format!("/v{i}")).collect();
    let (state, log) = publish(
        &v,
        &app,
        format!("FROM {}\nVOLUME {}\n", base_image(), volumes.join(" ")),
    )
    .await?;
    assert_eq!(state, "failed", "{log}");
    assert!(
        log.contains("The image declares 9 VOLUMEs; at most 8 are allowed"),
        "{log}"
    );
    Ok(())
}

/// A step's output can print the engine's progress lines itself: `Step n/m` from `RUN` output
/// must neither move the progress nor write the database once per line (it kept SQLite's writer
/// busy for the whole build).
#[tokio::test]
async fn fake_step_lines_neither_move_progress_nor_storm_the_database() -> Result {
    let _alone = ONE_BUILD_TEST_AT_A_TIME.lock().await;
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("storm");
    let dockerfile = format!(
        "FROM {}\nRUN for i in $(seq 1 3000); do echo 'Step 1/2 : x'; echo \"Step $i/3000 : y\"; done\nRUN true\n",
        base_image()
    );
    let id = submit_dockerfile(&v, &slug, &dockerfile).await?;
    // Follow the live log to its end, counting progress events.
    let sse = v
        .http
        .get(app.url(&format!("/api/builds/{id}/log")))
        .header("cookie", &v.cookie)
        .send()
        .await?
        .text()
        .await?;
    let steps = sse.matches("event: step").count();
    let b = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    assert_eq!(b.state, db::BuildState::Succeeded, "{}", b.log);
    assert!(
        b.log.contains("Step 2999/3000 : y"),
        "the output is all there"
    );
    // One event per real step (plus the one the stream starts with), never one per line.
    assert!(
        steps <= b.steps as usize + 1,
        "{steps} step events for {} steps",
        b.steps
    );
    assert_eq!(b.step, b.steps, "the stored progress is the real one");
    Ok(())
}
