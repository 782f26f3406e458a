//! Accounts through the HTTP API of the real server: sign-up, log-in, sessions, CSRF, API tokens,
//! admin-only routes, bans (which stop the banned person's sandbox in the real engine), account
//! deletion, and the OAuth state checks. Needs Docker (the fixture image): fails without it.
mod common;
use common::*;
use serde_json::json;

const ADMIN: &str = "root@example.test";
const ADMIN_PW: &str = "admin password 1";

async fn app() -> Result<TestApp> {
    TestApp::start_with(&[
        ("TRYTHIS_ADMIN_EMAIL", ADMIN),
        ("TRYTHIS_ADMIN_PASSWORD", ADMIN_PW),
        ("TRYTHIS_AUTH_PER_ACCOUNT_PER_MIN", "5"),
        ("TRYTHIS_GITHUB_CLIENT_ID", "id"),
        ("TRYTHIS_GITHUB_CLIENT_SECRET", "secret"),
        // Nothing listens there: these tests stop before any exchange with the provider.
        ("TRYTHIS_GITHUB_AUTH_URL", "http://127.0.0.1:9/authorize"),
        ("TRYTHIS_GITHUB_TOKEN_URL", "http://127.0.0.1:9/token"),
    ])
    .await
}

async fn admin(app: &TestApp) -> Result<Visitor> {
    let mut a = app.visitor().await?;
    let r = a.auth("login", ADMIN, ADMIN_PW).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["is_admin"], true);
    Ok(a)
}

#[tokio::test]
async fn sign_up_log_out_log_in_and_generic_errors() -> Result {
    let app = app().await?;
    let mut v = app.visitor().await?;
    // Field-level problems, never a 500, for bad and over-long input.
    let r = v.signup_form("not-an-email").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.problem_fields(), ["email"]);
    let long = "x".repeat(100_000);
    assert_eq!(v.signup_form(&long).await?.status, 400);
    assert_eq!(v.auth("login", &long, &long).await?.status, 401);
    let r = v
        .call("POST", "/api/auth/signup", Some(json!({"email": 5})))
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("bad_json"))
    );

    let ada = unique_email("Ada");
    let ada_lower = ada.to_lowercase();
    v.sign_up(&ada, "correct horse battery").await?;
    let me = v.call("GET", "/api/me", None).await?;
    assert_eq!(me.body["signed_in"], true);
    assert_eq!(me.body["user"]["email"], ada_lower.as_str());
    assert_eq!(me.body["user"]["name"], "Ada");
    assert_eq!(me.body["user"]["email_verified"], true);
    assert_eq!(me.body["is_admin"], false);

    // The same email again (any case): the answer a new address gets; the mail says the rest.
    let mut other = app.visitor().await?;
    let r = other.signup_form(&ada.to_uppercase()).await?;
    assert_eq!((r.status, &r.body), (202, &json!({ "email": ada_lower })));
    mail_to(&ada, "already has an account").await?;

    // Log out: the session row is gone, so the old cookie is worthless.
    let old_cookie = v.cookie.clone();
    assert_eq!(v.call("POST", "/api/auth/logout", None).await?.status, 204);
    let mut replay = app.visitor().await?;
    replay.cookie = old_cookie;
    assert_eq!(
        replay.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );

    // A wrong password and an unknown email get the same answer.
    let mut v = app.visitor().await?;
    let wrong = v.auth("login", &ada_lower, "wrong password!").await?;
    let unknown = v
        .auth("login", "nobody@example.test", "wrong password!")
        .await?;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body);
    let r = v
        .auth("login", &ada.to_uppercase(), "correct horse battery")
        .await?;
    assert_eq!(r.status, 200);
    // Per-account limit (5 a minute here): the sixth attempt waits, whatever the password.
    for _ in 0..4 {
        v.auth("login", &ada_lower, "wrong password!").await?;
    }
    let r = v.auth("login", &ada_lower, "correct horse battery").await?;
    assert_eq!(r.status, 429, "{}", r.body);
    Ok(())
}

