//! sea-orm entities, one module per table.
pub mod build;
pub mod project;
pub mod sandbox;
pub mod setting;
