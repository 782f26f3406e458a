//! Accounts: password hashing (argon2id), database sessions, API tokens, sign-in rate limits and
//! the field rules of every account form. HTTP handlers live in `api::auth` and `api::account`.
pub mod mail;
pub mod oauth;

use crate::config::AuthConfig;
use crate::secrets::{random_secret, sha256_hex};
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use db::accounts::{self, Account};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use vocab::FieldProblem;

pub const SESSION_COOKIE: &str = "trythis_session";
pub const OAUTH_COOKIE: &str = "trythis_oauth";
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 80;
pub const MAX_TOKENS: u64 = 20;

/// Why an account operation was refused or failed; `http::error` maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{} problem(s) with the form", .0.len())]
    Invalid(Vec<FieldProblem>),
    #[error("Too many attempts. Please wait {retry_after_secs} seconds and try again.")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("{0} has not verified its email address, so it cannot become admin: verify it from the account page (or reset the password), then try again")]
    Unverified(String),
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error("An account with this email address exists already.")]
    EmailTaken,
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
}

impl From<accounts::CreateError> for AuthError {
    fn from(e: accounts::CreateError) -> Self {
        match e {
            accounts::CreateError::EmailTaken => AuthError::EmailTaken,
            accounts::CreateError::Db(e) => AuthError::Db(e),
        }
    }
}

impl AuthError {
    /// One problem with one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AuthError::Invalid(vec![FieldProblem::new(field, message)])
    }
}

pub struct Auth {
    pub config: AuthConfig,
    secure_cookies: bool,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed on (account, client): attempts from elsewhere never lock the owner out.
    per_account: DefaultKeyedRateLimiter<(String, IpAddr)>,
    /// New visitor identities per client: each one could hold a sandbox slot and a queue place.
    visitors_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// argon2id takes ~19 MiB and tens of milliseconds per hash: bounded so a burst of sign-ins
    /// queues instead of exhausting memory.
    hashing: Arc<Semaphore>,
    /// Verified against when the email is unknown, so both answers take as long.
    dummy_hash: String,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// `n` a minute for `key`, counted by every replica (`db::cluster::check_rate`): the wait
/// when refused.
pub async fn shared_limit(
    db: &db::DatabaseConnection,
    key: &str,
    n: u32,
) -> Result<Option<Duration>, db::DbErr> {
    db::cluster::check_rate(db, key, n, Duration::from_secs(60)).await
}

fn too_many(wait: Duration) -> AuthError {
    AuthError::TooManyAttempts {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

impl Auth {
    pub fn new(config: AuthConfig, public_url: &str) -> Self {
        let dummy_hash = hash_blocking("not a real password, only for timing").unwrap_or_default();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            per_ip: RateLimiter::keyed(per_minute(config.per_ip_per_minute)),
            per_account: RateLimiter::keyed(per_minute(config.per_account_per_minute)),
            visitors_per_ip: RateLimiter::keyed(per_minute(config.visitors_per_ip_per_minute)),
            config,
            secure_cookies: public_url.starts_with("https://"),
            hashing: Arc::new(Semaphore::new(workers * 2)),
            dummy_hash,
        }
    }

    /// One sign-up, log-in or password attempt from client `ip` (and for `account`, when known).
    /// This process's limiter answers first (no database work for a flood); then the same limits
    /// counted in the database, which every replica shares.
    pub async fn check_rate(
        &self,
        db: &db::DatabaseConnection,
        ip: IpAddr,
        account: Option<&str>,
    ) -> Result<(), AuthError> {
        use governor::clock::{Clock, DefaultClock};
        let now = DefaultClock::default().now();
        if let Err(n) = self.per_ip.check_key(&ip) {
            return Err(too_many(n.wait_time_from(now)));
        }
        let account = account.map(accounts::fold_email);
        if let Some(a) = &account {
            if let Err(n) = self.per_account.check_key(&(a.clone(), ip)) {
                return Err(too_many(n.wait_time_from(now)));
            }
        }
        let per_ip = self.config.per_ip_per_minute;
        if let Some(wait) = shared_limit(db, &format!("signin-ip:{ip}"), per_ip).await? {
            return Err(too_many(wait));
        }
        if let Some(a) = &account {
            // Hashed: the table holds no email addresses.
            let key = format!("signin-account:{}", sha256_hex(&format!("{ip}|{a}")));
            let n = self.config.per_account_per_minute;
            if let Some(wait) = shared_limit(db, &key, n).await? {
                return Err(too_many(wait));
            }
        }
        Ok(())
    }

    /// Whether client `ip` may get another new visitor identity now (this process's limiter,
    /// then the one every replica shares; a database that does not answer says no).
    pub async fn may_mint_visitor(&self, db: &db::DatabaseConnection, ip: IpAddr) -> bool {
        if self.visitors_per_ip.check_key(&ip).is_err() {
            return false;
        }
        let n = self.config.visitors_per_ip_per_minute;
        matches!(
            shared_limit(db, &format!("visitors-ip:{ip}"), n).await,
            Ok(None)
        )
    }

    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?;
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || hash_blocking(&pw))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// Whether `password` matches `hash` (None: unknown account, checked against a dummy).
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let (h, known) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&h)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(pw.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        ok && known
    }

