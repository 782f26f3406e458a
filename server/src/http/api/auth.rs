//! `POST /api/auth/signup`, `/verify`, `/login`, `/logout`, `/reset`, `/reset/confirm`,
//! `GET /api/auth/link` and `GET /api/me`. A mailed link signs in only the browser that asked for
//! it, and brings that browser's Tries into the account only when the person ticks the box. Answers never tell whether an email has an account: sign-up and reset answer the
//! same either way (the mail says the rest), a wrong email and a wrong password get one sentence.
use super::body;
use crate::http::client_ip::ClientIp;
use crate::{
    accounts::mail::Mail,
    accounts::{self as auth, display_name},
    http::error::{ApiError, ApiResult},
    http::identity::{user_brief, Browser, SessionHash},
    http::state::AppState,
    secrets::{random_secret, sha256_hex},
};
use app::model::{Identity, LinkInfo, LinkKind, LinkState, MailSent, Me, SignedIn};
use axum::{
    extract::{rejection::JsonRejection, Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use db::accounts::{self, LinkPurpose};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupForm {
    email: String,
    #[serde(default)]
    name: String,
    /// Where the person was going: the mailed link leads there.
    #[serde(default)]
    next: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    email: String,
    password: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkForm {
    token: String,
    /// A sign-up's password, chosen on the link's page.
    #[serde(default)]
    password: String,
    /// Bring this browser's Tries into the account (the page's `#bring` box).
    #[serde(default)]
    bring: bool,
}

#[derive(serde::Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestForm {
    email: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetForm {
    token: String,
    password: String,
    #[serde(default)]
    bring: bool,
}

fn link_invalid() -> ApiError {
    ApiError::bad(
        "link_invalid",
        "This link is not valid any more: it was used already or has expired. Ask for a new one.",
    )
}

/// The stored form of a mailed link's token. Anything but a token of ours is refused before the
/// database is asked.
fn link_hash(token: &str) -> Result<String, ApiError> {
    let t = token.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256_hex(&t.to_ascii_lowercase()))
    } else {
        Err(link_invalid())
    }
}

fn mail_sent(email: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(MailSent {
            email: accounts::fold_email(email),
        }),
    )
        .into_response()
}

