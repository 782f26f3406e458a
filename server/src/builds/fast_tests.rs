//! The fast tier of publishing: `BuildService` and `publish` against a fake `ImageBuilder` and
//! in-memory SQLite — build states, progress, cancel, timeout, limits, registry failures and
//! retention, in milliseconds. The real-engine tests (`tests/publish.rs`, `build_bounds.rs`) stay.
use super::check::{CheckError, CheckJob, CheckOutput};
use super::dockerfile::BUILD_LABEL;
use super::engine::{BuildSpec, ImageBuilder, ImageFacts, Pushed};
use super::publish::{self, ProjectForm, RecipeForm};
use super::*;
use futures::stream::BoxStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vocab::OwnerKey;

/// A Dockerfile's `RUN fail` makes its build fail, `RUN hang` makes it print one step and then
/// nothing until it is dropped; any other build prints two steps (and, in its second step's
/// output, a fake "Step 9/9" line) and succeeds.
#[derive(Default)]
struct FakeBuilder {
    built: StdMutex<Vec<String>>,
    pushed: StdMutex<Vec<(String, String)>>,
    kept: StdMutex<Vec<Vec<String>>>,
    cleaned_up: StdMutex<Vec<String>>,
    image_mb: u64,
    registry_down: AtomicBool,
}

fn locked<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl ImageBuilder for FakeBuilder {
    fn build(&self, spec: BuildSpec) -> BoxStream<'static, Result<String, Failure>> {
        locked(&self.built).push(spec.build_id.clone());
        let dockerfile = spec
            .files
            .iter()
            .find(|(name, _)| *name == "Dockerfile")
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        assert!(
            dockerfile.contains(&format!("LABEL {BUILD_LABEL}={}", spec.build_id)),
            "every stage is marked with its build: {dockerfile}"
        );
        let first =
            futures::stream::iter([Ok("Step 1/2 : FROM trythis/base:bookworm\n".to_string())]);
        if dockerfile.contains("RUN hang") {
            first.chain(futures::stream::pending()).boxed()
        } else if dockerfile.contains("RUN fail") {
            // The engine's chunks are not lines: one line arrives in two, the last has no end.
            first
                .chain(futures::stream::iter([
                    Ok("Step 2/2 : RUN fail\nE".to_string()),
                    Ok(": Unable to locate package x\n".to_string()),
                    Ok("W: last words".to_string()),
                    Err(Failure::Build(
                        "A build step failed: returned a non-zero code: 1".into(),
                    )),
                ]))
                .boxed()
        } else {
            first
                .chain(futures::stream::iter([Ok(
                    "Step 2/2 : RUN echo hi\nStep 9/9 : printed by the step\nhi\n".to_string(),
                )]))
                .boxed()
        }
    }

    async fn inspect(&self, _image: &str) -> Result<ImageFacts, Failure> {
        Ok(ImageFacts {
            size: self.image_mb.max(1) * 1024 * 1024,
            volumes: 0,
        })
    }

    async fn push(&self, repo: &str, tag: &str) -> Result<Pushed, Failure> {
        if self.registry_down.load(Ordering::SeqCst) {
            return Err(Failure::Registry("connection refused".into()));
        }
        locked(&self.pushed).push((repo.to_string(), tag.to_string()));
        Ok(Pushed {
            digest: format!("sha256:{tag}"),
            size: 1234,
        })
    }

    async fn pull_for_sandboxes(&self, _image: &str) -> Result<(), Failure> {
        Ok(())
    }

    async fn remove_leftovers(&self, _image: &str, build_id: &str) {
        locked(&self.cleaned_up).push(build_id.to_string());
    }

    async fn retain(
        &self,
        repo: &str,
        keep: &[String],
        _protect: &[String],
    ) -> Result<Vec<String>, String> {
        locked(&self.kept).push(keep.to_vec());
        let mut pushed = locked(&self.pushed);
        let deleted: Vec<String> = pushed
            .iter()
            .filter(|(r, t)| r == repo && !keep.contains(t))
            .map(|(_, t)| t.clone())
            .collect();
        pushed.retain(|(r, t)| r != repo || keep.contains(t));
        Ok(deleted)
    }

    async fn image_available(&self, _image: &str) -> Result<bool, bollard::errors::Error> {
        Ok(true)
    }

    async fn clean(&self, _older_than: Duration) {}

    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }

    /// A repository named `private` answers like a private image, `missing` like an unknown
    /// one, `volumes` copies an image with too many VOLUMEs; any other is copied.
    async fn import(
        &self,
        from: &registry::ImportFrom<'_>,
        repo: &str,
        tag: &str,
        _max_bytes: u64,
        log: &registry::ImportLog<'_>,
    ) -> Result<Pushed, registry::RegistryError> {
        let source = from.source;
        assert!(
            from.proxy.is_some_and(|p| p.starts_with("http://import-")),
            "an import goes through the import's egress proxy with its own credential"
        );
        log(&format!("copying {source}"));
        match source.repository.rsplit('/').next() {
            Some("private") => Err(registry::RegistryError::Private(source.to_string())),
            Some("missing") => Err(registry::RegistryError::NotFound(source.to_string())),
            _ => {
                locked(&self.pushed).push((repo.to_string(), tag.to_string()));
                Ok(Pushed {
                    digest: format!("sha256:{tag}"),
                    size: 1234,
                })
            }
        }
    }

    async fn served_volumes(&self, image: &str) -> Result<usize, Failure> {
        Ok(if image.contains("/volumes@") { 9 } else { 0 })
    }
}

