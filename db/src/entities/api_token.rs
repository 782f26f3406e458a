//! A personal API token (Bearer), stored as its SHA-256; shown to its owner once.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// The token's last four characters, so its owner can tell tokens apart.
    pub hint: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    /// Carries its account's admin role (only admins create such tokens); otherwise the token
    /// acts as a plain user even for an admin.
    pub admin: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
