//! The one error type of the HTTP boundary: every failure becomes JSON
//! `{"error": code, "message": sentence}` with the right status. Internals are logged, not shown.
use crate::{
    accounts::AuthError, builds::publish::PublishError, lifecycle::LifecycleError,
    sandbox::SandboxError,
};
use app::model::FieldProblem;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Another project's sandbox is running; the body carries it so the page can ask.
    #[error("You already have a sandbox running. Stop it or confirm replacing it.")]
    SandboxActive(serde_json::Value),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// Capacity full: the request holds a place in line.
    #[error("All sandboxes are busy; you are number {position} in line.")]
    Queued { position: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// A submission with problems, each naming its field (and line, for recipes).
    #[error("{message}")]
    Invalid {
        message: String,
        problems: serde_json::Value,
    },
    #[error("{1}")]
    Conflict(&'static str, String),
    /// Something that was there and is no more (an ended or revoked share link): 410.
    #[error("{1}")]
    Gone(&'static str, String),
    /// A change sent to another host name than the site's (a DNS-rebinding page): 421.
    #[error("This request was sent to another address than the site's: use {site}")]
    WrongHost { site: String },
    /// A publishing quota (projects per account, builds per hour).
    #[error("{0}")]
    Quota(String),
    /// An upload without a `Content-Length` (411).
    #[error("{0}")]
    LengthRequired(String),
    /// An upload over the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The sandbox has no room left (507).
    #[error("{0}")]
    NoSpace(String),
    /// A failure of ours: logged with its causes, answered with a generic sentence.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<db::DbErr> for ApiError {
    fn from(e: db::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

/// An error and its causes on one line: "a: b: c".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
        cause = c.source();
    }
    out
}

/// Each refusal of the sandbox service as the API answers it.
impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        use SandboxError as E;
        let message = e.to_string();
        match e {
            E::NoSuchSandbox | E::NoSuchProject(_) | E::NoSuchShare => ApiError::NotFound(message),
            E::NotYours => ApiError::Forbidden(message),
            E::OtherRunning { id, project } => {
                ApiError::SandboxActive(json!({ "id": id, "project": project }))
            }
            E::TooFast { retry_after_secs } => ApiError::RateLimited {
                message,
                retry_after_secs,
            },
            E::NetworkShare { .. } => ApiError::RateLimited {
                message,
                retry_after_secs: 30,
            },
            E::NetworkLineShare => ApiError::RateLimited {
                message,
                retry_after_secs: 10,
            },
            E::Queued { position } => ApiError::Queued { position },
            E::NoImageYet(_)
            | E::AlreadyStarting
            | E::PreviousStopping
            | E::LineFull
            | E::ImageMissing(_)
            | E::EngineDown(_)
            | E::NotRemovedYet(_) => ApiError::Unavailable(message),
            E::StoppedMeanwhile => ApiError::Conflict("sandbox_ended", message),
            E::Ended => ApiError::bad("sandbox_ended", message),
            E::ExtendLimit => ApiError::bad("extend_limit", message),
            E::ShareRevoked => ApiError::Gone("share_revoked", message),
            E::ShareEnded => ApiError::Gone("share_ended", message),
            E::TooManyShares(_) => ApiError::Conflict("share_limit", message),
            E::RowVanished(_) | E::Runtime(_) | E::Db(_) => ApiError::Internal(e.into()),
        }
    }
}

/// Each refusal of a file transfer as the API answers it.
impl From<crate::sandbox::files::FilesError> for ApiError {
    fn from(e: crate::sandbox::files::FilesError) -> Self {
        use crate::sandbox::files::FilesError as E;
        let message = e.to_string();
        match e {
            E::BadPath(_) => ApiError::bad("bad_path", message),
            E::NotFound(_) => ApiError::NotFound(message),
            E::Denied(_) => ApiError::Forbidden(message),
            E::NoSpace(_) => ApiError::NoSpace(message),
            E::IsDirectory(_) => ApiError::bad("is_directory", message),
            E::Incomplete => ApiError::bad("incomplete", message),
            E::NotRunning => ApiError::bad("sandbox_ended", message),
            E::Failed(_) => ApiError::Internal(e.into()),
        }
    }
}

