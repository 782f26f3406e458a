//! A maintainer edits a published project's metadata through `PATCH /api/projects/{slug}`, on the
//! real server: search and the shared page cache show the change at once; a bad field is refused
//! by name as publishing refuses it, and nothing changes; only the maintainer or an admin may
//! edit, with the CSRF token; a new welcome text renews the project's warm pool (real sandboxes,
//! so these tests need Docker: they fail without it).
mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const ADMIN: &str = "edit-admin@example.test";
const ADMIN_PW: &str = "edit admin password";

async fn app() -> Result<TestApp> {
    TestApp::start_with(&[
        ("TRYTHIS_ADMIN_EMAIL", ADMIN),
        ("TRYTHIS_ADMIN_PASSWORD", ADMIN_PW),
    ])
    .await
}

/// A new account that maintains the fixture project (as if it had published it).
async fn maintainer(app: &TestApp) -> Result<Visitor> {
    let m = app.user().await?;
    let me = m.call("GET", "/api/me", None).await?;
    let id = me.body["user"]["id"].as_i64().ok_or("no user id")?;
    let p = db::projects::by_slug(&app.state.db, "fixture")
        .await?
        .ok_or("no fixture")?;
    db::projects::set_maintainer(&app.state.db, p.id, Some(&vocab::OwnerKey::User(id as i32)))
        .await?;
    Ok(m)
}

async fn edit(v: &Visitor, slug: &str, body: serde_json::Value) -> Result<Reply> {
    v.call("PATCH", &format!("/api/projects/{slug}"), Some(body))
        .await
}

/// The slugs a catalogue search for `q` lists.
async fn search(v: &Visitor, q: &str) -> Result<Vec<String>> {
    let r = v.call("GET", &format!("/api/projects?q={q}"), None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body["items"]
        .as_array()
        .ok_or("items")?
        .iter()
        .filter_map(|i| i["slug"].as_str().map(String::from))
        .collect())
}

/// The fixture's page as a new anonymous visitor gets it: the page cache's verdict and the HTML.
async fn shared_page(app: &TestApp) -> Result<(String, String)> {
    let v = app.visitor().await?;
    let resp = v
        .http
        .get(app.url("/p/fixture"))
        .header("cookie", &v.cookie)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let cache = resp
        .headers()
        .get("x-page-cache")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((cache, resp.text().await?))
}

