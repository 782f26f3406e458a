//! Build records: the queue survives restarts, logs stay viewable after the build.
use crate::entities::build::{self, Entity as Build};
use crate::states::BuildState;
use sea_orm::{prelude::*, ActiveValue::Set, QueryOrder, QuerySelect};
use vocab::OwnerKey;

pub use build::Model;

/// Who may see a build (its row, Dockerfile and log): anyone while its project is live and
/// listed; otherwise (first build running or failed, project hidden or gone) only who started
/// it, the project's maintainer and admins.
pub fn visible_to(
    build: &Model,
    project: Option<&crate::projects::Model>,
    key: &OwnerKey,
    is_admin: bool,
) -> bool {
    is_admin
        || build.owner == *key
        || project.is_some_and(|p| {
            p.status == crate::states::ProjectStatus::Live || p.maintainer.as_ref() == Some(key)
        })
}

/// A build waiting or running (not finished).
const ACTIVE: [BuildState; 4] = [
    BuildState::Queued,
    BuildState::Running,
    BuildState::Pushing,
    BuildState::Checking,
];

/// Only from a state `to` may follow (the transition table in `BuildState::comes_from`).
fn may_become(to: BuildState) -> sea_orm::Condition {
    sea_orm::Condition::all().add(build::Column::State.is_in(to.comes_from().iter().copied()))
}

#[derive(Debug, Clone)]
pub struct NewBuild {
    pub id: String,
    pub project_id: i32,
    pub project_slug: String,
    pub owner: OwnerKey,
    pub source_kind: String,
    pub source: String,
    pub dockerfile: String,
    pub steps: i32,
    pub check_command: Option<String>,
    pub check_expect: Option<String>,
}

