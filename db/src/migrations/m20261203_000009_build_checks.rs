use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Builds {
    Table,
    CheckCommand,
    CheckExpect,
}

/// A build's smoke check: a command run in a sandbox of the new image before it goes live, and
/// the text its output must contain. Both optional (builds before this had none).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Builds::Table)
                .add_column(text_null(Builds::CheckCommand))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Builds::Table)
                .add_column(text_null(Builds::CheckExpect))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [Builds::CheckCommand, Builds::CheckExpect] {
            m.alter_table(
                Table::alter()
                    .table(Builds::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