/// Each refusal of a submission or rebuild as the API answers it.
impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        use PublishError as E;
        let message = e.to_string();
        match e {
            E::Invalid(problems) => invalid(problems),
            E::BuildEngineDown(_) => ApiError::Unavailable(message),
            E::SlugTaken(_) => ApiError::Conflict("slug_taken", message),
            E::BuildActive { .. } => ApiError::Conflict("build_running", message),
            E::TooManyProjects(_)
            | E::HourlyBuilds(_)
            | E::AlreadyWaiting { .. }
            | E::QueueFull(_) => ApiError::Quota(message),
            E::NoSuchProject(_) => ApiError::NotFound(message),
            E::NotMaintainer(_) => ApiError::Forbidden(message),
            E::NoRecipe => ApiError::bad("no_recipe", message),
            E::BadJson(_) => ApiError::bad("bad_json", message),
            E::Db(_) => ApiError::Internal(e.into()),
        }
    }
}

/// Each refusal of a ban, an account's deletion or a project's removal as the API answers it.
impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        use LifecycleError as E;
        match e {
            E::Invalid(problem) => invalid(vec![problem]),
            E::NoAccount => ApiError::NotFound(e.to_string()),
            E::BuildRunning => ApiError::Conflict("build_running", e.to_string()),
            E::Sandbox(s) => s.into(),
            E::Db(_) => ApiError::Internal(e.into()),
        }
    }
}

/// Each refusal of an account operation as the API answers it.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Invalid(problems) => invalid(problems),
            AuthError::TooManyAttempts { retry_after_secs } => ApiError::RateLimited {
                message,
                retry_after_secs,
            },
            AuthError::Unverified(_) => ApiError::bad("unverified", message),
            AuthError::EmailTaken => ApiError::Conflict("email_taken", message),
            AuthError::Hashing(_) | AuthError::Db(_) => ApiError::Internal(e.into()),
        }
    }
}

