use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Admin,
}

/// API tokens carry admin power only when created as admin tokens (existing ones do not).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ApiTokens::Table)
                .add_column(boolean(ApiTokens::Admin).default(false))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ApiTokens::Table)
                .drop_column(ApiTokens::Admin)
                .to_owned(),
        )
        .await
    }
}
