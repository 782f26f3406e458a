use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instance {
    Table,
    Id,
}

/// One row: the id of this installation, labelled on every container it starts, so that
/// reconciliation never touches another installation's sandboxes on a shared engine.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Instance::Table)
                .if_not_exists()
                .col(string(Instance::Id).primary_key())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Instance::Table).to_owned())
            .await
    }
}
