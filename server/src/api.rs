//! The JSON API of ARCHITECTURE.md §3, plus health, metrics, badges and the terminal proxy.
pub mod badge;
pub mod builds;
pub mod health;
pub mod projects;
pub mod sandboxes;
pub mod terminal;
