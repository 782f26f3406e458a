use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sandboxes {
    Table,
    Node,
}

/// The sandbox node (a Swarm node's name) a sandbox runs on, under the cluster runtime; null on
/// a single engine. The admin page and `GET /api/admin/sandboxes` show it, and a replica that did
/// not launch a sandbox finds its engine by it.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sandboxes::Table)
                .add_column(string_null(Sandboxes::Node))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Sandboxes::Table)
                .drop_column(Sandboxes::Node)
                .to_owned(),
        )
        .await
    }
}
