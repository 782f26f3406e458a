//! Sandbox (Try) records. A row is written before the container exists and kept after it ends.
use crate::entities::sandbox::{self, Entity as Sandbox};
use crate::states::SandboxState;
use chrono::{DateTime, Utc};
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect, SqlErr};
use vocab::{EndReason, OwnerKey};

pub use sandbox::Model;

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The owner already holds an active sandbox (the partial unique index refused a second one).
    #[error("owner already has an active sandbox")]
    OwnerBusy,
    #[error(transparent)]
    Db(#[from] DbErr),
}

#[derive(Debug, Clone)]
pub struct NewSandbox {
    pub id: String,
    pub owner: OwnerKey,
    pub project_id: i32,
    pub project_slug: String,
    pub category: String,
    pub image: String,
    pub expires_at: DateTime<Utc>,
    pub client_ip: Option<String>,
}

/// Inserts a `starting`, active row; fails with `OwnerBusy` if the owner already holds one.
pub async fn insert_starting(db: &DatabaseConnection, n: NewSandbox) -> Result<Model, InsertError> {
    let now = Utc::now();
    let am = sandbox::ActiveModel {
        id: Set(n.id),
        owner: Set(n.owner),
        project_id: Set(n.project_id),
        project_slug: Set(n.project_slug),
        category: Set(n.category),
        state: Set(SandboxState::Starting),
        active: Set(true),
        container_id: Set(None),
        image: Set(n.image),
        created_at: Set(now),
        ready_at: Set(None),
        expires_at: Set(n.expires_at),
        last_activity_at: Set(now),
        ended_at: Set(None),
        end_reason: Set(None),
        launch_ms: Set(None),
        extensions: Set(0),
        client_ip: Set(n.client_ip),
        node: Set(None),
    };
    am.insert(db).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => InsertError::OwnerBusy,
        _ => InsertError::Db(e),
    })
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<Model>, DbErr> {
    Sandbox::find_by_id(id).one(db).await
}

/// The owner's active sandbox, if any.
pub async fn active_for_owner(
    db: &DatabaseConnection,
    owner: &OwnerKey,
) -> Result<Option<Model>, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Owner.eq(owner))
        .filter(sandbox::Column::Active.eq(true))
        .one(db)
        .await
}

/// Every active sandbox (reaper, reconciliation, admin).
pub async fn all_active(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Active.eq(true))
        .order_by_asc(sandbox::Column::CreatedAt)
        .all(db)
        .await
}

/// Active sandboxes started from client address `ip`.
pub async fn count_active_from(db: &DatabaseConnection, ip: &str) -> Result<u64, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Active.eq(true))
        .filter(sandbox::Column::ClientIp.eq(ip))
        .count(db)
        .await
}

pub async fn count_active(db: &DatabaseConnection) -> Result<u64, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Active.eq(true))
        .filter(sandbox::Column::Owner.ne(OwnerKey::Pool))
        .count(db)
        .await
}

/// The owner's history, newest first.
/// Whether `owner` ever had a sandbox (an indexed lookup): their pages are their own.
pub async fn owner_has_any(db: &DatabaseConnection, owner: &OwnerKey) -> Result<bool, DbErr> {
    Ok(Sandbox::find()
        .select_only()
        .column(sandbox::Column::Id)
        .filter(sandbox::Column::Owner.eq(owner))
        .limit(1)
        .into_tuple::<String>()
        .one(db)
        .await?
        .is_some())
}

/// How many Tries `owner` has had (running ones included): what a sign-in link offers to bring.
pub async fn count_of_owner(db: &DatabaseConnection, owner: &OwnerKey) -> Result<u64, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Owner.eq(owner))
        .count(db)
        .await
}