/// Smoke checks: `false` exits 1 ("boom"), `hang` never ends, anything else exits 0 and prints
/// `ran <command> in <image>`.
#[derive(Default)]
struct FakeChecks {
    ran: StdMutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl SmokeRunner for FakeChecks {
    async fn run(&self, job: &CheckJob<'_>) -> Result<CheckOutput, CheckError> {
        let (image, command) = (job.image, job.command);
        locked(&self.ran).push((image.to_string(), command.to_string()));
        match command {
            "hang" => std::future::pending().await,
            "false" => Ok(CheckOutput {
                exit_code: Some(1),
                output: "boom\n".into(),
                truncated: false,
            }),
            _ => Ok(CheckOutput {
                exit_code: Some(0),
                output: format!("ran {command} in {image}\n"),
                truncated: false,
            }),
        }
    }
}

struct Fixture {
    builds: Arc<BuildService>,
    fake: Arc<FakeBuilder>,
    checks: Arc<FakeChecks>,
    db: db::DatabaseConnection,
}

const OWNER: &OwnerKey = &OwnerKey::User(1);

async fn fixture(fake: FakeBuilder, config: &[(&str, &str)]) -> Fixture {
    let config = crate::config::Config::from_pairs(config.iter().copied())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let db = db::connect_and_migrate("sqlite::memory:")
        .await
        .unwrap_or_else(|e| panic!("db: {e}"));
    let fake = Arc::new(fake);
    let checks = Arc::new(FakeChecks::default());
    let builds = BuildService::with_builder(
        db.clone(),
        fake.clone(),
        config.registry.clone(),
        config.builds.clone(),
        Arc::new(Metrics::default()),
        crate::network::loopback_networks().await,
        None,
        checks.clone(),
    );
    builds
        .recover()
        .await
        .unwrap_or_else(|e| panic!("recover: {e}"));
    for _ in 0..config.builds.concurrency {
        tokio::spawn(builds.clone().worker());
    }
    Fixture {
        builds,
        fake,
        checks,
        db,
    }
}

fn form(slug: &str, run: &str) -> ProjectForm {
    ProjectForm {
        slug: slug.into(),
        name: "Demo".into(),
        summary: "A project for the fast tests".into(),
        description: "Built by a fake builder, in memory.".into(),
        category: db::projects::CATEGORIES[0].into(),
        dockerfile: Some(format!("FROM trythis/base:bookworm\n{run}\n")),
        ..Default::default()
    }
}

impl Fixture {
    async fn submit(&self, slug: &str, run: &str) -> String {
        publish::submit(&self.builds, &self.db, OWNER, &form(slug, run), true)
            .await
            .unwrap_or_else(|e| panic!("submit: {e}"))
    }

