use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sandboxes {
    Table,
    Id,
    Owner,
    ProjectId,
    ProjectSlug,
    Category,
    State,
    Active,
    ContainerId,
    Image,
    CreatedAt,
    ReadyAt,
    ExpiresAt,
    LastActivityAt,
    EndedAt,
    EndReason,
    LaunchMs,
    Extensions,
    ClientIp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sandboxes::Table)
                .if_not_exists()
                .col(string(Sandboxes::Id).primary_key())
                .col(string(Sandboxes::Owner))
                .col(integer(Sandboxes::ProjectId))
                .col(string(Sandboxes::ProjectSlug))
                .col(string(Sandboxes::Category))
                .col(string(Sandboxes::State))
                .col(boolean(Sandboxes::Active))
                .col(string_null(Sandboxes::ContainerId))
                .col(string(Sandboxes::Image))
                .col(timestamp_with_time_zone(Sandboxes::CreatedAt))
                .col(timestamp_with_time_zone_null(Sandboxes::ReadyAt))
                .col(timestamp_with_time_zone(Sandboxes::ExpiresAt))
                .col(timestamp_with_time_zone(Sandboxes::LastActivityAt))
                .col(timestamp_with_time_zone_null(Sandboxes::EndedAt))
                .col(string_null(Sandboxes::EndReason))
                .col(big_integer_null(Sandboxes::LaunchMs))
                .col(integer(Sandboxes::Extensions).default(0))
                .col(string_null(Sandboxes::ClientIp))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_sandboxes_owner", Sandboxes::Owner),
            ("idx_sandboxes_created", Sandboxes::CreatedAt),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(Sandboxes::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        // "One running sandbox per owner", enforced by the database itself so that concurrent Try
        // requests (from any number of app servers) cannot both win. Same SQL on SQLite and PostgreSQL.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS uniq_sandboxes_active_owner \
                 ON sandboxes (owner) WHERE active = TRUE AND owner <> 'pool'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Sandboxes::Table).to_owned())
            .await
    }
}
