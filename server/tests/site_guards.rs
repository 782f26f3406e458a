//! Guards of the site as a whole, tried as the attacks they stop: a maintainer's text that would
//! carry every visitor's CSRF token, a DNS-rebinding page driving the API, and a database file
//! other users of the machine could read. Needs Docker (the fixture image): fails without it.
mod common;
use common::*;

/// The page cache puts each visitor's CSRF token into a shared page at a marker. On the old code
/// the marker was a fixed string, found anywhere in the page: a maintainer who put it into a link
/// of their project's description got each anonymous visitor's own token in that link (seen:
/// `?t=<the visitor's token>`). Now the marker is random per render.
#[tokio::test]
async fn maintainer_text_never_carries_a_visitors_csrf_token() -> Result {
    let app = TestApp::start().await?;
    let (repo, digest, size) = fixture_image(&app.state.config).await?;
    // The old fixed marker, and the shape of the new ones.
    let description = "See [the docs](https://evil.example/?t=trythis-page-cache-csrf-marker) \
                       and [more](https://evil.example/?u=csrf-slot-0123456789abcdef).";
    let p = db::projects::upsert(
        &app.state.db,
        &db::projects::NewProject {
            slug: "marked".into(),
            name: "Marked".into(),
            summary: "A project whose description names the marker".into(),
            description: description.into(),
            category: "Databases".into(),
            tags: vec!["test".into()],
            ..Default::default()
        },
    )
    .await?;
    db::projects::set_image(&app.state.db, p.id, &repo, &digest, size).await?;
    let mut caches = Vec::new();
    // Visitors first, then their pages back to back (well within the cache's 2 s).
    let mut visitors = Vec::new();
    for _ in 0..3 {
        visitors.push(app.visitor().await?);
    }
    for v in &visitors {
        let resp = v
            .http
            .get(app.url("/p/marked"))
            .header("cookie", &v.cookie)
            .send()
            .await?;
        caches.push(
            resp.headers()
                .get("x-page-cache")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string(),
        );
        let html = resp.text().await?;
        // The token is where the server put it (the page still works)...
        assert!(
            html.contains(&format!("<meta name=\"csrf-token\" content=\"{}\"", v.csrf)),
            "the page's own CSRF slot"
        );
        // ...and nowhere in the maintainer's links.
        for (param, literal) in [
            ("?t=", "trythis-page-cache-csrf-marker"),
            ("?u=", "csrf-slot-0123456789abcdef"),
        ] {
            let at = html
                .find(&format!("evil.example/{param}"))
                .ok_or("the description's link is missing")?;
            let href: String = html[at..].chars().take_while(|c| *c != '"').collect();
            println!("the description's link: {href}");
            assert!(!href.contains(&v.csrf), "a visitor's token in {href}");
            assert_eq!(href, format!("evil.example/{param}{literal}"));
        }
    }
    // Served from the cache too, not only rendered per visitor.
    assert_eq!(caches[0], "miss");
    assert!(caches[1..].iter().any(|c| c == "hit"), "{caches:?}");
    Ok(())
}

/// A DNS-rebinding page (the attacker's name resolved to this server) is same-origin with itself:
/// it can read a fresh visitor's CSRF token and send it back. On the old code the Origin check
/// trusted the `Host` header, so its Try answered 201. Now changes must be sent to the site's
/// own host (421 `wrong_host` naming the site) and name exactly the site's origin.
#[tokio::test]
async fn a_dns_rebinding_page_cannot_drive_the_api() -> Result {
    let app = TestApp::start().await?;
    let site = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let evil_host = format!("rebind.evil.example:{}", app.addr.port());
    let evil_origin = format!("http://{evil_host}");
    // Reads are answered: the page gets a visitor cookie and its CSRF token.
    let resp = http
        .get(app.url("/api/me"))
        .header("host", &evil_host)
        .send()
        .await?;
    let cookie = set_cookie(&resp, "trythis_vid").ok_or("no visitor cookie")?;
    let me: serde_json::Value = resp.json().await?;
    let csrf = me["csrf_token"]
        .as_str()
        .ok_or("no csrf token")?
        .to_string();
    let try_with = |host: String, origin: String, forwarded: Option<String>| {
        let mut req = http
            .post(app.url("/api/projects/fixture/try"))
            .header("host", host)
            .header("origin", origin)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .header("content-type", "application/json")
            .body("{}");
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-host", f);
        }
        async move {
            let r = req.send().await?;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        }
    };
    let (status, body) = try_with(evil_host.clone(), evil_origin.clone(), None).await?;
    println!("the rebinding page's Try: {status} {body}");
    assert_eq!(
        (status, body["error"].as_str(), body["site"].as_str()),
        (421, Some("wrong_host"), Some(site.as_str()))
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains(&site),
        "{body}"
    );
    // X-Forwarded-Host counts only from the platform's own proxies (none here).
    let (status, _) = try_with(
        evil_host.clone(),
        evil_origin.clone(),
        Some(app.addr.to_string()),
    )
    .await?;
    assert_eq!(status, 421);
    // The right host with another origin of the same machine (another port): refused.
    let (status, _) = try_with(
        app.addr.to_string(),
        format!("http://127.0.0.1:{}", app.addr.port() + 1),
        None,
    )
    .await?;
    assert_eq!(status, 403);
    // The site itself: the same request works.
    let (status, body) = try_with(app.addr.to_string(), site.clone(), None).await?;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().ok_or("no id")?;
    let r = http
        .delete(app.url(&format!("/api/sandboxes/{id}")))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 204);
    Ok(())
}

/// The database holds password hashes, session and token hashes and every visitor's history. On
/// the old code the file was created 0644 (any user of the machine could read it). Now the data
/// directory is 0711 and the database 0600, at every start.
#[tokio::test]
async fn the_database_file_and_data_directory_are_private() -> Result {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::start().await?;
    let db_file = app.dir.join("t.db");
    let mode = |p: &std::path::Path| -> Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    println!(
        "database file {:o}, data directory {:o}",
        mode(&db_file)?,
        mode(&app.dir)?
    );
    assert_eq!(mode(&db_file)?, 0o600);
    assert_eq!(mode(&app.dir)?, 0o711);
    // SQLite gives its write-ahead log the database's mode.
    assert_eq!(
        mode(&app.dir.join("t.db-wal"))? & 0o077,
        0,
        "the write-ahead log"
    );
    // A database left readable by an older version is made private at the next start.
    std::fs::set_permissions(&db_file, std::fs::Permissions::from_mode(0o644))?;
    std::fs::set_permissions(&app.dir, std::fs::Permissions::from_mode(0o755))?;
    server::private_data_dir(&app.state.config)?;
    assert_eq!(mode(&db_file)?, 0o600);
    assert_eq!(mode(&app.dir)?, 0o711);
    Ok(())
}
