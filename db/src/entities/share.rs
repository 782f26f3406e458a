//! A share link of a sandbox's terminal: whoever opens it watches (or, in `control` mode, types
//! into) the owner's live shell. The link holds a random token; the table holds only its
//! SHA-256. It ends with its sandbox, or when its owner revokes it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "shares")]
pub struct Model {
    /// Public id (128 random bits, base32): the owner's list and the viewers' socket name it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub sandbox_id: String,
    /// Hex SHA-256 of the link's token.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Stored as its spelling (`ShareMode::as_str`).
    pub mode: vocab::ShareMode,
    pub created_at: DateTimeUtc,
    /// When its owner revoked it (the link stops working at once).
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
