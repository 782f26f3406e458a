//! Publishing end to end against the real engine and registry: script → Dockerfile → build →
//! push → live → Try prints the tool's version; bad submissions leave nothing behind; a failed
//! rebuild keeps the last good image serving; timeout and cancel stop a build; registry down
//! fails cleanly and a retry succeeds. No test downloads anything: recipes use the base image.
mod common;
use common::*;
use std::time::Duration;
use vocab::OwnerKey;

const T: Duration = Duration::from_secs(20);

fn base() -> String {
    base_image()
}

const TOOL_SCRIPT: &str = r#"#!/bin/bash
set -euo pipefail
# Install hello-tool (a README-style script, converted by trythis)
sudo mkdir -p /opt/hello-tool/bin
cat <<'EOF' > /opt/hello-tool/bin/hello-tool
#!/bin/sh
echo "hello-tool 1.2.3 ($HELLO_TOOL_MODE)"
EOF
sudo chmod +x /opt/hello-tool/bin/hello-tool
export PATH="/opt/hello-tool/bin:$PATH"
export HELLO_TOOL_MODE=converted
cd /opt/hello-tool
echo 'alias ht=hello-tool' >> ~/.bashrc
"#;

#[tokio::test]
async fn script_is_converted_built_pushed_and_tried() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("hello-tool");
    let script = format!("# trythis: base={}\n{TOOL_SCRIPT}", base());
    // The form's preview: the generated Dockerfile.
    let conv = v
        .call(
            "POST",
            "/api/recipe/convert",
            Some(serde_json::json!({ "script": script })),
        )
        .await?;
    assert_eq!(conv.status, 200, "{:?}", conv.body);
    let dockerfile = conv.body["dockerfile"].as_str().ok_or("dockerfile")?;
    assert!(
        dockerfile.contains("WORKDIR /opt/hello-tool"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("ENV HELLO_TOOL_MODE=\"converted\""),
        "{dockerfile}"
    );

    let id = submit(&v, project(&slug, serde_json::json!({ "script": script }))).await?;
    // Not listed while building.
    let listed = v
        .call("GET", &format!("/api/projects?q={slug}"), None)
        .await?;
    assert_eq!(listed.body["total"], 0);
    let b = wait_build(&v, &id, Duration::from_secs(180)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    assert_eq!(b["step"], b["steps"], "progress reached the last step");
    let image = b["image"].as_str().ok_or("image")?;
    assert!(image.contains(&format!("/{slug}@sha256:")), "{image}");
    assert_eq!(
        b["image_tag"],
        id.as_str(),
        "pushed as {{namespace}}/{{slug}}:{{build-id}}"
    );

    // The stored log replays through the SSE endpoint, ending with the final state.
    let sse = build_log(&app, &v, &id).await?;
    assert!(sse.contains("event: log\ndata: Step 1/"), "{sse}");
    let last_state: serde_json::Value = sse
        .split("event: state\ndata: ")
        .skip(1)
        .last()
        .and_then(|rest| rest.lines().next())
        .and_then(|data| serde_json::from_str(data).ok())
        .ok_or_else(|| format!("no state event in {sse}"))?;
    assert_eq!(
        last_state,
        serde_json::json!({ "state": "succeeded", "error": null }),
        "{sse}"
    );

    // Live and tryable: the tool prints its version in the visitor's shell.
    assert_eq!(project_json(&v, &slug).await?["status"], "live");
    let t = v.try_project(&slug).await?;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let sid = t.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&sid).await.map_err(|s| format!("ws {s}"))?;
    let out = sh.run("hello-tool --version; pwd; ht", T).await?;
    assert!(out.contains("hello-tool 1.2.3 (converted)"), "{out}");
    assert!(out.contains("/opt/hello-tool"), "{out}");
    v.stop_sandbox(&sid).await?;
    Ok(())
}

