//! A project in the catalogue.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    /// `fold(name)`: search ranks exact and prefix name matches on it.
    pub name_fold: String,
    pub summary: String,
    pub description: String,
    pub category: String,
    /// Comma-separated, lower-case.
    pub tags: String,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    /// Repository in the platform's registry, e.g. `127.0.0.1:5000/trythis/jq`.
    pub image_repo: Option<String>,
    /// `sha256:…` of the image the project serves; a Try always starts this digest.
    pub image_digest: Option<String>,
    pub image_size: Option<i64>,
    /// Printed in the terminal before the first prompt.
    pub welcome: Option<String>,
    /// Opt-in network egress for sandboxes (default: network none).
    pub egress: bool,
    /// See `states::ProjectStatus` (stored as its text).
    pub status: vocab::ProjectStatus,
    pub owner_id: Option<i32>,
    /// Identity key (`v:…` / `u:…`) of who published the project and may rebuild it; None for the
    /// starter catalogue.
    pub maintainer: Option<vocab::OwnerKey>,
    pub tries: i64,
    /// Shown in Explore, search, trending and the home page. An unlisted project (waiting for an
    /// admin's review under moderation) is reachable by its link, and Try and its badge work.
    pub listed: bool,
    /// Lower-cased, accent-folded name+summary+tags+category, for search.
    pub search_text: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
