//! The OAuth sign-in routes: the browser is sent to the provider with a single-use `state` in a
//! cookie, and comes back to the callback, which checks that cookie before the accounts domain
//! (`accounts::oauth`) completes the sign-in. Failures land on the log-in page with a code.
use crate::{
    accounts::{oauth, OAUTH_COOKIE},
    http::api::auth::{sign_in, with_cookies},
    http::client_ip::ClientIp,
    http::identity::{cookie_value, Browser},
    http::state::AppState,
};
use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};

fn login_error(code: &str) -> Response {
    Redirect::to(&format!("/login?error={code}")).into_response()
}

#[derive(serde::Deserialize, Default)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /auth/{provider}/start?next=/path` — redirects to the provider.
pub async fn start(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    if !oauth::configured(&st.config, &name) {
        return login_error("provider");
    }
    // Each start stores a flow row: the same per-client limit as log-ins.
    if st.auth.check_rate(&st.db, ip, None).await.is_err() {
        return login_error("too_many");
    }
    let next = app::url::safe_next(q.next.as_deref());
    match oauth::start(&st.db, &st.config, &name, &next).await {
        Ok(Some(started)) => with_cookies(
            Redirect::to(&started.authorize_url).into_response(),
            &[st.auth.oauth_cookie(&started.state)],
        ),
        Ok(None) => login_error("provider"),
        Err(e) => {
            tracing::error!(error = %e, "could not store the OAuth flow");
            login_error("unavailable")
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/{provider}/callback?code&state` — checks the state against the browser's cookie,
/// then the accounts domain checks the stored flow (single use), exchanges the code with the
/// PKCE verifier and finds the account; then signs in.
pub async fn callback(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
    browser: Browser,
) -> Response {
    let clear = st.auth.expired_cookie(OAUTH_COOKIE);
    let fail = |code: &str| with_cookies(login_error(code), std::slice::from_ref(&clear));
    if !oauth::configured(&st.config, &name) {
        return fail("provider");
    }
    let (Some(state), cookie) = (q.state.as_deref(), cookie_value(&headers, OAUTH_COOKIE)) else {
        return fail("state");
    };
    // The state must be the one this browser was sent off with.
    if !cookie.is_some_and(|c| crate::secrets::same(c, state)) || state.len() > 200 {
        return fail("state");
    }
    let completed = oauth::complete(
        &st.db,
        &st.config,
        &name,
        state,
        q.code.as_deref(),
        q.error.is_some(),
    )
    .await;
    let (account, next) = match completed {
        Ok(done) => done,
        Err(e) => {
            match e.code() {
                "unavailable" => {
                    tracing::error!(provider = name, error = %e, "OAuth sign-in failed")
                }
                _ => tracing::info!(provider = name, error = %e, "OAuth sign-in refused"),
            }
            return fail(e.code());
        }
    };
    match sign_in(&st, &account, &browser).await {
        Ok(cookie) => with_cookies(Redirect::to(&next).into_response(), &[cookie, clear]),
        Err(e) => {
            tracing::error!(error = %e, "OAuth sign-in failed");
            fail("unavailable")
        }
    }
}
