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
    /// A sign-up's display name, kept until the link is opened.
    pub name: Option<String>,
    /// Unused since migration 10: a sign-up's password is chosen on the link's page, so no
    /// pending sign-up holds one that a later link could set.
    pub password_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Hex SHA-256 of the visitor key of the browser that asked for the link: only that browser
    /// is signed in by it.
    pub browser: Option<String>,
    /// When the link was used (or voided by another sign-up of its address).
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
