//! The JSON API of ARCHITECTURE.md §3, plus health, metrics, badges and the terminal proxy.
pub mod account;
pub mod admin;
pub mod auth;
pub mod badge;
pub mod builds;
pub mod files;
pub mod health;
pub mod projects;
pub mod sandboxes;
pub mod shares;
pub mod terminal;

use crate::http::error::{ApiError, ApiResult};
use axum::{extract::rejection::JsonRejection, Json};

/// Turns axum's JSON rejection into our error shape (a 400 naming the problem, never a 500).
pub fn body<T>(r: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    r.map(|Json(v)| v).map_err(|e| {
        ApiError::bad(
            "bad_json",
            format!(
                "The request body is not what this call expects: {}",
                e.body_text()
            ),
        )
    })
}