pub async fn insert_queued(db: &impl ConnectionTrait, b: NewBuild) -> Result<Model, DbErr> {
    build::ActiveModel {
        id: Set(b.id),
        project_id: Set(b.project_id),
        project_slug: Set(b.project_slug),
        owner: Set(b.owner),
        source_kind: Set(b.source_kind),
        source: Set(b.source),
        dockerfile: Set(b.dockerfile),
        state: Set(BuildState::Queued),
        step: Set(0),
        steps: Set(b.steps),
        error: Set(None),
        log: Set(String::new()),
        image_repo: Set(None),
        image_tag: Set(None),
        image_digest: Set(None),
        image_size: Set(None),
        created_at: Set(chrono::Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
        check_command: Set(b.check_command),
        check_expect: Set(b.check_expect),
        runner: Set(None),
        heartbeat_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<Model>, DbErr> {
    Build::find_by_id(id).one(db).await
}

/// Moves a build to `running` or `pushing`; false if the table does not allow it from where the
/// build is (e.g. it was cancelled meanwhile).
pub async fn set_state(
    db: &DatabaseConnection,
    id: &str,
    state: BuildState,
) -> Result<bool, DbErr> {
    let mut q = Build::update_many()
        .col_expr(build::Column::State, Expr::value(state))
        .filter(build::Column::Id.eq(id))
        .filter(may_become(state));
    if state == BuildState::Running {
        q = q.col_expr(
            build::Column::StartedAt,
            Expr::value(Some(chrono::Utc::now())),
        );
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

pub async fn set_step(
    db: &DatabaseConnection,
    id: &str,
    step: i32,
    steps: i32,
) -> Result<(), DbErr> {
    Build::update_many()
        .col_expr(build::Column::Step, Expr::value(step))
        .col_expr(build::Column::Steps, Expr::value(steps))
        .filter(build::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// The image a successful build pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub size: i64,
}

/// Terminal state with the log; returns false if the build had already finished (e.g. cancelled).
pub async fn finish(
    db: &DatabaseConnection,
    id: &str,
    state: BuildState,
    error: Option<&str>,
    log: &str,
    image: Option<&Pushed>,
) -> Result<bool, DbErr> {
    finish_as(db, id, None, state, error, log, image).await
}

/// `finish` by the replica `runner` that claimed the build: false once it is no longer that
/// replica's (another took it over after this one stopped renewing its claim).
pub async fn finish_as(
    db: &impl ConnectionTrait,
    id: &str,
    runner: Option<&str>,
    state: BuildState,
    error: Option<&str>,
    log: &str,
    image: Option<&Pushed>,
) -> Result<bool, DbErr> {
    let mut q = Build::update_many()
        .col_expr(build::Column::State, Expr::value(state))
        .col_expr(build::Column::Error, Expr::value(error.map(str::to_string)))
        .col_expr(build::Column::Log, Expr::value(log))
        .col_expr(
            build::Column::FinishedAt,
            Expr::value(Some(chrono::Utc::now())),
        )
        .filter(build::Column::Id.eq(id))
        .filter(may_become(state));
    if let Some(r) = runner {
        q = q.filter(build::Column::Runner.eq(r));
    }
    if let Some(p) = image {
        q = q
            .col_expr(build::Column::ImageRepo, Expr::value(Some(p.repo.clone())))
            .col_expr(build::Column::ImageTag, Expr::value(Some(p.tag.clone())))
            .col_expr(
                build::Column::ImageDigest,
                Expr::value(Some(p.digest.clone())),
            )
            .col_expr(build::Column::ImageSize, Expr::value(Some(p.size)));
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Cancels `owner`'s queued builds inside the caller's transaction (a ban: none of them may run
/// after the commit, even across a restart) and returns the ids of all their active builds, so
/// the running ones can be told to stop after the commit.
pub async fn cancel_queued_of(
    db: &impl ConnectionTrait,
    owner: &OwnerKey,
    note: &str,
) -> Result<Vec<String>, DbErr> {
    let ids: Vec<String> = Build::find()
        .select_only()
        .column(build::Column::Id)
        .filter(build::Column::Owner.eq(owner))
        .filter(build::Column::State.is_in(ACTIVE))
        .into_tuple()
        .all(db)
        .await?;
    if !ids.is_empty() {
        Build::update_many()
            .col_expr(build::Column::State, Expr::value(BuildState::Cancelled))
            .col_expr(build::Column::Error, Expr::value(Some(note.to_string())))
            .col_expr(
                build::Column::FinishedAt,
                Expr::value(Some(chrono::Utc::now())),
            )
            .filter(build::Column::Id.is_in(ids.iter().cloned()))
            .filter(build::Column::State.eq(BuildState::Queued))
            .exec(db)
            .await?;
    }
    Ok(ids)
}

/// Builds waiting to run, oldest first (re-queued at start-up).
pub async fn queued(db: &DatabaseConnection) -> Result<Vec<Model>, DbErr> {
    Build::find()
        .filter(build::Column::State.eq(BuildState::Queued))
        .order_by_asc(build::Column::CreatedAt)
        .all(db)
        .await
}

/// A queued build's place in line (1 = next), or None once it left the queue.
pub async fn queue_position(db: &DatabaseConnection, b: &Model) -> Result<Option<u64>, DbErr> {
    if b.state != BuildState::Queued {
        return Ok(None);
    }
    let ahead = Build::find()
        .filter(build::Column::State.eq(BuildState::Queued))
        .filter(build::Column::CreatedAt.lt(b.created_at))
        .count(db)
        .await?;
    Ok(Some(ahead + 1))
}

/// How long a build takes here: the median of the last 20 that succeeded, in seconds.
pub async fn typical_seconds(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    let recent = Build::find()
        .filter(build::Column::State.eq(BuildState::Succeeded))
        .filter(build::Column::StartedAt.is_not_null())
        .filter(build::Column::FinishedAt.is_not_null())
        .order_by_desc(build::Column::FinishedAt)
        .limit(20)
        .all(db)
        .await?;
    let mut secs: Vec<i64> = recent
        .iter()
        .filter_map(|b| Some((b.finished_at? - b.started_at?).num_seconds()))
        .collect();
    secs.sort_unstable();
    Ok(secs.get(secs.len() / 2).copied())
}

/// A build's running states: a replica holds its claim through all of them.
const RUNNING: [BuildState; 3] = [
    BuildState::Running,
    BuildState::Pushing,
    BuildState::Checking,
];

/// Replica `runner` claims queued build `id` and starts running it: one atomic compare-and-set,
/// so of any number of replicas (and workers) asking, exactly one gets true.
pub async fn claim(db: &DatabaseConnection, id: &str, runner: &str) -> Result<bool, DbErr> {
    let now = chrono::Utc::now();
    let q = Build::update_many()
        .col_expr(build::Column::State, Expr::value(BuildState::Running))
        .col_expr(build::Column::StartedAt, Expr::value(Some(now)))
        .col_expr(build::Column::Runner, Expr::value(Some(runner.to_string())))
        .col_expr(build::Column::HeartbeatAt, Expr::value(Some(now)))
        .filter(build::Column::Id.eq(id))
        .filter(build::Column::State.eq(BuildState::Queued));
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Replica `runner` says it still runs build `id`; false once the build is no longer its own
/// (finished, cancelled from another replica, or taken over).
pub async fn renew(db: &DatabaseConnection, id: &str, runner: &str) -> Result<bool, DbErr> {
    let q = Build::update_many()
        .col_expr(
            build::Column::HeartbeatAt,
            Expr::value(Some(chrono::Utc::now())),
        )
        .filter(build::Column::Id.eq(id))
        .filter(build::Column::Runner.eq(runner))
        .filter(build::Column::State.is_in(RUNNING));
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// The running build's log so far (its stored tail), written by the replica that claimed it, so
/// that another replica's watchers can follow it. False: the claim is no longer `runner`'s.
pub async fn save_log(
    db: &DatabaseConnection,
    id: &str,
    runner: &str,
    log: &str,
) -> Result<bool, DbErr> {
    let q = Build::update_many()
        .col_expr(build::Column::Log, Expr::value(log))
        .filter(build::Column::Id.eq(id))
        .filter(build::Column::Runner.eq(runner))
        .filter(build::Column::State.is_in(RUNNING));
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// `set_state` to `pushing` or `checking` by the replica that claimed the build.
pub async fn advance_as(
    db: &DatabaseConnection,
    id: &str,
    runner: &str,
    state: BuildState,
) -> Result<bool, DbErr> {
    let q = Build::update_many()
        .col_expr(build::Column::State, Expr::value(state))
        .filter(build::Column::Id.eq(id))
        .filter(build::Column::Runner.eq(runner))
        .filter(may_become(state));
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Whether any build is running (on any replica).
pub async fn any_running(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(Build::find()
        .filter(build::Column::State.is_in(RUNNING))
        .count(db)
        .await?
        > 0)
}

/// Running builds whose runner has not renewed its claim since `cutoff` (or never did: rows of
/// a server from before claims), oldest first.
pub async fn stale(
    db: &DatabaseConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Model>, DbErr> {
    Build::find()
        .filter(build::Column::State.is_in(RUNNING))
        .filter(
            sea_orm::Condition::any()
                .add(build::Column::HeartbeatAt.is_null())
                .add(build::Column::HeartbeatAt.lt(cutoff)),
        )
        .order_by_asc(build::Column::CreatedAt)
        .all(db)
        .await
}

/// Puts a stale build (`b`, as `stale` read it) back in the queue with `note` appended to its
/// log, if it is still stale and still `b.runner`'s: one atomic compare-and-set, so one replica
/// of any number takes it over, once. It runs again from the start.
pub async fn take_over(
    db: &DatabaseConnection,
    b: &Model,
    cutoff: chrono::DateTime<chrono::Utc>,
    note: &str,
) -> Result<bool, DbErr> {
    let log = if b.log.is_empty() {
        format!("{note}\n")
    } else {
        format!("{}\n{note}\n", b.log.trim_end_matches('\n'))
    };
    let q = Build::update_many()
        .col_expr(build::Column::State, Expr::value(BuildState::Queued))
        .col_expr(build::Column::Runner, Expr::value(None::<String>))
        .col_expr(
            build::Column::HeartbeatAt,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .col_expr(build::Column::Step, Expr::value(0))
        .col_expr(build::Column::Log, Expr::value(log))
        .filter(build::Column::Id.eq(b.id.as_str()))
        .filter(build::Column::State.is_in(RUNNING))
        .filter(
            sea_orm::Condition::any()
                .add(build::Column::HeartbeatAt.is_null())
                .add(build::Column::HeartbeatAt.lt(cutoff)),
        )
        .filter(match &b.runner {
            Some(r) => build::Column::Runner.eq(r.as_str()),
            None => build::Column::Runner.is_null(),
        });
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// A project's builds, newest first.
pub async fn for_project(
    db: &DatabaseConnection,
    project_id: i32,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Build::find()
        .filter(build::Column::ProjectId.eq(project_id))
        .order_by_desc(build::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// The build that made the image `project` serves now (its recipe is what a Try runs), if the
/// project serves one a build pushed.
pub async fn served(
    db: &DatabaseConnection,
    project: &crate::projects::Model,
) -> Result<Option<Model>, DbErr> {
    let (Some(repo), Some(digest)) = (&project.image_repo, &project.image_digest) else {
        return Ok(None);
    };
    Build::find()
        .filter(build::Column::ProjectId.eq(project.id))
        .filter(build::Column::State.eq(BuildState::Succeeded))
        .filter(build::Column::ImageRepo.eq(repo.as_str()))
        .filter(build::Column::ImageDigest.eq(digest.as_str()))
        .order_by_desc(build::Column::CreatedAt)
        .one(db)
        .await
}

/// Builds someone started since `since` (quota).
pub async fn count_since(
    db: &DatabaseConnection,
    owner: &OwnerKey,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    Build::find()
        .filter(build::Column::Owner.eq(owner))
        .filter(build::Column::CreatedAt.gte(since))
        .count(db)
        .await
}

/// Whether a project already has a build waiting or running (one at a time per project).
pub async fn active_for_project(
    db: &DatabaseConnection,
    project_id: i32,
) -> Result<Option<Model>, DbErr> {
    Build::find()
        .filter(build::Column::ProjectId.eq(project_id))
        .filter(build::Column::State.is_in(ACTIVE))
        .one(db)
        .await
}

/// Builds someone started that are waiting or running (a ban cancels them).
pub async fn active_of_owner(
    db: &DatabaseConnection,
    owner: &OwnerKey,
) -> Result<Vec<Model>, DbErr> {
    Build::find()
        .filter(build::Column::Owner.eq(owner))
        .filter(build::Column::State.is_in(ACTIVE))
        .all(db)
        .await
}