#[tokio::test]
async fn an_edited_summary_is_found_by_search_and_shown_at_once() -> Result {
    let app = app().await?;
    let m = maintainer(&app).await?;
    let visitor = app.visitor().await?;
    // Search and the shared page are loaded (and kept) before the edit.
    assert!(search(&visitor, "zanzibar").await?.is_empty());
    assert_eq!(search(&visitor, "test").await?, ["fixture"]);
    shared_page(&app).await?;
    let (cache, html) = shared_page(&app).await?;
    assert_eq!(cache, "hit", "the page is served from the cache");
    assert!(html.contains("A test project"));

    let r = edit(
        &m,
        "fixture",
        json!({"summary": "Sails to Zanzibar and back.", "tags": ["boats", "Sea"], "description": "Run `sail --far`."}),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["summary"], "Sails to Zanzibar and back.");
    assert_eq!(r.body["tags"], json!(["boats", "sea"]));
    assert_eq!(r.body["name"], "Fixture fixture", "a field not sent stays");

    // At once: no wait for the index's or the cache's lifetimes.
    assert_eq!(search(&visitor, "zanzibar").await?, ["fixture"]);
    assert_eq!(search(&visitor, "boats").await?, ["fixture"]);
    assert_eq!(
        search(&visitor, "sail").await?,
        ["fixture"],
        "the description's command"
    );
    assert!(
        search(&visitor, "test").await?.is_empty(),
        "the old tag is gone"
    );
    let (cache, html) = shared_page(&app).await?;
    assert_eq!(cache, "miss", "rendered again after the change");
    assert!(html.contains("Sails to Zanzibar and back."), "{html}");
    assert!(!html.contains("A test project"));
    assert_eq!(
        project_json(&visitor, "fixture").await?["summary"],
        "Sails to Zanzibar and back."
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_field_is_refused_by_name_as_publishing_refuses_it_and_nothing_changes() -> Result {
    let app = app().await?;
    let m = maintainer(&app).await?;
    let before = project_json(&m, "fixture").await?;
    let refused = edit(
        &m,
        "fixture",
        json!({"summary": "New words here", "homepage": "javascript:alert(1)"}),
    )
    .await?;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid");
    assert_eq!(refused.problem_fields(), ["homepage"]);
    // Publishing answers the same problem for the same value.
    let published = m
        .call(
            "POST",
            "/api/projects",
            Some(project(
                "edit-twin",
                json!({"homepage": "javascript:alert(1)", "dockerfile": format!("FROM {}\n", base_image())}),
            )),
        )
        .await?;
    assert_eq!(published.status, 400, "{}", published.body);
    assert_eq!(published.body["problems"], refused.body["problems"]);

    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": null}), "name"),
        (json!({"category": "Nope"}), "category"),
        (json!({"tags": ["not ok!"]}), "tags"),
        (json!({"welcome": "bell\u{7}"}), "welcome"),
        (json!({"summary": "x".repeat(161)}), "summary"),
        // An unknown field (a typo, or one an edit cannot change) is named, not ignored.
        (
            json!({"summary": "New words here", "sumary": "typo"}),
            "sumary",
        ),
        (json!({"slug": "renamed"}), "slug"),
    ] {
        let r = edit(&m, "fixture", body.clone()).await?;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.problem_fields(), [field], "{body}: {}", r.body);
    }
    let r = edit(&m, "fixture", json!({"tags": "one,two"})).await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("bad_json"))
    );

    let mut after = project_json(&m, "fixture").await?;
    assert_eq!(
        after["updated_at"], before["updated_at"],
        "nothing was written"
    );
    after["updated_at"] = before["updated_at"].clone();
    assert_eq!(after, before);
    assert!(search(&m, "words").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn only_the_maintainer_or_an_admin_edits_and_only_with_the_csrf_token() -> Result {
    let app = app().await?;
    let m = maintainer(&app).await?;
    let change = json!({"summary": "Changed by someone"});
    let other = app.user().await?;
    let visitor = app.visitor().await?;
    for (who, v) in [("another account", &other), ("a visitor", &visitor)] {
        let r = edit(v, "fixture", change.clone()).await?;
        assert_eq!(r.status, 403, "{who}: {}", r.body);
        assert_eq!(r.body["error"], "forbidden");
    }
    let r = edit(&m, "no-such-project", change.clone()).await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (404, Some("not_found"))
    );

    // The maintainer's own cookie, without the page's token or from another site: refused.
    let url = app.url("/api/projects/fixture");
    let send = |origin: Option<&str>, token: Option<&str>| {
        let mut req = m
            .http
            .patch(&url)
            .header("cookie", &m.cookie)
            .header("content-type", "application/json")
            .body(change.to_string());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    assert_eq!(send(None, None).await?.status().as_u16(), 403);
    assert_eq!(send(None, Some("forged")).await?.status().as_u16(), 403);
    let site = format!("http://{}", app.addr);
    assert_eq!(
        send(Some("http://evil.example"), Some(&m.csrf))
            .await?
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        project_json(&m, "fixture").await?["summary"],
        "A test project",
        "no refused request changed anything"
    );
    assert_eq!(
        send(Some(&site), Some(&m.csrf)).await?.status().as_u16(),
        200
    );

    // An admin edits anyone's project.
    let mut admin = app.visitor().await?;
    let r = admin.auth("login", ADMIN, ADMIN_PW).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = edit(&admin, "fixture", json!({"name": "Renamed by an admin"})).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(search(&visitor, "renamed").await?, ["fixture"]);
    Ok(())
}

/// Pre-started sandboxes print the welcome text they started with: a new one gives them back,
/// and the next Try prints the new text.
#[tokio::test]
async fn a_new_welcome_text_renews_the_warm_pool() -> Result {
    const T: Duration = Duration::from_secs(20);
    let app = TestApp::start_with(&[
        ("TRYTHIS_WARM_POOL", "1"),
        ("TRYTHIS_ADMIN_EMAIL", ADMIN),
        ("TRYTHIS_ADMIN_PASSWORD", ADMIN_PW),
    ])
    .await?;
    let sandboxes = &app.state.sandboxes;
    assert_eq!(sandboxes.refill_pool().await?, 1);
    let old = db::sandboxes::all_active(&app.state.db).await?;
    assert_eq!(old.len(), 1);
    let m = maintainer(&app).await?;

    // Another field leaves the pool alone.
    let r = edit(&m, "fixture", json!({"summary": "Still welcoming"})).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        db::sandboxes::get(&app.state.db, &old[0].id)
            .await?
            .is_some_and(|s| s.active),
        "kept"
    );

    let r = edit(&m, "fixture", json!({"welcome": "Welcome aboard, edited"})).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["welcome"], "Welcome aboard, edited");
    let gone = db::sandboxes::get(&app.state.db, &old[0].id)
        .await?
        .ok_or("row")?;
    assert!(!gone.active, "the member with the old text was given back");
    assert_eq!(app.containers_of(&old[0].id).await?, 0);

    assert_eq!(sandboxes.refill_pool().await?, 1, "a new member");
    let fresh = db::sandboxes::all_active(&app.state.db).await?;
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().ok_or("no id")?.to_string();
    assert_eq!(id, fresh[0].id, "the Try got the new member");
    let mut sh = v
        .terminal(&id)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    sh.expect("Welcome aboard, edited", T).await?;
    for s in db::sandboxes::all_active(&app.state.db).await? {
        sandboxes
            .stop(&s.id, vocab::EndReason::ServerStopping)
            .await?;
    }
    Ok(())
}
