//! Sharing a session, end to end against the real engine, registry and ttyd: the owner of a
//! running sandbox makes a link, a second browser watches the owner's live shell through it; a
//! view link's keys, sizes and pauses never reach the shell (dropped by the server, whatever the
//! page does), a control link's keys do; revoking closes the viewer's socket at once (4003) and
//! the link answers 410; the link ends with its sandbox; nobody but the owner (or an admin)
//! makes, lists or revokes links; a viewer's sockets count against its identity's cap.
mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_viewer_sees_the_owners_shell_and_a_view_link_drops_every_frame_it_sends() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, mut sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "view").await?;
    // Only the token's hash is stored.
    let row = db::shares::get(&app.state.db, &share_id)
        .await?
        .ok_or("no row")?;
    assert_eq!(row.token_hash, server::secrets::sha256_hex(&token));
    assert!(!row.token_hash.contains(&token));

    let viewer = app.visitor().await?;
    let about = viewer
        .call("GET", &format!("/api/shares/{token}"), None)
        .await?;
    assert_eq!(about.status, 200, "{:?}", about.body);
    assert_eq!(about.body["mode"], "view");
    assert_eq!(about.body["sandbox_id"], id.as_str());
    assert_eq!(about.body["project"], "fixture");
    assert_eq!(about.body["project_name"], "Fixture fixture");
    assert_eq!(about.body["state"], "ready");
    assert!(about.body["seconds_left"].as_i64().unwrap_or(0) > 60);
    assert_eq!(
        about.body["terminal_ws"],
        format!("/shares/{share_id}/ws").as_str()
    );
    // The page names the project and what the link allows.
    let page = viewer
        .http
        .get(app.url(&format!("/watch/{token}")))
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("Fixture fixture") && html.contains("View only"));

    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    // The recent screen first, after the shell's size (the platform's '9' frame).
    w.expect("Welcome to the fixture", T).await?;
    assert_eq!(w.frames.first(), Some(&b'9'), "frames: {:?}", w.frames);
    sh.type_line("echo owner-$((6*7))").await?;
    w.expect("owner-42", T).await?;

    // The owner's list shows the viewer.
    let list = owner
        .call("GET", &format!("/api/sandboxes/{id}/shares"), None)
        .await?;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["items"][0]["id"], share_id.as_str());
    assert_eq!(list.body["items"][0]["watching"], 1);
    assert_eq!(list.body["items"][0]["viewers"], json!(["anonymous"]));
    assert!(list.body["items"][0].get("url").is_none(), "shown once");

    // Everything the viewer sends: keys, a resize, another hello, a pause. None may reach the
    // shell: no file, no output, the owner's size kept, the owner's output still flowing.
    w.type_line("echo viewer-typed > /tmp/viewer; echo VIEWER-$((20+1))")
        .await?;
    w.send_keys(b"\x03\x04").await?;
    w.resize(33, 11).await?;
    let hello = json!({ "AuthToken": "", "columns": 34, "rows": 12 }).to_string();
    use futures::SinkExt;
    w.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        hello.into_bytes().into(),
    ))
    .await?;
    w.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        bytes::Bytes::from_static(b"2"),
    ))
    .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let out = sh
        .run("cat /tmp/viewer 2>&1; stty size; echo alive-$((3*3))", T)
        .await?;
    assert!(out.contains("No such file or directory"), "{out}");
    assert!(out.contains("\n40 120\r"), "the owner's size stays: {out}");
    assert!(out.contains("alive-9"), "{out}");
    // The viewer still watches (its dropped frames did not close it) and saw what the owner saw.
    w.expect("alive-9", T).await?;
    assert!(!sh.screen.contains("VIEWER-21"), "{}", sh.screen);
    assert!(!w.screen.contains("VIEWER-21"));
    owner.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn a_control_link_lets_the_viewer_type_but_never_resize() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, mut sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "control").await?;
    let viewer = app.visitor().await?;
    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    w.expect("Welcome to the fixture", T).await?;
    w.type_line("echo from-viewer-$((2+3))").await?;
    sh.expect("from-viewer-5", T).await?;
    w.expect("from-viewer-5", T).await?;
    w.resize(33, 11).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = sh.run("stty size", T).await?;
    assert!(out.contains("\n40 120\r"), "the owner's size stays: {out}");
    let page = viewer
        .http
        .get(app.url(&format!("/watch/{token}")))
        .send()
        .await?;
    assert!(page.text().await?.contains("You can type"));
    owner.stop_sandbox(&id).await?;
    Ok(())
}

