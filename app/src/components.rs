//! Components shared by several pages.
pub mod footer;
pub mod header;
pub mod project_card;
pub mod try_panel;
