//! What the server said about a form's fields (the `problems` of an `invalid` answer): the class
//! of each field's label and the sentences under it, forgotten field by field as the person edits.
use crate::model::FieldProblem;
use leptos::prelude::*;

#[derive(Clone, Copy)]
pub struct FieldProblems(RwSignal<Vec<FieldProblem>>);

impl Default for FieldProblems {
    fn default() -> Self {
        Self(RwSignal::new(Vec::new()))
    }
}

impl FieldProblems {
    pub fn set(self, problems: Vec<FieldProblem>) {
        self.0.set(problems);
    }

    /// Every problem, in the server's order (for a summary list).
    pub fn all(self) -> Vec<FieldProblem> {
        self.0.get()
    }

    /// Whether anything is said about `field`.
    pub fn has(self, field: &'static str) -> impl Fn() -> bool + Copy {
        move || self.0.read().iter().any(|p| p.field == field)
    }

    pub fn is_empty(self) -> bool {
        self.0.read().is_empty()
    }

    /// Forgets what was said about `field` (it is being edited).
    pub fn forget(self, field: &str) {
        self.0.update(|p| p.retain(|x| x.field != field));
    }

    /// The class of `field`'s label: `field invalid` while something is said about it.
    pub fn class_of(self, field: &'static str) -> impl Fn() -> &'static str + Copy {
        move || {
            if self.0.read().iter().any(|p| p.field == field) {
                "field invalid"
            } else {
                "field"
            }
        }
    }

    /// The sentences about `field` (recipe problems with their line).
    pub fn message_of(self, field: &'static str) -> impl Fn() -> String + Copy {
        move || {
            self.0
                .read()
                .iter()
                .filter(|p| p.field == field)
                .map(|p| match p.line {
                    Some(l) => format!("Line {l}: {}", p.message),
                    None => p.message.clone(),
                })
                .collect::<Vec<_>>()
                // One per line (the label's CSS keeps the line breaks).
                .join("\n")
        }
    }
}
