//! An account. Its identity key (sandbox owner, project maintainer) is `u:{id}`.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Trimmed and lower-cased, unique.
    #[sea_orm(unique)]
    pub email: String,
    pub name: String,
    /// PHC-format argon2id hash; None for accounts that only sign in through OAuth.
    pub password_hash: Option<String>,
    /// Stored as its text (`user` | `admin`).
    pub role: vocab::Role,
    pub banned: bool,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    /// When the person proved they read this address (a link we mailed, or their provider's
    /// verified email). Only verified addresses link provider logins or become admin.
    pub email_verified_at: Option<DateTimeUtc>,
    /// An admin approved one of their projects: under moderation, their next ones are listed
    /// at once.
    pub approved_publisher: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