#[tokio::test]
async fn bad_submissions_get_clear_answers_and_leave_nothing() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let df = |s: &str| serde_json::json!({ "dockerfile": s });
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("empty dockerfile", df(""), "Dockerfile"),
        ("no FROM", df("RUN echo hi\n"), "FROM"),
        (
            "COPY of a local file",
            df("FROM x\nCOPY app.py /app/\n"),
            "build context",
        ),
        (
            "broken JSON array",
            df("FROM x\nRUN [\"echo\", \"hi\"\n"),
            "line 2",
        ),
        ("binary", df("FROM x\n\u{0}\u{1}\u{2}"), "binary"),
        (
            "one megabyte",
            df(&format!("FROM x\n# {}\n", "a".repeat(1_000_000))),
            "KiB",
        ),
        (
            "unterminated continuation",
            df("FROM x\nRUN echo \\\n"),
            "line",
        ),
        (
            "syntax directive",
            df("# syntax=docker/dockerfile:1\nFROM x\n"),
            "frontend",
        ),
        (
            "empty script",
            serde_json::json!({ "script": "# nothing\n" }),
            "no commands",
        ),
        (
            "unterminated here-doc",
            serde_json::json!({ "script": "cat <<EOF > f\nhi\n" }),
            "here-doc",
        ),
        (
            "both recipes",
            serde_json::json!({ "script": "ls\n", "dockerfile": "FROM x\n" }),
            "not both",
        ),
    ];
    for (what, recipe, expect) in cases {
        let slug = unique("bad");
        let r = v
            .call("POST", "/api/projects", Some(project(&slug, recipe)))
            .await?;
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        let text = r.body.to_string();
        assert!(
            text.to_lowercase().contains(&expect.to_lowercase()),
            "{what}: {text}"
        );
        let gone = v
            .call("GET", &format!("/api/projects/{slug}"), None)
            .await?;
        assert_eq!(gone.status, 404, "{what} left a project behind");
    }
    // Field-level messages, all at once.
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(serde_json::json!({ "slug": "Bad Slug", "name": "", "summary": "x", "category": "Nope",
                "homepage": "javascript:alert(1)", "dockerfile": format!("FROM {}\n", base()) })),
        )
        .await?;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.problem_fields(),
        ["slug", "name", "category", "homepage"],
        "{:?}",
        r.body
    );
    // Not JSON, unknown fields, wrong types: 400, never a 500.
    for body in [
        serde_json::json!({ "slug": 5 }),
        serde_json::json!({ "nope": true }),
        serde_json::json!([1, 2]),
    ] {
        let r = v.call("POST", "/api/projects", Some(body.clone())).await?;
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
    }
    // A taken slug is a conflict.
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(project("fixture", df(&format!("FROM {}\n", base())))),
        )
        .await?;
    assert_eq!(r.status, 409, "{:?}", r.body);
    Ok(())
}

/// The smoke check runs in a sandbox of the new image, with a visitor's PATH (`/usr/games`): a
/// passing check publishes, a check whose text is missing fails the rebuild, shows the output and
/// leaves the live image serving. No check container stays behind.
#[tokio::test]
async fn smoke_checks_run_in_a_sandbox_of_the_new_image() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("checked");
    let dockerfile = |word: &str| {
        format!(
            "FROM {}\nRUN mkdir -p /usr/games && printf '#!/bin/sh\\necho {word} from the new image\\n' > /usr/games/moo && chmod +x /usr/games/moo\n",
            base()
        )
    };
    let id = submit(
        &v,
        project(
            &slug,
            serde_json::json!({
                "dockerfile": dockerfile("moo"),
                "check_command": "moo",
                "check_expect": "moo from the new image",
            }),
        ),
    )
    .await?;
    let b = wait_build(&v, &id, Duration::from_secs(180)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    assert_eq!(b["check"]["command"], "moo");
    let log = build_log(&app, &v, &id).await?;
    assert!(log.contains("data:   moo from the new image"), "{log}");
    assert!(log.contains("Smoke check passed."), "{log}");
    let live = project_json(&v, &slug).await?;
    assert_eq!(live["status"], "live");

    // A new image that does not print what the check expects is not published.
    let bad = rebuild(
        &v,
        &slug,
        serde_json::json!({
            "dockerfile": dockerfile("quack"),
            "check_command": "moo",
            "check_expect": "moo from the new image",
        }),
    )
    .await?;
    let b = wait_build(&v, &bad, Duration::from_secs(180)).await?;
    assert_eq!(b["state"], "failed", "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("does not contain \"moo from the new image\""),
        "{b}"
    );
    let log = build_log(&app, &v, &bad).await?;
    assert!(log.contains("data:   quack from the new image"), "{log}");
    let after = project_json(&v, &slug).await?;
    assert_eq!(
        after["image"], live["image"],
        "the checked image keeps serving"
    );

    for build in [&id, &bad] {
        let left = tokio::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("name=trythis-check-{build}"),
            ])
            .output()
            .await?;
        assert!(left.status.success());
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "{build}");
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_rebuild_keeps_the_last_good_image_serving() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("stable");
    let good = format!("FROM {}\nRUN echo v1 > /version\n", base());
    let id = submit_dockerfile(&v, &slug, &good).await?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    let before = project_json(&v, &slug).await?["image"].clone();

    // Only the maintainer may rebuild.
    let stranger = app.visitor().await?;
    let r = stranger
        .call(
            "POST",
            &format!("/api/projects/{slug}/builds"),
            Some(serde_json::json!({})),
        )
        .await?;
    assert_eq!(r.status, 403);

    let bad = format!("FROM {}\nRUN echo breaking && exit 3\n", base());
    let id = rebuild(&v, &slug, serde_json::json!({ "dockerfile": bad })).await?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "failed");
    assert!(
        b["error"]
            .as_str()
            .unwrap_or("")
            .contains("non-zero code: 3"),
        "{b}"
    );
    let after = project_json(&v, &slug).await?;
    assert_eq!(after["status"], "live");
    assert_eq!(after["image"], before, "the last good image keeps serving");
    let t = v.try_project(&slug).await?;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let sid = t.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&sid).await.map_err(|s| format!("ws {s}"))?;
    assert!(sh.run("cat /version", T).await?.contains("v1"));
    v.stop_sandbox(&sid).await?;

    // A rebuild with no recipe repeats the last one (a maintainer's CI hook).
    let id = rebuild(&v, &slug, serde_json::json!({})).await?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "failed", "the last recipe was the broken one");
    Ok(())
}

