//! Try, end to end through the HTTP API and the terminal proxy, against the real Docker engine,
//! the real registry and the real ttyd. These tests need Docker: they fail (not skip) without it.
mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

async fn start_try(app: &TestApp) -> Result<(Visitor, String)> {
    let v = app.visitor().await?;
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("no id")?.to_string();
    assert_eq!(r.body["terminal_ws"], format!("/s/{id}/ws"));
    Ok((v, id))
}

/// A Try by a new visitor, with its terminal open.
async fn start_try_with_terminal(app: &TestApp) -> Result<(Visitor, String, Shell)> {
    let (v, id) = start_try(app).await?;
    let sh = v
        .terminal(&id)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    Ok((v, id, sh))
}

#[tokio::test]
async fn try_starts_a_shell_and_echoes() -> Result {
    let app = TestApp::start().await?;
    let (v, id, mut sh) = start_try_with_terminal(&app).await?;
    sh.expect("Welcome to the fixture", T).await?;
    sh.type_line("echo hello-$RANDOM").await?;
    sh.expect(r"[\r\n]hello-\d+", T).await?;
    // ttyd's own frame codes, seen through the proxy: output ('0') and window title ('1').
    assert!(
        sh.frames.contains(&b'0') && sh.frames.contains(&b'1'),
        "frames: {:?}",
        sh.frames
    );
    // The image's dotfiles are there (read from the image into the writable home).
    let out = sh
        .run("echo $FIXTURE_READY; cat ~/fixture.txt; pwd", T)
        .await?;
    assert!(
        out.contains("yes") && out.contains("fixture") && out.contains("/root"),
        "{out}"
    );
    // Tools installed outside root's PATH (games: `fortune | cowsay`) are found.
    let out = sh.run("echo \"P=$PATH\"", T).await?;
    assert!(out.contains(":/usr/local/games:/usr/games"), "{out}");
    v.stop_sandbox(&id).await?;
    assert_eq!(app.containers_of(&id).await?, 0);
    Ok(())
}

/// The runc fallback's limits (gVisor's, the default, are in `isolation.rs`): under runc a memory
/// hog meets the kernel's OOM killer inside the sandbox's cgroup and the shell survives.
#[tokio::test]
async fn limits_hold_inside_the_sandbox() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_SANDBOX_RUNTIME", "runc")]).await?;
    let (v, id, mut sh) = start_try_with_terminal(&app).await?;

    // Memory hog: tail buffers everything, the OOM killer ends it, the shell survives.
    let out = sh
        .run(
            "head -c 900m /dev/zero | tail -n 1 >/dev/null; echo status=$?",
            Duration::from_secs(60),
        )
        .await?;
    assert!(
        out.contains("status=137") || out.contains("Killed"),
        "{out}"
    );

    // Disk: writing past the bound fails with ENOSPC; the host's disk is not what fills.
    fills_without_host_disk(
        &mut sh,
        "dd if=/dev/zero of=/root/big bs=1M count=400 2>&1 | head -3; rm -f /root/big",
    )
    .await?;

    // The image's VOLUME is a bounded tmpfs holding the image's files, not a host-disk volume;
    // the image's HEALTHCHECK (every second) never runs.
    let out = fills_without_host_disk(
        &mut sh,
        "cat /data/seed.txt; dd if=/dev/zero of=/data/big bs=1M count=400 2>&1 | head -3; rm -f /data/big; sleep 2.5; ls /tmp/health-ran 2>&1",
    )
    .await?;
    assert!(out.contains("seeded"), "{out}");
    assert!(out.contains("cannot access '/tmp/health-ran'"), "{out}");

    // Read-only system, no network but loopback, no Docker socket, and of the platform only the
    // read-only relay: no socket at all (the terminal is the engine's exec, ttyd is outside).
    let out = sh.run(r"touch /usr/x 2>&1; ls /sys/class/net; ls /var/run/docker.sock 2>&1; echo sockets=$(find / \( -path /proc -o -path /sys \) -prune -o -type s -print 2>/dev/null | wc -l); echo platform=$(ls /opt/trythis)", T).await?;
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("\nlo\r\n") && !out.contains("eth0"), "{out}");
    assert!(
        out.contains("docker.sock': No such file or directory"),
        "{out}"
    );
    assert!(out.contains("sockets=0\r"), "no socket: {out}");
    assert!(out.contains("platform=relay\r"), "{out}");

    // Network none: not even this machine's upstream (where every name resolves) is reachable.
    let out = sh
        .run(
            "timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.80/80' 2>/dev/null && echo REACHED || echo unreachable",
            T,
        )
        .await?;
    assert!(
        out.contains("\nunreachable") && !out.contains("\nREACHED"),
        "{out}"
    );

    // Fork bomb: the pids limit stops it; the engine keeps the count at the limit.
    sh.type_line("timeout -s KILL 8 bash -c 'b(){ b|b & }; b' 2>/dev/null")
        .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pids = pids_in_container(&id).await?;
    assert!(pids <= 256, "pids {pids} exceed the limit");
    // It still stops cleanly and leaves nothing behind.
    let r = v.stop_sandbox(&id).await?;
    assert_eq!(r.status, 204);
    assert_eq!(app.containers_of(&id).await?, 0);
    Ok(())
}

