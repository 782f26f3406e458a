//! A visitor as a plain HTTP client sees the server: the cookies it is given, its CSRF token and
//! a Try. Shared by the tests and the benchmarks.

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `name=value` of a `Set-Cookie` for `name` in a response, if any.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// A new visitor of the server at `base`, as an HTTP client would start: `GET /api/me` gives the
/// visitor cookie and the CSRF token every state-changing call must carry. (cookie, token)
pub async fn visitor_credentials(
    http: &reqwest::Client,
    base: &str,
) -> Result<(String, String), Error> {
    let resp = http.get(format!("{base}/api/me")).send().await?;
    let cookie = set_cookie(&resp, "trythis_vid").ok_or("no visitor cookie")?;
    let me: serde_json::Value = resp.json().await?;
    let csrf = me["csrf_token"]
        .as_str()
        .ok_or("no csrf token")?
        .to_string();
    Ok((cookie, csrf))
}

/// The visitor presses Try on `slug`: its sandbox id.
pub async fn press_try(
    http: &reqwest::Client,
    base: &str,
    slug: &str,
    (cookie, csrf): (&str, &str),
) -> Result<String, Error> {
    let resp = http
        .post(format!("{base}/api/projects/{slug}/try"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    if !status.is_success() {
        return Err(format!("try answered {status}: {body}").into());
    }
    Ok(body["id"].as_str().ok_or("no id")?.to_string())
}
