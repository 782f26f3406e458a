//! Moderation and maintainers deleting their own projects, through the HTTP API of the real
//! server (real builds, registry and sandboxes): under `TRYTHIS_MODERATION` a new maintainer's
//! project is reachable by its link (Try and badge work) but in no listing until an admin
//! approves it, after which that maintainer publishes directly; a maintainer deletes their
//! project (images gone from the registry, tries kept anonymised). Needs Docker: fails without it.
mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const ADMIN: &str = "moderator@example.test";
const ADMIN_PW: &str = "moderator password 1";

async fn app(moderation: &str) -> Result<TestApp> {
    TestApp::start_with(&[
        ("TRYTHIS_ADMIN_EMAIL", ADMIN),
        ("TRYTHIS_ADMIN_PASSWORD", ADMIN_PW),
        ("TRYTHIS_MODERATION", moderation),
    ])
    .await
}

async fn admin(app: &TestApp) -> Result<Visitor> {
    let mut a = app.visitor().await?;
    let r = a.auth("login", ADMIN, ADMIN_PW).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(a)
}

/// A Dockerfile project that builds in seconds, offline.
fn quick(slug: &str) -> serde_json::Value {
    project(
        slug,
        json!({ "dockerfile": format!("FROM {}\nRUN echo built > /built\n", base_image()) }),
    )
}

/// The slugs a catalogue search for `q` lists.
async fn listed(v: &Visitor, q: &str) -> Result<Vec<String>> {
    let r = v.call("GET", &format!("/api/projects?q={q}"), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body["items"]
        .as_array()
        .ok_or("items")?
        .iter()
        .filter_map(|i| i["slug"].as_str().map(String::from))
        .collect())
}

async fn review_list(a: &Visitor) -> Result<Vec<String>> {
    let r = a.call("GET", "/api/admin/review", None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body["projects"]
        .as_array()
        .ok_or("projects")?
        .iter()
        .filter_map(|p| p["slug"].as_str().map(String::from))
        .collect())
}

#[tokio::test]
async fn a_new_maintainers_project_waits_unlisted_until_an_admin_approves_it() -> Result {
    let app = app("on").await?;
    let m = app.user().await?;
    let slug = unique("pending");
    let id = submit(&m, quick(&slug)).await?;
    let b = wait_build(&m, &id, Duration::from_secs(120)).await?;
    assert_eq!(b["state"], "succeeded", "{b}");

    // Live and reachable by its link, but in no listing.
    let visitor = app.visitor().await?;
    let p = project_json(&visitor, &slug).await?;
    assert_eq!(
        (p["status"].as_str(), p["listed"].as_bool()),
        (Some("live"), Some(false)),
        "{p}"
    );
    assert!(listed(&visitor, &slug).await?.is_empty());
    let badge = visitor
        .http
        .get(app.url(&format!("/badge/{slug}.svg")))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        badge.contains("<svg") && !badge.contains("not found"),
        "{badge}"
    );
    let t = visitor.try_project(&slug).await?;
    assert_eq!(t.status, 201, "Try works by link: {}", t.body);
    visitor
        .stop_sandbox(t.body["id"].as_str().ok_or("id")?)
        .await?;

    // The review list is the admins' only.
    assert_eq!(visitor.status_of("GET", "/api/admin/review").await?, 403);
    assert_eq!(
        m.status_of("POST", &format!("/api/admin/projects/{slug}/approve"))
            .await?,
        403
    );
    let a = admin(&app).await?;
    assert!(review_list(&a).await?.contains(&slug));
    let r = a
        .call("POST", &format!("/api/admin/projects/{slug}/approve"), None)
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(listed(&visitor, &slug).await?, vec![slug.clone()]);
    assert!(!review_list(&a).await?.contains(&slug));

    // Approved once: the maintainer's next project is listed from the start.
    let next = unique("trusted");
    let id = submit(&m, quick(&next)).await?;
    assert_eq!(project_json(&visitor, &next).await?["listed"], true);
    assert!(!review_list(&a).await?.contains(&next));
    wait_build(&m, &id, Duration::from_secs(120)).await?;
    assert_eq!(listed(&visitor, &next).await?, vec![next.clone()]);

    // Another new maintainer still waits.
    let other = app.user().await?;
    let third = unique("newcomer");
    let id = submit(&other, quick(&third)).await?;
    assert_eq!(project_json(&visitor, &third).await?["listed"], false);
    assert!(review_list(&a).await?.contains(&third));
    assert_eq!(
        other
            .call("DELETE", &format!("/api/builds/{id}"), None)
            .await?
            .status,
        200
    );
    Ok(())
}