#[tokio::test]
async fn endless_builds_time_out_and_cancel_stops_a_build() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_BUILD_TIMEOUT_SECS", "8")]).await?;
    let v = app.user().await?;
    let endless = format!("FROM {}\nRUN while true; do :; done\n", base());
    let slug = unique("endless");
    let id = submit_dockerfile(&v, &slug, &endless).await?;
    let b = wait_build(&v, &id, Duration::from_secs(60)).await?;
    assert_eq!(b["state"], "failed");
    assert!(
        b["error"].as_str().unwrap_or("").contains("longer than"),
        "{b}"
    );
    let p = project_json(&v, &slug).await?;
    assert_eq!(p["status"], "failed", "never went live: {p}");
    assert_eq!(p["image"], serde_json::Value::Null);

    let slug = unique("cancelled");
    let endless = format!("FROM {}\nRUN echo started && sleep 600\n", base());
    let id = submit_dockerfile(&v, &slug, &endless).await?;
    // Cancel a build that is really running its endless step (not one still queued).
    let mut running = false;
    for _ in 0..300 {
        let b = v
            .call("GET", &format!("/api/builds/{id}"), None)
            .await?
            .body;
        if b["state"] == "running" && b["step"].as_i64() >= Some(2) {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "build {id} never reached its endless step");
    // A stranger cannot cancel it; the project is not live yet, so to them the build does not
    // even exist.
    let stranger = app.visitor().await?;
    assert_eq!(
        stranger
            .status_of("DELETE", &format!("/api/builds/{id}"))
            .await?,
        404
    );
    let r = v.call("DELETE", &format!("/api/builds/{id}"), None).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let b = wait_build(&v, &id, Duration::from_secs(20)).await?;
    assert_eq!(b["state"], "cancelled");
    let again = v.call("DELETE", &format!("/api/builds/{id}"), None).await?;
    assert_eq!(again.status, 409);
    // The cancelled step's container and every layer the build made are gone from the build
    // engine (the step was still running when the build was cancelled).
    let log = db::builds::get(&app.state.db, &id)
        .await?
        .ok_or("build")?
        .log;
    let engine = app.build_engine();
    // The clean-up runs after the cancel is answered: give it a moment.
    for _ in 0..80 {
        if build_leftovers(&app, &id).await? == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let containers: Vec<&str> = log.lines().filter_map(logged_container).collect();
    assert!(!containers.is_empty(), "{log}");
    for c in containers {
        assert!(
            engine.inspect_container(c, None).await.is_err(),
            "step container {c} was left"
        );
    }
    let base = engine.inspect_image(&base()).await?.id.ok_or("base id")?;
    for layer in log.lines().filter_map(logged_layer) {
        assert!(
            base.contains(layer) || engine.inspect_image(layer).await.is_err(),
            "layer {layer} was left"
        );
    }
    assert_eq!(build_leftovers(&app, &id).await?, (0, 0));
    Ok(())
}

/// The clean-up after a build finds its containers and layers in the engine (by the build's
/// label), never in its output: a step that prints another container's id (` ---> Running in
/// <id>`) or an image's does not get them removed.
#[tokio::test]
async fn a_build_step_cannot_make_the_server_remove_what_it_names() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let engine = app.build_engine();
    let victim = engine
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::default()
                    .name(&unique("victim"))
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(base()),
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
        )
        .await?
        .id;
    let short = &victim[..12];
    let dockerfile = format!(
        "FROM {}\nRUN echo ' ---> Running in {short}' && echo ' ---> {short}'\n",
        base()
    );
    let id = submit(
        &v,
        project(
            &unique("namer"),
            serde_json::json!({ "dockerfile": dockerfile }),
        ),
    )
    .await?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    let kept = engine.inspect_container(&victim, None).await.is_ok();
    let _ = engine
        .remove_container(
            &victim,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
        )
        .await;
    assert!(
        kept,
        "the build's output named a container and the server removed it"
    );
    assert_eq!(build_leftovers(&app, &id).await?, (0, 0));
    Ok(())
}

