//! Share links of sandbox terminals. A share is live while it is not revoked and its sandbox
//! runs: nothing is written when a sandbox ends, its shares end with it.
use crate::entities::share::{self, Entity as Share};
use chrono::Utc;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder};
use vocab::ShareMode;

pub use share::Model;

pub struct NewShare {
    pub id: String,
    pub sandbox_id: String,
    pub token_hash: String,
    pub mode: ShareMode,
}

pub async fn create(db: &DatabaseConnection, n: NewShare) -> Result<Model, DbErr> {
    share::ActiveModel {
        id: Set(n.id),
        sandbox_id: Set(n.sandbox_id),
        token_hash: Set(n.token_hash),
        mode: Set(n.mode),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<Model>, DbErr> {
    Share::find_by_id(id).one(db).await
}

/// The share whose link token hashes to `token_hash`, revoked or not.
pub async fn by_token_hash(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<Model>, DbErr> {
    Share::find()
        .filter(share::Column::TokenHash.eq(token_hash))
        .one(db)
        .await
}

/// The sandbox's shares that are not revoked, oldest first.
pub async fn unrevoked_of(db: &DatabaseConnection, sandbox_id: &str) -> Result<Vec<Model>, DbErr> {
    Share::find()
        .filter(share::Column::SandboxId.eq(sandbox_id))
        .filter(share::Column::RevokedAt.is_null())
        .order_by_asc(share::Column::CreatedAt)
        .order_by_asc(share::Column::Id)
        .all(db)
        .await
}

pub async fn count_unrevoked(db: &DatabaseConnection, sandbox_id: &str) -> Result<u64, DbErr> {
    Share::find()
        .filter(share::Column::SandboxId.eq(sandbox_id))
        .filter(share::Column::RevokedAt.is_null())
        .count(db)
        .await
}

/// Revokes share `id` of sandbox `sandbox_id`; false if there is no such unrevoked share.
pub async fn revoke(db: &DatabaseConnection, sandbox_id: &str, id: &str) -> Result<bool, DbErr> {
    Ok(Share::update_many()
        .col_expr(share::Column::RevokedAt, Expr::value(Some(Utc::now())))
        .filter(share::Column::Id.eq(id))
        .filter(share::Column::SandboxId.eq(sandbox_id))
        .filter(share::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected
        > 0)
}