/// Runs `script` (which writes 400 MB into a bounded directory): it must hit ENOSPC while the
/// host's disk stays put. Returns the output.
async fn fills_without_host_disk(sh: &mut Shell, script: &str) -> Result<String> {
    let before = free_bytes("/var/lib/docker")?;
    let out = sh.run(script, Duration::from_secs(60)).await?;
    assert!(out.contains("No space left on device"), "{out}");
    let after = free_bytes("/var/lib/docker")?;
    assert!(
        before.saturating_sub(after) < 64 * 1024 * 1024,
        "host disk shrank by {} bytes",
        before - after
    );
    Ok(out)
}

#[tokio::test]
async fn other_identities_get_403_and_unknown_ids_404() -> Result {
    let app = TestApp::start().await?;
    let (v, id) = start_try(&app).await?;
    let stranger = app.visitor().await?;
    assert_eq!(stranger.terminal(&id).await.err(), Some(403));
    assert_eq!(
        stranger
            .status_of("GET", &format!("/api/sandboxes/{id}"))
            .await?,
        403
    );
    assert_eq!(stranger.stop_sandbox(&id).await?.status, 403);
    assert_eq!(
        v.terminal("aaaaaaaaaaaaaaaaaaaaaaaaaa").await.err(),
        Some(404)
    );
    assert_eq!(v.terminal("../../etc").await.err(), Some(404));
    // A state-changing call without the page's CSRF token is refused, and nothing starts.
    for token in [None, Some("forged")] {
        let mut req = v
            .http
            .post(app.url("/api/projects/fixture/try"))
            .header("cookie", &v.cookie)
            .header("content-type", "application/json")
            .body("{}");
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        assert_eq!(req.send().await?.status().as_u16(), 403, "token {token:?}");
    }
    // An iframe on any page (a sandboxed one sends `Origin: null`), or any cookie-less client:
    // a simple request without cookies or token would act as a brand-new visitor. Refused, and
    // nothing starts.
    let before = db::sandboxes::count_active(&app.state.db).await?;
    let bare = reqwest::Client::new();
    for (origin, content_type, body) in [
        // `fetch(url, {method: "POST", mode: "no-cors"})` from a sandboxed iframe.
        (Some("null"), None, ""),
        (None, Some("application/json"), "{}"),
    ] {
        let mut req = bare.post(app.url("/api/projects/fixture/try")).body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        assert_eq!(req.send().await?.status().as_u16(), 403, "{origin:?}");
    }
    assert_eq!(db::sandboxes::count_active(&app.state.db).await?, before);
    v.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn twenty_parallel_tries_give_one_container() -> Result {
    let app = TestApp::start().await?;
    let v = std::sync::Arc::new(app.visitor().await?);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.try_project("fixture").await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await??;
        assert!(
            matches!(r.status, 200 | 201 | 429),
            "{} {:?}",
            r.status,
            r.body
        );
        if r.status < 300 {
            ids.insert(r.body["id"].as_str().ok_or("id")?.to_string());
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().ok_or("id")?;
    // Every container the engine holds for this visitor (running or not, whatever its sandbox
    // id), found by the owner label: one.
    let owner = db::sandboxes::get(&app.state.db, &id)
        .await?
        .ok_or("the winner's row")?
        .owner;
    let engine = app
        .state
        .builds
        .engines()
        .ok_or("engine-backed builds")?
        .serve;
    let containers = containers_labelled(&engine, &format!("trythis.owner={owner}")).await?;
    assert_eq!(containers.len(), 1, "{containers:#?}");
    let active = db::sandboxes::all_active(&app.state.db).await?;
    assert_eq!(active.len(), 1);
    v.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn reload_reattaches_to_the_same_shell() -> Result {
    let app = TestApp::start().await?;
    let (v, id, mut sh) = start_try_with_terminal(&app).await?;
    sh.run("KEEP=kept-$((40+2)); sleep 600 & echo started", T)
        .await?;
    drop(sh); // the browser tab reloads
    let mut again = v
        .terminal(&id)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    let out = again
        .run("echo value=$KEEP; jobs | grep -c sleep", T)
        .await?;
    assert!(out.contains("value=kept-42"), "{out}");
    assert!(out.contains("\n1\r"), "background job still running: {out}");
    // The earlier output is replayed to the new page.
    assert!(again.screen.contains("started"), "{}", again.screen);
    v.stop_sandbox(&id).await?;
    Ok(())
}

#[tokio::test]
async fn another_project_asks_before_replacing() -> Result {
    let app = TestApp::start().await?;
    let (repo, digest, size) = fixture_image(&app.state.config).await?;
    publish_fixture(
        &app.state.db,
        "fixture-two",
        "AI & data",
        &repo,
        &digest,
        size,
    )
    .await?;
    let (v, first) = start_try(&app).await?;
    // Same project again: the running sandbox is reused.
    let r = v.try_project("fixture").await?;
    assert_eq!(
        (r.status, r.body["id"].as_str()),
        (200, Some(first.as_str()))
    );
    let r = v.try_project("fixture-two").await?;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"], "sandbox_active");
    assert_eq!(r.body["sandbox"]["project"], "fixture");
    let r = v
        .call(
            "POST",
            "/api/projects/fixture-two/try",
            Some(serde_json::json!({"replace": true})),
        )
        .await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let second = r.body["id"].as_str().ok_or("id")?.to_string();
    assert_eq!(app.containers_of(&first).await?, 0);
    let old = v
        .call("GET", &format!("/api/sandboxes/{first}"), None)
        .await?;
    assert_eq!(old.body["state"], "ended");
    v.stop_sandbox(&second).await?;
    Ok(())
}

#[tokio::test]
async fn rate_limit_and_capacity_queue_answer_plainly() -> Result {
    let app = TestApp::start_with(&[
        ("TRYTHIS_RATE_TRIES_PER_MIN", "1"),
        ("TRYTHIS_MAX_SANDBOXES", "1"),
    ])
    .await?;
    let (a, id) = start_try(&app).await?;
    // Capacity 1 is used by `a`: another visitor waits in line (503 + position), not an error.
    let b = app.visitor().await?;
    let r = b.try_project("fixture").await?;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"], "queued");
    assert_eq!(r.body["queue_position"], 1);
    assert!(r.retry_after.is_some());
    // When the slot frees, the waiting visitor gets it.
    a.stop_sandbox(&id).await?;
    let r = b.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let bid = r.body["id"].as_str().ok_or("id")?.to_string();
    b.stop_sandbox(&bid).await?;
    // `a` already launched once this minute: 429 with Retry-After and a sentence with the wait.
    let r = a.try_project("fixture").await?;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert!(r.retry_after.is_some());
    assert!(
        r.body["message"].as_str().unwrap_or("").contains("seconds"),
        "{:?}",
        r.body
    );
    Ok(())
}

#[tokio::test]
async fn extend_is_bounded_and_reaper_ends_expired() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_SANDBOX_MAX_EXTENSIONS", "1")]).await?;
    let (v, id) = start_try(&app).await?;
    let before = v
        .call("GET", &format!("/api/sandboxes/{id}"), None)
        .await?
        .body["seconds_left"]
        .as_i64()
        .ok_or("left")?;
    let extend = || async {
        v.call(
            "POST",
            &format!("/api/sandboxes/{id}/extend"),
            Some(serde_json::json!({})),
        )
        .await
    };
    let r = extend().await?;
    assert_eq!(r.status, 200);
    assert!(r.body["seconds_left"].as_i64().ok_or("left")? > before + 800);
    assert_eq!(r.body["can_extend"], false);
    let r = extend().await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("extend_limit"))
    );
    // Expire it, then one reaper pass removes it.
    db::sandboxes::extend(
        &app.state.db,
        &id,
        chrono::Utc::now() - chrono::Duration::seconds(1),
        1,
    )
    .await?;
    assert_eq!(app.state.sandboxes.reap().await?, 1);
    assert_eq!(app.containers_of(&id).await?, 0);
    let r = v.call("GET", &format!("/api/sandboxes/{id}"), None).await?;
    assert_eq!(r.body["state"], "ended");
    Ok(())
}

