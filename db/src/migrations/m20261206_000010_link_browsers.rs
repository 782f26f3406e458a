use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    Browser,
    UsedAt,
}

/// Mailed links remember the browser that asked for them (SHA-256 of its visitor key): a link
/// signs in only that browser, so a link planted in someone else's browser cannot sign them in
/// as the attacker. A used link is marked, not deleted, so its page can say it was used.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(EmailTokens::Table)
                .add_column(string_null(EmailTokens::Browser))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(EmailTokens::Table)
                .add_column(timestamp_with_time_zone_null(EmailTokens::UsedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [EmailTokens::Browser, EmailTokens::UsedAt] {
            m.alter_table(
                Table::alter()
                    .table(EmailTokens::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
