use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
}

#[derive(DeriveIden)]
enum OauthLinks {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    TokenHash,
    Purpose,
    Email,
    UserId,
    Name,
    PasswordHash,
    CreatedAt,
    ExpiresAt,
}

/// Verified email addresses. A sign-up waits in `email_tokens` until its link is opened (no
/// account exists before); reset and verification links are rows there too, stored hashed.
/// Accounts that only ever signed in through a provider got their address from it, verified;
/// accounts with a password never proved theirs and start unverified.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(timestamp_with_time_zone_null(Users::EmailVerifiedAt))
                .to_owned(),
        )
        .await?;
        let linked = Query::select()
            .column(OauthLinks::UserId)
            .from(OauthLinks::Table)
            .to_owned();
        m.exec_stmt(
            Query::update()
                .table(Users::Table)
                .value(Users::EmailVerifiedAt, Expr::col(Alias::new("created_at")))
                .and_where(Expr::col(Alias::new("password_hash")).is_null())
                .and_where(Expr::col(Users::Id).in_subquery(linked))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(EmailTokens::Table)
                .if_not_exists()
                .col(string(EmailTokens::TokenHash).primary_key())
                .col(string(EmailTokens::Purpose))
                .col(string(EmailTokens::Email))
                .col(integer_null(EmailTokens::UserId))
                .col(string_null(EmailTokens::Name))
                .col(string_null(EmailTokens::PasswordHash))
                .col(timestamp_with_time_zone(EmailTokens::CreatedAt))
                .col(timestamp_with_time_zone(EmailTokens::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_email_tokens_user")
                        .from(EmailTokens::Table, EmailTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_email_tokens_email", EmailTokens::Email),
            ("idx_email_tokens_expires", EmailTokens::ExpiresAt),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(EmailTokens::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(EmailTokens::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::EmailVerifiedAt)
                .to_owned(),
        )
        .await
    }
}
