use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Listed,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ApprovedPublisher,
}

/// Moderation: a project is listed (Explore, search, trending, home) or only reachable by its
/// link until an admin approves it; a maintainer an admin approved once publishes listed
/// projects directly. Projects from before were all listed; no account was approved yet.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .add_column(boolean(Projects::Listed).default(true))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(boolean(Users::ApprovedPublisher).default(false))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .drop_column(Projects::Listed)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::ApprovedPublisher)
                .to_owned(),
        )
        .await
    }
}