impl ApiError {
    /// One problem with one field of a form (400 `invalid`).
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        invalid(vec![FieldProblem::new(field, message)])
    }

    pub fn bad(code: &'static str, msg: impl Into<String>) -> Self {
        ApiError::BadRequest(code, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code, extra) = match &self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, *code, None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::SandboxActive(s) => (
                StatusCode::CONFLICT,
                "sandbox_active",
                Some(("sandbox", s.clone())),
            ),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            ApiError::Queued { position } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queued",
                Some(("queue_position", json!(position))),
            ),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            ApiError::Invalid { problems, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid",
                Some(("problems", problems.clone())),
            ),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, *code, None),
            ApiError::Gone(code, _) => (StatusCode::GONE, *code, None),
            ApiError::WrongHost { site } => (
                StatusCode::MISDIRECTED_REQUEST,
                "wrong_host",
                Some(("site", serde_json::Value::String(site.clone()))),
            ),
            ApiError::Quota(_) => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", None),
            ApiError::LengthRequired(_) => (StatusCode::LENGTH_REQUIRED, "length_required", None),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
            ApiError::NoSpace(_) => (StatusCode::INSUFFICIENT_STORAGE, "no_space", None),
            ApiError::Internal(e) => {
                tracing::error!(error = %chain(e.as_ref()), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        let message = if matches!(self, ApiError::Internal(_)) {
            "Something went wrong on our side. Please try again in a moment.".to_string()
        } else {
            message
        };
        let mut body = app::model::ApiErrorBody {
            error: code.to_string(),
            message,
            detail: serde_json::Map::new(),
        };
        if let Some((k, v)) = extra {
            body.detail.insert(k.to_string(), v);
        }
        let mut resp = (status, Json(body)).into_response();
        let retry = match &self {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Queued { .. } => Some(2),
            _ => None,
        };
        if let Some(secs) = retry {
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub fn invalid(problems: Vec<FieldProblem>) -> ApiError {
    let n = problems.len();
    ApiError::Invalid {
        message: if n == 1 {
            format!("Please fix this: {}", describe(&problems[0]))
        } else {
            format!("Please fix these {n} problems.")
        },
        problems: serde_json::json!(problems),
    }
}

fn describe(p: &FieldProblem) -> String {
    match p.line {
        Some(l) => format!("{} line {l}: {}", p.field, p.message),
        None => p.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::runtime::RuntimeError;

    /// Status, `error` code, `Retry-After` and the body's extra field of one answer.
    async fn answer(
        e: impl Into<ApiError>,
    ) -> (u16, String, Option<String>, app::model::ApiErrorBody) {
        let resp = e.into().into_response();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let body: app::model::ApiErrorBody =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("error body: {e}"));
        (status, body.error.clone(), retry, body)
    }

    /// The sandbox service's refusals as the API contract (ARCHITECTURE.md, API) states them.
    #[tokio::test]
    async fn sandbox_refusals_keep_their_documented_answers() {
        let (s, code, _, body) = answer(SandboxError::OtherRunning {
            id: "abc".into(),
            project: "jq".into(),
        })
        .await;
        assert_eq!((s, code.as_str()), (409, "sandbox_active"));
        assert_eq!(body.detail["sandbox"]["project"], "jq");
        let (s, code, retry, body) = answer(SandboxError::Queued { position: 3 }).await;
        assert_eq!(
            (s, code.as_str(), retry.as_deref()),
            (503, "queued", Some("2"))
        );
        assert_eq!(body.detail["queue_position"], 3);
        let (s, code, retry, _) = answer(SandboxError::TooFast {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(
            (s, code.as_str(), retry.as_deref()),
            (429, "rate_limited", Some("7"))
        );
        let (s, code, retry, _) = answer(SandboxError::NetworkShare { running: 2 }).await;
        assert_eq!(
            (s, code.as_str(), retry.as_deref()),
            (429, "rate_limited", Some("30"))
        );
        assert_eq!(answer(SandboxError::LineFull).await.1, "unavailable");
        assert_eq!(answer(SandboxError::NoSuchSandbox).await.0, 404);
        assert_eq!(answer(SandboxError::NotYours).await.0, 403);
        let (s, code, _, _) = answer(SandboxError::Ended).await;
        assert_eq!((s, code.as_str()), (400, "sandbox_ended"));
        let (s, code, _, _) = answer(SandboxError::StoppedMeanwhile).await;
        assert_eq!((s, code.as_str()), (409, "sandbox_ended"));
        assert_eq!(answer(SandboxError::ExtendLimit).await.1, "extend_limit");
        // Share links: unknown 404; ended or revoked 410 with a sentence for the viewer's page.
        assert_eq!(answer(SandboxError::NoSuchShare).await.0, 404);
        let (s, code, _, body) = answer(SandboxError::ShareEnded).await;
        assert_eq!((s, code.as_str()), (410, "share_ended"));
        assert_eq!(body.message, "This session has ended.");
        let (s, code, _, _) = answer(SandboxError::ShareRevoked).await;
        assert_eq!((s, code.as_str()), (410, "share_revoked"));
        let (s, code, _, _) = answer(SandboxError::TooManyShares(10)).await;
        assert_eq!((s, code.as_str()), (409, "share_limit"));
        // Our own failures say nothing of their cause to the visitor.
        let (s, code, _, body) = answer(SandboxError::Runtime(RuntimeError::EngineDown(
            "socket /secret/path refused".into(),
        )))
        .await;
        assert_eq!((s, code.as_str()), (500, "internal"));
        assert!(!body.message.contains("/secret/path"), "{}", body.message);
    }

    /// Publishing and account refusals: statuses, codes and the problems list.
    #[tokio::test]
    async fn publish_and_account_refusals_keep_their_documented_answers() {
        let (s, code, _, body) = answer(PublishError::Invalid(vec![FieldProblem {
            field: "dockerfile".into(),
            line: Some(3),
            message: "ADD <url> is not allowed".into(),
        }]))
        .await;
        assert_eq!((s, code.as_str()), (400, "invalid"));
        assert_eq!(body.problems()[0].line, Some(3));
        assert_eq!(
            answer(PublishError::SlugTaken("jq".into())).await.1,
            "slug_taken"
        );
        let (s, code, _, _) = answer(PublishError::QueueFull(9)).await;
        assert_eq!((s, code.as_str()), (429, "quota_exceeded"));
        let (s, code, _, _) = answer(PublishError::BuildActive {
            state: db::BuildState::Running,
            build: "b1".into(),
        })
        .await;
        assert_eq!((s, code.as_str()), (409, "build_running"));
        assert_eq!(answer(PublishError::NotMaintainer("rebuild")).await.0, 403);
        let (s, code, retry, _) = answer(AuthError::TooManyAttempts {
            retry_after_secs: 12,
        })
        .await;
        assert_eq!(
            (s, code.as_str(), retry.as_deref()),
            (429, "rate_limited", Some("12"))
        );
        let (s, _, _, body) = answer(AuthError::field("email", "Enter your email address.")).await;
        assert_eq!(s, 400);
        assert_eq!(body.problems()[0].field, "email");
        assert_eq!(
            answer(AuthError::Unverified("a@b.org".into())).await.1,
            "unverified"
        );
    }
}
