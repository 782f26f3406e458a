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

/// Site settings an admin changes at run time (the featured banner, the catalogue version the
/// search index follows), as small values; and the folded project name the search ranks on.
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
        m.drop_table(Table::drop().table(Settings::Table).to_owned())
            .await
    }
}