/// A registry process of our own on a free loopback port (the shared one must stay up).
struct OwnRegistry(std::process::Child, std::path::PathBuf);

impl OwnRegistry {
    fn start(port: u16) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("trythis-reg-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = std::process::Command::new("docker-registry")
            .args([
                "serve",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../registry/config.yml"),
            ])
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("docker-registry is required (scripts/test.sh installs it): {e}")
            })?;
        Ok(Self(child, dir))
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test]
async fn registry_down_fails_cleanly_then_a_retry_succeeds() -> Result {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let app = TestApp::start().await?;
    // A second build service of the same installation, publishing to a registry that is down.
    let mut cfg = test_config(&app.dir, &[])?;
    cfg.registry.address = format!("127.0.0.1:{port}");
    let builds = server::builds::BuildService::new(
        app.state.db.clone(),
        app.state.builds.engines().expect("engine-backed builds"),
        registry::Registry::new(cfg.registry.clone()),
        cfg.builds.clone(),
        std::sync::Arc::new(server::metrics::Metrics::default()),
        app.state.builds.networks().clone(),
        app.state.builds.checks(),
    );
    let slug = unique("offline");
    let form: server::builds::publish::ProjectForm = serde_json::from_value(project(
        &slug,
        serde_json::json!({ "dockerfile": format!("FROM {}\nRUN echo ok > /ok\n", base()) }),
    ))?;
    let id = server::builds::publish::submit(&builds, &app.state.db, &maintainer(), &form, true)
        .await
        .map_err(|e| e.to_string())?;
    builds.run(&id).await;
    let b = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    assert_eq!(b.state, db::BuildState::Failed);
    assert!(
        b.error
            .as_deref()
            .unwrap_or("")
            .contains("registry could not be reached"),
        "{:?}",
        b.error
    );
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    assert_eq!(
        (p.status.as_str(), p.image_digest),
        ("failed", None),
        "nothing half-published"
    );

    let _registry = OwnRegistry::start(port)?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retry = server::builds::publish::rebuild(
        &builds,
        &app.state.db,
        &maintainer(),
        false,
        &slug,
        &server::builds::publish::RecipeForm::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    builds.run(&retry).await;
    let b = db::builds::get(&app.state.db, &retry)
        .await?
        .ok_or("build")?;
    assert_eq!(
        b.state,
        db::BuildState::Succeeded,
        "{:?}\n{}",
        b.error,
        b.log
    );
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    assert_eq!(p.status, db::ProjectStatus::Live);
    assert_eq!(
        p.image_repo.as_deref(),
        Some(format!("127.0.0.1:{port}/trythis/{slug}").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn retention_keeps_only_the_newest_builds() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_BUILD_RETENTION", "1")]).await?;
    let v = app.user().await?;
    let slug = unique("retained");
    let mut ids = Vec::new();
    for n in 0..2 {
        let df = format!("FROM {}\nRUN echo build-{n} > /n\n", base());
        let r = if n == 0 {
            submit_dockerfile(&v, &slug, &df).await?
        } else {
            rebuild(&v, &slug, serde_json::json!({ "dockerfile": df })).await?
        };
        assert_eq!(
            wait_build(&v, &r, Duration::from_secs(120)).await?["state"],
            "succeeded"
        );
        ids.push(r);
    }
    let repo = app.state.registry.config().repository_for(&slug);
    // Retention runs right after the build is marked succeeded: give it a moment.
    let mut tags = app.state.registry.tags(&repo).await?;
    for _ in 0..50 {
        if tags.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        tags = app.state.registry.tags(&repo).await?;
    }
    assert_eq!(
        tags,
        vec![ids[1].clone()],
        "only the newest build's image is kept"
    );
    Ok(())
}

/// A project that never went live (its first build failed) is not in the catalogue, and neither
/// are its builds: ids, Dockerfile and log are the maintainer's (and admins'), not a stranger's.
#[tokio::test]
async fn builds_of_a_project_that_never_went_live_are_its_maintainers_only() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("private");
    let secret = format!("not-for-strangers-{}", rand_u32());
    let dockerfile = format!("FROM {}\nRUN echo {secret} && exit 3\n", base());
    let id = submit_dockerfile(&v, &slug, &dockerfile).await?;
    assert_eq!(
        wait_build(&v, &id, Duration::from_secs(120)).await?["state"],
        "failed"
    );
    let stranger = app.visitor().await?;
    for path in [format!("/api/builds/{id}"), format!("/api/builds/{id}/log")] {
        assert_eq!(
            stranger.call("GET", &path, None).await?.status,
            404,
            "{path}"
        );
        assert_eq!(v.call("GET", &path, None).await?.status, 200, "{path}");
    }
    let listed = stranger
        .call("GET", &format!("/api/projects/{slug}/builds"), None)
        .await?;
    assert_eq!(
        listed.body["items"],
        serde_json::json!([]),
        "{:?}",
        listed.body
    );
    // The build page, rendered on the server, shows nothing of it either.
    let page = stranger
        .http
        .get(app.url(&format!("/builds/{id}")))
        .header("cookie", &stranger.cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !page.contains(&secret),
        "the build page leaks the Dockerfile or log"
    );
    let own = v
        .http
        .get(app.url(&format!("/builds/{id}")))
        .header("cookie", &v.cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(own.contains(&secret), "the maintainer sees the build");
    // Its page offers no README badge: there is nothing to try yet.
    let project_page = v
        .http
        .get(app.url(&format!("/p/{slug}")))
        .header("cookie", &v.cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(project_page.contains("no live image yet"), "{project_page}");
    assert!(!project_page.contains("id=\"badges\""), "{project_page}");
    Ok(())
}

/// Two accounts publishing the same new slug at the same moment: one gets the project, the other
/// a 409, and the loser's recipe never lands on the winner's project.
#[tokio::test]
async fn concurrent_submissions_of_one_slug_leave_one_project_with_one_build() -> Result {
    let app = TestApp::start().await?;
    for round in 0..3 {
        let slug = unique(&format!("race{round}"));
        let form = |who: &str| -> Result<server::builds::publish::ProjectForm> {
            Ok(serde_json::from_value(project(
                &slug,
                serde_json::json!({ "dockerfile": format!("FROM {}\nLABEL by={who}\n", base()) }),
            ))?)
        };
        let (a, b) = (form("alice")?, form("bob")?);
        // New accounts each round: an account may have only one build waiting.
        let (alice, bob) = (
            OwnerKey::Visitor(format!("alice{round}")),
            OwnerKey::Visitor(format!("bob{round}")),
        );
        let (ra, rb) = tokio::join!(
            server::builds::publish::submit(&app.state.builds, &app.state.db, &alice, &a, true),
            server::builds::publish::submit(&app.state.builds, &app.state.db, &bob, &b, true),
        );
        let winner = match (&ra, &rb) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
                assert!(e.to_string().contains("already exists"), "{e}");
                if ra.is_ok() {
                    &alice
                } else {
                    &bob
                }
            }
            _ => panic!("round {round}: {:?} / {:?}", ra.map(|_| ()), rb.map(|_| ())),
        };
        let p = db::projects::by_slug(&app.state.db, &slug)
            .await?
            .ok_or("project")?;
        assert_eq!(p.maintainer.as_ref(), Some(winner));
        let builds = db::builds::for_project(&app.state.db, p.id, 10).await?;
        assert_eq!(builds.len(), 1);
        assert_eq!(&builds[0].owner, winner);
    }
    Ok(())
}

/// One account cannot fill the build queue: one build running and one waiting per account, a
/// bounded queue for everyone, and a 429 that says where the waiting build is.
#[tokio::test]
async fn the_build_queue_is_shared_fairly() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_BUILD_QUEUE_MAX", "2")]).await?;
    let (alice, bob, carol) = (app.user().await?, app.user().await?, app.user().await?);
    let running = submit_as(&alice).await?;
    assert_eq!(running.status, 202, "{:?}", running.body);
    let running = running.body["build_id"].as_str().ok_or("id")?.to_string();
    // Wait until alice's first build holds the (only) builder.
    wait_until_running(&alice, &running).await?;
    let waiting = submit_as(&alice).await?;
    assert_eq!(
        waiting.status, 202,
        "one running and one waiting: {:?}",
        waiting.body
    );
    let third = submit_as(&alice).await?;
    assert_eq!(third.status, 429, "{:?}", third.body);
    assert!(
        third.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("number 1 in line"),
        "{:?}",
        third.body
    );
    let bobs = submit_as(&bob).await?;
    assert_eq!(bobs.status, 202);
    // Each waiting build knows its place in line; the running one has none.
    let alices_waiting = waiting.body["build_id"].as_str().ok_or("id")?.to_string();
    let bobs = bobs.body["build_id"].as_str().ok_or("id")?.to_string();
    assert_eq!(queue_place(&alice, &alices_waiting).await?, 1);
    assert_eq!(queue_place(&bob, &bobs).await?, 2);
    assert_eq!(
        queue_place(&alice, &running).await?,
        serde_json::Value::Null
    );
    let full = submit_as(&carol).await?;
    assert_eq!(full.status, 429, "{:?}", full.body);
    assert!(
        full.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("queue is full"),
        "{:?}",
        full.body
    );
    // Leave nothing running.
    for b in db::builds::queued(&app.state.db).await? {
        app.state.builds.cancel(&b.id).await?;
    }
    app.state.builds.cancel(&running).await?;
    Ok(())
}

/// A build's place in line, as its page sees it.
async fn queue_place(v: &Visitor, id: &str) -> Result<serde_json::Value> {
    let b = v.call("GET", &format!("/api/builds/{id}"), None).await?;
    Ok(b.body["queue_position"].clone())
}

/// A new project whose build runs for ten minutes.
async fn submit_as(v: &Visitor) -> Result<Reply> {
    let endless = serde_json::json!({ "dockerfile": format!("FROM {}\nRUN sleep 600\n", base()) });
    v.call(
        "POST",
        "/api/projects",
        Some(project(&unique("queue"), endless)),
    )
    .await
}

async fn wait_until_running(v: &Visitor, id: &str) -> Result {
    for _ in 0..300 {
        let b = v
            .call("GET", &format!("/api/builds/{id}"), None)
            .await?
            .body;
        if b["state"] == "running" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("build {id} never started").into())
}

/// A build's live log is a held-open stream: one identity keeps at most 8 of them, and a closed
/// one gives its slot back.
#[tokio::test]
async fn one_identity_holds_a_bounded_number_of_log_streams() -> Result {
    let app = TestApp::start().await?;
    let alice = app.user().await?;
    let r = submit_as(&alice).await?;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let build = r.body["build_id"].as_str().ok_or("id")?.to_string();
    let open = || {
        alice
            .http
            .get(app.url(&format!("/api/builds/{build}/log")))
            .header("cookie", &alice.cookie)
            .send()
    };
    let mut streams = Vec::new();
    for n in 0..8 {
        let s = open().await?;
        assert_eq!(s.status().as_u16(), 200, "stream {n}");
        streams.push(s);
    }
    assert_eq!(open().await?.status().as_u16(), 429);
    drop(streams.pop());
    // The server sees the browser gone at its next write (a keep-alive comment within 15 s).
    let mut status = 0;
    for _ in 0..300 {
        status = open().await?.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the closed stream's slot came back");
    app.state.builds.cancel(&build).await?;
    Ok(())
}

/// A base image the platform does not have is answered at once, with its line: the build would
/// otherwise try Docker Hub minutes later (or hang on a closed network). Stages and the
/// platform's own images are fine.
#[tokio::test]
async fn base_images_must_be_on_the_platform() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(project(
                &unique("hub"),
                serde_json::json!({ "dockerfile": format!("FROM {} AS tools\nRUN true\nFROM debian:bookworm-slim\nCOPY --from=tools /etc/hostname /x\n", base()) }),
            )),
        )
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let problems = r.body["problems"].as_array().ok_or("problems")?;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["field"], "dockerfile");
    assert_eq!(problems[0]["line"], 3);
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("builds never pull from Docker Hub"),
        "{problems:?}"
    );
    // Nothing was created.
    assert!(db::builds::queued(&app.state.db).await?.is_empty());
    // The platform's base image is accepted (a live project's image: see
    // `copy_from_reads_only_images_that_live_projects_serve`).
    for from in [base()] {
        let r = v
            .call(
                "POST",
                "/api/projects",
                Some(project(
                    &unique("ok"),
                    serde_json::json!({ "dockerfile": format!("FROM {from}\nRUN true\n") }),
                )),
            )
            .await?;
        assert_eq!(r.status, 202, "{from}: {:?}", r.body);
        let id = r.body["build_id"].as_str().ok_or("id")?.to_string();
        app.state.builds.cancel(&id).await?;
    }
    Ok(())
}

