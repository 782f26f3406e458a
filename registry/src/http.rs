//! Plain registry-API HTTP for what oci-client does not offer (catalog, delete, blob copy):
//! one registry endpoint with its credentials and the distribution token flow
//! (`401` + `WWW-Authenticate: Bearer realm=…` → token from the realm → retry).

use crate::RegistryError;
use reqwest::{header, Client, RequestBuilder, Response, StatusCode, Url};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Manifests are small (distribution refuses more than 4 MiB).
pub(crate) const MANIFEST_LIMIT: usize = 4 << 20;

/// Builds the HTTP client for the platform's registry.
pub(crate) fn build_client() -> Result<Client, String> {
    crate::install_crypto_provider();
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())
}

/// The client for an import's source (a registry users choose): every connection through
/// `proxy` (the platform's egress proxy, which resolves names and refuses private, loopback and
/// link-local addresses, again for every redirect), redirects only to HTTPS (or, for a registry
/// the operator listed for plain HTTP, to the same `plain_origin`), at most five.
pub(crate) fn build_source_client(
    proxy: Option<&str>,
    plain_origin: Option<&str>,
) -> Result<Client, String> {
    crate::install_crypto_provider();
    let plain_origin = plain_origin.map(str::to_ascii_lowercase);
    let mut builder = Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        // Never the machine's own proxy settings: only the one given, or none (tests).
        .no_proxy()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if source_url_allowed(attempt.url(), plain_origin.as_deref()) {
                attempt.follow()
            } else {
                attempt.error("a redirect to plain HTTP was refused (only HTTPS is followed)")
            }
        }));
    if let Some(proxy) = proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| e.to_string())?);
    }
    builder.build().map_err(|e| e.to_string())
}

/// HTTPS anywhere; plain HTTP only to `plain_origin` (`host:port` of a registry an operator
/// listed for plain HTTP).
pub(crate) fn source_url_allowed(url: &Url, plain_origin: Option<&str>) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => plain_origin.is_some_and(|o| {
            let here = match (url.host_str(), url.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}").to_ascii_lowercase(),
                _ => return false,
            };
            here == o || here == format!("{o}:80")
        }),
        _ => false,
    }
}

/// One registry: where it is, how to log in, and the bearer tokens it handed out (per scope).
pub(crate) struct Endpoint {
    client: Result<Client, String>,
    /// `host[:port]`, for messages.
    pub host: String,
    /// `http(s)://host:port`, no trailing slash.
    pub base: String,
    basic: Option<(String, String)>,
    /// An import's source (chosen by a user): token realms must pass [`source_url_allowed`], and
    /// "access denied" means the image is private (only public images are imported).
    source: Option<Option<String>>,
    tokens: Mutex<HashMap<String, String>>,
}

impl Endpoint {
    pub fn new(
        client: Result<Client, String>,
        plain_http: bool,
        host: &str,
        basic: Option<(String, String)>,
    ) -> Self {
        let scheme = if plain_http { "http" } else { "https" };
        Self {
            client,
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            basic,
            source: None,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// An import's source, anonymous: see [`build_source_client`].
    pub fn source(client: Result<Client, String>, plain_http: bool, host: &str) -> Self {
        let mut ep = Self::new(client, plain_http, host, None);
        ep.source = Some(plain_http.then(|| host.to_ascii_lowercase()));
        ep
    }

    /// Like [`response_error`]; from an import's source, 401 and 403 mean a private image.
    pub async fn error(&self, res: Response, what: &str) -> RegistryError {
        if self.source.is_some() && matches!(res.status().as_u16(), 401 | 403) {
            return RegistryError::Private(what.to_string());
        }
        response_error(res, what).await
    }

    pub fn client(&self) -> Result<&Client, RegistryError> {
        self.client
            .as_ref()
            .map_err(|e| RegistryError::Protocol(format!("HTTP client unavailable: {e}")))
    }

    /// `{base}/v2/{path}`.
    pub fn v2(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// `host/repo`, how people name a repository.
    pub fn name(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host)
    }

    fn cached(&self, scope: &str) -> Option<String> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned()
    }

    fn remember(&self, scope: &str, token: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() > 256 {
            tokens.clear();
        }
        tokens.insert(scope.to_string(), token.to_string());
    }

    /// Sends the request built by `build` with the best credentials we have for `scope`
    /// (`repository:NAME:pull`, `registry:catalog:*`, …); on a bearer challenge fetches a token
    /// and sends it once more. The response is returned whatever its status.
    pub async fn send(
        &self,
        scope: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let client = self.client()?;
        let token = self.cached(scope);
        let req = match (&token, &self.basic) {
            (Some(t), _) => build(client).bearer_auth(t),
            (None, Some((u, p))) => build(client).basic_auth(u, Some(p)),
            (None, None) => build(client),
        };
        let res = req.send().await.map_err(transport)?;
        if res.status() != StatusCode::UNAUTHORIZED {
            return Ok(res);
        }
        let Some(challenge) = res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_bearer_challenge)
        else {
            return Ok(res);
        };
        let token = self.fetch_token(client, &challenge, scope).await?;
        self.remember(scope, &token);
        build(client)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(transport)
    }