#[tokio::test]
async fn warm_pool_assigns_a_prestarted_sandbox() -> Result {
    let app = TestApp::start_with(&[
        ("TRYTHIS_WARM_POOL", "1"),
        ("TRYTHIS_ADMIN_EMAIL", "pool-admin@example.test"),
        ("TRYTHIS_ADMIN_PASSWORD", "pool admin password"),
    ])
    .await?;
    assert_eq!(app.state.sandboxes.refill_pool().await?, 1);
    assert_eq!(app.state.sandboxes.refill_pool().await?, 0, "already full");
    // The admin sees the waiting member as the pool's, not as somebody's sandbox.
    let mut admin = app.visitor().await?;
    let r = admin
        .auth("login", "pool-admin@example.test", "pool admin password")
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = admin.call("GET", "/api/admin/sandboxes", None).await?;
    assert_eq!(
        listed.body["pool"],
        serde_json::json!([{ "project": "fixture", "members": 1 }]),
        "{}",
        listed.body
    );
    assert_eq!(listed.body["sandboxes"], serde_json::json!([]));
    let pooled = db::sandboxes::all_active(&app.state.db).await?;
    assert_eq!(pooled.len(), 1);
    let (v, id) = start_try(&app).await?;
    assert_eq!(id, pooled[0].id, "the Try got the pre-started sandbox");
    let mut sh = v
        .terminal(&id)
        .await
        .map_err(|s| format!("upgrade refused: {s}"))?;
    sh.expect("Welcome to the fixture", T).await?;
    let out = sh.run("echo pooled-$((2+3))", T).await?;
    assert!(out.contains("pooled-5"), "{out}");
    // The pool refills behind it.
    assert_eq!(app.state.sandboxes.refill_pool().await?, 1);
    let r = v.stop_sandbox(&id).await?;
    assert_eq!(r.status, 204);
    for s in db::sandboxes::all_active(&app.state.db).await? {
        app.state
            .sandboxes
            .stop(&s.id, vocab::EndReason::ServerStopping)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn recommendations_follow_the_callers_tries() -> Result {
    let app = TestApp::start().await?;
    let (v, id) = start_try(&app).await?;
    let mine = v.call("GET", "/api/recommendations", None).await?;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["personal"], true, "{:?}", mine.body);
    // The only project was tried today, so it is not suggested again to this visitor.
    assert!(
        !mine.body["items"]
            .as_array()
            .ok_or("items")?
            .iter()
            .any(|p| p["slug"] == "fixture"),
        "{:?}",
        mine.body
    );
    let stranger = app.visitor().await?;
    let theirs = stranger.call("GET", "/api/recommendations", None).await?;
    assert_eq!(theirs.body["personal"], false);
    // No history: a tour of the catalogue without what Trending already shows (the fixture,
    // tried today, is trending), so nothing is left to suggest here.
    assert_eq!(
        theirs.body["items"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        theirs.body
    );
    v.stop_sandbox(&id).await?;
    Ok(())
}

/// Terminal sockets that never say hello still hold a task each: one identity keeps at most 8
/// open, and a closed one gives its slot back.
#[tokio::test]
async fn one_identity_holds_a_bounded_number_of_terminal_sockets() -> Result {
    let app = TestApp::start().await?;
    let (v, id) = start_try(&app).await?;
    let mut silent = Vec::new();
    for n in 0..8 {
        silent.push(
            v.terminal_socket(&id)
                .await
                .map_err(|s| format!("socket {n} refused: {s}"))?,
        );
    }
    assert_eq!(v.terminal_socket(&id).await.err(), Some(429));
    let mut one = silent.pop().ok_or("socket")?;
    one.close(None).await?;
    drop(one);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(ws) = v.terminal_socket(&id).await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "the closed socket's slot came back");
    Ok(())
}

/// The sweep (run by the reaper every few seconds) removes any container of this installation
/// without a live owner — here one launched without a row, and a smoke check's whose build is not
/// checking — and keeps a visitor's running sandbox.
#[tokio::test]
async fn the_sweep_removes_unowned_containers_and_keeps_live_ones() -> Result {
    let app = TestApp::start().await?;
    let (v, id) = start_try(&app).await?;
    let (repo, digest, _) = fixture_image(&app.state.config).await?;
    let runtime = app.state.sandboxes.runtime().clone();
    let orphans = [
        format!("orphan-{}", server::secrets::random_id()),
        format!("check-{}", server::secrets::random_id()),
    ];
    for orphan in &orphans {
        runtime
            .launch(&fixture_spec(orphan, "nobody", &repo, &digest))
            .await?;
    }
    let ids = |l: Vec<server::sandbox::runtime::Listed>| -> Vec<String> {
        l.into_iter().map(|l| l.sandbox_id).collect()
    };
    let before = ids(runtime.list().await?);
    assert!(orphans.iter().all(|o| before.contains(o)), "{before:?}");
    assert_eq!(app.state.sandboxes.sweep().await?, 2);
    let after = ids(runtime.list().await?);
    assert!(orphans.iter().all(|o| !after.contains(o)), "{after:?}");
    assert!(
        after.contains(&id),
        "the visitor's sandbox was kept: {after:?}"
    );
    let r = v.call("GET", &format!("/api/sandboxes/{id}"), None).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "ready", "{:?}", r.body);
    Ok(())
}