pub fn with_cookies(mut resp: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub fn providers(st: &AppState) -> Vec<String> {
    let mut p = Vec::new();
    if st.config.auth.github.is_some() {
        p.push("github".to_string());
    }
    if st.config.auth.google.is_some() {
        p.push("google".to_string());
    }
    p
}

/// How a link remembers the browser that asked for it: SHA-256 of its visitor key.
pub fn browser_hash(browser: &Browser) -> Option<String> {
    browser
        .visitor
        .as_ref()
        .map(|v| sha256_hex(&v.0.to_string()))
}

/// Whether `browser` is the one that asked for `link` (links from before migration 10 have no
/// browser and sign nobody in).
fn asked_here(link: &accounts::EmailLink, browser: &Browser) -> bool {
    match (&link.browser, browser_hash(browser)) {
        (Some(asked), Some(here)) => crate::secrets::same(asked, &here),
        _ => false,
    }
}

/// Signs in with a mailed link: only the browser that asked for it (else the account is left
/// signed out here, and the page says to log in), with its Tries only if `bring`.
async fn sign_in_by_link(
    st: &AppState,
    account: &accounts::Account,
    link: &accounts::EmailLink,
    browser: &Browser,
    bring: bool,
) -> ApiResult<Option<String>> {
    if !asked_here(link, browser) {
        return Ok(None);
    }
    let browser = Browser {
        visitor: if bring { browser.visitor.clone() } else { None },
        session: browser.session.clone(),
    };
    Ok(Some(sign_in(st, account, &browser).await?))
}

/// Signs `account` in on this browser: a brand-new session (the old one, if any, is deleted, so
/// a session id planted before sign-in is worthless), and the visitor's history becomes theirs.
pub async fn sign_in(
    st: &AppState,
    account: &accounts::Account,
    browser: &Browser,
) -> ApiResult<String> {
    if let Some(old) = &browser.session {
        accounts::delete_session(&st.db, &old.0).await?;
    }
    if let Some(v) = &browser.visitor {
        accounts::adopt(&st.db, &v.0, &accounts::OwnerKey::User(account.id)).await?;
    }
    let token = st.auth.start_session(&st.db, account.id).await?;
    Ok(st.auth.session_cookie(&token))
}

fn signed_in(account: &accounts::Account) -> SignedIn {
    SignedIn {
        signed_in: true,
        user: user_brief(account),
        is_admin: account.role == accounts::Role::Admin,
    }
}

/// `POST /api/auth/signup {email, name?, next?}` — 202 `{email}`, the same answer for every
/// address. A new one gets a link whose page chooses the password and creates the account
/// (nothing exists before, and the pending sign-up holds no password: someone signing up another
/// person's address sets nothing); a known one gets a mail saying it has an account.
pub async fn signup(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<SignupForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    auth::check_signup(&f.email, &f.name)?;
    st.auth.check_rate(&st.db, ip, None).await?;
    if accounts::by_email(&st.db, &f.email).await?.is_some() {
        st.mail.send(&f.email, Mail::AlreadyRegistered);
    } else {
        let token = random_secret();
        accounts::put_signup(
            &st.db,
            &sha256_hex(&token),
            &f.email,
            &display_name(&f.name, &f.email),
            browser_hash(&browser),
        )
        .await?;
        st.mail.send(
            &f.email,
            Mail::ConfirmSignup {
                token,
                next: f.next,
            },
        );
    }
    Ok(mail_sent(&f.email))
}

/// `GET /api/auth/link?token=` — what a mailed link is before it is used: its kind, the address,
/// whether it is still valid, whether this browser asked for it and how many Tries this browser
/// could bring. 400 `link_invalid` for a token that is no link of ours.
pub async fn link_info(
    State(st): State<AppState>,
    browser: Browser,
    Query(q): Query<LinkQuery>,
) -> ApiResult<Json<LinkInfo>> {
    let hash = link_hash(&q.token)?;
    let Some(link) = accounts::link_by_hash(&st.db, &hash).await? else {
        return Err(link_invalid());
    };
    let kind = LinkKind::parse(&link.purpose).ok_or_else(link_invalid)?;
    let state = if link.used_at.is_some() {
        LinkState::Used
    } else if link.expires_at <= chrono::Utc::now() {
        LinkState::Expired
    } else {
        LinkState::Valid
    };
    let this_browser = asked_here(&link, &browser);
    let tries = match (&browser.visitor, this_browser && kind != LinkKind::Verify) {
        (Some(v), true) => db::sandboxes::count_of_owner(&st.db, &v.0).await?,
        _ => 0,
    };
    Ok(Json(LinkInfo {
        kind,
        email: link.email,
        state,
        this_browser,
        tries,
    }))
}

/// `POST /api/auth/verify {token, password?, bring?}` — a mailed link used. A sign-up's creates
/// the account with the password chosen on its page (201; signed in only in the browser that
/// asked for the link, `signed_in: false` elsewhere); an address verification's marks the
/// address verified (200).
pub async fn verify(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<LinkForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    st.auth.check_rate(&st.db, ip, None).await?;
    let hash = link_hash(&f.token)?;
    if let Some(pending) = accounts::find_link(&st.db, &hash, LinkPurpose::Signup).await? {
        // A password the rules refuse must not use the link up.
        if let Some(m) = auth::password_problem(&f.password, &pending.email) {
            return Err(ApiError::field("password", m));
        }
        let password_hash = st.auth.hash(&f.password).await?;
        let Some(link) = accounts::take_link(&st.db, &hash, LinkPurpose::Signup).await? else {
            return Err(link_invalid());
        };
        let account = match accounts::create_from_signup(&st.db, &link, password_hash).await {
            Ok(a) => a,
            // An account made through a provider in between.
            Err(accounts::CreateError::EmailTaken) => {
                return Err(ApiError::Conflict(
                    "account_exists",
                    "This email already has an account. Log in instead.".into(),
                ))
            }
            Err(accounts::CreateError::Db(e)) => return Err(e.into()),
        };
        tracing::info!(user = account.id, "account created");
        let cookie = sign_in_by_link(&st, &account, &link, &browser, f.bring).await?;
        let mut answer = signed_in(&account);
        answer.signed_in = cookie.is_some();
        return Ok(with_cookies(
            (StatusCode::CREATED, Json(answer)).into_response(),
            &cookie.into_iter().collect::<Vec<_>>(),
        ));
    }
    if let Some(link) = accounts::take_link(&st.db, &hash, LinkPurpose::Verify).await? {
        if accounts::mark_verified(&st.db, &link).await? {
            return Ok(Json(MailSent { email: link.email }).into_response());
        }
    }
    Err(link_invalid())
}

/// `POST /api/auth/reset {email}` — 202 `{email}` whether or not the address has an account; one
/// that has (and is not suspended) gets a single-use link valid for 30 minutes.
pub async fn reset_request(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<ResetRequestForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    if let Some(m) = auth::email_problem(&f.email) {
        return Err(ApiError::field("email", m));
    }
    st.auth.check_rate(&st.db, ip, None).await?;
    if let Some(account) = accounts::by_email(&st.db, &f.email).await? {
        if !account.banned {
            let token = random_secret();
            accounts::put_account_link(
                &st.db,
                &sha256_hex(&token),
                LinkPurpose::Reset,
                &account,
                browser_hash(&browser),
            )
            .await?;
            st.mail.send(&account.email, Mail::ResetPassword { token });
        }
    }
    Ok(mail_sent(&f.email))
}

/// `POST /api/auth/reset/confirm {token, password, bring?}` — 200: the new password is set and
/// every credential of the account ends (sessions and API tokens). Only the browser that asked
/// for the link is signed in (`signed_in: false` elsewhere: log in with the new password).
pub async fn reset_confirm(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<ResetForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    st.auth.check_rate(&st.db, ip, None).await?;
    let hash = link_hash(&f.token)?;
    // A password the rules refuse must not use the link up.
    let Some(pending) = accounts::find_link(&st.db, &hash, LinkPurpose::Reset).await? else {
        return Err(link_invalid());
    };
    if let Some(m) = auth::password_problem(&f.password, &pending.email) {
        return Err(ApiError::field("password", m));
    }
    let password_hash = st.auth.hash(&f.password).await?;
    let Some(link) = accounts::take_link(&st.db, &hash, LinkPurpose::Reset).await? else {
        return Err(link_invalid());
    };
    let Some(account) = accounts::reset_password(&st.db, &link, password_hash).await? else {
        return Err(link_invalid());
    };
    if account.banned {
        return Err(suspended());
    }
    tracing::info!(user = account.id, "password reset");
    let cookie = sign_in_by_link(&st, &account, &link, &browser, f.bring).await?;
    let mut answer = signed_in(&account);
    answer.signed_in = cookie.is_some();
    Ok(with_cookies(
        Json(answer).into_response(),
        &cookie.into_iter().collect::<Vec<_>>(),
    ))
}

fn suspended() -> ApiError {
    ApiError::Forbidden(
        "This account is suspended. Contact the site's admins if you think this is a mistake."
            .into(),
    )
}

/// `POST /api/auth/login {email, password}` — 200 and a fresh session.
pub async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<LoginForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    let wrong = || {
        ApiError::Unauthorized(
            "The email or password is not right. Just signed up? Open the link we mailed you first."
                .into(),
        )
    };
    if f.email.len() > auth::MAX_EMAIL || f.password.chars().count() > auth::MAX_PASSWORD {
        return Err(wrong());
    }
    st.auth.check_rate(&st.db, ip, Some(&f.email)).await?;
    let account = accounts::by_email(&st.db, &f.email).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    if !st.auth.verify(hash, &f.password).await {
        return Err(wrong());
    }
    let Some(account) = account else {
        return Err(wrong());
    };
    if account.banned {
        return Err(suspended());
    }
    let cookie = sign_in(&st, &account, &browser).await?;
    Ok(with_cookies(
        Json(signed_in(&account)).into_response(),
        &[cookie],
    ))
}

/// `POST /api/auth/logout` — 204; the session row is deleted, not just the cookie.
pub async fn logout(
    State(st): State<AppState>,
    session: Option<Extension<SessionHash>>,
) -> ApiResult<Response> {
    if let Some(Extension(s)) = session {
        accounts::delete_session(&st.db, &s.0).await?;
    }
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        &[st.auth.expired_cookie(auth::SESSION_COOKIE)],
    ))
}

/// `GET /api/me` — who is asking, and the CSRF token for this browser.
pub async fn me(State(st): State<AppState>, Extension(me): Extension<Identity>) -> Json<Me> {
    Json(Me {
        signed_in: me.signed_in,
        is_admin: me.is_admin,
        user: me.user,
        csrf_token: me.csrf,
        providers: providers(&st),
        site: st.config.public_url.clone(),
    })
}