    async fn fetch_token(
        &self,
        client: &Client,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(&challenge.realm).map_err(|e| {
            RegistryError::Protocol(format!("bad token realm {:?}: {e}", challenge.realm))
        })?;
        if let Some(plain) = &self.source {
            if !source_url_allowed(&url, plain.as_deref()) {
                return Err(RegistryError::Protocol(format!(
                    "the registry sent us to {url} for a token: only HTTPS is used"
                )));
            }
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                q.append_pair("service", service);
            }
            q.append_pair("scope", scope);
        }
        let mut req = client.get(url);
        if let Some((u, p)) = &self.basic {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await.map_err(transport)?;
        let status = res.status();
        if !status.is_success() {
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.source.is_some() => {
                    RegistryError::Private(format!("a token for {scope}"))
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Protocol(
                    format!("the registry's token service refused access ({status})"),
                ),
                s => status_error(s, "token service"),
            });
        }
        let body = read_limited(res, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Protocol(format!("token response: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol("token response without a token".into()))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub service: Option<String>,
}

/// `Bearer realm="…",service="…",scope="a:b:pull,push"` (quoted values may contain commas).
pub(crate) fn parse_bearer_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut chars = params.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                val.push(c);
            }
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(val),
            "service" => service = Some(val),
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        service,
    })
}

/// Connection-level failures are `Unreachable` (retry later); the rest is a protocol problem.
pub(crate) fn transport(e: reqwest::Error) -> RegistryError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        source = s.source();
    }
    if e.is_builder() || e.is_redirect() || e.is_decode() {
        RegistryError::Protocol(msg)
    } else {
        RegistryError::Unreachable(msg)
    }
}

/// An unexpected status: 404 → `NotFound`, busy/overloaded → `Unreachable`, else `Protocol`.
pub(crate) fn status_error(status: StatusCode, what: &str) -> RegistryError {
    match status.as_u16() {
        404 => RegistryError::NotFound(what.to_string()),
        429 | 502..=504 => {
            RegistryError::Unreachable(format!("{what}: the registry answered {status}"))
        }
        401 | 403 => RegistryError::Protocol(format!("{what}: access denied ({status})")),
        _ => RegistryError::Protocol(format!("{what}: the registry answered {status}")),
    }
}

/// Like [`status_error`], with the registry's own error message when it sent one.
pub(crate) async fn response_error(res: Response, what: &str) -> RegistryError {
    let status = res.status();
    let detail = read_limited(res, 64 << 10)
        .await
        .ok()
        .and_then(|body| error_message(&body));
    match (status_error(status, what), detail) {
        (RegistryError::Protocol(m), Some(d)) => RegistryError::Protocol(format!("{m}: {d}")),
        (e, _) => e,
    }
}

/// The first message of an OCI error envelope `{"errors":[{"code":…,"message":…}]}`.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let first = env.errors.into_iter().next()?;
        return Some(match (first.code, first.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (c, m) => c.or(m)?,
        });
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(300).collect())
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut res: Response,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let mut buf = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol(format!(
                "response larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        let c = parse_bearer_challenge(r#"bearer scope="a,b", realm=https://h/t"#);
        assert_eq!(c.map(|c| c.realm), Some("https://h/t".into()));
        assert_eq!(parse_bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(parse_bearer_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn sources_follow_only_https_or_their_listed_plain_origin() {
        let ok = |u: &str, plain: Option<&str>| {
            Url::parse(u).is_ok_and(|u| source_url_allowed(&u, plain))
        };
        assert!(ok("https://production.cloudflare.docker.com/x", None));
        assert!(
            ok("https://10.0.0.1/x", None),
            "addresses are the proxy's to check"
        );
        assert!(!ok("http://example.com/x", None));
        assert!(!ok("http://127.0.0.1:5000/x", None));
        assert!(ok("http://127.0.0.1:5000/v2/", Some("127.0.0.1:5000")));
        assert!(!ok("http://127.0.0.1:5001/v2/", Some("127.0.0.1:5000")));
        assert!(!ok("http://10.0.0.1:5000/v2/", Some("127.0.0.1:5000")));
        assert!(ok("http://localhost/v2/", Some("localhost")));
        assert!(!ok("ftp://127.0.0.1:5000/x", Some("127.0.0.1:5000")));
    }

    #[test]
    fn error_envelopes_give_the_message() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(error_message(b"  ").as_deref(), None);
    }
}
