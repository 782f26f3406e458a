//! One Try: a sandbox container's whole life, kept after it ends (history, trending, metrics).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sandboxes")]
pub struct Model {
    /// Unguessable id (128 random bits, base32).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `v:<visitor id>` or `u:<user id>`; `pool` for an unassigned warm-pool member (stored as
    /// its text).
    pub owner: vocab::OwnerKey,
    pub project_id: i32,
    pub project_slug: String,
    /// Category at launch time, so statistics survive a project's re-categorisation.
    pub category: String,
    /// See `states::SandboxState` (stored as its text).
    pub state: vocab::SandboxState,
    /// True while the sandbox holds its owner's single slot; a partial unique index enforces one per owner.
    pub active: bool,
    pub container_id: Option<String>,
    pub image: String,
    pub created_at: DateTimeUtc,
    pub ready_at: Option<DateTimeUtc>,
    pub expires_at: DateTimeUtc,
    pub last_activity_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    /// Stored as its spelling (`EndReason::as_str`).
    pub end_reason: Option<vocab::EndReason>,
    pub launch_ms: Option<i64>,
    pub extensions: i32,
    pub client_ip: Option<String>,
    /// The sandbox node it runs on (cluster runtime); None on a single engine.
    pub node: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