/// A server that holds no connection to the owner's shell (another app server opened it, or
/// this one lost it: here its ttyd is killed) joins it for a viewer, without resizing it.
#[tokio::test]
async fn a_viewer_watches_a_shell_this_server_holds_no_session_for() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, mut sh) = owner_with_terminal(&app).await?;
    sh.run("echo before-$((6*7))", T).await?;
    let (share_id, token) = share(&owner, &id, "control").await?;
    app.kill_ttyd()?;
    let closed = sh.wait_closed(T).await?;
    assert!(closed.starts_with("1012"), "{closed:?}");
    let viewer = app.visitor().await?;
    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    w.expect("before-42", T).await?;
    let out = w.run("stty size", T).await?;
    assert!(out.contains("\n40 120\r"), "the owner's size stays: {out}");
    owner.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn revoking_closes_the_viewers_socket_at_once_and_the_link_stops_working() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, mut sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "view").await?;
    let (other_id, other_token) = share(&owner, &id, "view").await?;
    let viewer = app.visitor().await?;
    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    let mut other = watch(&viewer, &other_id, &other_token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    w.expect("Welcome to the fixture", T).await?;
    // A ticket the viewer got before the revocation.
    let old_ticket = watch_ticket(&viewer, &token)
        .await
        .map_err(|s| format!("ticket: {s}"))?;

    let t0 = Instant::now();
    let r = owner
        .call(
            "DELETE",
            &format!("/api/sandboxes/{id}/shares/{share_id}"),
            None,
        )
        .await?;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let closed = w.wait_closed(T).await?;
    assert!(closed.starts_with("4003 "), "closed with {closed:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        t0.elapsed()
    );

    // The link is dead at once: its description, a new ticket, an old ticket.
    let about = viewer
        .call("GET", &format!("/api/shares/{token}"), None)
        .await?;
    assert_eq!(
        (about.status, about.body["error"].as_str()),
        (410, Some("share_revoked"))
    );
    assert_eq!(watch_ticket(&viewer, &token).await.err(), Some(410));
    let again = viewer
        .socket_at(
            &format!("/shares/{share_id}/ws"),
            Some(&old_ticket),
            Some(&viewer.base.clone()),
        )
        .await;
    assert_eq!(again.err(), Some(410));
    let page = viewer
        .http
        .get(app.url(&format!("/watch/{token}")))
        .send()
        .await?;
    assert_eq!(page.status(), 410);
    assert!(page.text().await?.contains("This session has ended"));
    assert_eq!(
        owner
            .status_of("DELETE", &format!("/api/sandboxes/{id}/shares/{share_id}"))
            .await?,
        404,
        "revoked once"
    );

    // The other link and the owner's own terminal go on.
    let list = owner
        .call("GET", &format!("/api/sandboxes/{id}/shares"), None)
        .await?;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![other_id.as_str()]);
    sh.type_line("echo after-revoke-$((5*5))").await?;
    sh.expect("after-revoke-25", T).await?;
    other.expect("after-revoke-25", T).await?;
    owner.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn only_the_owner_makes_lists_and_revokes_links() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, _sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "control").await?;
    let stranger = app.visitor().await?;
    let shares = format!("/api/sandboxes/{id}/shares");
    let one = format!("{shares}/{share_id}");
    let r = stranger
        .call("POST", &shares, Some(json!({ "mode": "view" })))
        .await?;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(stranger.status_of("GET", &shares).await?, 403);
    assert_eq!(stranger.status_of("DELETE", &one).await?, 403);
    // Having the link does not make the viewer its owner.
    let _ = watch_ticket(&stranger, &token).await;
    assert_eq!(stranger.status_of("DELETE", &one).await?, 403);
    assert_eq!(
        stranger
            .status_of("GET", "/api/sandboxes/aaaaaaaaaaaaaaaaaaaaaaaaaa/shares")
            .await?,
        404
    );
    // The owner's own writes need the page's CSRF token, like every API write.
    let forged = owner
        .http
        .post(app.url(&shares))
        .header("cookie", &owner.cookie)
        .header("content-type", "application/json")
        .body(r#"{"mode":"control"}"#)
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    let forged = owner
        .http
        .delete(app.url(&one))
        .header("cookie", &owner.cookie)
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    let r = owner
        .call("POST", &shares, Some(json!({ "mode": "admin" })))
        .await?;
    assert_eq!(r.status, 400, "{:?}", r.body);
    // A viewer's socket needs a ticket of its own identity and the site's Origin.
    let viewer = app.visitor().await?;
    let theirs = watch_ticket(&stranger, &token)
        .await
        .map_err(|s| format!("ticket: {s}"))?;
    let path = format!("/shares/{share_id}/ws");
    let base = viewer.base.clone();
    assert_eq!(
        viewer
            .socket_at(&path, Some(&theirs), Some(&base))
            .await
            .err(),
        Some(403)
    );
    let mine = watch_ticket(&viewer, &token)
        .await
        .map_err(|s| format!("ticket: {s}"))?;
    assert_eq!(
        viewer
            .socket_at(&path, Some(&mine), Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        viewer.socket_at(&path, Some(&mine), None).await.err(),
        Some(403)
    );
    // Unknown links.
    let unknown = "0".repeat(64);
    assert_eq!(
        viewer
            .status_of("GET", &format!("/api/shares/{unknown}"))
            .await?,
        404
    );
    assert_eq!(
        viewer.status_of("GET", "/api/shares/not-a-token").await?,
        404
    );
    // Still the owner's.
    assert_eq!(owner.status_of("DELETE", &one).await?, 204);
    owner.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn a_share_ends_with_its_sandbox() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, _sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "view").await?;
    let viewer = app.visitor().await?;
    let mut w = watch(&viewer, &share_id, &token)
        .await
        .map_err(|s| format!("the viewer's socket was refused: {s}"))?;
    w.expect("Welcome to the fixture", T).await?;
    assert_eq!(owner.stop_sandbox(&id).await?.status, 204);
    // Closed as a shell that ended (1000, or 4002 when ttyd's hang-up came first), never as a
    // revoked link.
    let closed = w.wait_closed(T).await?;
    assert!(
        closed.starts_with("1000 ") || closed.starts_with("4002 "),
        "closed with {closed:?}"
    );
    let about = viewer
        .call("GET", &format!("/api/shares/{token}"), None)
        .await?;
    assert_eq!(about.status, 410, "{:?}", about.body);
    assert_eq!(about.body["error"], "share_ended");
    assert_eq!(about.body["message"], "This session has ended.");
    assert_eq!(watch_ticket(&viewer, &token).await.err(), Some(410));
    let page = viewer
        .http
        .get(app.url(&format!("/watch/{token}")))
        .send()
        .await?;
    assert_eq!(page.status(), 410);
    assert!(page.text().await?.contains("This session has ended"));
    // No new link for an ended sandbox, and none listed.
    let r = owner
        .call(
            "POST",
            &format!("/api/sandboxes/{id}/shares"),
            Some(json!({ "mode": "view" })),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("sandbox_ended"))
    );
    let list = owner
        .call("GET", &format!("/api/sandboxes/{id}/shares"), None)
        .await?;
    assert_eq!(list.body["items"], json!([]));
    Ok(())
}

