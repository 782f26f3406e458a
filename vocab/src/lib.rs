//! The words the server, the database and the pages share.
//!
//! Every state, status, end reason, role, owner key, share mode and choice that crosses the wire
//! or the database is one of these types, never a bare string: each has one stored spelling (its
//! `as_str`, also its JSON form), and `parse` reads it back. The crate depends on serde only, so
//! the browser's WASM bundle uses the same types; with the `sea-orm` feature (the `db` crate's)
//! they are also columns.

mod end_reason;
mod node;
mod owner;
mod problem;
mod share;
mod states;
pub mod url;
mod words;

pub use end_reason::EndReason;
pub use node::SandboxNode;
pub use owner::{BadOwnerKey, OwnerKey};
pub use problem::FieldProblem;
pub use share::ShareMode;
pub use states::{BuildState, ProjectStatus, SandboxState};
pub use words::{LinkKind, LinkState, ProjectFate, Role, UnknownWord};
