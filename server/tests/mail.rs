//! Addresses are proved by mail, through a real SMTP server (aiosmtpd, started by
//! `scripts/test.sh`): sign-up creates nothing until its link is opened, reset links are single
//! use, short-lived and stored hashed, answers never tell whether an address has an account, and a
//! provider's login never lands in an account whose address nobody proved. Needs Docker (the
//! fixture image) and the SMTP server: fails without them.
mod common;
use axum::{routing::get, routing::post, Json, Router};
use common::*;
use serde_json::json;

/// A GitHub stand-in on the loopback: any code is exchanged for a token, and the profile is
/// `email` (verified, primary) with user id `subject`.
async fn github(email: &str, subject: i64) -> Result<String> {
    let email = email.to_string();
    let router = Router::new()
        .route(
            "/token",
            post(|| async { Json(json!({"access_token": "t0k3n", "token_type": "bearer"})) }),
        )
        .route(
            "/api/user",
            get(move || async move {
                Json(json!({"id": subject, "login": "gh-user", "name": "GH User"}))
            }),
        )
        .route(
            "/api/user/emails",
            get(move || {
                let email = email.clone();
                async move { Json(json!([{"email": email, "primary": true, "verified": true}])) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(base)
}

async fn app_with_github(provider: &str) -> Result<TestApp> {
    let token = format!("{provider}/token");
    let api = format!("{provider}/api");
    TestApp::start_with(&[
        ("TRYTHIS_GITHUB_CLIENT_ID", "id"),
        ("TRYTHIS_GITHUB_CLIENT_SECRET", "secret"),
        ("TRYTHIS_GITHUB_AUTH_URL", "http://127.0.0.1:9/authorize"),
        ("TRYTHIS_GITHUB_TOKEN_URL", token.as_str()),
        ("TRYTHIS_GITHUB_PROFILE_URL", api.as_str()),
    ])
    .await
}

/// A GitHub sign-in in `browser` (start, then the provider's redirect back): where it lands.
async fn github_sign_in(app: &TestApp, browser: &mut Visitor) -> Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let start = http
        .get(app.url("/auth/github/start"))
        .header("cookie", &browser.cookie)
        .send()
        .await?;
    let state = start.headers()["location"]
        .to_str()?
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .ok_or("state")?
        .to_string();
    let oauth = set_cookie(&start, "trythis_oauth").ok_or("oauth cookie")?;
    let back = http
        .get(app.url(&format!("/auth/github/callback?code=c0de&state={state}")))
        .header("cookie", format!("{}; {oauth}", browser.cookie))
        .send()
        .await?;
    if let Some(s) = set_cookie(&back, "trythis_session") {
        browser.set_session(Some(&s));
        browser.refresh_csrf().await?;
    }
    Ok(back.headers()["location"].to_str()?.to_string())
}

#[tokio::test]
async fn sign_up_creates_the_account_only_when_the_mailed_link_is_opened() -> Result {
    let app = TestApp::start().await?;
    let email = unique_email("Newcomer");
    let mut v = app.visitor().await?;
    let r = v.signup_form(&email).await?;
    assert_eq!(
        (r.status, &r.body),
        (202, &json!({ "email": email.to_lowercase() }))
    );
    assert_eq!(
        v.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    // Nothing exists yet.
    assert!(db::accounts::by_email(&app.state.db, &email)
        .await?
        .is_none());
    // The mail went through SMTP; the database keeps only the token's hash.
    let mail = mail_to(&email, "/verify?token=").await?;
    assert!(mail.contains("Subject: Confirm your email"), "{mail}");
    let token = link_token(&mail, "/verify")?;
    assert_eq!(token.len(), 64);
    let hash = server::secrets::sha256_hex(&token);
    assert!(
        db::accounts::find_link(&app.state.db, &hash, db::accounts::LinkPurpose::Signup)
            .await?
            .is_some()
    );
    assert!(
        db::accounts::find_link(&app.state.db, &token, db::accounts::LinkPurpose::Signup)
            .await?
            .is_none(),
        "stored hashed"
    );
    // Its page chooses the password: one the rules refuse does not use the link up.
    let r = v
        .post_auth(
            "/api/auth/verify",
            json!({ "token": token, "password": "short" }),
        )
        .await?;
    assert_eq!((r.status, r.problem_fields()), (400, vec!["password"]));
    // Opening it creates the account, verified, and signs in.
    let r = v
        .post_auth(
            "/api/auth/verify",
            json!({ "token": token, "password": "newcomer password" }),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let me = v.call("GET", "/api/me", None).await?;
    assert_eq!(me.body["user"]["email"], email.to_lowercase().as_str());
    assert_eq!(me.body["user"]["email_verified"], true);
    // Single use.
    let again = app
        .visitor()
        .await?
        .post_auth(
            "/api/auth/verify",
            json!({ "token": token, "password": "another password" }),
        )
        .await?;
    assert_eq!(
        (again.status, again.body["error"].as_str()),
        (400, Some("link_invalid"))
    );
    // Garbage tokens get the same answer, never a 500.
    for bad in ["", "zz", &"g".repeat(64), &"a".repeat(10_000)] {
        let r = v
            .call("POST", "/api/auth/verify", Some(json!({ "token": bad })))
            .await?;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("link_invalid")),
            "{bad}"
        );
    }
    Ok(())
}

/// Sign-up and reset answer the same for known and unknown addresses; the mail tells the rest.
#[tokio::test]
async fn answers_never_tell_whether_an_address_has_an_account() -> Result {
    let app = TestApp::start().await?;
    let mut known = app.visitor().await?;
    let member = unique_email("member");
    known.sign_up(&member, "member password").await?;
    let stranger = unique_email("stranger");
    let v = app.visitor().await?;
    let ask = |path: &'static str, email: String| {
        let v = &v;
        async move {
            let body = if path.ends_with("signup") {
                json!({ "email": email, "name": "Some One" })
            } else {
                json!({ "email": email })
            };
            let r = v.call("POST", path, Some(body)).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((r.status, r.body))
        }
    };
    for path in ["/api/auth/signup", "/api/auth/reset"] {
        let (s1, b1) = ask(path, member.clone()).await?;
        let (s2, b2) = ask(path, stranger.clone()).await?;
        assert_eq!((s1, s2), (202, 202), "{path}");
        assert_eq!(b1, json!({ "email": member }), "{path}");
        assert_eq!(b2, json!({ "email": stranger }), "{path}");
    }
    // The member's mailbox says they have an account and carries a reset link.
    mail_to(&member, "already has an account").await?;
    mail_to(&member, "/reset?token=").await?;
    // The stranger got the sign-up link only: no reset mail for an address without an account.
    mail_to(&stranger, "/verify?token=").await?;
    assert!(!mails_to(&stranger)?
        .iter()
        .any(|m| m.contains("/reset?token=")));
    Ok(())
}

#[tokio::test]
async fn a_reset_link_is_single_use_short_lived_hashed_and_ends_every_session() -> Result {
    let app = TestApp::start().await?;
    let email = unique_email("forgetful");
    let mut laptop = app.visitor().await?;
    laptop.sign_up(&email, "old password 1").await?;
    let mut anon = app.visitor().await?;
    let r = anon
        .call("POST", "/api/auth/reset", Some(json!({ "email": email })))
        .await?;
    assert_eq!(r.status, 202);
    let mail = mail_to(&email, "/reset?token=").await?;
    let token = link_token(&mail, "/reset")?;
    // A password the rules refuse does not use the link up.
    let r = anon
        .post_auth(
            "/api/auth/reset/confirm",
            json!({ "token": token, "password": "short" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["problems"][0]["field"].as_str()),
        (400, Some("password"))
    );
    // Someone else's session planted in this browser is ended by the reset's sign-in, not kept.
    let mut planter = app.user().await?;
    let planted = planter.session_cookie()?;
    anon.set_session(Some(&planted));
    anon.refresh_csrf().await?;
    let r = anon
        .post_auth(
            "/api/auth/reset/confirm",
            json!({ "token": token, "password": "new password 2" }),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    planter.refresh_csrf().await?;
    assert_eq!(
        planter.call("GET", "/api/me", None).await?.body["signed_in"],
        false,
        "the planted session still works"
    );
    assert_eq!(
        anon.call("GET", "/api/me", None).await?.body["signed_in"],
        true
    );
    // The laptop's session ended; the old password is gone, the new one works.
    assert_eq!(
        laptop.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let mut other = app.visitor().await?;
    assert_eq!(
        other.auth("login", &email, "old password 1").await?.status,
        401
    );
    assert_eq!(
        other.auth("login", &email, "new password 2").await?.status,
        200
    );
    // Used once: a second use is refused.
    let r = app
        .visitor()
        .await?
        .post_auth(
            "/api/auth/reset/confirm",
            json!({ "token": token, "password": "third password 3" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("link_invalid"))
    );
    // A link past its 30 minutes is refused.
    let r = anon
        .call("POST", "/api/auth/reset", Some(json!({ "email": email })))
        .await?;
    assert_eq!(r.status, 202);
    let mut token2 = String::new();
    for _ in 0..150 {
        token2 = mails_to(&email)?
            .iter()
            .filter_map(|m| link_token(m, "/reset").ok())
            .find(|t| *t != token)
            .unwrap_or_default();
        if !token2.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!token2.is_empty(), "a second reset mail");
    use db::entities::email_token;
    use db::sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
    // The link lives 30 minutes from its mailing: not less (the mail promises it), not more.
    let row = email_token::Entity::find()
        .filter(email_token::Column::TokenHash.eq(server::secrets::sha256_hex(&token2)))
        .one(&app.state.db)
        .await?
        .ok_or("the second link's row")?;
    let lifetime = row.expires_at - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::minutes(29) && lifetime <= chrono::Duration::minutes(30),
        "the reset link lives {} s",
        lifetime.num_seconds()
    );
    let expired = email_token::Entity::update_many()
        .col_expr(
            email_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(email_token::Column::TokenHash.eq(server::secrets::sha256_hex(&token2)))
        .exec(&app.state.db)
        .await?;
    assert_eq!(expired.rows_affected, 1);
    let r = anon
        .post_auth(
            "/api/auth/reset/confirm",
            json!({ "token": token2, "password": "third password 3" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("link_invalid"))
    );
    Ok(())
}

/// The takeover: an attacker signs up with the victim's address and a password of their own,
/// waiting for the victim to sign in with GitHub. The sign-up never becomes an account, so the
/// victim's provider login makes a fresh one the attacker's password does not open.
#[tokio::test]
async fn nobody_can_pre_register_someone_elses_address_for_their_provider_login() -> Result {
    let victim_email = unique_email("victim");
    let provider = github(&victim_email, 4242).await?;
    let app = app_with_github(&provider).await?;
    let mut attacker = app.visitor().await?;
    let r = attacker.signup_form(&victim_email).await?;
    assert_eq!(r.status, 202);
    let mut victim = app.visitor().await?;
    assert_eq!(github_sign_in(&app, &mut victim).await?, "/");
    let me = victim.call("GET", "/api/me", None).await?;
    assert_eq!(me.body["user"]["email"], victim_email.as_str());
    assert_eq!(me.body["user"]["has_password"], false);
    let mut again = app.visitor().await?;
    assert_eq!(
        again
            .auth("login", &victim_email, "attacker password")
            .await?
            .status,
        401
    );
    // The link mailed for the attacker's sign-up (to the victim) cannot make a second account.
    let mail = mail_to(&victim_email, "/verify?token=").await?;
    let r = again
        .post_auth(
            "/api/auth/verify",
            json!({ "token": link_token(&mail, "/verify")?, "password": "attacker password" }),
        )
        .await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (409, Some("account_exists"))
    );
    Ok(())
}

/// Accounts from before addresses were verified: a provider login with the same email is not
/// linked into them, and they cannot be made admin, until the address is verified by mail.
#[tokio::test]
async fn unverified_addresses_link_no_provider_login_and_become_no_admin() -> Result {
    let email = unique_email("legacy");
    let provider = github(&email, 777).await?;
    let app = app_with_github(&provider).await?;
    let mut owner = app.visitor().await?;
    owner.sign_up(&email, "legacy password").await?;
    use db::entities::user;
    use db::sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
    user::Entity::update_many()
        .col_expr(
            user::Column::EmailVerifiedAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(user::Column::Email.eq(email.to_lowercase()))
        .exec(&app.state.db)
        .await?;
    assert_eq!(
        owner.call("GET", "/api/me", None).await?.body["user"]["email_verified"],
        false
    );
    let mut via_github = app.visitor().await?;
    assert_eq!(
        github_sign_in(&app, &mut via_github).await?,
        "/login?error=unverified"
    );
    assert_eq!(
        via_github.call("GET", "/api/me", None).await?.body["signed_in"],
        false
    );
    let promoted =
        server::accounts::ensure_admin(&app.state.auth, &app.state.db, &email, None).await;
    assert!(promoted.is_err(), "an unverified account is not promoted");
    let account = db::accounts::by_email(&app.state.db, &email)
        .await?
        .ok_or("account")?;
    assert_eq!(account.role, db::accounts::Role::User);
    // The owner verifies by mail; then GitHub links and admin promotion works.
    let r = owner.call("POST", "/api/me/verify-email", None).await?;
    assert_eq!(r.status, 202, "{}", r.body);
    let mail = mail_to(&email, "Verify your email address").await?;
    let link = json!({ "token": link_token(&mail, "/verify")? });
    let r = owner
        .call("POST", "/api/auth/verify", Some(link.clone()))
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    // Single use.
    let r = owner.call("POST", "/api/auth/verify", Some(link)).await?;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("link_invalid"))
    );
    assert_eq!(
        owner.call("GET", "/api/me", None).await?.body["user"]["email_verified"],
        true
    );
    assert_eq!(github_sign_in(&app, &mut via_github).await?, "/");
    assert_eq!(
        via_github.call("GET", "/api/me", None).await?.body["user"]["email"],
        email.as_str()
    );
    server::accounts::ensure_admin(&app.state.auth, &app.state.db, &email, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Sign-up, reset and verification mails to one address are capped per hour, whatever the
/// answers say: the site is no mail bomb.
#[tokio::test]
async fn one_address_gets_a_bounded_number_of_mails() -> Result {
    let app = TestApp::start_with(&[("TRYTHIS_MAILS_PER_ADDRESS_PER_HOUR", "3")]).await?;
    let target = unique_email("target");
    let v = app.visitor().await?;
    for _ in 0..6 {
        let r = v
            .call("POST", "/api/auth/signup", Some(json!({ "email": target })))
            .await?;
        assert_eq!(r.status, 202);
    }
    // A marker mail to another address goes through the same queue after them.
    let marker = unique_email("marker");
    v.call("POST", "/api/auth/signup", Some(json!({ "email": marker })))
        .await?;
    mail_to(&marker, "/verify?token=").await?;
    assert_eq!(mails_to(&target)?.len(), 3);
    Ok(())
}

/// Handing projects over to an address says nothing about whether it has an account: both
/// deletions answer 204; the projects go to the account if there is one (its owner gets a mail)
/// and are hidden otherwise.
#[tokio::test]
async fn deleting_with_a_hand_over_is_no_oracle_for_other_addresses() -> Result {
    let app = TestApp::start().await?;
    let mut answers = Vec::new();
    for successor in [unique_email("ghost"), String::new()] {
        let mut leaver = app.visitor().await?;
        let email = unique_email("leaver");
        leaver.sign_up(&email, "leaver password").await?;
        let uid = leaver.call("GET", "/api/me", None).await?.body["user"]["id"]
            .as_i64()
            .ok_or("id")? as i32;
        let slug = format!("p{}", &server::secrets::random_id()[..8]);
        let (repo, digest, size) = fixture_image(&app.state.config).await?;
        let p = publish_fixture(&app.state.db, &slug, "Databases", &repo, &digest, size).await?;
        db::projects::set_maintainer(
            &app.state.db,
            p.id,
            Some(&db::accounts::OwnerKey::User(uid)),
        )
        .await?;
        let successor = if successor.is_empty() {
            let heir = app.user().await?;
            heir.call("GET", "/api/me", None).await?.body["user"]["email"]
                .as_str()
                .ok_or("email")?
                .to_string()
        } else {
            successor
        };
        let r = leaver
            .call(
                "POST",
                "/api/me/delete",
                Some(json!({"password": "leaver password", "projects": "hand_over", "successor_email": successor})),
            )
            .await?;
        answers.push((r.status, r.body));
        let p = db::projects::by_slug(&app.state.db, &slug)
            .await?
            .ok_or("project")?;
        match db::accounts::by_email(&app.state.db, &successor).await? {
            Some(heir) => {
                assert_eq!(p.maintainer, Some(db::accounts::OwnerKey::User(heir.id)));
                mail_to(&successor, "handed you 1 project").await?;
            }
            None => assert_eq!(p.status, db::ProjectStatus::Hidden),
        }
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 204);
    Ok(())
}
