//! Sign-in with GitHub and Google: OAuth 2 authorization code with PKCE (S256) and a single-use
//! `state` stored as a flow row (the edge binds it to the browser by a cookie). Endpoints come
//! from configuration, so tests run the whole dance against a local provider. An account is
//! found by its provider identity, else linked by a verified email, else created.
use crate::{config::Config, secrets::sha256_hex};
use db::{accounts, DatabaseConnection};
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
    #[error("the provider refused the code: {0}")]
    Exchange(String),
    #[error("the sign-in was not started here, was used, or expired")]
    State,
    #[error("no HTTP client: {0}")]
    Client(String),
    #[error("the person declined at the provider")]
    Denied,
    #[error("the account is suspended")]
    Suspended,
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
    #[error("account: {0}")]
    Create(#[from] accounts::CreateError),
}

impl OAuthError {
    /// The log-in page's `?error=` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::BadSubject | OAuthError::Provider(_) | OAuthError::Exchange(_) => {
                "exchange"
            }
            OAuthError::State => "state",
            OAuthError::Denied => "denied",
            OAuthError::Suspended => "suspended",
            OAuthError::NoEmail => "no_email",
            OAuthError::Unverified => "unverified",
            OAuthError::Db(_) | OAuthError::Create(_) | OAuthError::Client(_) => "unavailable",
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
fn provider<'a>(
    config: &'a Config,
    name: &str,
) -> Option<(&'static str, &'a crate::config::OAuthProvider, Client)> {
    let (name, p) = match name {
        "github" => ("github", config.auth.github.as_ref()?),
        "google" => ("google", config.auth.google.as_ref()?),
        _ => return None,
    };
    let redirect = format!("{}/auth/{name}/callback", config.public_url);
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

/// A started sign-in: where to send the browser, and the `state` its cookie must carry back.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
}

/// Starts a sign-in with provider `name` (`None`: not configured here): stores the flow
/// (state hash, PKCE verifier, the page to return to).
pub async fn start(
    db: &DatabaseConnection,
    config: &Config,
    name: &str,
    next: &str,
) -> Result<Option<Started>, OAuthError> {
    let Some((name, _, client)) = provider(config, name) else {
        return Ok(None);
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes(name) {
        req = req.add_scope(Scope::new((*s).to_string()));
    }
    let (url, state) = req.url();
    accounts::put_flow(
        db,
        &sha256_hex(state.secret()),
        name,
        verifier.secret(),
        next,
    )
    .await?;
    Ok(Some(Started {
        authorize_url: url.to_string(),
        state: state.secret().clone(),
    }))
}

/// Whether provider `name` is configured here.
pub fn configured(config: &Config, name: &str) -> bool {
    provider(config, name).is_some()
}

/// Completes a sign-in: takes the stored flow of `state` (single use; it must be this
/// provider's), exchanges `code` with its PKCE verifier, asks the provider who this is, and
/// finds, links or creates the account. Returns it with the page to return to. The caller
/// checks first that `state` is the one this browser was sent off with.
pub async fn complete(
    db: &DatabaseConnection,
    config: &Config,
    name: &str,
    state: &str,
    code: Option<&str>,
    denied: bool,
) -> Result<(accounts::Account, String), OAuthError> {
    let (name, p, client) = provider(config, name).ok_or(OAuthError::State)?;
    let flow = match accounts::take_flow(db, &sha256_hex(state)).await? {
        Some(f) if f.provider == name => f,
        _ => return Err(OAuthError::State),
    };
    if denied {
        return Err(OAuthError::Denied);
    }
    let code = code
        .filter(|c| !c.is_empty() && c.len() <= 2000)
        .ok_or(OAuthError::State)?;
    let http = Http::new().map_err(|e| OAuthError::Client(e.to_string()))?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| OAuthError::Exchange(e.to_string()))?;
    let access = token.access_token().secret();
    let profile = if name == "github" {
        github_profile(&http.0, &p.profile_url, access).await?
    } else {
        google_profile(&http.0, &p.profile_url, access).await?
    };
    let account = find_or_create(db, name, &profile).await?;
    if account.banned {
        return Err(OAuthError::Suspended);
    }
    Ok((account, flow.next))
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

/// The provider identity's account; else the account with the same verified email, linked now;
/// else a new account.
async fn find_or_create(
    db: &DatabaseConnection,
    provider: &str,
    profile: &Profile,
) -> Result<accounts::Account, OAuthError> {
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
