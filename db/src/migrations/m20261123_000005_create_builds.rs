use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Builds {
    Table,
    Id,
    ProjectId,
    ProjectSlug,
    Owner,
    SourceKind,
    Source,
    Dockerfile,
    State,
    Step,
    Steps,
    Error,
    Log,
    ImageRepo,
    ImageTag,
    ImageDigest,
    ImageSize,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Maintainer,
}

/// Builds of maintainers' projects (queue, live log, history), and who maintains each project.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Builds::Table)
                .if_not_exists()
                .col(string(Builds::Id).primary_key())
                .col(integer(Builds::ProjectId))
                .col(string(Builds::ProjectSlug))
                .col(string(Builds::Owner))
                .col(string(Builds::SourceKind))
                .col(text(Builds::Source))
                .col(text(Builds::Dockerfile))
                .col(string(Builds::State))
                .col(integer(Builds::Step).default(0))
                .col(integer(Builds::Steps).default(0))
                .col(text_null(Builds::Error))
                .col(text(Builds::Log).default(""))
                .col(string_null(Builds::ImageRepo))
                .col(string_null(Builds::ImageTag))
                .col(string_null(Builds::ImageDigest))
                .col(big_integer_null(Builds::ImageSize))
                .col(timestamp_with_time_zone(Builds::CreatedAt))
                .col(timestamp_with_time_zone_null(Builds::StartedAt))
                .col(timestamp_with_time_zone_null(Builds::FinishedAt))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_builds_project", Builds::ProjectId),
            ("idx_builds_state", Builds::State),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(Builds::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        if !m.has_column("projects", "maintainer").await? {
            m.alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(string_null(Projects::Maintainer))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Projects::Table)
                .drop_column(Projects::Maintainer)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(Builds::Table).to_owned())
            .await
    }
}
