//! One module per route; page components end in `Page`.
pub mod account;
pub mod admin;
pub mod auth;
pub mod build;
pub mod containers;
pub mod edit;
pub mod home;
pub mod not_found;
pub mod project;
pub mod publish;
pub mod search;
pub mod try_link;
pub mod watch;
