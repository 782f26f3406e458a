use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sandboxes {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Shares {
    Table,
    Id,
    SandboxId,
    TokenHash,
    Mode,
    CreatedAt,
    RevokedAt,
}

/// Share links: the owner of a running sandbox lets others watch (or type into) its terminal.
/// The link holds a random token; the table holds only its SHA-256. A share lives as long as its
/// sandbox, unless its owner revokes it first.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Shares::Table)
                .if_not_exists()
                .col(string(Shares::Id).primary_key())
                .col(string(Shares::SandboxId))
                .col(string_uniq(Shares::TokenHash))
                .col(string(Shares::Mode))
                .col(timestamp_with_time_zone(Shares::CreatedAt))
                .col(timestamp_with_time_zone_null(Shares::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_shares_sandbox")
                        .from(Shares::Table, Shares::SandboxId)
                        .to(Sandboxes::Table, Sandboxes::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_shares_sandbox")
                .table(Shares::Table)
                .col(Shares::SandboxId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Shares::Table).to_owned())
            .await
    }
}