#[tokio::test]
async fn without_moderation_a_new_project_is_listed_at_once() -> Result {
    let app = TestApp::start().await?;
    let m = app.user().await?;
    let slug = unique("direct");
    let id = submit(&m, quick(&slug)).await?;
    assert_eq!(project_json(&m, &slug).await?["listed"], true);
    assert_eq!(
        m.call("DELETE", &format!("/api/builds/{id}"), None)
            .await?
            .status,
        200
    );
    Ok(())
}

#[tokio::test]
async fn a_maintainer_deletes_their_project_and_its_tries_stay_anonymised() -> Result {
    let app = app("off").await?;
    let m = app.user().await?;
    let slug = unique("doomed");
    let id = submit(&m, quick(&slug)).await?;
    assert_eq!(
        wait_build(&m, &id, Duration::from_secs(120)).await?["state"],
        "succeeded"
    );
    let repo = app.state.registry.config().repository_for(&slug);
    assert_eq!(app.state.registry.tags(&repo).await?.len(), 1);

    // A visitor tries it and is still in it when the project goes.
    let visitor = app.visitor().await?;
    let t = visitor.try_project(&slug).await?;
    assert_eq!(t.status, 201, "{}", t.body);
    let sandbox = t.body["id"].as_str().ok_or("id")?.to_string();

    // Only its maintainer (or an admin) may delete it.
    let path = format!("/api/projects/{slug}");
    assert_eq!(visitor.status_of("DELETE", &path).await?, 403);
    let stranger = app.user().await?;
    assert_eq!(stranger.status_of("DELETE", &path).await?, 403);
    assert_eq!(
        m.status_of("DELETE", "/api/projects/no-such-project")
            .await?,
        404
    );
    let r = m.call("DELETE", &path, None).await?;
    assert_eq!(r.status, 204, "{}", r.body);

    assert_eq!(visitor.status_of("GET", &path).await?, 404);
    assert!(
        app.state.registry.tags(&repo).await?.is_empty(),
        "images removed"
    );
    let s = visitor
        .call("GET", &format!("/api/sandboxes/{sandbox}"), None)
        .await?;
    assert_ne!(
        s.body["state"], "ready",
        "its sandbox was stopped: {}",
        s.body
    );
    // The Try stays in the visitor's history, naming no project.
    let rows = db::sandboxes::history(&app.state.db, &owner_of(&app, &sandbox).await?, 10).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].project_id, rows[0].project_slug.as_str()),
        (db::projects::DELETED_PROJECT_ID, "")
    );
    let page = visitor
        .http
        .get(app.url("/containers"))
        .header("cookie", &visitor.cookie)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("deleted project"),
        "My Containers names it a deleted project"
    );
    assert!(!page.contains(&slug), "nor links to it");

    // The slug is free again, and the new project has none of the old one's tries.
    let again = submit(&m, quick(&slug)).await?;
    assert_eq!(project_json(&m, &slug).await?["tries"], 0);
    assert_eq!(
        m.call("DELETE", &format!("/api/builds/{again}"), None)
            .await?
            .status,
        200
    );
    Ok(())
}

/// The owner key of a sandbox (the visitor's cookie identity).
async fn owner_of(app: &TestApp, sandbox: &str) -> Result<vocab::OwnerKey> {
    Ok(db::sandboxes::get(&app.state.db, sandbox)
        .await?
        .ok_or("sandbox row")?
        .owner)
}
