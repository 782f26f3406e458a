//! Outgoing mail: the links that prove an address (finish a sign-up, reset a password, verify an
//! address) and notices. Sent through SMTP (`TRYTHIS_SMTP_URL`) or, on a site without a relay,
//! written as `.eml` files under `{dir}/{recipient}/`. Requests never wait for a mail and never
//! learn whether one went out: answers must not tell whether an address has an account.
use crate::config::MailConfig;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lettre::{
    message::{header::ContentType, Body, Mailbox, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::{num::NonZeroU32, path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("TRYTHIS_SMTP_URL is not a usable SMTP URL: {0}")]
    SmtpUrl(String),
    #[error("TRYTHIS_MAIL_FROM {0:?} is not an address (trythis <noreply@example.org>)")]
    From(String),
    #[error("mail directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One mail the site sends. Tokens are the links' secrets: never logged.
pub enum Mail {
    /// Opens the account a sign-up asked for; `next` is where the person was going (a local path).
    ConfirmSignup {
        token: String,
        next: String,
    },
    /// Someone signed up with an address that already has an account.
    AlreadyRegistered,
    ResetPassword {
        token: String,
    },
    VerifyAddress {
        token: String,
    },
    /// A leaving account handed its projects to this one.
    ProjectsHandedOver {
        count: u64,
    },
}

impl Mail {
    fn kind(&self) -> &'static str {
        match self {
            Self::ConfirmSignup { .. } => "confirm_signup",
            Self::AlreadyRegistered => "already_registered",
            Self::ResetPassword { .. } => "reset_password",
            Self::VerifyAddress { .. } => "verify_address",
            Self::ProjectsHandedOver { .. } => "projects_handed_over",
        }
    }

    /// Subject and plain text (ASCII; the links, longer than a mail line, go out quoted-printable).
    fn compose(&self, site: &str) -> (String, String) {
        let ignore = "If this was not you, ignore this mail: nothing changes.";
        match self {
            Self::ConfirmSignup { token, next } => {
                let then = match vocab::url::safe_next(Some(next)).as_str() {
                    "/" => String::new(),
                    local => format!("&next={}", vocab::url::urlencode(local)),
                };
                (
                    "Confirm your email to finish signing up".into(),
                    format!(
                        "Welcome to trythis!\n\nOpen this link to confirm your email address, choose \
                         your password\nand finish creating your account (it works once, for 24 \
                         hours):\n\n\
                         {site}/verify?token={token}{then}\n\n{ignore}\n"
                    ),
                )
            }
            Self::AlreadyRegistered => (
                "You already have a trythis account".into(),
                format!(
                    "Someone (maybe you) tried to sign up with this address, which\nalready has \
                     an account. Log in here:\n\n{site}/login\n\nForgot your password? Reset it \
                     here:\n\n{site}/reset\n\n{ignore}\n"
                ),
            ),
            Self::ResetPassword { token } => (
                "Reset your trythis password".into(),
                format!(
                    "Open this link to choose a new password (it works once, for 30\nminutes). \
                     Every browser signed in to your account is signed out.\n\n\
                     {site}/reset?token={token}\n\n{ignore}\n"
                ),
            ),
            Self::VerifyAddress { token } => (
                "Verify your email address".into(),
                format!(
                    "Open this link to verify the email address of your trythis\naccount (it \
                     works once, for 24 hours):\n\n{site}/verify?token={token}\n\n{ignore}\n"
                ),
            ),
            Self::ProjectsHandedOver { count } => (
                "You now maintain projects on trythis".into(),
                format!(
                    "A maintainer who left trythis handed you {count} project(s). You\ncan see \
                     and publish them from your account:\n\n{site}/account\n"
                ),
            ),
        }
    }
}

enum Outbox {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(PathBuf),
}

pub struct Mailer {
    from: Mailbox,
    site: String,
    queue: mpsc::Sender<(String, &'static str, Message)>,
    per_address: DefaultKeyedRateLimiter<String>,
    describe: String,
}

/// Mails waiting to go out; beyond that, new ones are dropped (and logged).
const QUEUE: usize = 1000;

impl Mailer {
    /// Checks the settings; returns the mailer and its outbox, the delivery worker the job runner
    /// runs (mails queue until it does).
    pub fn new(
        config: &MailConfig,
        public_url: &str,
    ) -> Result<
        (
            Arc<Self>,
            impl std::future::Future<Output = ()> + Send + 'static,
        ),
        MailError,
    > {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| MailError::From(config.from.clone()))?;
        let (outbox, describe) = match &config.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::SmtpUrl(e.to_string()))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build();
                let shown = url.rsplit('@').next().unwrap_or(url);
                (Outbox::Smtp(transport), format!("SMTP {shown}"))
            }
            None => {
                std::fs::create_dir_all(&config.dir).map_err(|source| MailError::Dir {
                    path: config.dir.clone(),
                    source,
                })?;
                (
                    Outbox::Dir(config.dir.clone()),
                    format!("files in {}", config.dir.display()),
                )
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let hourly = NonZeroU32::new(config.per_address_per_hour).unwrap_or(NonZeroU32::MIN);
        let mailer = Arc::new(Self {
            from,
            site: public_url.trim_end_matches('/').to_string(),
            queue: tx,
            per_address: RateLimiter::keyed(Quota::per_hour(hourly)),
            describe,
        });
        Ok((mailer, deliver(outbox, rx)))
    }

    /// Where mails go, for the start-up log.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Queues `mail` to `to` and returns at once. Whether it goes out (the address's hourly
    /// allowance, a full queue, the relay) never reaches the caller's answer; it is logged.
    pub fn send(&self, to: &str, mail: Mail) {
        let to = db::accounts::fold_email(to);
        let kind = mail.kind();
        if self.per_address.check_key(&to).is_err() {
            tracing::warn!(kind, "mail not sent: the address had its hourly allowance");
            return;
        }
        let Ok(mailbox) = to.parse::<Mailbox>() else {
            tracing::warn!(kind, "mail not sent: the recipient is not an address");
            return;
        };
        let (subject, text) = mail.compose(&self.site);
        let body = Body::new(text);
        let message = Message::builder()
            .from(self.from.clone())
            .to(mailbox)
            .subject(subject)
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            );
        match message {
            Ok(m) => {
                if self.queue.try_send((to, kind, m)).is_err() {
                    tracing::warn!(kind, "mail not sent: the outgoing queue is full");
                }
            }
            Err(e) => tracing::warn!(kind, error = %e, "mail not composed"),
        }
    }
}

