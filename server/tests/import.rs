//! Import by reference end to end, against the real engine and the local registry: a maintainer
//! names an image (`host/repo:tag`), the build copies it through the import's egress proxy into
//! the platform's registry, checks it, and the project goes live and can be tried. Refused
//! references get a field-level 400 before any traffic; registry answers (unknown tag, too large)
//! and proxy refusals fail the build with a clear headline.
//!
//! Only 127.0.0.1 is ever contacted: the source is the local registry (127.0.0.1:5000), which these
//! servers may read only because their configuration lists it explicitly for plain HTTP
//! (`TRYTHIS_IMPORT_REGISTRIES=http://127.0.0.1:5000`); the default policy refuses it.
mod common;
use common::*;
use std::time::Duration;

const LOCAL: &str = "127.0.0.1:5000";
const T: Duration = Duration::from_secs(20);

/// The local registry, listed by the operator (the tests' configuration) for plain HTTP.
const LISTED: (&str, &str) = ("TRYTHIS_IMPORT_REGISTRIES", "http://127.0.0.1:5000");

/// A real, runnable image pushed to the local registry outside the projects' namespace, as any
/// public registry would hold it: `(reference, its manifest digest)`.
async fn source_image(app: &TestApp, marker: &str) -> Result<(String, String)> {
    let docker = server::engine::connect_docker(&app.state.config).await?;
    let repo = format!("{LOCAL}/import-test/{}", unique("src"));
    plain_build::plain_build_and_push(
        &docker,
        &format!(
            "FROM {}\nRUN echo '{marker}' > /imported.txt\nWORKDIR /root\n",
            base_image()
        ),
        &repo,
        "v1",
    )
    .await?;
    let _ = std::process::Command::new("docker")
        .args(["rmi", &format!("{repo}:v1")])
        .output();
    let digest = registry::Registry::new(app.state.config.registry.clone())
        .resolve(&repo, "v1")
        .await
        .map_err(|e| e.to_string())?
        .digest;
    Ok((format!("{repo}:v1"), digest))
}

/// A finished build's stored log (a project that never went live shows its builds to its
/// maintainer only, so not through the anonymous log stream).
async fn stored_log(app: &TestApp, id: &str) -> Result<String> {
    Ok(db::builds::get(&app.state.db, id)
        .await?
        .ok_or("no build row")?
        .log)
}

fn import(slug: &str, image: &str) -> serde_json::Value {
    project(slug, serde_json::json!({ "image": image }))
}