    /// Creates a database session; returns the cookie's token.
    pub async fn start_session(
        &self,
        db: &db::DatabaseConnection,
        user_id: i32,
    ) -> Result<String, AuthError> {
        let token = random_secret();
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.session_lifetime)
                .unwrap_or(chrono::Duration::days(30));
        accounts::create_session(db, &sha256_hex(&token), user_id, expires).await?;
        accounts::touch_login(db, user_id).await?;
        Ok(token)
    }

    /// A cookie of this site: HttpOnly, SameSite=Lax, Secure when served over HTTPS.
    pub fn cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }

    pub fn session_cookie(&self, token: &str) -> String {
        self.cookie(
            SESSION_COOKIE,
            token,
            self.config.session_lifetime.as_secs(),
        )
    }

    pub fn expired_cookie(&self, name: &str) -> String {
        self.cookie(name, "", 0)
    }

    pub fn oauth_cookie(&self, state: &str) -> String {
        self.cookie(OAUTH_COOKIE, state, accounts::FLOW_MINUTES as u64 * 60)
    }
}

fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AuthError::Hashing(format!("salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hashing(format!("argon2: {e}")))?
        .to_string())
}

/// A plausible address: one `@`, a dotted domain, no spaces or control characters.
pub fn email_problem(email: &str) -> Option<String> {
    let e = email.trim();
    if e.is_empty() {
        return Some("Enter your email address.".into());
    }
    if e.len() > MAX_EMAIL {
        return Some(format!(
            "An email address has at most {MAX_EMAIL} characters."
        ));
    }
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    (!ok).then(|| "This does not look like an email address (name@example.org).".into())
}

pub fn password_problem(password: &str, email: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Some(format!(
            "Choose a password of at least {MIN_PASSWORD} characters."
        ));
    }
    if n > MAX_PASSWORD {
        return Some(format!("A password has at most {MAX_PASSWORD} characters."));
    }
    if !email.is_empty() && accounts::fold_email(password) == accounts::fold_email(email) {
        return Some("Your password must not be your email address.".into());
    }
    None
}

pub fn name_problem(name: &str) -> Option<String> {
    let n = name.trim().chars().count();
    if n > MAX_NAME {
        return Some(format!("A name has at most {MAX_NAME} characters."));
    }
    name.chars()
        .any(char::is_control)
        .then(|| "A name is one line of text.".into())
}

/// Field-level check of a sign-up (its password is chosen on the mailed link's page).
pub fn check_signup(email: &str, name: &str) -> Result<(), AuthError> {
    let mut problems = Vec::new();
    if let Some(m) = email_problem(email) {
        problems.push(FieldProblem::new("email", m));
    }
    if let Some(m) = name_problem(name) {
        problems.push(FieldProblem::new("name", m));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AuthError::Invalid(problems))
    }
}

/// The display name: what the person gave, else the email's local part.
pub fn display_name(name: &str, email: &str) -> String {
    let n = name.trim();
    if n.is_empty() {
        email.split('@').next().unwrap_or(email).to_string()
    } else {
        n.to_string()
    }
}

/// Creates or promotes the configured first admin. With a password given, a new account gets it;
/// otherwise a random one, returned so the caller can show it once.
pub async fn ensure_admin(
    auth: &Auth,
    db: &db::DatabaseConnection,
    email: &str,
    password: Option<&str>,
) -> Result<(Account, Option<String>), AuthError> {
    if let Some(m) = email_problem(email) {
        return Err(AuthError::field("email", m));
    }
    if let Some(existing) = accounts::by_email(db, email).await? {
        // Promotion only: an admin stays one (accounts from before verification are unverified).
        if existing.role != accounts::Role::Admin && existing.email_verified_at.is_none() {
            return Err(AuthError::Unverified(existing.email));
        }
        if existing.role != accounts::Role::Admin {
            accounts::set_role(db, existing.id, accounts::Role::Admin).await?;
        }
        return Ok((existing, None));
    }
    let (pw, generated) = match password {
        Some(p) => (p.to_string(), None),
        None => {
            let p = random_secret()[..20].to_string();
            (p.clone(), Some(p))
        }
    };
    if let Some(m) = password_problem(&pw, email) {
        return Err(AuthError::field("password", m));
    }
    let hash = auth.hash(&pw).await?;
    let account = accounts::create(
        db,
        email,
        &display_name("", email),
        Some(hash),
        accounts::Role::Admin,
    )
    .await?;
    Ok((account, generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked() {
        assert!(email_problem("a@b.org").is_none());
        assert!(email_problem(" A@B.org ").is_none());
        for bad in [
            "",
            "a",
            "a@b",
            "@b.org",
            "a@@b.org",
            "a b@c.org",
            "a@.org",
            "a@b.org.",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
        assert!(email_problem(&format!("{}@b.org", "a".repeat(260))).is_some());
    }

    #[test]
    fn passwords_are_checked() {
        assert!(password_problem("correct horse", "a@b.org").is_none());
        assert!(password_problem("short", "a@b.org").is_some());
        assert!(password_problem(&"x".repeat(129), "a@b.org").is_some());
        assert!(password_problem("Long@Email.org", "long@email.org").is_some());
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_blocking("correct horse").expect("hash");
        let b = hash_blocking("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        let parsed = PasswordHash::new(&a).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
    }
}