/// The terminal WebSocket (issue 25, hole 7): CORS and the CSRF guard do not cover a WebSocket,
/// and SameSite=Lax lets other ports and subdomains of the site send its cookies. On the old code
/// it opened for `Origin: http://evil.example` and `Origin: null` with the owner's cookie. Now it
/// needs the site's own Origin and a 60-second ticket of the owner's, for this sandbox.
#[tokio::test]
async fn the_terminal_opens_only_from_the_site_with_the_owners_ticket() -> Result {
    let app = TestApp::start().await?;
    let (owner, id) = start_try(&app).await?;
    let site = owner.base.clone();
    let ticket = owner
        .terminal_ticket(&id)
        .await
        .map_err(|s| format!("ticket: {s}"))?;
    let (other, other_id) = start_try(&app).await?;
    let others_ticket = other
        .terminal_ticket(&other_id)
        .await
        .map_err(|s| format!("ticket: {s}"))?;
    let expires = ticket.split('.').next().unwrap_or_default();
    let forged = format!("{expires}.{}", "0".repeat(32));
    let refused = |r: std::result::Result<Ws, u16>| r.err();
    for (what, t, origin) in [
        (
            "an evil origin",
            Some(ticket.as_str()),
            Some("http://evil.example"),
        ),
        ("Origin: null", Some(ticket.as_str()), Some("null")),
        (
            "another port of the site's host",
            Some(ticket.as_str()),
            Some("http://127.0.0.1:1"),
        ),
        ("no Origin (cookie only)", Some(ticket.as_str()), None),
        ("no ticket", None, Some(site.as_str())),
        (
            "a forged ticket",
            Some(forged.as_str()),
            Some(site.as_str()),
        ),
        (
            "another sandbox's ticket",
            Some(others_ticket.as_str()),
            Some(site.as_str()),
        ),
    ] {
        let r = refused(owner.terminal_socket_with(&id, t, origin).await);
        println!("{what}: {r:?}");
        assert_eq!(r, Some(403), "{what}");
    }
    // Another visitor holding the owner's ticket, and a stranger asking for one.
    assert_eq!(
        refused(
            other
                .terminal_socket_with(&id, Some(&ticket), Some(&site))
                .await
        ),
        Some(403)
    );
    let stranger = app.visitor().await?;
    assert_eq!(stranger.terminal_ticket(&id).await.err(), Some(403));
    // The owner, from the site, with the ticket: the shell answers.
    let ws = owner
        .terminal_socket_with(&id, Some(&ticket), Some(&site))
        .await
        .map_err(|s| format!("the owner's terminal was refused: {s}"))?;
    let mut sh = Shell {
        ws,
        screen: String::new(),
        frames: Vec::new(),
    };
    use futures::SinkExt;
    sh.ws
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            r#"{"AuthToken":"","columns":80,"rows":24}"#.into(),
        ))
        .await?;
    let out = sh.run("echo ticket-$((6*7))", T).await?;
    assert!(out.contains("ticket-42"), "{out}");
    assert_eq!(owner.stop_sandbox(&id).await?.status, 204);
    assert_eq!(other.stop_sandbox(&other_id).await?.status, 204);
    Ok(())
}