#[tokio::test]
async fn an_image_imported_by_reference_goes_live_and_can_be_tried() -> Result {
    let app = TestApp::start_with(&[LISTED]).await?;
    let v = app.user().await?;
    let (reference, digest) = source_image(&app, "imported by reference").await?;
    let slug = unique("imported");
    let mut body = import(&slug, &reference);
    body["check_command"] = "cat /imported.txt".into();
    body["check_expect"] = "imported by reference".into();
    let id = submit(&v, body).await?;
    let b = wait_build(&v, &id, Duration::from_secs(180)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    assert_eq!(b["source_kind"], "image");
    assert_eq!(b["image_source"], reference.as_str());
    // The same image, byte for byte: the digest is the source's, under the project's name.
    let image = b["image"].as_str().ok_or("image")?;
    assert_eq!(
        image,
        format!("{LOCAL}/trythis/{slug}@{digest}"),
        "pushed unchanged as {{namespace}}/{{slug}}"
    );
    assert_eq!(b["image_tag"], id.as_str());

    // The log streams like a build's: resolving, each layer copied and verified, the check.
    let log = build_log(&app, &v, &id).await?;
    for said in [
        &format!("data: Resolving {reference}"),
        "data: copying layer 1/",
        "data: verified sha256:",
        &format!("data: verified manifest {digest}"),
        "data: Smoke check passed.",
    ] {
        assert!(log.contains(said), "{said:?} missing from:\n{log}");
    }

    assert_eq!(project_json(&v, &slug).await?["status"], "live");
    let t = v.try_project(&slug).await?;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let sid = t.body["id"].as_str().ok_or("id")?.to_string();
    let mut sh = v.terminal(&sid).await.map_err(|s| format!("ws {s}"))?;
    let out = sh.run("cat /imported.txt; pwd", T).await?;
    assert!(out.contains("imported by reference"), "{out}");
    v.stop_sandbox(&sid).await?;

    // A rebuild without a recipe imports the same reference again.
    let again = rebuild(&v, &slug, serde_json::json!({})).await?;
    let b = wait_build(&v, &again, Duration::from_secs(180)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");
    assert_eq!(b["image"], format!("{LOCAL}/trythis/{slug}@{digest}"));
    Ok(())
}

#[tokio::test]
async fn refused_references_get_a_field_error_and_leave_nothing() -> Result {
    let app = TestApp::start_with(&[LISTED]).await?;
    let v = app.user().await?;
    let cases = [
        // Private, loopback and link-local hosts: refused as written, nothing is contacted.
        ("10.0.0.1/x:1", "10.0.0.1 is a private address"),
        ("localhost/x:1", "localhost is a loopback address"),
        ("127.0.0.1:5001/x:1", "127.0.0.1:5001 is a loopback address"),
        ("169.254.169.254/meta:1", "a link-local address"),
        // Not on the operator's list.
        (
            "registry.example.com/team/app:1",
            "registry.example.com is not a registry this platform imports from. Allowed: 127.0.0.1:5000.",
        ),
        ("ghcr.io/owner/app:1", "ghcr.io is not a registry"),
        // Malformed.
        ("https://ghcr.io/owner/app:1", "not an image reference"),
        ("127.0.0.1:5000/Upper/Case:1", "lowercase"),
        ("127.0.0.1:5000/x@sha256:1234", "64 hex digits"),
        // A project's build, around the rules that guard it.
        ("127.0.0.1:5000/trythis/fixture:t1", "a build of a project"),
    ];
    for (image, says) in cases {
        let slug = unique("refused");
        let r = v
            .call("POST", "/api/projects", Some(import(&slug, image)))
            .await?;
        assert_eq!(r.status, 400, "{image}: {:?}", r.body);
        assert_eq!(r.problem_fields(), ["image"], "{image}: {:?}", r.body);
        let message = r.body["problems"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{image}: {message}");
        let p = v
            .call("GET", &format!("/api/projects/{slug}"), None)
            .await?;
        assert_eq!(p.status, 404, "{image}: nothing is created");
    }
    // An image and a recipe at once.
    let mut both = import(&unique("both"), "127.0.0.1:5000/x:1");
    both["dockerfile"] = format!("FROM {}\n", base_image()).into();
    let r = v.call("POST", "/api/projects", Some(both)).await?;
    assert_eq!((r.status, r.problem_fields()), (400, vec!["image"]));
    Ok(())
}

#[tokio::test]
async fn without_the_operators_entry_the_local_registry_is_refused() -> Result {
    // The default policy: public registries over HTTPS only.
    let app = TestApp::start().await?;
    let v = app.user().await?;
    let r = v
        .call(
            "POST",
            "/api/projects",
            Some(import(
                &unique("default"),
                "127.0.0.1:5000/import-test/x:v1",
            )),
        )
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let message = r.body["problems"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("a loopback address"), "{message}");
    Ok(())
}

#[tokio::test]
async fn an_unknown_tag_fails_the_build_with_a_clear_headline() -> Result {
    let app = TestApp::start_with(&[LISTED]).await?;
    let v = app.user().await?;
    let (reference, _) = source_image(&app, "unknown tag").await?;
    let missing = reference.replace(":v1", ":no-such-tag");
    let slug = unique("missing");
    let id = submit(&v, import(&slug, &missing)).await?;
    let b = wait_build(&v, &id, Duration::from_secs(60)).await?;
    assert_eq!(b["state"], "failed", "{b}");
    let error = b["error"].as_str().unwrap_or("");
    assert!(
        error.starts_with(&format!("The image {missing} was not found")),
        "{error}"
    );
    assert_eq!(project_json(&v, &slug).await?["status"], "failed");
    Ok(())
}

#[tokio::test]
async fn an_image_over_the_limit_is_refused_before_anything_is_copied() -> Result {
    let app = TestApp::start_with(&[LISTED, ("TRYTHIS_IMPORT_MAX_MB", "1")]).await?;
    let v = app.user().await?;
    let (reference, _) = source_image(&app, "too large").await?;
    let slug = unique("large");
    let id = submit(&v, import(&slug, &reference)).await?;
    let b = wait_build(&v, &id, Duration::from_secs(60)).await?;
    assert_eq!(b["state"], "failed", "{b}");
    let error = b["error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("The image is too large to import: image is ")
            && error.contains("the limit is 1 MB"),
        "{error}"
    );
    let log = stored_log(&app, &id).await?;
    assert!(log.contains("Resolved to sha256:"), "{log}");
    assert!(!log.contains("copying"), "nothing is copied:\n{log}");
    let ours = registry::Registry::new(app.state.config.registry.clone());
    let repo = app.state.config.registry.repository_for(&slug);
    assert!(
        matches!(
            ours.tags(&repo).await,
            Err(registry::RegistryError::NotFound(_))
        ),
        "nothing reached the platform's registry"
    );
    Ok(())
}

/// A name that this machine resolves to a loopback address (from /etc/hosts, never DNS).
fn loopback_name() -> Result<String> {
    let hosts = std::fs::read_to_string("/etc/hosts")?;
    hosts
        .lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            ip.is_loopback()
                .then(|| words.find(|w| *w != "localhost" && !w.contains(':')))
                .flatten()
                .map(str::to_string)
        })
        .next()
        .ok_or_else(|| "no name in /etc/hosts for a loopback address besides localhost".into())
}

#[tokio::test]
async fn a_listed_name_that_resolves_to_a_private_address_is_refused_by_the_proxy() -> Result {
    // The operator lists an HTTPS registry by name; the name resolves to 127.0.0.1. The form
    // cannot know (it never resolves); the import's proxy resolves it and refuses the connection.
    let name = loopback_name()?;
    let listed = format!("http://127.0.0.1:5000,{name}:5000");
    let app = TestApp::start_with(&[("TRYTHIS_IMPORT_REGISTRIES", listed.as_str())]).await?;
    let v = app.user().await?;
    let id = submit(
        &v,
        import(&unique("rebound"), &format!("{name}:5000/import-test/x:v1")),
    )
    .await?;
    let b = wait_build(&v, &id, Duration::from_secs(60)).await?;
    assert_eq!(b["state"], "failed", "{b}");
    let error = b["error"].as_str().unwrap_or("");
    assert!(
        error.starts_with(&format!(
            "The import was refused: {name}:5000 resolves to 127.0.0.1, a loopback address"
        )),
        "{error}"
    );
    let log = stored_log(&app, &id).await?;
    assert!(
        log.contains("trythis egress proxy: blocked:"),
        "the refusal is in the log:\n{log}"
    );
    Ok(())
}