#[tokio::test]
async fn sessions_rotate_at_login_and_csrf_is_required() -> Result {
    let app = app().await?;
    // The attacker's own valid session, planted in the victim's browser before they log in.
    let mut attacker = app.user().await?;
    let planted = attacker.session_cookie()?;
    let mut victim = app.visitor().await?;
    let victim_email = unique_email("victim");
    victim.sign_up(&victim_email, "victim password").await?;
    victim.call("POST", "/api/auth/logout", None).await?;
    victim.set_session(Some(&planted));
    victim.refresh_csrf().await?;
    let r = victim
        .auth("login", &victim_email, "victim password")
        .await?;
    assert_eq!(r.status, 200);
    assert!(
        !victim.cookie.contains(&planted),
        "a new session id at login"
    );
    let me = victim.call("GET", "/api/me", None).await?;
    assert_eq!(me.body["user"]["email"], victim_email.as_str());
    // The planted session was ended, not shared.
    attacker.refresh_csrf().await?;
    assert_eq!(
        attacker.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    // A forged session id is nobody.
    let mut forged = app.visitor().await?;
    forged.set_session(Some("trythis_session=0000"));
    assert_eq!(
        forged.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );

    // CSRF: a state-changing call without the token (or with another browser's) is refused and
    // changes nothing.
    let csrf = victim.csrf.clone();
    victim.csrf = String::new();
    assert_eq!(
        victim.call("POST", "/api/auth/logout", None).await?.status,
        403
    );
    victim.csrf = attacker.csrf.clone();
    assert_eq!(
        victim.call("POST", "/api/auth/logout", None).await?.status,
        403
    );
    victim.csrf = csrf;
    assert_eq!(
        victim.call("GET", "/api/me", None).await?.body["signed_in"],
        true
    );
    Ok(())
}

#[tokio::test]
async fn api_tokens_act_for_their_owner_until_revoked() -> Result {
    let app = app().await?;
    let v = app.user().await?;
    let r = v
        .call("POST", "/api/me/tokens", Some(json!({"name": ""})))
        .await?;
    assert_eq!(r.status, 400);
    let r = v
        .call("POST", "/api/me/tokens", Some(json!({"name": "CI"})))
        .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().ok_or("token")?.to_string();
    let id = r.body["id"].as_i64().ok_or("id")?;
    let listed = v.call("GET", "/api/me/tokens", None).await?;
    assert!(
        !listed.body.to_string().contains(&token),
        "never shown again"
    );

    let http = reqwest::Client::new();
    let me: serde_json::Value = http
        .get(app.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["signed_in"], true);
    // No cookies, no CSRF token needed; but a token cannot manage the account.
    let r = http
        .post(app.url("/api/me/tokens"))
        .bearer_auth(&token)
        .json(&json!({"name": "more"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);

    assert_eq!(
        v.call("DELETE", &format!("/api/me/tokens/{id}"), None)
            .await?
            .status,
        204
    );
    let r = http
        .get(app.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    Ok(())
}

#[tokio::test]
async fn admin_routes_are_admin_only_and_a_ban_stops_the_sandbox() -> Result {
    let app = app().await?;
    let visitor = app.visitor().await?;
    let mut user = app.visitor().await?;
    let mallory = unique_email("mallory");
    user.sign_up(&mallory, "mallory password").await?;
    for path in [
        "/api/admin/overview",
        "/api/admin/sandboxes",
        "/api/admin/users",
        "/api/admin/projects",
    ] {
        assert_eq!(visitor.call("GET", path, None).await?.status, 403, "{path}");
        assert_eq!(user.call("GET", path, None).await?.status, 403, "{path}");
    }
    let r = user
        .call(
            "PATCH",
            "/api/admin/users/1",
            Some(json!({"role": "admin"})),
        )
        .await?;
    assert_eq!(r.status, 403);

    let r = user.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let sandbox = r.body["id"].as_str().ok_or("id")?.to_string();
    // Mallory also publishes: a build that would run for ten minutes.
    let slug = unique("mallory");
    let build = submit(
        &user,
        project(
            &slug,
            json!({ "dockerfile": format!("FROM {}\nRUN sleep 600\n", base_image()) }),
        ),
    )
    .await?;

    let admin = admin(&app).await?;
    let listed = admin.call("GET", "/api/admin/sandboxes", None).await?;
    let row = listed.body["sandboxes"]
        .as_array()
        .ok_or("rows")?
        .iter()
        .find(|s| s["id"] == sandbox.as_str())
        .ok_or("sandbox listed")?
        .clone();
    assert_eq!(row["owner"], mallory.as_str());
    assert_eq!(row["project"], "fixture");
    assert!(row["memory_bytes"].as_u64().ok_or("live memory")? > 0);
    assert!(row["cpu_percent"].as_f64().is_some());
    let overview = admin.call("GET", "/api/admin/overview", None).await?;
    assert!(overview.body["running"].as_u64() >= Some(1));
    assert!(overview.body["tries_today"].as_u64() >= Some(1));

    let users = admin
        .call("GET", &format!("/api/admin/users?q={mallory}"), None)
        .await?;
    let id = users.body["users"][0]["id"].as_i64().ok_or("user id")?;
    let r = admin
        .call(
            "PATCH",
            &format!("/api/admin/users/{id}"),
            Some(json!({"banned": true})),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["banned"], true);
    // The sandbox stopped in the engine, the session ended, and logging in is refused.
    let s = db::sandboxes::get(&app.state.db, &sandbox)
        .await?
        .ok_or("row")?;
    assert!(!s.active);
    assert_eq!(s.end_reason, Some(vocab::EndReason::OwnerBanned));
    assert_eq!(app.containers_of(&sandbox).await?, 0);
    // Her build is cancelled and her project leaves the catalogue.
    let b = wait_build(&admin, &build, std::time::Duration::from_secs(30)).await?;
    assert_eq!(b["state"], "cancelled", "{b}");
    let p = db::projects::by_slug(&app.state.db, &slug)
        .await?
        .ok_or("project")?;
    assert_eq!(p.status, db::ProjectStatus::Hidden);
    assert_eq!(
        user.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let mut again = app.visitor().await?;
    let r = again.auth("login", &mallory, "mallory password").await?;
    assert_eq!(r.status, 403);
    // An admin cannot lock themselves out.
    let me = admin.call("GET", "/api/me", None).await?;
    let my_id = me.body["user"]["id"].as_i64().ok_or("id")?;
    let r = admin
        .call(
            "PATCH",
            &format!("/api/admin/users/{my_id}"),
            Some(json!({"banned": true})),
        )
        .await?;
    assert_eq!(r.status, 400);
    Ok(())
}

#[tokio::test]
async fn deleting_an_account_hands_over_projects_and_anonymises_tries() -> Result {
    let app = app().await?;
    let heir = app.user().await?;
    let heir_email = heir.call("GET", "/api/me", None).await?.body["user"]["email"]
        .as_str()
        .ok_or("email")?
        .to_string();
    let mut leaver = app.visitor().await?;
    // A visitor's Try becomes the account's history at sign-up, when they ask for it.
    let r = leaver.try_project("fixture").await?;
    let sandbox = r.body["id"].as_str().ok_or("id")?.to_string();
    let leaver_email = unique_email("leaver");
    leaver
        .sign_up_with(&leaver_email, "leaver password", true)
        .await?;
    let me = leaver.call("GET", "/api/me", None).await?;
    let uid = me.body["user"]["id"].as_i64().ok_or("id")? as i32;
    let key = db::accounts::OwnerKey::User(uid);
    assert_eq!(
        db::sandboxes::get(&app.state.db, &sandbox)
            .await?
            .ok_or("row")?
            .owner,
        key
    );
    // A project of theirs.
    let p = db::projects::by_slug(&app.state.db, "fixture")
        .await?
        .ok_or("p")?;
    db::projects::set_maintainer(&app.state.db, p.id, Some(&key)).await?;

    let wrong = leaver
        .call(
            "POST",
            "/api/me/delete",
            Some(json!({"password": "nope", "projects": "hide"})),
        )
        .await?;
    assert_eq!(wrong.status, 400);
    let r = leaver
        .call(
            "POST",
            "/api/me/delete",
            Some(json!({"password": "leaver password", "projects": "hand_over", "successor_email": heir_email})),
        )
        .await?;
    assert_eq!(r.status, 204, "{}", r.body);

    let row = db::sandboxes::get(&app.state.db, &sandbox)
        .await?
        .ok_or("row")?;
    assert!(!row.active, "their sandbox stopped");
    assert!(
        matches!(row.owner, vocab::OwnerKey::Gone(_)),
        "tries kept, anonymised"
    );
    assert_eq!(row.client_ip, None);
    assert_eq!(app.containers_of(&sandbox).await?, 0);
    assert!(db::accounts::by_email(&app.state.db, &leaver_email)
        .await?
        .is_none());
    let heir_id = heir.call("GET", "/api/me", None).await?.body["user"]["id"]
        .as_i64()
        .ok_or("id")? as i32;
    let p = db::projects::by_slug(&app.state.db, "fixture")
        .await?
        .ok_or("p")?;
    assert_eq!(p.maintainer, Some(db::accounts::OwnerKey::User(heir_id)));
    assert_eq!(p.status, db::ProjectStatus::Live);
    mail_to(&heir_email, "handed you 1 project").await?;
    assert_eq!(
        leaver.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let mut back = app.visitor().await?;
    assert_eq!(
        back.auth("login", &leaver_email, "leaver password")
            .await?
            .status,
        401
    );
    Ok(())
}

#[tokio::test]
async fn oauth_state_is_bound_to_the_browser_and_single_use() -> Result {
    let app = app().await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let start = http
        .get(app.url("/auth/github/start?next=/p/fixture"))
        .send()
        .await?;
    assert_eq!(start.status().as_u16(), 303);
    let location = start.headers()["location"].to_str()?.to_string();
    assert!(
        location.starts_with("http://127.0.0.1:9/authorize?"),
        "{location}"
    );
    assert!(location.contains("code_challenge_method=S256"));
    assert!(location.contains("code_challenge="));
    let state = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .ok_or("state")?
        .to_string();
    let cookie = set_cookie(&start, "trythis_oauth").ok_or("oauth cookie")?;
    let callback = |state: &str, cookie: Option<&str>| {
        let mut req = http.get(app.url(&format!("/auth/github/callback?code=abc&state={state}")));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let refused = |r: &reqwest::Response| {
        r.headers()["location"].to_str().unwrap_or("") == "/login?error=state"
            && set_cookie(r, "trythis_session").is_none()
    };
    // Tampered state; the right state without this browser's cookie; another provider.
    assert!(refused(&callback("tampered", Some(&cookie)).await?));
    assert!(refused(&callback(&state, None).await?));
    let other = http
        .get(app.url(&format!("/auth/google/callback?code=abc&state={state}")))
        .header("cookie", &cookie)
        .send()
        .await?;
    assert_eq!(other.headers()["location"], "/login?error=provider");
    // The genuine callback gets as far as the (unreachable) provider; the state is then spent.
    let r = callback(&state, Some(&cookie)).await?;
    assert_eq!(r.headers()["location"], "/login?error=exchange");
    assert!(refused(&callback(&state, Some(&cookie)).await?));
    // An open redirect in `next` is not followed later: the flow stores "/" in its place.
    let evil = http
        .get(app.url("/auth/github/start?next=//evil.example"))
        .send()
        .await?;
    let evil_state = evil.headers()["location"]
        .to_str()?
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .ok_or("state")?
        .to_string();
    let flow = db::accounts::take_flow(&app.state.db, &server::secrets::sha256_hex(&evil_state))
        .await?
        .ok_or("the flow was not stored")?;
    assert_eq!(flow.next, "/");
    // Providers without credentials are off, not broken.
    let r = http.get(app.url("/auth/google/start")).send().await?;
    assert_eq!(r.headers()["location"], "/login?error=provider");
    Ok(())
}

#[tokio::test]
async fn pages_allow_only_their_own_scripts_and_carry_security_headers() -> Result {
    let app = app().await?;
    let resp = reqwest::get(app.url("/login")).await?;
    let h = resp.headers().clone();
    let csp = h["content-security-policy"].to_str()?.to_string();
    let html = resp.text().await?;
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .ok_or("script-src")?;
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    let nonce = script_src
        .split_whitespace()
        .find_map(|t| t.strip_prefix("'nonce-")?.strip_suffix('\''))
        .ok_or("nonce")?;
    assert!(csp.contains("frame-ancestors 'none'"));
    // Every inline script of the page carries this response's nonce; a second page gets another.
    let inline = html.matches("<script").count() - html.matches("<script src=").count();
    assert!(inline > 0);
    assert!(
        html.matches(&format!("nonce=\"{nonce}\"")).count() >= inline,
        "{html}"
    );
    let again = reqwest::get(app.url("/login")).await?;
    assert!(!again.headers()["content-security-policy"]
        .to_str()?
        .contains(nonce));
    assert_eq!(h["x-content-type-options"], "nosniff");
    // Every page has a title; unknown paths get the site's own 404 page, not an empty answer.
    for (path, title) in [
        (
            "/",
            "<title>trythis — try open source in your browser</title>",
        ),
        ("/new", "<title>Publish a project · trythis</title>"),
        ("/login", "<title>Log in · trythis</title>"),
    ] {
        let page = reqwest::get(app.url(path)).await?.text().await?;
        assert!(page.contains(title), "{path}: {page}");
    }
    // Health checks answer from one probe every few seconds: a flood of them cannot load the
    // engines.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let h: serde_json::Value = reqwest::get(app.url("/healthz")).await?.json().await?;
        seen.insert(h["checked_at"].as_str().ok_or("checked_at")?.to_string());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let live = reqwest::get(app.url("/p/fixture")).await?.text().await?;
    assert!(
        live.contains("id=\"badges\""),
        "a live project offers its badge"
    );
    // Past the last page of a search: the last page, not an empty "Page 999 of 1".
    let far = reqwest::get(app.url("/search?page=999"))
        .await?
        .text()
        .await?;
    assert!(far.contains("href=\"/p/fixture\""), "{far}");
    let missing = reqwest::get(app.url("/nope/nothing")).await?;
    assert_eq!(missing.status().as_u16(), 404);
    let page = missing.text().await?;
    assert!(
        page.contains("Nothing here") && page.contains("<title>Not found · trythis</title>"),
        "{page}"
    );
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    // The CSRF token is in the page, and the session cookie flags are right.
    assert!(html.contains("<meta name=\"csrf-token\" content=\""));
    let flags = unique_email("flags");
    app.visitor()
        .await?
        .sign_up(&flags, "flags password")
        .await?;
    let v = app.visitor().await?;
    let r = v
        .http
        .post(app.url("/api/auth/login"))
        .header("cookie", &v.cookie)
        .header("x-csrf-token", &v.csrf)
        .json(&json!({"email": flags, "password": "flags password"}))
        .send()
        .await?;
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("trythis_session="))
        .ok_or("session cookie")?
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http here: no Secure flag");
    Ok(())
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() -> Result {
    let app = app().await?;
    let mut laptop = app.visitor().await?;
    let pat = unique_email("pat");
    laptop.sign_up(&pat, "first password").await?;
    let mut phone = app.visitor().await?;
    assert_eq!(
        phone.auth("login", &pat, "first password").await?.status,
        200
    );
    let r = laptop
        .call(
            "POST",
            "/api/me/password",
            Some(json!({"current": "wrong password", "new": "second password"})),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["problems"][0]["field"].as_str()),
        (400, Some("current"))
    );
    let r = laptop
        .call(
            "POST",
            "/api/me/password",
            Some(json!({"current": "first password", "new": "short"})),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["problems"][0]["field"].as_str()),
        (400, Some("new"))
    );
    // Success renews this browser's session (new cookie) and ends the phone's.
    let resp = laptop
        .http
        .post(app.url("/api/me/password"))
        .header("cookie", &laptop.cookie)
        .header("x-csrf-token", &laptop.csrf)
        .json(&json!({"current": "first password", "new": "second password"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    let session = set_cookie(&resp, "trythis_session").ok_or("renewed session")?;
    laptop.set_session(Some(&session));
    assert_eq!(
        laptop.call("GET", "/api/me", None).await?.body["signed_in"],
        true
    );
    assert_eq!(
        phone.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let mut other = app.visitor().await?;
    assert_eq!(
        other.auth("login", &pat, "first password").await?.status,
        401
    );
    assert_eq!(
        other.auth("login", &pat, "second password").await?.status,
        200
    );
    Ok(())
}

/// One log-in attempt from `client`, as the platform's reverse proxy forwards it: the status.
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Result<u16> {
    let http = reqwest::Client::new();
    let (cookie, csrf) = visitor_credentials(&http, &format!("http://{}", app.addr)).await?;
    Ok(http
        .post(app.url("/api/auth/login"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("x-forwarded-for", client)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .status()
        .as_u16())
}

/// Behind the platform's reverse proxy every request comes from the proxy's address: limits key
/// on the client it forwards for (so 31 bad log-ins no longer lock the whole site out), and
/// log-in limits key on (account, client) (so nobody locks someone else out from elsewhere).
#[tokio::test]
async fn limits_hold_per_client_behind_the_proxy_and_nobody_locks_out_another() -> Result {
    let app = TestApp::start_with(&[
        ("TRYTHIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("TRYTHIS_AUTH_PER_IP_PER_MIN", "5"),
        ("TRYTHIS_AUTH_PER_ACCOUNT_PER_MIN", "3"),
    ])
    .await?;
    let mut victim = app.visitor().await?;
    let victim_email = unique_email("victim");
    victim.sign_up(&victim_email, "victim password 1").await?;
    // An attacker guesses the victim's password until refused.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(login_from(&app, "203.0.113.9", &victim_email, "guess guess 1").await?);
    }
    assert_eq!(answers, [401, 401, 401, 429]);
    // The victim, from home, still logs in.
    assert_eq!(
        login_from(&app, "198.51.100.7", &victim_email, "victim password 1").await?,
        200
    );
    // One client's burst of failures is its own: another client behind the same proxy is not
    // refused.
    for i in 0..5 {
        let status = login_from(
            &app,
            "192.0.2.44",
            &format!("n{i}@example.test"),
            "wrong password 1",
        )
        .await?;
        assert_eq!(status, 401, "attempt {i}");
    }
    assert_eq!(
        login_from(&app, "192.0.2.44", "n9@example.test", "wrong password 1").await?,
        429
    );
    assert_eq!(
        login_from(&app, "192.0.2.45", "n9@example.test", "wrong password 1").await?,
        401
    );
    Ok(())
}

/// Every OAuth start stores a flow row: starts are limited per client like log-ins, so a loop of
/// `GET /auth/github/start` cannot fill the table.
#[tokio::test]
async fn oauth_starts_are_rate_limited_per_client() -> Result {
    let app = TestApp::start_with(&[
        ("TRYTHIS_AUTH_PER_IP_PER_MIN", "3"),
        ("TRYTHIS_GITHUB_CLIENT_ID", "id"),
        ("TRYTHIS_GITHUB_CLIENT_SECRET", "secret"),
        ("TRYTHIS_GITHUB_AUTH_URL", "http://127.0.0.1:9/authorize"),
        ("TRYTHIS_GITHUB_TOKEN_URL", "http://127.0.0.1:9/token"),
    ])
    .await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut to = Vec::new();
    for _ in 0..5 {
        let r = http.get(app.url("/auth/github/start")).send().await?;
        let location = r.headers()["location"].to_str()?.to_string();
        to.push(if location.starts_with("http://127.0.0.1:9/authorize") {
            "provider".to_string()
        } else {
            location
        });
    }
    assert_eq!(
        to,
        [
            "provider",
            "provider",
            "provider",
            "/login?error=too_many",
            "/login?error=too_many"
        ]
    );
    use db::sea_orm::{EntityTrait, PaginatorTrait};
    let flows = db::entities::oauth_flow::Entity::find()
        .count(&app.state.db)
        .await?;
    assert_eq!(flows, 3);
    Ok(())
}

/// Each visitor identity can hold a sandbox and a place in the queue: one client gets a bounded
/// number of new ones a minute; past it, a throwaway identity that can start nothing.
#[tokio::test]
async fn one_client_gets_a_bounded_number_of_new_identities() -> Result {
    let app = TestApp::start_with(&[
        ("TRYTHIS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "3"),
    ])
    .await?;
    let http = reqwest::Client::new();
    let fresh = |client: &'static str| {
        let http = http.clone();
        let url = app.url("/api/me");
        async move {
            let r = http
                .get(url)
                .header("x-forwarded-for", client)
                .send()
                .await?;
            let cookie = set_cookie(&r, "trythis_vid");
            let me: serde_json::Value = r.json().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((cookie, me))
        }
    };
    for _ in 0..3 {
        assert!(fresh("203.0.113.50").await?.0.is_some());
    }
    let (cookie, me) = fresh("203.0.113.50").await?;
    assert_eq!(cookie, None, "a fourth identity in a minute");
    // Its token belongs to an identity no later request can have: nothing starts.
    let r = http
        .post(app.url("/api/projects/fixture/try"))
        .header("x-forwarded-for", "203.0.113.50")
        .header("x-csrf-token", me["csrf_token"].as_str().unwrap_or(""))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // Another client behind the same proxy is not affected.
    assert!(fresh("203.0.113.51").await?.0.is_some());
    Ok(())
}

/// Creates an API token as `v`: (status, the token).
async fn token_of(v: &Visitor, admin_scope: bool) -> Result<(u16, String)> {
    let body = json!({ "name": format!("ci {admin_scope}"), "admin": admin_scope });
    let r = v.call("POST", "/api/me/tokens", Some(body)).await?;
    Ok((r.status, r.body["token"].as_str().unwrap_or("").to_string()))
}

/// An admin's API token for CI is not an admin key: only a token created as an admin token
/// carries the admin role, and only admins can create one.
#[tokio::test]
async fn api_tokens_are_admin_only_when_created_as_such() -> Result {
    let app = app().await?;
    let admin = admin(&app).await?;
    let admin_pages = |token: String| {
        let http = reqwest::Client::new();
        let url = app.url("/api/admin/users");
        async move {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .status()
                    .as_u16(),
            )
        }
    };
    let (status, plain) = token_of(&admin, false).await?;
    assert_eq!(status, 201);
    assert_eq!(admin_pages(plain).await?, 403);
    let (status, scoped) = token_of(&admin, true).await?;
    assert_eq!(status, 201);
    assert_eq!(admin_pages(scoped).await?, 200);
    let user = app.user().await?;
    let (status, _) = token_of(&user, true).await?;
    assert_eq!(status, 400, "a user cannot create an admin token");
    Ok(())
}

/// An admin stops a visitor's sandbox: the visitor's status says why in one word
/// (`stopped_by_admin`), and the page says it as a sentence, not as that word.
#[tokio::test]
async fn a_sandbox_an_admin_stops_tells_its_visitor_so() -> Result {
    let app = app().await?;
    let visitor = app.visitor().await?;
    let r = visitor.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let admin = admin(&app).await?;
    let r = admin
        .call("DELETE", &format!("/api/admin/sandboxes/{id}"), None)
        .await?;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = visitor
        .call("GET", &format!("/api/sandboxes/{id}"), None)
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["end_reason"], "stopped_by_admin", "{}", r.body);
    let info: app::model::SandboxInfo = serde_json::from_value(r.body.clone())?;
    let said = info.end_reason.map(vocab::EndReason::sentence);
    assert_eq!(said, Some("An admin stopped this sandbox."), "{}", r.body);
    // My containers, rendered by the server, says the same sentence.
    let (status, _, _, html) = page(&visitor, "/containers").await?;
    assert_eq!(status, 200);
    // (The page's hydration data carries the word; only the rendered cell has the sentence.)
    assert!(html.contains("An admin stopped this sandbox."), "{html}");
    Ok(())
}

/// A page as a browser gets it: status, the page-cache and CSP headers, and the HTML.
async fn page(v: &Visitor, path: &str) -> Result<(u16, Option<String>, String, String)> {
    let resp = v
        .http
        .get(format!("{}{path}", v.base))
        .header("cookie", &v.cookie)
        .send()
        .await?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    };
    let cache = header("x-page-cache");
    let csp = header("content-security-policy").unwrap_or_default();
    Ok((resp.status().as_u16(), cache, csp, resp.text().await?))
}

fn meta_csrf(html: &str) -> Option<&str> {
    let at = html.find("name=\"csrf-token\" content=\"")? + 27;
    html[at..].split('"').next()
}

/// Anonymous visitors without history share one render of a page, yet each gets their own
/// CSRF token and a fresh nonce; nobody is served a page made for someone else (a visitor with
/// a Try, a signed-in admin), and a change through the API shows at once.
#[tokio::test]
async fn shared_pages_carry_each_visitors_own_secrets_and_never_someone_elses() -> Result {
    let app = app().await?;
    let a = app.visitor().await?;
    let b = app.visitor().await?;
    let (status, _, csp_a, html_a) = page(&a, "/p/fixture").await?;
    assert_eq!(status, 200);
    let (status, cache, csp_b, html_b) = page(&b, "/p/fixture").await?;
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(meta_csrf(&html_a), Some(a.csrf.as_str()));
    assert_eq!(meta_csrf(&html_b), Some(b.csrf.as_str()));
    assert!(!html_b.contains(&a.csrf), "B's page carries A's CSRF token");
    let nonce = |csp: &str| -> Option<String> {
        let at = csp.find("'nonce-")? + 7;
        Some(csp[at..].split('\'').next()?.to_string())
    };
    let (na, nb) = (nonce(&csp_a).ok_or("nonce")?, nonce(&csp_b).ok_or("nonce")?);
    assert_ne!(na, nb, "two responses share a nonce");
    assert!(html_b.contains(&format!("nonce=\"{nb}\"")) && !html_b.contains(&na));

    // A tries the project: A's page shows A's sandbox; B's never does.
    let r = a.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    let (_, cache, _, html) = page(&a, "/p/fixture").await?;
    assert_eq!(cache, None, "a visitor with a Try got a shared page");
    assert!(html.contains(&id), "A's page lacks A's sandbox");
    for _ in 0..2 {
        let (_, _, _, html) = page(&b, "/p/fixture").await?;
        assert!(!html.contains(&id), "B was served A's sandbox");
    }

    // The admin hides the project: at once, not after the cache's lifetime.
    let admin = admin(&app).await?;
    let (_, cache, _, _) = page(&admin, "/p/fixture").await?;
    assert_eq!(cache, None, "a signed-in page was shared");
    let r = admin
        .call(
            "PATCH",
            "/api/admin/projects/fixture",
            Some(json!({"hidden": true})),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = app.visitor().await?;
    let (status, _, _, _) = page(&c, "/p/fixture").await?;
    assert_eq!(
        status, 404,
        "a hidden project is still served from the cache"
    );
    a.stop_sandbox(&id).await?;
    Ok(())
}

/// Static files: pages name them by content version, answered as immutable for a year; the plain
/// and stale-version URLs revalidate; the build's gzip variant goes out as it is; pages are
/// compressed for browsers that ask. Nothing but site files is reachable under `/v/`.
#[tokio::test]
async fn static_files_are_versioned_immutable_and_precompressed() -> Result {
    let site = std::env::temp_dir().join(format!("trythis-site-{}", rand_u32()));
    std::fs::create_dir_all(site.join("pkg"))?;
    std::fs::write(site.join("pkg/trythis.css"), "body{color:red}".repeat(200))?;
    std::fs::write(site.join("pkg/trythis.css.gz"), "pretend-gzip")?;
    std::fs::write(site.join("pkg/trythis.css.br"), "pretend-brotli")?;
    let root = site.display().to_string();
    let app = TestApp::start_with(&[("TRYTHIS_SITE_ROOT", &root)]).await?;
    let http = reqwest::Client::new();
    let home = http.get(app.url("/")).send().await?.text().await?;
    let at = home.find("/v/").ok_or("no versioned URL in the page")?;
    let css = home[at..].split('"').next().ok_or("url")?.to_string();
    assert!(css.ends_with("/pkg/trythis.css"), "{css}");
    let get = |path: String, gzip: bool| {
        let mut req = http.get(app.url(&path));
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        req.send()
    };
    let cache = |r: &reqwest::Response| {
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let r = get(css.clone(), false).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(cache(&r), "public, max-age=31536000, immutable");
    assert!(r.text().await?.starts_with("body{color:red}"));
    let r = get(css.clone(), true).await?;
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.bytes().await?.as_ref(), b"pretend-gzip");
    let r = http
        .get(app.url(&css))
        .header("accept-encoding", "gzip, br")
        .send()
        .await?;
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    let etag = r.headers()["etag"].clone();
    assert_eq!(r.bytes().await?.as_ref(), b"pretend-brotli");
    let r = http
        .get(app.url(&css))
        .header("accept-encoding", "br;q=0, gzip")
        .send()
        .await?;
    assert_eq!(
        r.headers()["content-encoding"],
        "gzip",
        "br;q=0 refuses brotli"
    );
    let r = http
        .get(app.url(&css))
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(r.status(), 304);
    let stale = css.replacen(&css[3..15], "000000000000", 1);
    assert_ne!(stale, css);
    let r = get(stale, false).await?;
    assert_eq!((r.status().as_u16(), cache(&r)), (200, "no-cache".into()));
    let r = get("/pkg/trythis.css".into(), false).await?;
    assert_eq!((r.status().as_u16(), cache(&r)), (200, "no-cache".into()));
    let version = &css[3..15];
    for path in ["/api/me", "/healthz", "/v/x/pkg/trythis.css"] {
        let r = get(format!("/v/{version}{path}"), false).await?;
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = get("/".into(), true).await?;
    assert_eq!(
        r.headers()["content-encoding"],
        "gzip",
        "pages are compressed"
    );
    let _ = std::fs::remove_dir_all(&site);
    Ok(())
}

/// A new API token of `v`'s account: its secret.
async fn new_token(v: &Visitor, name: &str) -> Result<String> {
    let r = v
        .call("POST", "/api/me/tokens", Some(json!({ "name": name })))
        .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    Ok(r.body["token"].as_str().ok_or("no token")?.to_string())
}

/// What `GET /api/auth/link` says of a link in this browser.
async fn link_info(v: &Visitor, token: &str) -> Result<serde_json::Value> {
    let r = v
        .call("GET", &format!("/api/auth/link?token={token}"), None)
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    Ok(r.body)
}

/// Who owns sandbox `id`, as the database says.
async fn owner_of(app: &TestApp, id: &str) -> Result<vocab::OwnerKey> {
    use db::sea_orm::EntityTrait;
    Ok(db::entities::sandbox::Entity::find_by_id(id.to_string())
        .one(&app.state.db)
        .await?
        .ok_or("no sandbox row")?
        .owner)
}

/// The race (issue 25, hole 4): while the owner's sign-up link waits, an attacker signs the same
/// address up. On the old code the attacker gave their own password, the two mails looked the
/// same, and whichever link was opened set *that* sign-up's password: the owner opened the newer
/// mail, got in, and the attacker's password logged in too. Now a pending sign-up holds no
/// password: it is chosen on the link's page, by whoever holds the mailbox.
#[tokio::test]
async fn a_pending_sign_up_holds_no_password_so_nobody_can_race_it() -> Result {
    let app = app().await?;
    let email = unique_email("raced");
    let mut owner = app.visitor().await?;
    assert_eq!(owner.signup_form(&email).await?.status, 202);
    let first = Visitor::signup_link(&email).await?;
    // The attacker cannot give the address a password: the form has no such field.
    let mut attacker = app.visitor().await?;
    let r = attacker
        .post_auth(
            "/api/auth/signup",
            json!({ "email": email, "password": "attacker password" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("bad_json"))
    );
    // Without one, the attacker's sign-up mails the owner a second link (it is the attacker's
    // browser that asked for it).
    assert_eq!(attacker.signup_form(&email).await?.status, 202);
    let mut newest = String::new();
    for _ in 0..150 {
        newest = Visitor::signup_link(&email).await?;
        if newest != first {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(newest, first, "a second sign-up mail");
    // The owner opens the newer mail: its page names the address and says this browser did not
    // ask for it; the owner chooses the password.
    let info = link_info(&owner, &newest).await?;
    assert_eq!(
        (
            &info["kind"],
            &info["email"],
            &info["state"],
            &info["this_browser"]
        ),
        (
            &json!("signup"),
            &json!(email.to_lowercase()),
            &json!("valid"),
            &json!(false)
        )
    );
    let r = owner
        .post_auth(
            "/api/auth/verify",
            json!({ "token": newest, "password": "the owner's password" }),
        )
        .await?;
    assert_eq!(
        (r.status, &r.body["signed_in"]),
        (201, &json!(false)),
        "{}",
        r.body
    );
    // Only the owner's password opens the account.
    let mut stranger = app.visitor().await?;
    let r = stranger.auth("login", &email, "attacker password").await?;
    println!("the attacker's password logs in: {}", r.status);
    assert_eq!(r.status, 401);
    assert_eq!(
        owner
            .auth("login", &email, "the owner's password")
            .await?
            .status,
        200
    );
    // Creating the account voided the address's other pending sign-up: its page says so at once.
    assert_eq!(link_info(&stranger, &first).await?["state"], "used");
    let r = stranger
        .post_auth(
            "/api/auth/verify",
            json!({ "token": first, "password": "attacker password" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("link_invalid"))
    );
    Ok(())
}

/// The planted link (issue 25, hole 5): an attacker mails a visitor the link of the attacker's own
/// sign-up. On the old code opening it signed the visitor in as the attacker, and the visitor's
/// running sandbox moved into the attacker's account. Now a link signs in only the browser that
/// asked for it, and a browser's Tries move only when the person ticks "Bring my N tries".
#[tokio::test]
async fn a_link_signs_in_only_its_own_browser_and_brings_history_only_when_asked() -> Result {
    let app = app().await?;
    let attacker_email = unique_email("planter");
    let mut attacker = app.visitor().await?;
    assert_eq!(attacker.signup_form(&attacker_email).await?.status, 202);
    let planted = Visitor::signup_link(&attacker_email).await?;
    // A visitor in the middle of a Try.
    let mut visitor = app.visitor().await?;
    let r = visitor.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().ok_or("no id")?.to_string();
    let visitor_key = owner_of(&app, &id).await?;
    assert!(
        matches!(visitor_key, vocab::OwnerKey::Visitor(_)),
        "{visitor_key}"
    );
    // The planted link's page names the attacker's address and offers nothing to bring.
    let info = link_info(&visitor, &planted).await?;
    assert_eq!(
        (&info["email"], &info["this_browser"], &info["tries"]),
        (
            &json!(attacker_email.to_lowercase()),
            &json!(false),
            &json!(0)
        )
    );
    let r = visitor
        .post_auth(
            "/api/auth/verify",
            json!({ "token": planted, "password": "typed by the visitor", "bring": true }),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let me = visitor.call("GET", "/api/me", None).await?;
    println!(
        "after the planted link: visitor signed in as {}, sandbox owner {}",
        me.body["user"]["email"],
        owner_of(&app, &id).await?
    );
    assert_eq!(me.body["signed_in"], false);
    assert_eq!(owner_of(&app, &id).await?, visitor_key);
    assert_eq!(
        visitor
            .status_of("GET", &format!("/api/sandboxes/{id}"))
            .await?,
        200
    );

    // The visitor's own sign-up, without ticking the box: signed in, the Try stays behind.
    let own = unique_email("own");
    assert_eq!(visitor.signup_form(&own).await?.status, 202);
    let token = Visitor::signup_link(&own).await?;
    let info = link_info(&visitor, &token).await?;
    assert_eq!(
        (&info["this_browser"], &info["tries"]),
        (&json!(true), &json!(1))
    );
    // Another browser (the attacker's) is told it did not ask for it, and sees no tries.
    let theirs = link_info(&attacker, &token).await?;
    assert_eq!(
        (&theirs["this_browser"], &theirs["tries"]),
        (&json!(false), &json!(0))
    );
    let r = visitor
        .post_auth(
            "/api/auth/verify",
            json!({ "token": token, "password": "my own password" }),
        )
        .await?;
    assert_eq!(
        (r.status, &r.body["signed_in"]),
        (201, &json!(true)),
        "{}",
        r.body
    );
    let me = visitor.call("GET", "/api/me", None).await?;
    assert_eq!(me.body["user"]["email"], own.to_lowercase().as_str());
    assert_eq!(
        owner_of(&app, &id).await?,
        visitor_key,
        "moved without being asked"
    );

    // Signed out again, a second sign-up in this browser with the box ticked brings the Try.
    assert_eq!(
        visitor.call("POST", "/api/auth/logout", None).await?.status,
        204
    );
    visitor.set_session(None);
    visitor.refresh_csrf().await?;
    let second = unique_email("second");
    assert_eq!(visitor.signup_form(&second).await?.status, 202);
    let token = Visitor::signup_link(&second).await?;
    let r = visitor
        .post_auth(
            "/api/auth/verify",
            json!({ "token": token, "password": "second password", "bring": true }),
        )
        .await?;
    assert_eq!(
        (r.status, &r.body["signed_in"]),
        (201, &json!(true)),
        "{}",
        r.body
    );
    let account = db::accounts::by_email(&app.state.db, &second)
        .await?
        .ok_or("no account")?;
    assert_eq!(
        owner_of(&app, &id).await?,
        db::accounts::OwnerKey::User(account.id)
    );
    assert_eq!(visitor.stop_sandbox(&id).await?.status, 204);
    Ok(())
}

/// A stolen credential outlives no recovery (issue 25, hole 6): on the old code an API token kept
/// working after a password reset and after a password change. Now a reset ends every session
/// and token; a password change ends the other sessions and, when asked, every token; the token
/// list shows when each token was last used; a reset link signs in only the browser that asked.
#[tokio::test]
async fn recovery_ends_every_credential() -> Result {
    let app = app().await?;
    let email = unique_email("recovering");
    let mut owner = app.visitor().await?;
    owner.sign_up(&email, "first password 1").await?;
    let bearer = |secret: String| {
        let url = app.url("/api/me");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(secret)
                .send()
                .await?;
            Ok::<u16, Box<dyn std::error::Error + Send + Sync>>(r.status().as_u16())
        }
    };
    let t1 = new_token(&owner, "ci").await?;
    let tokens = owner.call("GET", "/api/me/tokens", None).await?;
    assert_eq!(
        tokens.body["tokens"][0]["last_used_at"],
        serde_json::Value::Null
    );
    assert_eq!(bearer(t1.clone()).await?, 200);
    let tokens = owner.call("GET", "/api/me/tokens", None).await?;
    assert!(
        tokens.body["tokens"][0]["last_used_at"].is_string(),
        "{}",
        tokens.body
    );

    // A password change ends the other sessions; tokens stay unless asked.
    let mut phone = app.visitor().await?;
    assert_eq!(
        phone
            .auth("login", &email, "first password 1")
            .await?
            .status,
        200
    );
    let r = owner
        .post_auth(
            "/api/me/password",
            json!({ "current": "first password 1", "new": "second password 2" }),
        )
        .await?;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        phone.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    assert_eq!(bearer(t1.clone()).await?, 200);
    // Asked (`#revoke-tokens`): every token ends with it.
    let r = owner
        .post_auth(
            "/api/me/password",
            json!({ "current": "second password 2", "new": "third password 3", "revoke_tokens": true }),
        )
        .await?;
    assert_eq!(r.status, 204, "{}", r.body);
    let after_change = bearer(t1.clone()).await?;
    println!("a token after a password change with revoke_tokens: {after_change}");
    assert_eq!(after_change, 401);
    assert_eq!(
        owner.call("GET", "/api/me", None).await?.body["signed_in"],
        true
    );

    // A reset ends every session and every token. Asked for in one browser, the link opened in
    // another sets the password but signs that one in to nothing.
    let t2 = new_token(&owner, "deploy").await?;
    assert_eq!(bearer(t2.clone()).await?, 200);
    let asker = app.visitor().await?;
    let r = asker
        .call("POST", "/api/auth/reset", Some(json!({ "email": email })))
        .await?;
    assert_eq!(r.status, 202);
    let mail = mail_to(&email, "/reset?token=").await?;
    let token = link_token(&mail, "/reset")?;
    let mut elsewhere = app.visitor().await?;
    let info = link_info(&elsewhere, &token).await?;
    assert_eq!(
        (&info["kind"], &info["email"], &info["this_browser"]),
        (&json!("reset"), &json!(email.to_lowercase()), &json!(false))
    );
    assert_eq!(link_info(&asker, &token).await?["this_browser"], true);
    let r = elsewhere
        .post_auth(
            "/api/auth/reset/confirm",
            json!({ "token": token, "password": "fourth password 4" }),
        )
        .await?;
    assert_eq!(
        (r.status, &r.body["signed_in"]),
        (200, &json!(false)),
        "{}",
        r.body
    );
    assert_eq!(
        elsewhere.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let after_reset = bearer(t2.clone()).await?;
    println!("a token after a reset: {after_reset}");
    assert_eq!(after_reset, 401);
    assert_eq!(
        owner.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    assert_eq!(link_info(&asker, &token).await?["state"], "used");
    let mut again = app.visitor().await?;
    assert_eq!(
        again
            .auth("login", &email, "fourth password 4")
            .await?
            .status,
        200
    );
    Ok(())
}

/// A ban is one transaction: when one of its writes fails (here a trigger refuses to hide the
/// project), nothing of it stays — the account is not banned, its session and its sandbox go on —
/// and once the writes can go through, all of them happen.
#[tokio::test]
async fn a_ban_is_all_or_nothing() -> Result {
    use db::sea_orm::ConnectionTrait;
    let app = app().await?;
    let eve = app.user().await?;
    let me = eve.call("GET", "/api/me", None).await?;
    let uid = me.body["user"]["id"].as_i64().ok_or("id")? as i32;
    let r = eve.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let sandbox = r.body["id"].as_str().ok_or("id")?.to_string();
    let slug = format!("eves-{}", &server::secrets::random_id()[..8]).to_lowercase();
    db::projects::create(
        &app.state.db,
        &db::projects::NewProject {
            slug: slug.clone(),
            name: "Eve's tool".into(),
            summary: "a project of hers".into(),
            description: String::new(),
            category: "tools".into(),
            tags: vec![],
            homepage: None,
            repository: None,
            license: None,
            welcome: None,
            egress: false,
            maintainer: Some(vocab::OwnerKey::User(uid)),
            unlisted: false,
        },
    )
    .await?
    .ok_or("slug taken")?;
    app.state
        .db
        .execute_unprepared(&format!(
            "CREATE TRIGGER refuse_hiding BEFORE UPDATE OF status ON projects \
             WHEN OLD.slug = '{slug}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ))
        .await?;
    let failed = app.state.lifecycle.ban(uid).await;
    assert!(failed.is_err(), "the ban went through: {failed:?}");
    let account = db::accounts::by_id(&app.state.db, uid)
        .await?
        .ok_or("account")?;
    assert!(!account.banned, "banned although the ban failed");
    assert_eq!(
        eve.call("GET", "/api/me", None).await?.body["signed_in"],
        true,
        "the session ended although the ban failed"
    );
    let s = db::sandboxes::get(&app.state.db, &sandbox)
        .await?
        .ok_or("row")?;
    assert_eq!(
        (s.active, s.state),
        (true, db::SandboxState::Ready),
        "the sandbox was touched although the ban failed"
    );
    assert_eq!(app.containers_of(&sandbox).await?, 1);

    app.state
        .db
        .execute_unprepared("DROP TRIGGER refuse_hiding")
        .await?;
    let banned = app.state.lifecycle.ban(uid).await?;
    assert_eq!(
        (banned.sandboxes_stopped, banned.projects_hidden),
        (1, 1),
        "{banned:?}"
    );
    assert!(
        db::accounts::by_id(&app.state.db, uid)
            .await?
            .ok_or("account")?
            .banned
    );
    let s = db::sandboxes::get(&app.state.db, &sandbox)
        .await?
        .ok_or("row")?;
    assert_eq!(s.end_reason, Some(vocab::EndReason::OwnerBanned));
    assert_eq!(app.containers_of(&sandbox).await?, 0);
    assert_eq!(
        eve.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    Ok(())
}
