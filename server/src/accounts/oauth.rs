//! Sign-in with GitHub and Google: OAuth 2 authorization code with PKCE (S256) and a single-use
//! `state` bound to the browser by a cookie. Endpoints come from configuration, so tests run the
//! whole dance against a local provider. An account is found by its provider identity, else
//! linked by a verified email, else created.
use crate::{
    accounts::identity::{cookie_value, Browser},
    accounts::OAUTH_COOKIE,
    config::OAuthProvider,
    http::api::auth::{sign_in, with_cookies},
    secrets::sha256_hex,
    state::AppState,
};
use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use db::accounts;
use oauth2::{
    basic::BasicClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, TokenUrl,
};
use std::{future::Future, pin::Pin, time::Duration};

/// The HTTP client oauth2 uses: the workspace's reqwest, no redirects, short timeouts.
pub struct Http(reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Http {
    /// Fails only where no TLS backend can start; a client without the no-redirect policy and
    /// the timeouts is never a fallback.
    pub fn new() -> Result<Self, reqwest::Error> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent("trythis")
            .build()
            .map(Self)
    }
}

/// Why a provider sign-in did not produce an account. `code` is what the log-in page explains.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the provider's answer names no usable account id")]
    BadSubject,
    #[error("the provider gave no verified email address")]
    NoEmail,
    #[error("an account with this email address never verified it")]
    Unverified,
    #[error("provider request: {0}")]
    Provider(#[from] reqwest::Error),
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
    #[error("account: {0}")]
    Create(#[from] accounts::CreateError),
}

impl OAuthError {
    /// The log-in page's `?error=` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::BadSubject | OAuthError::Provider(_) => "exchange",
            OAuthError::NoEmail => "no_email",
            OAuthError::Unverified => "unverified",
            OAuthError::Db(_) | OAuthError::Create(_) => "unavailable",
        }
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let req = reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
            let resp = self
                .0
                .execute(req)
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            let mut out = oauth2::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let body = resp.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            out.body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A configured provider: its name, settings and OAuth client (redirecting to our callback).
fn provider<'a>(st: &'a AppState, name: &str) -> Option<(&'static str, &'a OAuthProvider, Client)> {
    let (name, p) = match name {
        "github" => ("github", st.config.auth.github.as_ref()?),
        "google" => ("google", st.config.auth.google.as_ref()?),
        _ => return None,
    };
    let redirect = format!("{}/auth/{name}/callback", st.config.public_url);
    let client = BasicClient::new(ClientId::new(p.client_id.clone()))
        .set_client_secret(ClientSecret::new(p.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(p.auth_url.clone()).ok()?)
        .set_token_uri(TokenUrl::new(p.token_url.clone()).ok()?)
        .set_redirect_uri(RedirectUrl::new(redirect).ok()?);
    Some((name, p, client))
}

fn scopes(name: &str) -> &'static [&'static str] {
    if name == "github" {
        &["read:user", "user:email"]
    } else {
        &["openid", "email", "profile"]
    }
}

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
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some((name, _, client)) = provider(&st, &name) else {
        return login_error("provider");
    };
    // Each start stores a flow row: the same per-client limit as log-ins.
    if st.auth.check_rate(ip, None).is_err() {
        return login_error("too_many");
    }
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes(name) {
        req = req.add_scope(Scope::new((*s).to_string()));
    }
    let (url, state) = req.url();
    let next = app::url::safe_next(q.next.as_deref());
    if let Err(e) = accounts::put_flow(
        &st.db,
        &sha256_hex(state.secret()),
        name,
        verifier.secret(),
        &next,
    )
    .await
    {
        tracing::error!(error = %e, "could not store the OAuth flow");
        return login_error("unavailable");
    }
    with_cookies(
        Redirect::to(url.as_str()).into_response(),
        &[st.auth.oauth_cookie(state.secret())],
    )
}

#[derive(serde::Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// What a provider says about the person.
struct Profile {
    subject: String,
    email: Option<String>,
    name: String,
}