#[tokio::test]
async fn a_viewers_sockets_count_against_its_identitys_cap() -> Result {
    let app = TestApp::start().await?;
    let (owner, id, _sh) = owner_with_terminal(&app).await?;
    let (share_id, token) = share(&owner, &id, "view").await?;
    let viewer = app.visitor().await?;
    let cap = server::http::caps::StreamCaps::default()
        .terminals_per_identity
        .limit();
    let mut open = Vec::new();
    for _ in 0..cap {
        let mut w = watch(&viewer, &share_id, &token)
            .await
            .map_err(|s| format!("refused before the cap: {s}"))?;
        w.expect("Welcome to the fixture", T).await?;
        open.push(w);
    }
    assert_eq!(watch(&viewer, &share_id, &token).await.err(), Some(429));
    // The owner is not locked out of their own terminal by their viewers.
    let mut mine = owner
        .terminal(&id)
        .await
        .map_err(|s| format!("the owner was refused: {s}"))?;
    mine.type_line("echo owner-still-in").await?;
    mine.expect("owner-still-in", T).await?;
    // A closed socket gives its place back.
    drop(open.pop());
    let mut back = None;
    for _ in 0..50 {
        match watch(&viewer, &share_id, &token).await {
            Ok(w) => {
                back = Some(w);
                break;
            }
            Err(429) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(s) => return Err(format!("refused: {s}").into()),
        }
    }
    back.ok_or("the place never came back")?
        .expect("owner-still-in", T)
        .await?;
    owner.stop_sandbox(&id).await?;
    Ok(())
}
