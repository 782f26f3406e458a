//! A field-level problem of a submission.
use serde::{Deserialize, Serialize};

/// One thing wrong with a submission: which field, which line (recipes), what to do. The server
/// sends a list of them as `problems` in an `invalid` error; the forms show each under its field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.to_string(),
            line: None,
            message: message.into(),
        }
    }
}