async fn github_profile(
    http: &reqwest::Client,
    api: &str,
    token: &str,
) -> Result<Profile, OAuthError> {
    #[derive(serde::Deserialize)]
    struct User {
        id: i64,
        login: String,
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Email {
        email: String,
        primary: bool,
        verified: bool,
    }
    let get = |path: &str| {
        http.get(format!("{api}{path}"))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .send()
    };
    let user: User = get("/user")
        .await
        .and_then(|r| r.error_for_status())?
        .json()
        .await?;
    let emails: Vec<Email> = get("/user/emails")
        .await
        .and_then(|r| r.error_for_status())?
        .json()
        .await?;
    let email = emails
        .iter()
        .filter(|e| e.verified)
        .max_by_key(|e| e.primary)
        .map(|e| e.email.clone());
    Ok(Profile {
        subject: user.id.to_string(),
        email,
        name: user
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(user.login),
    })
}

async fn google_profile(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<Profile, OAuthError> {
    #[derive(serde::Deserialize)]
    struct Info {
        sub: String,
        email: Option<String>,
        #[serde(default)]
        email_verified: bool,
        name: Option<String>,
    }
    let info: Info = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status())?
        .json()
        .await?;
    Ok(Profile {
        subject: info.sub,
        email: info.email.filter(|_| info.email_verified),
        name: info.name.unwrap_or_default(),
    })
}

/// `GET /auth/{provider}/callback?code&state` — checks the state against the browser's cookie
/// and the stored flow (single use), exchanges the code with the PKCE verifier, then signs in.
pub async fn callback(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
    browser: Browser,
) -> Response {
    let clear = st.auth.expired_cookie(OAUTH_COOKIE);
    let fail = |code: &str| with_cookies(login_error(code), std::slice::from_ref(&clear));
    let Some((name, p, client)) = provider(&st, &name) else {
        return fail("provider");
    };
    let (Some(state), cookie) = (q.state.as_deref(), cookie_value(&headers, OAUTH_COOKIE)) else {
        return fail("state");
    };
    // The state must be the one this browser was sent off with, and a live, unused flow.
    if !cookie.is_some_and(|c| crate::secrets::same(c, state)) || state.len() > 200 {
        return fail("state");
    }
    let flow = match accounts::take_flow(&st.db, &sha256_hex(state)).await {
        Ok(Some(f)) if f.provider == name => f,
        Ok(_) => return fail("state"),
        Err(e) => {
            tracing::error!(error = %e, "could not read the OAuth flow");
            return fail("unavailable");
        }
    };
    if q.error.is_some() {
        return fail("denied");
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 2000) else {
        return fail("state");
    };
    let http = match Http::new() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for OAuth");
            return fail("unavailable");
        }
    };
    let token = match client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&http)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(provider = name, error = %e, "OAuth code exchange refused");
            return fail("exchange");
        }
    };
    let access = token.access_token().secret();
    let profile = if name == "github" {
        github_profile(&http.0, &p.profile_url, access).await
    } else {
        google_profile(&http.0, &p.profile_url, access).await
    };
    let profile = match profile {
        Ok(pr) => pr,
        Err(e) => {
            tracing::warn!(provider = name, error = %e, "OAuth profile request failed");
            return fail("exchange");
        }
    };
    let account = match find_or_create(&st, name, &profile).await {
        Ok(a) => a,
        Err(e) => {
            if e.code() == "unavailable" {
                tracing::error!(provider = name, error = %e, "OAuth sign-in failed");
            } else {
                tracing::info!(provider = name, error = %e, "OAuth sign-in refused");
            }
            return fail(e.code());
        }
    };
    if account.banned {
        return fail("suspended");
    }
    match sign_in(&st, &account, &browser).await {
        Ok(cookie) => with_cookies(Redirect::to(&flow.next).into_response(), &[cookie, clear]),
        Err(e) => {
            tracing::error!(error = %e, "OAuth sign-in failed");
            fail("unavailable")
        }
    }
}

/// The provider identity's account; else the account with the same verified email, linked now;
/// else a new account.
async fn find_or_create(
    st: &AppState,
    provider: &str,
    profile: &Profile,
) -> Result<accounts::Account, OAuthError> {
    let db = &st.db;
    if profile.subject.is_empty() || profile.subject.len() > 200 {
        return Err(OAuthError::BadSubject);
    }
    if let Some(a) = accounts::linked_account(db, provider, &profile.subject).await? {
        return Ok(a);
    }
    let Some(email) = profile
        .email
        .as_deref()
        .filter(|e| crate::accounts::email_problem(e).is_none())
    else {
        return Err(OAuthError::NoEmail);
    };
    let account = match accounts::by_email(db, email).await? {
        // Whoever made this account never proved the address: linking would hand the provider's
        // user an account whose password someone else may know.
        Some(a) if a.email_verified_at.is_none() => return Err(OAuthError::Unverified),
        Some(a) => a,
        None => {
            let name: String = crate::accounts::display_name(&profile.name, email)
                .chars()
                .filter(|c| !c.is_control())
                .take(crate::accounts::MAX_NAME)
                .collect();
            accounts::create(db, email, &name, None, accounts::Role::User).await?
        }
    };
    accounts::link(db, account.id, provider, &profile.subject).await?;
    Ok(account)
}
