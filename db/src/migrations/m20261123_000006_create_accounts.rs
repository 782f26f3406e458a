use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
    Banned,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    Hint,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum OauthLinks {
    Table,
    Id,
    UserId,
    Provider,
    Subject,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OauthFlows {
    Table,
    StateHash,
    Provider,
    PkceVerifier,
    Next,
    CreatedAt,
}

fn owned_by_user(table: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, Alias::new("user_id"))
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// Accounts: users, their database sessions, hashed API tokens, OAuth links, and the short-lived
/// OAuth flows (state and PKCE verifier) between redirect and callback.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(pk_auto(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string(Users::Name))
                .col(string_null(Users::PasswordHash))
                .col(string(Users::Role).default("user"))
                .col(boolean(Users::Banned).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(integer(Sessions::UserId))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .foreign_key(&mut owned_by_user(Sessions::Table, "fk_sessions_user"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(pk_auto(ApiTokens::Id))
                .col(integer(ApiTokens::UserId))
                .col(string(ApiTokens::Name))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(string(ApiTokens::Hint))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                .foreign_key(&mut owned_by_user(ApiTokens::Table, "fk_api_tokens_user"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OauthLinks::Table)
                .if_not_exists()
                .col(pk_auto(OauthLinks::Id))
                .col(integer(OauthLinks::UserId))
                .col(string(OauthLinks::Provider))
                .col(string(OauthLinks::Subject))
                .col(timestamp_with_time_zone(OauthLinks::CreatedAt))
                .foreign_key(&mut owned_by_user(OauthLinks::Table, "fk_oauth_links_user"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(OauthFlows::Table)
                .if_not_exists()
                .col(string(OauthFlows::StateHash).primary_key())
                .col(string(OauthFlows::Provider))
                .col(string(OauthFlows::PkceVerifier))
                .col(string(OauthFlows::Next))
                .col(timestamp_with_time_zone(OauthFlows::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_oauth_links_subject")
                .table(OauthLinks::Table)
                .col(OauthLinks::Provider)
                .col(OauthLinks::Subject)
                .unique()
                .to_owned(),
        )
        .await?;
        for (name, table) in [
            ("idx_sessions_user", Sessions::Table.into_iden()),
            ("idx_api_tokens_user", ApiTokens::Table.into_iden()),
            ("idx_oauth_links_user", OauthLinks::Table.into_iden()),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(table)
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            OauthFlows::Table.into_iden(),
            OauthLinks::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
