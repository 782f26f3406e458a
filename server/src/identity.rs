//! Who is asking. Visitors get a signed cookie identity on their first request, so a visitor's
//! Try works from any HTTP client that keeps cookies. Also the CSRF guard for state-changing calls.
use crate::state::AppState;
use app::model::Identity;
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const VISITOR_COOKIE: &str = "trythis_vid";

/// Signs and checks cookie values with the instance secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, value: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// `value.signature`
    pub fn sign(&self, value: &str) -> String {
        format!("{value}.{}", self.mac(value))
    }

    /// The value if the signature is right.
    pub fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, sig) = signed.rsplit_once('.')?;
        let expected = self.mac(value);
        // Constant-time comparison of the hex strings.
        let same = expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then_some(value)
    }
}

/// 128 random bits as lower-case base32 (26 chars): sandbox ids and visitor ids.
pub fn random_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; 17] = rand::random();
    let mut out = String::with_capacity(27);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 && out.len() < 26 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

fn cookie_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Attaches an `Identity` to every request, minting a signed visitor cookie when there is none.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let signer = &state.signer;
    let existing = cookie_value(&req, VISITOR_COOKIE)
        .and_then(|c| signer.verify(c))
        .filter(|v| v.len() == 26 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string);
    let (visitor, fresh) = match existing {
        Some(v) => (v, false),
        None => (random_id(), true),
    };
    req.extensions_mut().insert(Identity {
        key: format!("v:{visitor}"),
        signed_in: false,
        is_admin: false,
    });
    let mut resp = next.run(req).await;
    if fresh {
        let secure = if state.config.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{VISITOR_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}",
            signer.sign(&visitor)
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// CSRF guard: a state-changing POST must be JSON (a cross-site form cannot send that without a
/// CORS preflight, which this server never grants), and any state-changing call that says where
/// it comes from must come from this site.
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        // Forms can only POST; other methods cross-site need a preflight, which is never granted.
        let json = *req.method() != Method::POST
            || req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
        let origin_ok = match req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        {
            None | Some("null") => true,
            Some(origin) => {
                origin == state.config.public_url
                    || req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .is_some_and(|host| origin.ends_with(&format!("://{host}")))
            }
        };
        if !json || !origin_ok {
            return crate::error::ApiError::Forbidden(
                "This request was refused as a possible cross-site request: send it as JSON (Content-Type: application/json) from this site."
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
    fn signed_values_verify_and_tampering_fails() {
        let s = Signer::new(b"k".repeat(32));
        let signed = s.sign("abc");
        assert_eq!(s.verify(&signed), Some("abc"));
        assert_eq!(s.verify(&signed.replace("abc", "abd")), None);
        assert_eq!(s.verify("abc"), None);
        assert_eq!(Signer::new(b"other".to_vec()).verify(&signed), None);
    }

    #[test]
    fn random_ids_are_26_base32_chars_and_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 26);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        assert_ne!(a, b);
    }
}
