use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Slug,
    Name,
    Summary,
    Description,
    Category,
    Tags,
    Homepage,
    Repository,
    License,
    ImageRepo,
    ImageDigest,
    ImageSize,
    Welcome,
    Egress,
    Status,
    OwnerId,
    Tries,
    SearchText,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Projects::Table)
                .if_not_exists()
                .col(pk_auto(Projects::Id))
                .col(string_uniq(Projects::Slug))
                .col(string(Projects::Name))
                .col(string(Projects::Summary))
                .col(text(Projects::Description))
                .col(string(Projects::Category))
                .col(string(Projects::Tags))
                .col(string_null(Projects::Homepage))
                .col(string_null(Projects::Repository))
                .col(string_null(Projects::License))
                .col(string_null(Projects::ImageRepo))
                .col(string_null(Projects::ImageDigest))
                .col(big_integer_null(Projects::ImageSize))
                .col(text_null(Projects::Welcome))
                .col(boolean(Projects::Egress).default(false))
                .col(string(Projects::Status))
                .col(integer_null(Projects::OwnerId))
                .col(big_integer(Projects::Tries).default(0))
                .col(text(Projects::SearchText))
                .col(timestamp_with_time_zone(Projects::CreatedAt))
                .col(timestamp_with_time_zone(Projects::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_projects_category")
                .table(Projects::Table)
                .col(Projects::Category)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Projects::Table).to_owned())
            .await
    }
}
