//! Helpers the benchmarks share.

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A new visitor as a browser has it once the page loaded: (visitor cookie, CSRF token).
pub async fn visitor_credentials(http: &reqwest::Client, base: &str) -> Result<(String, String)> {
    let resp = http.get(format!("{base}/api/me")).send().await?;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("trythis_vid="))
        .and_then(|v| v.split(';').next())
        .ok_or("no visitor cookie")?
        .to_string();
    let me: serde_json::Value = resp.json().await?;
    let csrf = me["csrf_token"]
        .as_str()
        .ok_or("no csrf token")?
        .to_string();
    Ok((cookie, csrf))
}
