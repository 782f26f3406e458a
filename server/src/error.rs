//! The one error type of the HTTP boundary: every failure becomes JSON
//! `{"error": code, "message": sentence}` with the right status. Internals are logged, not shown.
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
    /// A publishing quota (projects per account, builds per hour).
    #[error("{0}")]
    Quota(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<db::DbErr> for ApiError {
    fn from(e: db::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
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
            ApiError::Quota(_) => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", None),
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
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

/// One thing wrong with a submission: which field, which line (recipes), what to do.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
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