/// A failed build's headline is what the failing step itself said (apt's `E:` line), then the
/// maintainer's line that ran it, then the engine's sentence; the log and the progress count
/// only the maintainer's steps (not the platform's LABEL, CA COPY and ARG). For an install
/// script, the line is the script's own.
#[tokio::test]
async fn a_failed_build_names_the_error_and_the_recipe_line() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let slug = unique("nopkg");
    let dockerfile = format!(
        "FROM {}\n# a comment, so the RUN is on line 3\nRUN apt-get install -y no-such-package-xyz\nWORKDIR /root\n",
        base()
    );
    let id = submit_dockerfile(&v, &slug, &dockerfile).await?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "failed", "{b}");
    let error = b["error"].as_str().unwrap_or_default();
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("E: Unable to locate package no-such-package-xyz"),
        "{error}"
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("line 3: RUN apt-get install -y no-such-package-xyz"),
        "{error}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.ends_with("returned a non-zero code: 100")),
        "{error}"
    );
    assert_eq!(lines.len(), 3, "{error}");
    // The maintainer wrote 3 steps; it failed on their 2nd.
    assert_eq!(
        (b["step"].as_i64(), b["steps"].as_i64()),
        (Some(2), Some(3)),
        "{b}"
    );
    // The project never went live: only its maintainer sees the build (with their cookie).
    let log = v
        .http
        .get(app.url(&format!("/api/builds/{id}/log")))
        .header("cookie", &v.cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        log.contains("Step 2/3 : RUN apt-get install -y no-such-package-xyz"),
        "{log}"
    );
    assert!(
        log.contains("Platform step : LABEL trythis.build="),
        "{log}"
    );
    assert!(!log.contains("Step 4/") && !log.contains("/6 :"), "{log}");

    // An install script: the line is the script's own (line 4 here), as written.
    let slug = unique("nopkg-script");
    let script = "#!/bin/sh\n# tools\n\nsudo apt install no-such-package-xyz\n";
    let id = submit(&v, project(&slug, serde_json::json!({ "script": script }))).await;
    // One waiting build per account: the first has finished, so this one is accepted.
    let id = id?;
    let b = wait_build(&v, &id, Duration::from_secs(120)).await?;
    let error = b["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\nline 4: sudo apt install no-such-package-xyz\n"),
        "{error}"
    );
    assert!(
        error.starts_with("E: Unable to locate package no-such-package-xyz\n"),
        "{error}"
    );
    Ok(())
}

