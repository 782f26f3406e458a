//! sea-orm entities, one module per table.
pub mod project;
pub mod sandbox;
pub mod setting;