    async fn rebuild(&self, slug: &str, run: &str) -> String {
        let recipe = RecipeForm {
            dockerfile: Some(format!("FROM trythis/base:bookworm\n{run}\n")),
            ..Default::default()
        };
        publish::rebuild(&self.builds, &self.db, OWNER, false, slug, &recipe)
            .await
            .unwrap_or_else(|e| panic!("rebuild: {e}"))
    }

    async fn row(&self, id: &str) -> db::builds::Model {
        db::builds::get(&self.db, id)
            .await
            .unwrap_or_else(|e| panic!("db: {e}"))
            .unwrap_or_else(|| panic!("build {id} has no row"))
    }

    /// The build once it is in `state` (fails after 5 s).
    async fn reaches(&self, id: &str, state: db::BuildState) -> db::builds::Model {
        for _ in 0..1000 {
            let b = self.row(id).await;
            if b.state == state {
                return b;
            }
            assert!(
                !b.state.is_finished(),
                "build ended {} ({:?}), not {state}",
                b.state,
                b.error
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("build {id} never reached {state}");
    }

    async fn project(&self, slug: &str) -> db::projects::Model {
        db::projects::by_slug(&self.db, slug)
            .await
            .unwrap_or_else(|e| panic!("db: {e}"))
            .unwrap_or_else(|| panic!("no project {slug}"))
    }
}

#[tokio::test]
async fn a_build_runs_to_live_and_only_its_own_next_step_moves_progress() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let id = fx.submit("demo", "RUN echo hi").await;
    let b = fx.reaches(&id, db::BuildState::Succeeded).await;
    // "Step 9/9" printed by a step is not the build's progress.
    assert_eq!((b.step, b.steps), (2, 2));
    assert!(b.started_at.is_some() && b.finished_at.is_some());
    assert!(b.log.contains("Published "), "{}", b.log);
    let p = fx.project("demo").await;
    assert_eq!(p.status, db::ProjectStatus::Live);
    assert_eq!(
        p.image_digest.as_deref(),
        Some(format!("sha256:{id}").as_str())
    );
    assert_eq!(
        *locked(&fx.fake.cleaned_up),
        vec![id.clone()],
        "its layers go"
    );
}

#[tokio::test]
async fn a_failed_first_build_fails_the_project_and_a_failed_rebuild_keeps_the_live_image() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let id = fx.submit("broken", "RUN fail").await;
    let b = fx.reaches(&id, db::BuildState::Failed).await;
    let error = b.error.as_deref().unwrap_or("");
    assert!(error.ends_with("returned a non-zero code: 1"), "{b:?}");
    // The step's error line is read whole though it came in two chunks; the unfinished last
    // line is logged too.
    assert!(
        error.starts_with("E: Unable to locate package x\n"),
        "{error}"
    );
    assert!(b.log.contains("\nW: last words\n"), "{}", b.log);
    assert_eq!(fx.project("broken").await.status, db::ProjectStatus::Failed);
    assert_eq!(
        *locked(&fx.fake.cleaned_up),
        vec![id],
        "a failed build's layers go too"
    );