pub async fn history(
    db: &DatabaseConnection,
    owner: &OwnerKey,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Owner.eq(owner))
        .order_by_desc(sandbox::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Only from a state `to` may follow (the transition table in `SandboxState::comes_from`).
fn may_become(to: SandboxState) -> sea_orm::Condition {
    sea_orm::Condition::all().add(sandbox::Column::State.is_in(to.comes_from().iter().copied()))
}

/// The shell answers; false if the sandbox was stopped meanwhile (it stays stopped). `node`: the
/// sandbox node it runs on (cluster runtime).
pub async fn mark_ready(
    db: &DatabaseConnection,
    id: &str,
    (container_id, node): (&str, Option<&str>),
    launch_ms: i64,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    Ok(Sandbox::update_many()
        .col_expr(sandbox::Column::State, Expr::value(SandboxState::Ready))
        .col_expr(
            sandbox::Column::ContainerId,
            Expr::value(Some(container_id)),
        )
        .col_expr(sandbox::Column::Node, Expr::value(node))
        .col_expr(sandbox::Column::ReadyAt, Expr::value(Some(now)))
        .col_expr(sandbox::Column::LastActivityAt, Expr::value(now))
        .col_expr(sandbox::Column::LaunchMs, Expr::value(Some(launch_ms)))
        .filter(sandbox::Column::Id.eq(id))
        .filter(may_become(SandboxState::Ready))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

pub async fn set_container(
    db: &DatabaseConnection,
    id: &str,
    container_id: &str,
) -> Result<(), DbErr> {
    sandbox::ActiveModel {
        id: Set(id.into()),
        container_id: Set(Some(container_id.into())),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Ends a `ready` sandbox whose container stopped by itself (out of memory, its processes
/// ended); false if it was being stopped or had ended anyway (that path records its own reason).
pub async fn end_if_ready(
    db: &DatabaseConnection,
    id: &str,
    reason: EndReason,
) -> Result<bool, DbErr> {
    Ok(Sandbox::update_many()
        .col_expr(sandbox::Column::State, Expr::value(SandboxState::Ended))
        .col_expr(sandbox::Column::Active, Expr::value(false))
        .col_expr(sandbox::Column::EndedAt, Expr::value(Utc::now()))
        .col_expr(sandbox::Column::EndReason, Expr::value(reason))
        .filter(sandbox::Column::Id.eq(id))
        .filter(sandbox::Column::State.eq(SandboxState::Ready))
        .filter(sandbox::Column::Active.eq(true))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Being removed; false if it had already ended.
pub async fn set_stopping(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    Ok(Sandbox::update_many()
        .col_expr(sandbox::Column::State, Expr::value(SandboxState::Stopping))
        .filter(sandbox::Column::Id.eq(id))
        .filter(may_become(SandboxState::Stopping))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Marks `owner`'s active sandboxes stopping, inside the caller's transaction (a ban, an
/// account's deletion); returns their ids for the engine work after the commit.
pub async fn mark_stopping_of(
    db: &impl ConnectionTrait,
    owner: &OwnerKey,
) -> Result<Vec<String>, DbErr> {
    let ids: Vec<String> = Sandbox::find()
        .select_only()
        .column(sandbox::Column::Id)
        .filter(sandbox::Column::Owner.eq(owner))
        .filter(sandbox::Column::Active.eq(true))
        .into_tuple()
        .all(db)
        .await?;
    if !ids.is_empty() {
        Sandbox::update_many()
            .col_expr(sandbox::Column::State, Expr::value(SandboxState::Stopping))
            .filter(sandbox::Column::Id.is_in(ids.iter().cloned()))
            .filter(may_become(SandboxState::Stopping))
            .exec(db)
            .await?;
    }
    Ok(ids)
}

/// Starts ending an unassigned warm-pool member, only while nobody has claimed it: the same
/// `owner = 'pool'` condition a claim needs, so a member is either handed out or given back.
pub async fn release_pool_member(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    Ok(Sandbox::update_many()
        .col_expr(sandbox::Column::State, Expr::value(SandboxState::Stopping))
        .filter(sandbox::Column::Id.eq(id))
        .filter(sandbox::Column::Owner.eq(OwnerKey::Pool))
        .filter(may_become(SandboxState::Stopping))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// Terminal state (`Ended` or `Failed`): frees the owner's slot.
pub async fn finish(
    db: &DatabaseConnection,
    id: &str,
    state: SandboxState,
    reason: EndReason,
) -> Result<(), DbErr> {
    debug_assert!(matches!(state, SandboxState::Ended | SandboxState::Failed));
    Sandbox::update_many()
        .col_expr(sandbox::Column::State, Expr::value(state))
        .col_expr(sandbox::Column::Active, Expr::value(false))
        .col_expr(sandbox::Column::EndedAt, Expr::value(Utc::now()))
        .col_expr(sandbox::Column::EndReason, Expr::value(reason))
        .filter(sandbox::Column::Id.eq(id))
        .filter(sandbox::Column::Active.eq(true))
        .filter(may_become(state))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn touch(db: &DatabaseConnection, id: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
    Sandbox::update_many()
        .col_expr(sandbox::Column::LastActivityAt, Expr::value(at))
        .filter(sandbox::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn extend(
    db: &DatabaseConnection,
    id: &str,
    new_expiry: DateTime<Utc>,
    extensions: i32,
) -> Result<(), DbErr> {
    sandbox::ActiveModel {
        id: Set(id.into()),
        expires_at: Set(new_expiry),
        extensions: Set(extensions),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Tries per category for one owner (recommendations) — (category, count).
pub async fn tries_by_category(
    db: &DatabaseConnection,
    owner: &OwnerKey,
) -> Result<Vec<(String, i64)>, DbErr> {
    Sandbox::find()
        .select_only()
        .column(sandbox::Column::Category)
        .column_as(sandbox::Column::Id.count(), "n")
        .filter(sandbox::Column::Owner.eq(owner))
        .group_by(sandbox::Column::Category)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await
}

/// Hands a ready warm-pool sandbox of `project_id` to `owner`, atomically (a concurrent claim of
/// the same member loses the `owner = 'pool'` condition). `None` when the pool is empty.
///
/// A burst of visitors claims at once: each reads every ready member and tries them starting at
/// its own place in the list (the owner's hash), so concurrent claims mostly try different rows,
/// and one that loses a row moves on to the next instead of giving up (when each read only the
/// oldest few, a burst of 20 got 4 members and launched the rest cold).
pub async fn claim_pool(
    db: &DatabaseConnection,
    project_id: i32,
    image: &str,
    owner: &OwnerKey,
    expires_at: DateTime<Utc>,
    client_ip: Option<String>,
    avoid_nodes: &[String],
) -> Result<Option<Model>, InsertError> {
    /// More than any pool holds; a read costs one indexed scan.
    const MOST_MEMBERS: u64 = 256;
    let mut candidates: Vec<String> = Sandbox::find()
        .select_only()
        .column(sandbox::Column::Id)
        .filter(sandbox::Column::Owner.eq(OwnerKey::Pool))
        .filter(sandbox::Column::ProjectId.eq(project_id))
        // Members of an image the project has since replaced are never handed out.
        .filter(sandbox::Column::Image.eq(image))
        .filter(sandbox::Column::State.eq(SandboxState::Ready))
        .filter(sandbox::Column::Active.eq(true))
        // Members on a sandbox node that is drained or down are not handed out.
        .filter(
            sea_orm::Condition::any()
                .add(sandbox::Column::Node.is_null())
                .add(sandbox::Column::Node.is_not_in(avoid_nodes.iter().cloned())),
        )
        .order_by_asc(sandbox::Column::CreatedAt)
        .limit(MOST_MEMBERS)
        .into_tuple()
        .all(db)
        .await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let start = owner
        .to_string()
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % candidates.len();
    candidates.rotate_left(start);
    for id in candidates {
        if let Some(row) = claim_member(db, &id, owner, expires_at, client_ip.clone()).await? {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Hands one pool member to `owner` if it is still unclaimed, ready and active: a member being
/// given back (`stopping`) or already ended between the read and this write is never handed out.
pub async fn claim_member(
    db: &DatabaseConnection,
    id: &str,
    owner: &OwnerKey,
    expires_at: DateTime<Utc>,
    client_ip: Option<String>,
) -> Result<Option<Model>, InsertError> {
    let now = Utc::now();
    let res = Sandbox::update_many()
        .col_expr(sandbox::Column::Owner, Expr::value(owner))
        .col_expr(sandbox::Column::ExpiresAt, Expr::value(expires_at))
        .col_expr(sandbox::Column::CreatedAt, Expr::value(now))
        .col_expr(sandbox::Column::LastActivityAt, Expr::value(now))
        .col_expr(sandbox::Column::ClientIp, Expr::value(client_ip))
        .filter(sandbox::Column::Id.eq(id))
        .filter(sandbox::Column::Owner.eq(OwnerKey::Pool))
        .filter(sandbox::Column::State.eq(SandboxState::Ready))
        .filter(sandbox::Column::Active.eq(true))
        .exec(db)
        .await
        .map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => InsertError::OwnerBusy,
            _ => InsertError::Db(e),
        })?;
    Ok(match res.rows_affected {
        1 => get(db, id).await?,
        _ => None,
    })
}

/// Active warm-pool members (starting or ready), oldest first.
pub async fn pool_members(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::Owner.eq(OwnerKey::Pool))
        .filter(sandbox::Column::Active.eq(true))
        .order_by_asc(sandbox::Column::CreatedAt)
        .all(db)
        .await
}

/// Tries per project started since `since`, most first: (project id, count). A claimed pool
/// member counts from its claim.
pub async fn tries_by_project_since(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> Result<Vec<(i32, i64)>, DbErr> {
    let mut counts: Vec<(i32, i64)> = Sandbox::find()
        .select_only()
        .column(sandbox::Column::ProjectId)
        .column_as(sandbox::Column::Id.count(), "n")
        .filter(sandbox::Column::CreatedAt.gte(since))
        .filter(sandbox::Column::Owner.ne(OwnerKey::Pool))
        .group_by(sandbox::Column::ProjectId)
        .into_tuple()
        .all(db)
        .await?;
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(counts)
}

/// Tries started since `since` (warm-pool members are not tries).
pub async fn count_tries_since(
    db: &DatabaseConnection,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Sandbox::find()
        .filter(sandbox::Column::CreatedAt.gte(since))
        .filter(sandbox::Column::Owner.ne(OwnerKey::Pool))
        .count(db)
        .await
}
