//! The signed-in person's account: password, API tokens, deletion. Browser sessions only: an API
//! token cannot manage the account it belongs to.
use super::{auth::with_cookies, body};
use crate::http::client_ip::ClientIp;
use crate::lifecycle::Leaving;
use crate::{
    accounts as auth,
    accounts::mail::Mail,
    http::error::{ApiError, ApiResult},
    http::identity::Browser,
    http::state::AppState,
    secrets::{random_secret, sha256_hex},
};
use app::model::{ApiToken, ApiTokens, Identity, MailSent, NewToken, NewTokenRequest, ProjectFate};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Extension, Json,
};
use db::accounts::{self, LinkPurpose};

/// The account behind a browser session, or 401/403.
pub async fn account_of(st: &AppState, me: &Identity) -> ApiResult<accounts::Account> {
    let Some(user) = &me.user else {
        return Err(ApiError::Unauthorized(
            "Please log in to manage your account.".into(),
        ));
    };
    if me.via_token {
        return Err(ApiError::Forbidden(
            "API tokens cannot manage accounts; use the account page.".into(),
        ));
    }
    accounts::by_id(&st.db, user.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("Please log in again.".into()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    new: String,
    /// Also revoke every API token (the account page's `#revoke-tokens` box).
    #[serde(default)]
    revoke_tokens: bool,
}

/// `POST /api/me/password {current, new, revoke_tokens?}` — 204. Every other session ends; this
/// one is renewed; with `revoke_tokens` every API token is revoked too.
pub async fn change_password(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    ClientIp(ip): ClientIp,
    browser: Browser,
    form: Result<Json<PasswordForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    let account = account_of(&st, &me).await?;
    if let Some(m) = auth::password_problem(&f.new, &account.email) {
        return Err(ApiError::field("new", m));
    }
    st.auth.check_rate(&st.db, ip, Some(&account.email)).await?;
    if account.password_hash.is_some()
        && !st
            .auth
            .verify(account.password_hash.as_deref(), &f.current)
            .await
    {
        return Err(ApiError::field(
            "current",
            "Your current password is not right.",
        ));
    }
    if let Some(m) = auth::password_problem(&f.new, &account.email) {
        return Err(ApiError::field("new", m));
    }
    let hash = st.auth.hash(&f.new).await?;
    accounts::set_password(&st.db, account.id, hash).await?;
    accounts::delete_other_sessions(&st.db, account.id, None).await?;
    if f.revoke_tokens {
        let n = accounts::revoke_all_tokens(&st.db, account.id).await?;
        tracing::info!(
            user = account.id,
            tokens = n,
            "API tokens revoked with a password change"
        );
    }
    // Signed in already: only the session is renewed, there is no visitor history to adopt.
    let browser = Browser {
        visitor: None,
        ..browser
    };
    let cookie = super::auth::sign_in(&st, &account, &browser).await?;
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        &[cookie],
    ))
}

/// `POST /api/me/verify-email` — 202: a verification link to the account's address (accounts
/// from before addresses were verified; a verified one gets 200 and no mail).
pub async fn send_verification(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    ClientIp(ip): ClientIp,
    browser: Browser,
) -> ApiResult<Response> {
    let account = account_of(&st, &me).await?;
    if account.email_verified_at.is_some() {
        return Ok(Json(MailSent {
            email: account.email,
        })
        .into_response());
    }
    st.auth.check_rate(&st.db, ip, Some(&account.email)).await?;
    let token = random_secret();
    accounts::put_account_link(
        &st.db,
        &sha256_hex(&token),
        LinkPurpose::Verify,
        &account,
        super::auth::browser_hash(&browser),
    )
    .await?;
    st.mail.send(&account.email, Mail::VerifyAddress { token });
    Ok((
        StatusCode::ACCEPTED,
        Json(MailSent {
            email: account.email,
        }),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteForm {
    /// The password, for accounts that have one.
    #[serde(default)]
    password: String,
    /// The account's email typed again, for accounts without a password (OAuth only).
    #[serde(default)]
    confirm_email: String,
    /// `hide` or `hand_over` (missing: the form's field problem).
    #[serde(default)]
    projects: Option<ProjectFate>,
    #[serde(default)]
    successor_email: String,
}

/// `POST /api/me/delete` — 204. Stops the person's sandboxes, hides or hands over their
/// projects, deletes their personal data, keeps try statistics under an anonymous key. The answer
/// never tells whether the successor's email has an account: if it has none (or is suspended),
/// the projects are hidden; if it has, its owner gets a mail.
pub async fn delete_account(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    ClientIp(ip): ClientIp,
    form: Result<Json<DeleteForm>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    let account = account_of(&st, &me).await?;
    st.auth.check_rate(&st.db, ip, Some(&account.email)).await?;
    if account.password_hash.is_some() {
        if !st
            .auth
            .verify(account.password_hash.as_deref(), &f.password)
            .await
        {
            return Err(ApiError::field("password", "Your password is not right."));
        }
    } else if accounts::fold_email(&f.confirm_email) != account.email {
        return Err(ApiError::field(
            "confirm_email",
            "Type your account's email address to confirm.",
        ));
    }
    let Some(projects) = f.projects else {
        return Err(ApiError::field(
            "projects",
            "Choose whether to hide your projects or hand them over.",
        ));
    };
    let leaving = Leaving {
        projects,
        successor_email: f.successor_email,
    };
    st.lifecycle.delete_account(&account, &leaving).await?;
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        &[st.auth.expired_cookie(auth::SESSION_COOKIE)],
    ))
}

fn api_token(t: &accounts::Token) -> ApiToken {
    ApiToken {
        id: t.id,
        name: t.name.clone(),
        hint: format!("…{}", t.hint),
        created_at: t.created_at.to_rfc3339(),
        last_used_at: t.last_used_at.map(|d| d.to_rfc3339()),
        admin: t.admin,
    }
}

/// `GET /api/me/tokens`
pub async fn list_tokens(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
) -> ApiResult<Json<ApiTokens>> {
    let account = account_of(&st, &me).await?;
    let tokens = accounts::tokens_of(&st.db, account.id).await?;
    Ok(Json(ApiTokens {
        tokens: tokens.iter().map(api_token).collect(),
    }))
}

/// `POST /api/me/tokens {name, admin?}` — 201 with the token itself, shown this once.
pub async fn create_token(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    form: Result<Json<NewTokenRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let f = body(form)?;
    let account = account_of(&st, &me).await?;
    if f.admin && !me.is_admin {
        return Err(ApiError::field(
            "admin",
            "Only admins can create admin tokens.",
        ));
    }
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "Give the token a name of 1 to 60 characters (for example \"GitHub Actions\").",
        ));
    }
    if accounts::count_tokens(&st.db, account.id).await? >= auth::MAX_TOKENS {
        return Err(ApiError::Quota(format!(
            "You have {} tokens, the most an account may have. Revoke one first.",
            auth::MAX_TOKENS
        )));
    }
    let secret = format!("tt_{}", crate::secrets::random_secret());
    let hint = secret[secret.len() - 4..].to_string();
    let t = accounts::create_token(
        &st.db,
        account.id,
        name,
        &crate::secrets::sha256_hex(&secret),
        &hint,
        f.admin,
    )
    .await?;
    let out = NewToken {
        token: api_token(&t),
        secret,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /api/me/tokens/{id}` — 204.
pub async fn revoke_token(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let account = account_of(&st, &me).await?;
    let id: i32 = id
        .parse()
        .map_err(|_| ApiError::NotFound("There is no such token.".into()))?;
    if accounts::revoke_token(&st.db, account.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("There is no such token.".into()))
    }
}
