use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Builds {
    Table,
    Runner,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    Key,
    Tat,
}

/// Several app servers over one database: which replica runs a build and when it last said so
/// (a build whose runner stopped renewing is taken over), one lease per cluster-wide job, and the
/// rate limits every replica counts against (GCRA: the key's theoretical arrival time, in
/// milliseconds since the epoch).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Builds::Table)
                .add_column(string_null(Builds::Runner))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Builds::Table)
                .add_column(timestamp_with_time_zone_null(Builds::HeartbeatAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Leases::Table)
                .if_not_exists()
                .col(string(Leases::Name).primary_key())
                .col(string(Leases::Holder))
                .col(big_integer(Leases::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RateLimits::Table)
                .if_not_exists()
                .col(string(RateLimits::Key).primary_key())
                .col(big_integer(RateLimits::Tat))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RateLimits::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Leases::Table).to_owned())
            .await?;
        for col in [Builds::Runner, Builds::HeartbeatAt] {
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