/// A listener on a loopback port that is not the registry: counts the connections it gets.
struct Trap {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Trap {
    fn start() -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(conn);
            }
        });
        Ok(Self { port, hits })
    }

    /// Connections seen, after a moment for any in the accept queue to be counted.
    async fn hits(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The attack of issue 25: `COPY --from=127.0.0.1:<port>/…` made the build engine fetch from a
/// loopback service of the host (a listener there got a TLS hello, `GET /v2/` and manifest
/// requests). The recipe check refuses it with its line, and the build engine itself cannot
/// reach the port either (its daemon may reach the platform registry only).
#[tokio::test]
async fn the_build_engine_reaches_nothing_but_the_registry() -> Result {
    let app = TestApp::start().await?;
    let trap = Trap::start()?;
    let v = app.user().await?;
    let image = format!("127.0.0.1:{}/x/y:v1", trap.port);
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(project(
                &unique("trap"),
                serde_json::json!({ "dockerfile": format!("FROM {}\nCOPY --from={image} /etc/passwd /p\n", base()) }),
            )),
        )
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let problems = r.body["problems"].as_array().ok_or("problems")?;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["line"], 2);
    let message = problems[0]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!("COPY --from={image}: "))
            && message.contains("never pull from Docker Hub or any other host"),
        "{message}"
    );
    assert_eq!(trap.hits().await, 0, "the recipe check does not fetch");
    // The engine itself, as a FROM past the check would make it pull.
    let engine = app
        .state
        .builds
        .engines()
        .ok_or("engine-backed builds")?
        .build;
    // An image id (or its prefix) would name any image the engine holds, another build's too.
    let id = engine.inspect_image(&base()).await?.id.ok_or("image id")?;
    let hex = id.trim_start_matches("sha256:").to_string();
    for from in [id.clone(), hex[..12].to_string()] {
        let r = v
            .call(
                "POST",
                "/api/projects",
                Some(project(
                    &unique("by-id"),
                    serde_json::json!({ "dockerfile": format!("FROM {from}\nRUN true\n") }),
                )),
            )
            .await?;
        assert_eq!(r.status, 400, "{from}: {:?}", r.body);
        assert!(
            r.body["problems"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("an image id names whatever image the build engine holds"),
            "{:?}",
            r.body
        );
    }
    let pulled = server::builds::pull(&engine, &image).await;
    assert!(pulled.is_err(), "the trap served nothing");
    assert_eq!(
        trap.hits().await,
        0,
        "the build engine connected to a loopback port that is not the registry ({pulled:?})"
    );
    Ok(())
}

