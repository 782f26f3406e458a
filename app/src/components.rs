//! Components shared by several pages.
pub mod field_problems;
pub mod flash;
pub mod footer;
pub mod header;
pub mod project_card;
pub mod project_fields;
pub mod sandbox_tools;
pub mod share_panel;
pub mod try_panel;
