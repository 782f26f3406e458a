use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    NameFold,
}

#[derive(DeriveIden)]
enum Sandboxes {
    Table,
    CreatedAt,
}

/// Site settings an admin changes at run time (the featured banner), as small JSON values; an
/// index for "trending over the last 7 days", which scans tries by creation time; and the folded
/// project name, so search ranks exact and prefix name matches in SQL instead of in memory.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Settings::Table)
                .if_not_exists()
                .col(string(Settings::Key).primary_key())
                .col(text(Settings::Value))
                .col(timestamp_with_time_zone(Settings::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_sandboxes_created_at")
                .table(Sandboxes::Table)
                .col(Sandboxes::CreatedAt)
                .to_owned(),
        )
        .await?;
        if !m.has_column("projects", "name_fold").await? {
            m.alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(string(Projects::NameFold).default(""))
                    .to_owned(),
            )
            .await?;
            // ASCII-only backfill; every later write stores the full accent fold.
            m.get_connection()
                .execute_unprepared("UPDATE projects SET name_fold = LOWER(name)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .drop_column(Projects::NameFold)
                .to_owned(),
        )
        .await?;
        m.drop_index(Index::drop().name("idx_sandboxes_created_at").to_owned())
            .await?;
        m.drop_table(Table::drop().table(Settings::Table).to_owned())
            .await
    }
}
