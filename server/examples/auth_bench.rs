//! `scripts/bench.sh` — 1,000 sign-up + log-in flows against the real server (SQLite, argon2id
//! with its default cost), 16 at a time over the loopback. Each flow is what a browser does:
//! fetch its CSRF token, sign up, open the mailed link (the server's file outbox), log out, log
//! in, read `/api/me`. Prints numbers; asserts nothing.
// The visitor's cookies and a scratch directory are used here; the rest serves the other benches.
#[allow(dead_code)]
mod common;
use common::set_cookie as cookie;
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const FLOWS: usize = 1000;
const AT_ONCE: usize = 16;

/// The sign-up link's token, once the mail is in the outbox.
async fn mailed_token(outbox: &std::path::Path, email: &str) -> Result<String> {
    let dir = server::accounts::mail::recipient_dir(outbox, email);
    for _ in 0..500 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "eml") {
                    // Quoted-printable: the long link line is folded with `=` and `=` is `=3D`.
                    let text = std::fs::read_to_string(e.path())?
                        .replace("=\r\n", "")
                        .replace("=\n", "")
                        .replace("=3D", "=");
                    let at = text.find("/verify?token=").ok_or("no link")? + 14;
                    return Ok(text[at..]
                        .chars()
                        .take_while(char::is_ascii_hexdigit)
                        .collect());
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err("no mail within 5 s".into())
}

/// One flow; returns (sign-up ms, link-to-session ms, log-in ms).
async fn flow(
    http: &reqwest::Client,
    base: &str,
    outbox: &std::path::Path,
    n: usize,
) -> Result<(f64, f64, f64)> {
    let resp = http.get(format!("{base}/api/me")).send().await?;
    let visitor = cookie(&resp, "trythis_vid").ok_or("no visitor cookie")?;
    let me: serde_json::Value = resp.json().await?;
    let csrf = me["csrf_token"].as_str().ok_or("no csrf")?.to_string();
    let email = format!("bench{n}@example.test");
    let creds = serde_json::json!({ "email": email, "password": "bench password 123" });
    let post = |path: &str, cookies: String, csrf: String, body: Option<serde_json::Value>| {
        let mut req = http
            .post(format!("{base}{path}"))
            .header("cookie", cookies)
            .header("x-csrf-token", csrf)
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.send()
    };
    let t = Instant::now();
    let r = post(
        "/api/auth/signup",
        visitor.clone(),
        csrf.clone(),
        Some(serde_json::json!({ "email": email })),
    )
    .await?;
    let signup_ms = t.elapsed().as_secs_f64() * 1e3;
    if r.status() != 202 {
        return Err(format!("signup answered {}", r.status()).into());
    }
    let token = mailed_token(outbox, &email).await?;
    let t = Instant::now();
    let r = post(
        "/api/auth/verify",
        visitor.clone(),
        csrf.clone(),
        // The password is chosen on the link's page.
        Some(serde_json::json!({ "token": token, "password": creds["password"] })),
    )
    .await?;
    let verify_ms = t.elapsed().as_secs_f64() * 1e3;
    if r.status() != 201 {
        return Err(format!("the sign-up link answered {}", r.status()).into());
    }
    let session = cookie(&r, "trythis_session").ok_or("no session")?;
    let jar = format!("{visitor}; {session}");
    let me: serde_json::Value = http
        .get(format!("{base}/api/me"))
        .header("cookie", &jar)
        .send()
        .await?
        .json()
        .await?;
    let csrf = me["csrf_token"].as_str().ok_or("no csrf")?.to_string();
    let r = post("/api/auth/logout", jar, csrf.clone(), None).await?;
    if r.status() != 204 {
        return Err(format!("logout answered {}", r.status()).into());
    }
    let t = Instant::now();
    let r = post(
        "/api/auth/login",
        visitor.clone(),
        csrf_of_visitor(http, base, &visitor).await?,
        Some(creds),
    )
    .await?;
    let login_ms = t.elapsed().as_secs_f64() * 1e3;
    if r.status() != 200 {
        return Err(format!("login answered {}", r.status()).into());
    }
    let session = cookie(&r, "trythis_session").ok_or("no session")?;
    let me: serde_json::Value = http
        .get(format!("{base}/api/me"))
        .header("cookie", format!("{visitor}; {session}"))
        .send()
        .await?
        .json()
        .await?;
    if me["user"]["email"] != email.as_str() {
        return Err("signed in as someone else".into());
    }
    Ok((signup_ms, verify_ms, login_ms))
}

async fn csrf_of_visitor(http: &reqwest::Client, base: &str, visitor: &str) -> Result<String> {
    let me: serde_json::Value = http
        .get(format!("{base}/api/me"))
        .header("cookie", visitor)
        .send()
        .await?
        .json()
        .await?;
    Ok(me["csrf_token"].as_str().ok_or("no csrf")?.to_string())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result {
    let (dir, data, db_url) = common::scratch("auth-bench")?;
    // The site's address is where it listens: changes must name it as their Host.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = server::config::Config::from_pairs([
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_PUBLIC_URL", base.as_str()),
        // One client IP sends everything here; the per-IP limit is for real traffic.
        ("TRYTHIS_AUTH_PER_IP_PER_MIN", "1000000"),
        ("TRYTHIS_VISITORS_PER_IP_PER_MIN", "1000000"),
        ("TRYTHIS_MAILS_PER_ADDRESS_PER_HOUR", "5"),
    ])?;
    let outbox = config.mail.dir.clone();
    let state = server::build_state(config).await?;
    let router = server::router(state);
    tokio::spawn(async move {
        let _ = server::serve(listener, router, std::future::pending()).await;
    });
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let results: Vec<Result<(f64, f64, f64)>> = {
        use futures::StreamExt;
        futures::stream::iter(0..FLOWS)
            .map(|n| {
                let http = http.clone();
                let base = base.clone();
                let outbox = outbox.clone();
                async move { flow(&http, &base, &outbox, n).await }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await
    };
    let total = t0.elapsed().as_secs_f64();
    let (mut signup, mut verify, mut login) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0;
    for r in results {
        match r {
            Ok((s, v, l)) => {
                signup.push(s);
                verify.push(v);
                login.push(l);
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("flow failed: {e}");
                }
            }
        }
    }
    println!("auth: {FLOWS} sign-up (mailed link) + log-in flows, {AT_ONCE} at a time: {errors} errors, {total:.1} s total ({:.1} flows/s)", FLOWS as f64 / total);
    println!(
        "auth: sign-up p50 {:.0} ms, p95 {:.0} ms; link p50 {:.0} ms, p95 {:.0} ms; log-in p50 {:.0} ms, p95 {:.0} ms (argon2id m=19 MiB, t=2, p=1)",
        pct(&mut signup, 0.5),
        pct(&mut signup, 0.95),
        pct(&mut verify, 0.5),
        pct(&mut verify, 0.95),
        pct(&mut login, 0.5),
        pct(&mut login, 0.95)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