/// `COPY --from` (and `FROM`) read another project's image only as that live project serves it
/// now (`repo@digest`): not by tag, not an older build's digest, and not once the project stops
/// being served (checked again when a queued build starts). An image a build pulled is removed
/// from the build engine with the build.
#[tokio::test]
async fn copy_from_reads_only_images_that_live_projects_serve() -> Result {
    let app = TestApp::start().await?;
    let (alice, bob) = (app.user().await?, app.user().await?);
    let slug = unique("served");
    let df = |n: u32| format!("FROM {}\nRUN echo secret-{n} > /secret\n", base());
    let a1 = submit_dockerfile(&alice, &slug, &df(1)).await?;
    assert_eq!(
        wait_build(&alice, &a1, Duration::from_secs(120)).await?["state"],
        "succeeded"
    );
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    let (repo, d1) = (p.image_repo.ok_or("repo")?, p.image_digest.ok_or("digest")?);
    let served = format!("{repo}@{d1}");
    let engine = app
        .state
        .builds
        .engines()
        .ok_or("engine-backed builds")?
        .build;
    assert!(
        engine.inspect_image(&served).await.is_err(),
        "the build engine keeps nothing of a build"
    );

    // The live image is read, and the build engine does not keep it afterwards.
    let reader = unique("reader");
    let b = submit_dockerfile(
        &bob,
        &reader,
        &format!(
            "FROM {}\nCOPY --from={served} /secret /copied\nRUN grep -q secret-1 /copied\n",
            base()
        ),
    )
    .await?;
    let done = wait_build(&bob, &b, Duration::from_secs(120)).await?;
    assert_eq!(done["state"], "succeeded", "{done:?}");
    let kept = engine.inspect_image(&served).await;
    assert!(
        kept.is_err(),
        "the pulled image stayed in the build engine: {kept:?}"
    );

    // A new build goes live: the old digest is no longer served, and a tag never is.
    let a2 = rebuild(&alice, &slug, serde_json::json!({ "dockerfile": df(2) })).await?;
    assert_eq!(
        wait_build(&alice, &a2, Duration::from_secs(120)).await?["state"],
        "succeeded"
    );
    let d2 = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .and_then(|p| p.image_digest)
        .ok_or("digest")?;
    assert_ne!(d1, d2);
    for (from, line_of) in [
        (format!("COPY --from={repo}@{d1} /secret /x"), 2),
        (format!("COPY --from={repo}:{a2} /secret /x"), 2),
        (
            format!(
                "FROM {repo}@{d1} AS old\nFROM {}\nCOPY --from=old /secret /x",
                base()
            ),
            2,
        ),
    ] {
        let r = bob
            .call(
                "POST",
                &format!("/api/projects/{reader}/builds"),
                Some(serde_json::json!({ "dockerfile": format!("FROM {}\n{from}\n", base()) })),
            )
            .await?;
        assert_eq!(r.status, 400, "{from}: {:?}", r.body);
        let problems = r.body["problems"].as_array().ok_or("problems")?;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0]["line"], line_of, "{problems:?}");
        assert!(
            problems[0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("read only as a live project serves them now"),
            "{problems:?}"
        );
    }

    // Queued while served, started after the project stopped being served: it fails, clearly.
    let cfg = test_config(&app.dir, &[])?;
    let idle = server::builds::BuildService::new(
        app.state.db.clone(),
        app.state.builds.engines().ok_or("engine-backed builds")?,
        registry::Registry::new(cfg.registry.clone()),
        cfg.builds.clone(),
        std::sync::Arc::new(server::metrics::Metrics::default()),
        app.state.builds.networks().clone(),
        app.state.builds.checks(),
    );
    let form = server::builds::publish::RecipeForm {
        dockerfile: Some(format!(
            "FROM {}\nCOPY --from={repo}@{d2} /secret /copied\n",
            base()
        )),
        ..Default::default()
    };
    let id = server::builds::publish::rebuild(
        &idle,
        &app.state.db,
        &OwnerKey::Catalogue,
        true,
        &reader,
        &form,
    )
    .await
    .map_err(|e| e.to_string())?;
    let owner = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    assert!(db::projects::set_status(&app.state.db, owner.id, db::ProjectStatus::Hidden).await?);
    idle.run(&id).await;
    let b = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    assert_eq!(b.state, db::BuildState::Failed, "{}", b.log);
    let error = b.error.unwrap_or_default();
    assert!(
        error.contains(&format!("line 2: COPY --from={repo}@{d2}: "))
            && error.contains("read only as a live project serves them now"),
        "{error}"
    );
    Ok(())
}

