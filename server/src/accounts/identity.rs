//! Who is asking. Visitors get a signed cookie identity on their first request, so a visitor's
//! Try works from any HTTP client that keeps cookies. Signed-in browsers have a session cookie;
//! API clients a Bearer token. Also the CSRF guard for state-changing calls.
use crate::{secrets::random_id, state::AppState};
use app::model::{Identity, UserBrief};
use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

pub const VISITOR_COOKIE: &str = "trythis_vid";

pub fn cookie_value<'a>(req: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    req.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The visitor key of this browser (kept when it signs in, so its history can be adopted).
#[derive(Debug, Clone)]
pub struct VisitorKey(pub String);

/// The hash of the session this request came with, if it is live (logout, password change).
#[derive(Debug, Clone)]
pub struct SessionHash(pub String);

/// This browser as a sign-in sees it: its visitor key (whose history the account adopts) and
/// the session it came with (replaced, so a session id planted before sign-in is worthless).
#[derive(Debug, Clone)]
pub struct Browser {
    pub visitor: Option<VisitorKey>,
    pub session: Option<SessionHash>,
}

impl<S: Send + Sync> FromRequestParts<S> for Browser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            visitor: parts.extensions.get().cloned(),
            session: parts.extensions.get().cloned(),
        })
    }
}

pub fn user_brief(u: &db::accounts::Account) -> UserBrief {
    UserBrief {
        id: u.id,
        email: u.email.clone(),
        name: u.name.clone(),
        role: u.role.clone(),
        has_password: u.password_hash.is_some(),
        email_verified: u.email_verified_at.is_some(),
    }
}

fn account_identity(u: &db::accounts::Account, csrf: String, via_token: bool) -> Identity {
    Identity {
        key: db::accounts::key_of(u.id),
        signed_in: true,
        is_admin: u.role == db::accounts::ROLE_ADMIN,
        user: Some(user_brief(u)),
        csrf,
        via_token,
    }
}

/// Attaches an `Identity` to every request: an API token (`Authorization: Bearer`), else a live
/// session cookie, else the signed visitor cookie (minted on the first request).
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Static files need nobody's identity: no session lookup, no cookie, for every asset.
    let path = req.uri().path();
    if req.method() == Method::GET && crate::http::assets::is_static(path) {
        return next.run(req).await;
    }
    let signer = &state.signer;
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let account = if token.is_empty() || token.len() > 200 {
            None
        } else {
            match db::accounts::token_account(&state.db, &crate::secrets::sha256_hex(token)).await {
                Ok(a) => a,
                Err(e) => return crate::http::error::ApiError::from(e).into_response(),
            }
        };
        let Some((account, admin_token)) = account else {
            return crate::http::error::ApiError::Unauthorized(
                "This API token is not valid: it may have been revoked or mistyped. Send `Authorization: Bearer <token>` with a token from your account page."
                    .into(),
            )
            .into_response();
        };
        let mut identity = account_identity(&account, String::new(), true);
        // A token is an admin only if it was created as one: a leaked CI token of an admin
        // account does not carry the admin pages.
        identity.is_admin &= admin_token;
        req.extensions_mut().insert(identity);
        return next.run(req).await;
    }
    let existing = cookie_value(req.headers(), VISITOR_COOKIE)
        .and_then(|c| signer.verify(c))
        .filter(|v| v.len() == 26 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string);
    let (visitor, fresh) = match existing {
        Some(v) => (v, false),
        None => (random_id(), true),
    };
    // A client past its budget of new identities gets a throwaway one: no cookie, so its CSRF
    // token is never valid again and it can start nothing.
    let keep = fresh
        && state
            .auth
            .may_mint_visitor(crate::http::client_ip::of_request(
                req.extensions(),
                req.headers(),
                &state.config.trusted_proxies,
            ));
    let mut stale_session = false;
    let mut identity = None;
    if let Some(token) = cookie_value(req.headers(), crate::accounts::SESSION_COOKIE) {
        let hash = crate::secrets::sha256_hex(token);
        match db::accounts::session_account(&state.db, &hash).await {
            Ok(Some(account)) => {
                let csrf = signer.tag(&format!("csrf:s:{hash}"));
                identity = Some(account_identity(&account, csrf, false));
                req.extensions_mut().insert(SessionHash(hash));
            }
            Ok(None) => stale_session = true,
            Err(e) => return crate::http::error::ApiError::from(e).into_response(),
        }
    }
    let identity = identity.unwrap_or_else(|| Identity {
        key: format!("v:{visitor}"),
        signed_in: false,
        is_admin: false,
        user: None,
        csrf: signer.tag(&format!("csrf:v:{visitor}")),
        via_token: false,
    });
    req.extensions_mut().insert(identity);
    req.extensions_mut()
        .insert(VisitorKey(format!("v:{visitor}")));
    if fresh {
        req.extensions_mut()
            .insert(crate::http::page_cache::NewVisitor);
    }
    let mut resp = next.run(req).await;
    let mut cookies = Vec::new();
    if keep {
        cookies.push(
            state
                .auth
                .cookie(VISITOR_COOKIE, &signer.sign(&visitor), 31_536_000),
        );
    }
    if stale_session && !resp.headers().contains_key(header::SET_COOKIE) {
        cookies.push(state.auth.expired_cookie(crate::accounts::SESSION_COOKIE));
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// CSRF guard for every state-changing request: it must carry the page's CSRF token in
/// `x-csrf-token` (a cross-site page cannot read it), or be an API-token request (no ambient
/// credentials). A request without cookies gets no pass: it would act as a brand-new visitor,
/// which is how an iframe on any page could start Tries from its visitors' browsers. A request
/// that names its origin must come from this site; `Origin: null` (sandboxed frames, `data:`
/// pages) only with an API token.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        let identity = req.extensions().get::<Identity>();
        let via_token = identity.is_some_and(|i| i.via_token);
        let origin_ok = match req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            None => true,
            Some("null") => via_token,
            Some(origin) => {
                origin == state.config.public_url
                    || req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .is_some_and(|host| origin.ends_with(&format!("://{host}")))
            }
        };
        let token_ok = via_token
            || match (
                identity,
                req.headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok()),
            ) {
                (Some(id), Some(sent)) => crate::secrets::same(&id.csrf, sent),
                _ => false,
            };
        if !origin_ok || !token_ok {
            return crate::http::error::ApiError::Forbidden(
                "This request was refused as a possible cross-site request: reload the page and try again (API clients: send the x-csrf-token from GET /api/me, or use an API token)."
                    .into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}