async fn deliver(outbox: Outbox, mut rx: mpsc::Receiver<(String, &'static str, Message)>) {
    while let Some((to, kind, message)) = rx.recv().await {
        let result = match &outbox {
            Outbox::Smtp(t) => send_with_retries(t, &message).await,
            Outbox::Dir(dir) => {
                write_file(dir, &to, &message.formatted()).map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(()) => tracing::debug!(kind, "mail sent"),
            Err(e) => tracing::warn!(kind, error = %e, "mail not delivered"),
        }
    }
}

async fn send_with_retries(
    t: &AsyncSmtpTransport<Tokio1Executor>,
    message: &Message,
) -> Result<(), String> {
    let mut wait = Duration::from_secs(1);
    let mut last = String::new();
    for _ in 0..3 {
        match t.send(message.clone()).await {
            Ok(_) => return Ok(()),
            // A permanent refusal (unknown recipient, policy) does not get better by retrying.
            Err(e) if e.is_permanent() => return Err(e.to_string()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(wait).await;
        wait *= 5;
    }
    Err(last)
}

/// The directory of one recipient's mails: the address, with anything but `[a-z0-9@._+-]` made `_`
/// (it can never climb out of `dir`).
pub fn recipient_dir(dir: &std::path::Path, to: &str) -> PathBuf {
    let name: String = db::accounts::fold_email(to)
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '@' | '.' | '_' | '+' | '-' => c,
            _ => '_',
        })
        .collect();
    dir.join(name.trim_start_matches('.'))
}

fn write_file(dir: &std::path::Path, to: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = recipient_dir(dir, to);
    std::fs::create_dir_all(&d)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let name = format!("{stamp}-{}.eml", &crate::secrets::random_id()[..6]);
    // The links inside are secrets: readable by the site's user only, and never half-written.
    let tmp = d.join(format!(".{name}.tmp"));
    crate::secrets::write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, d.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_dirs_stay_inside() {
        let root = std::path::Path::new("/m");
        assert_eq!(
            recipient_dir(root, "Ann@Example.org"),
            root.join("ann@example.org")
        );
        assert_eq!(
            recipient_dir(root, "../../etc/x@y.z"),
            root.join("_.._etc_x@y.z")
        );
        assert_eq!(recipient_dir(root, "a/b@c.d"), root.join("a_b@c.d"));
    }

    #[test]
    fn links_are_whole_lines_of_ascii() {
        let token = "a".repeat(64);
        let (_, text) = Mail::ConfirmSignup {
            token: token.clone(),
            next: "/p/jq?tab=1".into(),
        }
        .compose("https://trythis.example");
        assert!(text.is_ascii());
        assert!(text
            .lines()
            .any(|l| l
                == format!("https://trythis.example/verify?token={token}&next=/p/jq%3Ftab%3D1")));
        // Only local paths ride along.
        let (_, text) = Mail::ConfirmSignup {
            token: token.clone(),
            next: "//evil.example".into(),
        }
        .compose("https://trythis.example");
        assert!(text.contains(&format!("token={token}\n")));
    }
}