    let good = fx.submit("steady", "RUN echo hi").await;
    fx.reaches(&good, db::BuildState::Succeeded).await;
    let bad = fx.rebuild("steady", "RUN fail").await;
    fx.reaches(&bad, db::BuildState::Failed).await;
    let p = fx.project("steady").await;
    assert_eq!(p.status, db::ProjectStatus::Live);
    assert_eq!(
        p.image_digest.as_deref(),
        Some(format!("sha256:{good}").as_str())
    );
}

#[tokio::test]
async fn a_cancelled_queued_build_never_runs_and_a_cancelled_running_one_stops() {
    let fx = fixture(
        FakeBuilder::default(),
        &[("TRYTHIS_BUILD_CONCURRENCY", "1")],
    )
    .await;
    let running = fx.submit("slow", "RUN hang").await;
    fx.reaches(&running, db::BuildState::Running).await;
    let queued = publish::submit(
        &fx.builds,
        &fx.db,
        &OwnerKey::User(2),
        &form("waiting", "RUN echo hi"),
        true,
    )
    .await
    .unwrap_or_else(|e| panic!("submit: {e}"));
    assert_eq!(fx.row(&queued).await.state, db::BuildState::Queued);
    assert!(fx.builds.cancel(&queued).await.unwrap_or(false));
    fx.reaches(&queued, db::BuildState::Cancelled).await;
    assert!(fx.builds.cancel(&running).await.unwrap_or(false));
    fx.reaches(&running, db::BuildState::Cancelled).await;
    // The worker is free again; the cancelled queued build was never handed to the builder.
    let next = fx.submit("after", "RUN echo hi").await;
    fx.reaches(&next, db::BuildState::Succeeded).await;
    assert_eq!(*locked(&fx.fake.built), vec![running.clone(), next]);
    assert!(locked(&fx.fake.cleaned_up).contains(&running));
    assert_eq!(fx.project("slow").await.status, db::ProjectStatus::Failed);
}

#[tokio::test]
async fn a_silent_build_times_out() {
    let fx = fixture(
        FakeBuilder::default(),
        &[("TRYTHIS_BUILD_TIMEOUT_SECS", "1")],
    )
    .await;
    let id = fx.submit("silent", "RUN hang").await;
    let b = fx.reaches(&id, db::BuildState::Failed).await;
    assert!(
        b.error.as_deref().unwrap_or("").contains("longer than"),
        "{b:?}"
    );
    assert!(locked(&fx.fake.pushed).is_empty());
}

#[tokio::test]
async fn an_image_over_the_limit_or_a_registry_down_publishes_nothing() {
    let fake = FakeBuilder {
        image_mb: 300,
        ..Default::default()
    };
    let fx = fixture(fake, &[("TRYTHIS_IMAGE_MAX_MB", "200")]).await;
    let id = fx.submit("huge", "RUN echo hi").await;
    let b = fx.reaches(&id, db::BuildState::Failed).await;
    assert!(b.error.as_deref().unwrap_or("").contains("300 MB"), "{b:?}");
    assert!(locked(&fx.fake.pushed).is_empty());

    let fx = fixture(FakeBuilder::default(), &[]).await;
    fx.fake.registry_down.store(true, Ordering::SeqCst);
    let id = fx.submit("offline", "RUN echo hi").await;
    let b = fx.reaches(&id, db::BuildState::Failed).await;
    assert!(
        b.error.as_deref().unwrap_or("").contains("registry"),
        "{b:?}"
    );
    let p = fx.project("offline").await;
    assert_eq!(
        (p.status, p.image_digest),
        (db::ProjectStatus::Failed, None)
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_successful_builds() {
    let fx = fixture(FakeBuilder::default(), &[("TRYTHIS_BUILD_RETENTION", "2")]).await;
    let first = fx.submit("kept", "RUN echo hi").await;
    fx.reaches(&first, db::BuildState::Succeeded).await;
    let mut ids = vec![first];
    for _ in 0..2 {
        let id = fx.rebuild("kept", "RUN echo hi").await;
        fx.reaches(&id, db::BuildState::Succeeded).await;
        ids.push(id);
    }
    // Retention runs right after a build is marked succeeded: wait for the third pass.
    for _ in 0..1000 {
        if locked(&fx.fake.kept).len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last_kept = locked(&fx.fake.kept).get(2).cloned().unwrap_or_default();
    assert_eq!(
        last_kept,
        vec![ids[2].clone(), ids[1].clone()],
        "newest first"
    );
    let still: Vec<String> = locked(&fx.fake.pushed)
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert!(
        !still.contains(&ids[0]),
        "the oldest tag was deleted: {still:?}"
    );
}

fn checked(slug: &str, run: &str, command: &str, expect: &str) -> ProjectForm {
    ProjectForm {
        check_command: Some(command.into()),
        check_expect: Some(expect.into()),
        ..form(slug, run)
    }
}

#[tokio::test]
async fn a_smoke_check_runs_in_a_sandbox_of_the_pushed_image_before_it_goes_live() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let id = publish::submit(
        &fx.builds,
        &fx.db,
        OWNER,
        &checked("cows", "RUN echo hi", "cowsay hi", "ran cowsay hi"),
        true,
    )
    .await
    .unwrap_or_else(|e| panic!("submit: {e}"));
    let b = fx.reaches(&id, db::BuildState::Succeeded).await;
    let image = format!("{}@sha256:{id}", b.image_repo.clone().unwrap_or_default());
    assert_eq!(
        *locked(&fx.checks.ran),
        vec![(image, "cowsay hi".to_string())],
        "the check ran once, on the digest that was pushed"
    );
    assert!(
        b.log.contains("$ cowsay hi\n  ran cowsay hi in "),
        "{}",
        b.log
    );
    assert!(b.log.contains("Smoke check passed."), "{}", b.log);
    assert_eq!(fx.project("cows").await.status, db::ProjectStatus::Live);

    // A repeat of the last build (no recipe given) keeps its check.
    let again = publish::rebuild(
        &fx.builds,
        &fx.db,
        OWNER,
        false,
        "cows",
        &RecipeForm::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("rebuild: {e}"));
    let row = fx.reaches(&again, db::BuildState::Succeeded).await;
    assert_eq!(
        (row.check_command.as_deref(), row.check_expect.as_deref()),
        (Some("cowsay hi"), Some("ran cowsay hi"))
    );
    assert_eq!(locked(&fx.checks.ran).len(), 2);
}

#[tokio::test]
async fn a_failing_smoke_check_fails_the_build_and_publishes_nothing() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let id = publish::submit(
        &fx.builds,
        &fx.db,
        OWNER,
        &checked("broken-check", "RUN echo hi", "false", ""),
        true,
    )
    .await
    .unwrap_or_else(|e| panic!("submit: {e}"));
    let b = fx.reaches(&id, db::BuildState::Failed).await;
    let error = b.error.clone().unwrap_or_default();
    assert!(
        error.contains("smoke check failed") && error.contains("status 1"),
        "{error}"
    );
    assert!(
        b.log.contains("  boom\n"),
        "the check's output is shown: {}",
        b.log
    );
    let p = fx.project("broken-check").await;
    assert_eq!(
        (p.status, p.image_digest),
        (db::ProjectStatus::Failed, None)
    );

    // A live project keeps its image when a rebuild's check does not find its text; the
    // rejected build's tag is deleted, the live one kept.
    let good = fx.submit("steady", "RUN echo hi").await;
    fx.reaches(&good, db::BuildState::Succeeded).await;
    let bad = publish::rebuild(
        &fx.builds,
        &fx.db,
        OWNER,
        false,
        "steady",
        &RecipeForm {
            dockerfile: Some("FROM trythis/base:bookworm\nRUN echo v2\n".into()),
            check_command: Some("cowsay hi".into()),
            check_expect: Some("< hi >".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("rebuild: {e}"));
    let b = fx.reaches(&bad, db::BuildState::Failed).await;
    assert!(
        b.error
            .as_deref()
            .unwrap_or("")
            .contains("does not contain \"< hi >\""),
        "{b:?}"
    );
    let p = fx.project("steady").await;
    assert_eq!(p.status, db::ProjectStatus::Live);
    assert_eq!(
        p.image_digest.as_deref(),
        Some(format!("sha256:{good}").as_str())
    );
    let tags: Vec<String> = locked(&fx.fake.pushed)
        .iter()
        .filter(|(r, _)| r.ends_with("/steady"))
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(tags, vec![good], "the rejected image's tag is gone");
}

#[tokio::test]
async fn a_build_cancelled_during_its_check_is_cancelled_and_not_published() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let id = publish::submit(
        &fx.builds,
        &fx.db,
        OWNER,
        &checked("slow-check", "RUN echo hi", "hang", ""),
        true,
    )
    .await
    .unwrap_or_else(|e| panic!("submit: {e}"));
    fx.reaches(&id, db::BuildState::Checking).await;
    assert!(fx.builds.cancel(&id).await.unwrap_or(false));
    fx.reaches(&id, db::BuildState::Cancelled).await;
    assert_eq!(fx.project("slow-check").await.image_digest, None);
}

#[tokio::test]
async fn a_check_is_validated_with_the_rest_of_the_form() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let fields = |form: ProjectForm| {
        let fx = &fx;
        async move {
            match publish::submit(&fx.builds, &fx.db, OWNER, &form, true).await {
                Err(publish::PublishError::Invalid(ps)) => {
                    ps.into_iter().map(|p| p.field).collect::<Vec<_>>()
                }
                other => panic!("expected field problems, got {other:?}"),
            }
        }
    };
    assert_eq!(
        fields(checked("orphan", "RUN echo hi", "", "some text")).await,
        vec!["check_command"]
    );
    assert_eq!(
        fields(checked("long", "RUN echo hi", &"x".repeat(1001), "")).await,
        vec!["check_command"]
    );
    assert_eq!(
        fields(checked("bell", "RUN echo hi", "true", "a\u{7}")).await,
        vec!["check_expect"]
    );
    // Nothing was stored for any of them.
    assert!(db::projects::by_slug(&fx.db, "orphan")
        .await
        .unwrap_or_else(|e| panic!("db: {e}"))
        .is_none());
}

fn imported(slug: &str, image: &str) -> ProjectForm {
    ProjectForm {
        dockerfile: None,
        image: Some(image.into()),
        check_command: Some("cat /etc/os-release".into()),
        ..form(slug, "")
    }
}

#[tokio::test]
async fn an_import_is_a_build_that_copies_instead_of_building() {
    let fx = fixture(FakeBuilder::default(), &[]).await;
    let submit = |slug: &'static str, image: &'static str| {
        let fx = &fx;
        async move {
            publish::submit(&fx.builds, &fx.db, OWNER, &imported(slug, image), true)
                .await
                .unwrap_or_else(|e| panic!("submit: {e}"))
        }
    };
    let id = submit("tool", "ghcr.io/owner/tool:1.0").await;
    let b = fx.reaches(&id, db::BuildState::Succeeded).await;
    assert_eq!(
        (b.source_kind.as_str(), b.source.as_str()),
        ("image", "ghcr.io/owner/tool:1.0")
    );
    assert!(
        b.log.contains("copying ghcr.io/owner/tool:1.0"),
        "{}",
        b.log
    );
    assert!(locked(&fx.fake.built).is_empty(), "nothing is built");
    assert_eq!(fx.project("tool").await.status, db::ProjectStatus::Live);
    // The smoke check ran in a sandbox of the imported image.
    assert!(locked(&fx.checks.ran)
        .iter()
        .any(|(image, _)| image.ends_with(&format!("/tool@sha256:{id}"))));

    for (slug, image, says) in [
        (
            "secret",
            "ghcr.io/owner/private:1",
            "This image is private; trythis imports public images only",
        ),
        (
            "absent",
            "ghcr.io/owner/missing:1",
            "The image ghcr.io/owner/missing:1 was not found",
        ),
        ("volumes", "ghcr.io/owner/volumes:1", "VOLUMEs"),
    ] {
        let id = submit(slug, image).await;
        let b = fx.reaches(&id, db::BuildState::Failed).await;
        let error = b.error.unwrap_or_default();
        assert!(error.contains(says), "{image}: {error}");
        assert_eq!(fx.project(slug).await.status, db::ProjectStatus::Failed);
    }
}
