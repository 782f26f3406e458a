//! A link mailed to an address: a pending sign-up, a password reset or an address verification.
//! The link holds a random token; the table holds only its SHA-256. Single use.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_tokens")]
pub struct Model {
    /// Hex SHA-256 of the link's token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// signup | reset | verify
    pub purpose: String,
    /// Folded, as in `users.email`.
    pub email: String,
    /// The account (reset, verify); None for a sign-up, whose account does not exist yet.
    pub user_id: Option<i32>,
    /// A sign-up's display name and argon2id hash, kept until the link is opened.
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
