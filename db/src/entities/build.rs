//! One build of a project's image: queued → running → pushing → (checking →) succeeded / failed / cancelled.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "builds")]
pub struct Model {
    /// Random lower-case base32 id; also the image tag (`{namespace}/{slug}:{id}`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub project_id: i32,
    pub project_slug: String,
    /// Identity key of whoever asked for the build.
    pub owner: vocab::OwnerKey,
    /// `dockerfile` or `script` (then `source` is the install script it was converted from).
    pub source_kind: String,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    /// The Dockerfile actually built.
    #[sea_orm(column_type = "Text")]
    pub dockerfile: String,
    /// See `states::BuildState` (stored as its text).
    pub state: vocab::BuildState,
    pub step: i32,
    pub steps: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The build output (capped; the tail is kept).
    #[sea_orm(column_type = "Text")]
    pub log: String,
    pub image_repo: Option<String>,
    pub image_tag: Option<String>,
    pub image_digest: Option<String>,
    pub image_size: Option<i64>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// The smoke check run in a sandbox of the new image before it goes live (None: no check).
    #[sea_orm(column_type = "Text", nullable)]
    pub check_command: Option<String>,
    /// Text the check's output must contain (None: its exit status alone decides).
    #[sea_orm(column_type = "Text", nullable)]
    pub check_expect: Option<String>,
    /// The replica (app server) running the build, while it runs.
    pub runner: Option<String>,
    /// When the runner last said it still runs the build; a build whose runner stopped renewing
    /// is taken over by another replica (`builds::take_over`).
    pub heartbeat_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
