//! sea-orm entities, one module per table.
pub mod api_token;
pub mod build;
pub mod email_token;
pub mod oauth_flow;
pub mod oauth_link;
pub mod project;
pub mod sandbox;
pub mod session;
pub mod setting;
pub mod share;
pub mod user;
