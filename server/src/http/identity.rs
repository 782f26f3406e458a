//! Who is asking. Visitors get a signed cookie identity on their first request, so a visitor's
//! Try works from any HTTP client that keeps cookies. Signed-in browsers have a session cookie;
//! API clients a Bearer token. Also the CSRF guard for state-changing calls.
use crate::{http::state::AppState, secrets::random_id};
use app::model::{Identity, OwnerKey, UserBrief};
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
pub struct VisitorKey(pub OwnerKey);

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
        role: u.role,
        has_password: u.password_hash.is_some(),
        email_verified: u.email_verified_at.is_some(),
    }
}

fn account_identity(u: &db::accounts::Account, csrf: String, via_token: bool) -> Identity {
    Identity {
        key: OwnerKey::User(u.id),
        signed_in: true,
        is_admin: u.role == db::accounts::Role::Admin,
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
            .may_mint_visitor(
                &state.db,
                crate::http::client_ip::of_request(
                    req.extensions(),
                    req.headers(),
                    &state.config.trusted_proxies,
                ),
            )
            .await;
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
        key: OwnerKey::Visitor(visitor.clone()),
        signed_in: false,
        is_admin: false,
        user: None,
        csrf: signer.tag(&format!("csrf:v:{visitor}")),
        via_token: false,
    });
    req.extensions_mut().insert(identity);
    req.extensions_mut()
        .insert(VisitorKey(OwnerKey::Visitor(visitor.clone())));
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

/// `scheme://host[:port]` of the site's public URL: the only `Origin` its pages send.
pub fn site_origin(public_url: &str) -> String {
    match public_url.split_once("://") {
        Some((scheme, rest)) => format!(
            "{scheme}://{}",
            rest.split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        ),
        None => public_url.to_string(),
    }
}

/// A `host[:port]` as (name, port), the scheme's default port when none is given.
fn host_and_port(authority: &str, default_port: &str) -> (String, String) {
    let a = authority.trim().to_ascii_lowercase();
    if let Some((h, p)) = a.rsplit_once(':') {
        let bracketed = !h.starts_with('[') || h.ends_with(']');
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && bracketed {
            return (h.to_string(), p.to_string());
        }
    }
    (a, default_port.to_string())
}

/// Whether a `Host` header names the site of `public_url` (same name and port; the scheme's
/// default port may be left out).
pub fn names_site(host: &str, public_url: &str) -> bool {
    let Some((scheme, rest)) = public_url.split_once("://") else {
        return false;
    };
    let default_port = if scheme == "https" { "443" } else { "80" };
    let site = rest.split('/').next().unwrap_or_default();
    !host.is_empty() && host_and_port(host, default_port) == host_and_port(site, default_port)
}

/// The host a request was sent to: `X-Forwarded-Host` when the peer is one of the platform's
/// own proxies (`TRYTHIS_TRUSTED_PROXIES`), else `Host`.
fn requested_host<'a>(req: &'a Request, trusted: &[crate::cidr::Cidr]) -> Option<&'a str> {
    let from_proxy = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| {
            let peer = crate::cidr::canonical(c.0.ip());
            trusted.iter().any(|t| t.contains(peer))
        });
    let forwarded = from_proxy
        .then(|| req.headers().get("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    forwarded.or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// CSRF guard for every state-changing request. It must be sent to the site's own host name
/// (`TRYTHIS_PUBLIC_URL`), else 421 `wrong_host`: a DNS-rebinding page (the attacker's name,
/// resolved to this server) is same-origin with itself and could read a CSRF token, but it
/// cannot send the site's `Host`. It must carry the page's CSRF token in `x-csrf-token` (a
/// cross-site page cannot read it), or be an API-token request (no ambient credentials). A
/// request without cookies gets no pass: it would act as a brand-new visitor, which is how an
/// iframe on any page could start Tries from its visitors' browsers. A request that names its
/// origin must name exactly the site's; `Origin: null` (sandboxed frames, `data:` pages) only
/// with an API token.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        let public_url = &state.config.public_url;
        let host_ok = requested_host(&req, &state.config.trusted_proxies)
            .is_some_and(|h| names_site(h, public_url));
        if !host_ok {
            return crate::http::error::ApiError::WrongHost {
                site: site_origin(public_url),
            }
            .into_response();
        }
        let identity = req.extensions().get::<Identity>();
        let via_token = identity.is_some_and(|i| i.via_token);
        let origin_ok = match req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            None => true,
            Some("null") => via_token,
            Some(origin) => origin.eq_ignore_ascii_case(&site_origin(public_url)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sites_own_host_and_port_name_it() {
        let site = "https://trythis.example";
        for ok in ["trythis.example", "TryThis.Example", "trythis.example:443"] {
            assert!(names_site(ok, site), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "trythis.example:8443",
            "trythis.example.evil.example",
            "evil.trythis.example",
            "trythis.example:80",
        ] {
            assert!(!names_site(bad, site), "{bad}");
        }
        let local = "http://127.0.0.1:3000";
        assert!(names_site("127.0.0.1:3000", local));
        assert!(!names_site("127.0.0.1", local));
        assert!(!names_site("rebind.evil.example:3000", local));
        assert!(names_site("[::1]:8080", "http://[::1]:8080"));
        assert!(!names_site("[::1]", "http://[::1]:8080"));
        assert_eq!(
            site_origin("https://Trythis.example/base"),
            "https://trythis.example"
        );
    }
}
