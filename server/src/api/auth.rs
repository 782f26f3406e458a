//! `POST /api/auth/signup`, `/login`, `/logout` and `GET /api/me`. Answers never tell whether an
//! email has an account: a wrong email and a wrong password get the same sentence.
use super::body;
use crate::client_ip::ClientIp;
use crate::{
    auth::{self, display_name},
    error::{ApiError, ApiResult},
    identity::{user_brief, SessionHash, VisitorKey},
    state::AppState,
};
use app::model::{Identity, Me};
use axum::{
    extract::{rejection::JsonRejection, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use db::accounts;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupForm {
    email: String,
    password: String,
    #[serde(default)]
    name: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    email: String,
    password: String,
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

/// Signs `account` in on this browser: a brand-new session (the old one, if any, is deleted, so
/// a session id planted before sign-in is worthless), and the visitor's history becomes theirs.
pub async fn sign_in(
    st: &AppState,
    account: &accounts::Account,
    visitor: Option<&VisitorKey>,
    old_session: Option<&SessionHash>,
) -> ApiResult<String> {
    if let Some(old) = old_session {
        accounts::delete_session(&st.db, &old.0).await?;
    }
    if let Some(v) = visitor {
        accounts::adopt(&st.db, &v.0, &accounts::key_of(account.id)).await?;
    }
    let token = st.auth.start_session(&st.db, account.id).await?;
    Ok(st.auth.session_cookie(&token))
}

fn me_json(account: &accounts::Account) -> serde_json::Value {
    serde_json::json!({
        "signed_in": true,
        "user": user_brief(account),
        "is_admin": account.role == accounts::ROLE_ADMIN,
    })
}

/// `POST /api/auth/signup {email, password, name?}` — 201 and signed in.
pub async fn signup(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    visitor: Option<Extension<VisitorKey>>,
    session: Option<Extension<SessionHash>>,
    form: Result<Json<SignupForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    auth::check_signup(&f.email, &f.password, &f.name)?;
    st.auth.check_rate(ip, None)?;
    let hash = st.auth.hash(&f.password).await?;
    let account = match accounts::create(
        &st.db,
        &f.email,
        &display_name(&f.name, &f.email),
        Some(hash),
        accounts::ROLE_USER,
    )
    .await
    {
        Ok(a) => a,
        Err(accounts::CreateError::EmailTaken) => {
            return Err(ApiError::Conflict(
                "signup_refused",
                "We could not create an account with these details. If you already have one, log in instead."
                    .into(),
            ))
        }
        Err(accounts::CreateError::Db(e)) => return Err(e.into()),
    };
    let cookie = sign_in(
        &st,
        &account,
        visitor.as_ref().map(|v| &v.0),
        session.as_ref().map(|s| &s.0),
    )
    .await?;
    tracing::info!(user = account.id, "account created");
    Ok(with_cookies(
        (StatusCode::CREATED, Json(me_json(&account))).into_response(),
        &[cookie],
    ))
}

/// `POST /api/auth/login {email, password}` — 200 and a fresh session.
pub async fn login(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    visitor: Option<Extension<VisitorKey>>,
    session: Option<Extension<SessionHash>>,
    form: Result<Json<LoginForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    let wrong = || ApiError::Unauthorized("The email or password is not right.".into());
    if f.email.len() > auth::MAX_EMAIL || f.password.chars().count() > auth::MAX_PASSWORD {
        return Err(wrong());
    }
    st.auth.check_rate(ip, Some(&f.email))?;
    let account = accounts::by_email(&st.db, &f.email).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    if !st.auth.verify(hash, &f.password).await {
        return Err(wrong());
    }
    let Some(account) = account else {
        return Err(wrong());
    };
    if account.banned {
        return Err(ApiError::Forbidden(
            "This account is suspended. Contact the site's admins if you think this is a mistake."
                .into(),
        ));
    }
    let cookie = sign_in(
        &st,
        &account,
        visitor.as_ref().map(|v| &v.0),
        session.as_ref().map(|s| &s.0),
    )
    .await?;
    Ok(with_cookies(
        Json(me_json(&account)).into_response(),
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
    })
}
