use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sandboxes {
    Table,
    State,
    EndReason,
}

/// Old end-reason texts and their one spelling from now on (`vocab::EndReason`). Written out
/// here, not read from `vocab`, so this migration stays what it was when it ran.
const RENAMED: [(&str, &str); 12] = [
    ("stopped by owner", "stopped_by_owner"),
    ("stopped by admin", "stopped_by_admin"),
    ("admin_stopped", "stopped_by_admin"),
    ("time limit", "expired"),
    ("out of memory", "out_of_memory"),
    ("its processes ended", "exited"),
    ("start timed out", "start_timed_out"),
    ("pool member not needed", "pool_not_needed"),
    ("server stopping", "server_stopping"),
    ("server restarted", "server_restarted"),
    ("container lost", "container_lost"),
    ("test over", "server_stopping"),
];

/// Every spelling there is after this migration.
const SPELLINGS: [&str; 18] = [
    "replaced",
    "stopped_by_owner",
    "stopped_by_admin",
    "owner_banned",
    "account_deleted",
    "project_deleted",
    "expired",
    "idle",
    "out_of_memory",
    "exited",
    "stopped",
    "start_timed_out",
    "launch_failed",
    "pool_not_needed",
    "server_stopping",
    "server_restarted",
    "container_lost",
    "other",
];

/// A sandbox's end reason becomes one word per event: the texts older servers wrote are renamed,
/// a failed launch's error text (stored as the reason until now) becomes `launch_failed`, and any
/// other text `other`.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (old, new) in RENAMED {
            m.exec_stmt(
                Query::update()
                    .table(Sandboxes::Table)
                    .value(Sandboxes::EndReason, new)
                    .and_where(Expr::col(Sandboxes::EndReason).eq(old))
                    .to_owned(),
            )
            .await?;
        }
        for (failed, word) in [(true, "launch_failed"), (false, "other")] {
            let state = Expr::col(Sandboxes::State);
            m.exec_stmt(
                Query::update()
                    .table(Sandboxes::Table)
                    .value(Sandboxes::EndReason, word)
                    .and_where(Expr::col(Sandboxes::EndReason).is_not_null())
                    .and_where(Expr::col(Sandboxes::EndReason).is_not_in(SPELLINGS))
                    .and_where(if failed {
                        state.eq("failed")
                    } else {
                        state.ne("failed")
                    })
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    /// The old texts are not all recoverable (a launch's error is gone); the words stay.
    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