/// The attack of issue 25: a build cancelled during its smoke check left the check's sandbox
/// running (with whatever it started), unseen by the reaper, capacity and metrics, until the next
/// restart. Now the check's container goes with the build.
#[tokio::test]
async fn cancelling_a_build_during_its_smoke_check_removes_its_sandbox() -> Result {
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let id = submit(
        &v,
        project(
            &unique("sleepy"),
            serde_json::json!({
                "dockerfile": format!("FROM {}\nRUN true\n", base()),
                "check_command": "sleep 300",
            }),
        ),
    )
    .await?;
    let check = format!("check-{id}");
    let listed = |app: &TestApp| {
        let runtime = app.state.sandboxes.runtime().clone();
        let check = check.clone();
        async move {
            let all = runtime.list().await.map_err(|e| e.to_string())?;
            Ok::<bool, String>(all.iter().any(|l| l.sandbox_id == check))
        }
    };
    let t0 = std::time::Instant::now();
    while !listed(&app).await? {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the check never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b = db::builds::get(&app.state.db, &id).await?.ok_or("build")?;
    assert_eq!(b.state, db::BuildState::Checking);
    assert!(app.state.builds.cancel(&id).await?);
    let t0 = std::time::Instant::now();
    while listed(&app).await? {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the cancelled build's check sandbox is still there after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(wait_build(&v, &id, T).await?["state"], "cancelled");
    Ok(())
}

/// The maintainer of the projects these tests publish without an account.
fn maintainer() -> OwnerKey {
    OwnerKey::Visitor("maintainer".into())
}
