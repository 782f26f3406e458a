//! Accounts, sessions, API tokens and OAuth links. Secrets never reach this module: callers pass
//! hashes (argon2id for passwords, SHA-256 for random tokens).
use crate::entities::{
    api_token::{self, Entity as ApiToken},
    build,
    email_token::{self, Entity as EmailToken},
    oauth_flow::{self, Entity as OauthFlow},
    oauth_link::{self, Entity as OauthLink},
    project, sandbox,
    session::{self, Entity as Session},
    user::{self, Entity as User},
};
use chrono::{DateTime, Utc};
use sea_orm::{
    prelude::*,
    sea_query::{ExprTrait, Func, LikeExpr},
    ActiveValue::Set,
    Condition, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};

pub use user::Model as Account;

pub use vocab::{OwnerKey, Role};

/// Emails compare trimmed and case-insensitively.
pub fn fold_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("an account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Creates an account. Every account starts with a verified address: a sign-up only exists once
/// its mailed link was opened, a provider's login brings its verified email, and the operator
/// names the first admin.
pub async fn create(
    db: &impl ConnectionTrait,
    email: &str,
    name: &str,
    password_hash: Option<String>,
    role: Role,
) -> Result<Account, CreateError> {
    let am = user::ActiveModel {
        email: Set(fold_email(email)),
        name: Set(name.trim().to_string()),
        password_hash: Set(password_hash),
        role: Set(role),
        banned: Set(false),
        created_at: Set(Utc::now()),
        last_login_at: Set(None),
        email_verified_at: Set(Some(Utc::now())),
        ..Default::default()
    };
    am.insert(db).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => CreateError::EmailTaken,
        _ => CreateError::Db(e),
    })
}

pub async fn by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<Account>, DbErr> {
    User::find()
        .filter(user::Column::Email.eq(fold_email(email)))
        .one(db)
        .await
}

pub async fn by_id(db: &impl ConnectionTrait, id: i32) -> Result<Option<Account>, DbErr> {
    User::find_by_id(id).one(db).await
}

pub async fn count_admins(db: &DatabaseConnection) -> Result<u64, DbErr> {
    User::find()
        .filter(user::Column::Role.eq(Role::Admin))
        .count(db)
        .await
}

pub async fn count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    User::find().count(db).await
}

async fn update(db: &impl ConnectionTrait, am: user::ActiveModel) -> Result<(), DbErr> {
    am.update(db).await.map(|_| ())
}

pub async fn set_password(db: &DatabaseConnection, id: i32, hash: String) -> Result<(), DbErr> {
    update(
        db,
        user::ActiveModel {
            id: Set(id),
            password_hash: Set(Some(hash)),
            ..Default::default()
        },
    )
    .await
}

pub async fn set_role(db: &DatabaseConnection, id: i32, role: Role) -> Result<(), DbErr> {
    update(
        db,
        user::ActiveModel {
            id: Set(id),
            role: Set(role),
            ..Default::default()
        },
    )
    .await
}

/// Marks an account as a publisher an admin approved (moderation lists their projects at once).
pub async fn set_approved_publisher(db: &DatabaseConnection, id: i32) -> Result<(), DbErr> {
    update(
        db,
        user::ActiveModel {
            id: Set(id),
            approved_publisher: Set(true),
            ..Default::default()
        },
    )
    .await
}

/// Lifts a ban (`ban` sets it).
pub async fn set_banned(db: &DatabaseConnection, id: i32, banned: bool) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    write_banned(&tx, id, banned).await?;
    tx.commit().await
}

/// Bans or unbans inside the caller's transaction. A ban also ends every session and revokes
/// every API token.
async fn write_banned(tx: &impl ConnectionTrait, id: i32, banned: bool) -> Result<(), DbErr> {
    update(
        tx,
        user::ActiveModel {
            id: Set(id),
            banned: Set(banned),
            ..Default::default()
        },
    )
    .await?;
    if banned {
        Session::delete_many()
            .filter(session::Column::UserId.eq(id))
            .exec(tx)
            .await?;
        ApiToken::delete_many()
            .filter(api_token::Column::UserId.eq(id))
            .exec(tx)
            .await?;
    }
    Ok(())
}

/// What a ban wrote, for the engine work after it.
#[derive(Debug, Default)]
pub struct BanWritten {
    /// Sandboxes now stopping, whose containers go next.
    pub sandboxes: Vec<String>,
    /// Builds that were active: the queued ones are cancelled, the running ones must be told.
    pub builds: Vec<String>,
    pub projects_hidden: u64,
}

/// A ban's writes, in one transaction: the account banned (sessions and tokens gone), its active
/// sandboxes marked stopping, its queued builds cancelled (`cancel_note` as their error), its
/// projects hidden. All or nothing. `None`: no such account.
pub async fn ban(
    db: &DatabaseConnection,
    id: i32,
    cancel_note: &str,
) -> Result<Option<BanWritten>, DbErr> {
    let tx = db.begin().await?;
    if User::find_by_id(id).one(&tx).await?.is_none() {
        return Ok(None);
    }
    write_banned(&tx, id, true).await?;
    let key = OwnerKey::User(id);
    let written = BanWritten {
        sandboxes: crate::sandboxes::mark_stopping_of(&tx, &key).await?,
        builds: crate::builds::cancel_queued_of(&tx, &key, cancel_note).await?,
        projects_hidden: crate::projects::hide_maintained_by(&tx, &key).await?,
    };
    tx.commit().await?;
    Ok(Some(written))
}

pub async fn touch_login(db: &DatabaseConnection, id: i32) -> Result<(), DbErr> {
    update(
        db,
        user::ActiveModel {
            id: Set(id),
            last_login_at: Set(Some(Utc::now())),
            ..Default::default()
        },
    )
    .await
}

/// One page of accounts for the admin, newest first, optionally filtered by email or name.
pub async fn list(
    db: &DatabaseConnection,
    query: &str,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Account>, u64), DbErr> {
    let mut select = User::find();
    let q = query.trim().to_lowercase();
    if !q.is_empty() {
        let pattern = format!("%{}%", escape_like(&q));
        select = select.filter(
            Condition::any()
                .add(Expr::col(user::Column::Email).like(LikeExpr::new(&pattern).escape('\\')))
                .add(
                    Expr::expr(Func::lower(Expr::col(user::Column::Name)))
                        .like(LikeExpr::new(&pattern).escape('\\')),
                ),
        );
    }
    let total = select.clone().count(db).await?;
    let rows = select
        .order_by_desc(user::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

// ---- sessions ----

pub async fn create_session(
    db: &DatabaseConnection,
    id_hash: &str,
    user_id: i32,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    session::ActiveModel {
        id: Set(id_hash.into()),
        user_id: Set(user_id),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// The account behind a live session (not expired, not banned).
pub async fn session_account(
    db: &DatabaseConnection,
    id_hash: &str,
) -> Result<Option<Account>, DbErr> {
    let Some(s) = Session::find_by_id(id_hash)
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(by_id(db, s.user_id).await?.filter(|u| !u.banned))
}

pub async fn delete_session(db: &DatabaseConnection, id_hash: &str) -> Result<(), DbErr> {
    Session::delete_by_id(id_hash).exec(db).await.map(|_| ())
}

/// Ends every session of an account except `keep` (after a password change).
pub async fn delete_other_sessions(
    db: &DatabaseConnection,
    user_id: i32,
    keep: Option<&str>,
) -> Result<u64, DbErr> {
    let mut q = Session::delete_many().filter(session::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        q = q.filter(session::Column::Id.ne(keep));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// Removes expired sessions, abandoned OAuth flows and unused mailed links (so a sign-up whose
/// link was never opened is gone after a day).
pub async fn purge_expired(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let now = Utc::now();
    let links = EmailToken::delete_many()
        .filter(email_token::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected;
    let a = Session::delete_many()
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected;
    let b = OauthFlow::delete_many()
        .filter(oauth_flow::Column::CreatedAt.lte(now - chrono::Duration::minutes(FLOW_MINUTES)))
        .exec(db)
        .await?
        .rows_affected;
    Ok(a + b + links)
}

// ---- Mailed links: sign-up, password reset, address verification ----

pub use email_token::Model as EmailLink;

/// What a mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Finishes a sign-up: the account is created when it is opened.
    Signup,
    /// Sets a new password (and so proves the address).
    Reset,
    /// Marks an existing account's address verified.
    Verify,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Reset => "reset",
            Self::Verify => "verify",
        }
    }

    /// How long a link stays valid.
    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Self::Signup | Self::Verify => chrono::Duration::hours(24),
            Self::Reset => chrono::Duration::minutes(30),
        }
    }
}

/// A sign-up waiting for its link: nothing else about the address changes until it is opened.
/// It holds no password: the password is chosen on the page the link opens, so whoever signs up
/// an address first cannot set the password of the account its owner later creates.
/// `browser`: hex SHA-256 of the asking browser's visitor key.
pub async fn put_signup(
    db: &DatabaseConnection,
    token_hash: &str,
    email: &str,
    name: &str,
    browser: Option<String>,
) -> Result<(), DbErr> {
    put_link(
        db,
        email_token::ActiveModel {
            token_hash: Set(token_hash.into()),
            purpose: Set(LinkPurpose::Signup.as_str().into()),
            email: Set(fold_email(email)),
            user_id: Set(None),
            name: Set(Some(name.trim().to_string())),
            password_hash: Set(None),
            browser: Set(browser),
            ..Default::default()
        },
        LinkPurpose::Signup,
    )
    .await
}

/// A reset or verification link for `account`'s current address, asked for by `browser`.
pub async fn put_account_link(
    db: &DatabaseConnection,
    token_hash: &str,
    purpose: LinkPurpose,
    account: &Account,
    browser: Option<String>,
) -> Result<(), DbErr> {
    put_link(
        db,
        email_token::ActiveModel {
            token_hash: Set(token_hash.into()),
            purpose: Set(purpose.as_str().into()),
            email: Set(account.email.clone()),
            user_id: Set(Some(account.id)),
            name: Set(None),
            password_hash: Set(None),
            browser: Set(browser),
            ..Default::default()
        },
        purpose,
    )
    .await
}

async fn put_link(
    db: &DatabaseConnection,
    mut am: email_token::ActiveModel,
    purpose: LinkPurpose,
) -> Result<(), DbErr> {
    let now = Utc::now();
    am.created_at = Set(now);
    am.expires_at = Set(now + purpose.lifetime());
    am.used_at = Set(None);
    am.insert(db).await.map(|_| ())
}

/// A link as its page sees it before using it: any state (used and expired ones included, until
/// they are purged).
pub async fn link_by_hash(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<EmailLink>, DbErr> {
    EmailToken::find_by_id(token_hash.to_string()).one(db).await
}

/// Takes a mailed link: returns it and marks it used, if it exists, has `purpose`, is unused and
/// has not expired. Single use under concurrency too: only the caller whose update marked the
/// row gets it.
pub async fn take_link(
    db: &DatabaseConnection,
    token_hash: &str,
    purpose: LinkPurpose,
) -> Result<Option<EmailLink>, DbErr> {
    let Some(link) = find_link(db, token_hash, purpose).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let marked = EmailToken::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(email_token::Column::TokenHash.eq(token_hash))
        .filter(email_token::Column::UsedAt.is_null())
        .filter(email_token::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?
        .rows_affected;
    Ok((marked == 1).then_some(link))
}

/// An unexpired, unused link of `purpose`, left in place.
pub async fn find_link(
    db: &DatabaseConnection,
    token_hash: &str,
    purpose: LinkPurpose,
) -> Result<Option<EmailLink>, DbErr> {
    EmailToken::find_by_id(token_hash.to_string())
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::ExpiresAt.gt(Utc::now()))
        .filter(email_token::Column::UsedAt.is_null())
        .one(db)
        .await
}

/// Finishes a sign-up whose link was opened (and taken): creates the account, verified, with the
/// password chosen on the link's page, and voids every other pending sign-up of the address
/// (someone else's attempt included).
pub async fn create_from_signup(
    db: &DatabaseConnection,
    link: &EmailLink,
    password_hash: String,
) -> Result<Account, CreateError> {
    let tx = db.begin().await?;
    let account = create(
        &tx,
        &link.email,
        link.name.as_deref().unwrap_or_default(),
        Some(password_hash),
        Role::User,
    )
    .await?;
    EmailToken::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(Some(Utc::now())))
        .filter(email_token::Column::Email.eq(&link.email))
        .filter(email_token::Column::Purpose.eq(LinkPurpose::Signup.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(account)
}

/// Marks `account`'s address verified, if the link was mailed to the address it still has.
pub async fn mark_verified(db: &DatabaseConnection, link: &EmailLink) -> Result<bool, DbErr> {
    let Some(id) = link.user_id else {
        return Ok(false);
    };
    Ok(User::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(Some(Utc::now())))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::Email.eq(&link.email))
        .exec(db)
        .await?
        .rows_affected
        == 1)
}

/// A reset link was opened: the new password replaces the old one, the address counts as
/// verified (the link proved it), and every credential ends: all sessions, all API tokens (a
/// stolen token must not outlive the owner's recovery) and the other reset links.
pub async fn reset_password(
    db: &DatabaseConnection,
    link: &EmailLink,
    hash: String,
) -> Result<Option<Account>, DbErr> {
    let Some(id) = link.user_id else {
        return Ok(None);
    };
    let tx = db.begin().await?;
    let Some(account) = User::find_by_id(id)
        .filter(user::Column::Email.eq(&link.email))
        .one(&tx)
        .await?
    else {
        return Ok(None);
    };
    let verified_at = account.email_verified_at.unwrap_or_else(Utc::now);
    let account = user::ActiveModel {
        id: Set(id),
        password_hash: Set(Some(hash)),
        email_verified_at: Set(Some(verified_at)),
        ..Default::default()
    }
    .update(&tx)
    .await?;
    Session::delete_many()
        .filter(session::Column::UserId.eq(id))
        .exec(&tx)
        .await?;
    ApiToken::delete_many()
        .filter(api_token::Column::UserId.eq(id))
        .exec(&tx)
        .await?;
    EmailToken::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(Some(Utc::now())))
        .filter(email_token::Column::UserId.eq(id))
        .filter(email_token::Column::Purpose.eq(LinkPurpose::Reset.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(Some(account))
}

// ---- API tokens ----

pub use api_token::Model as Token;

pub async fn create_token(
    db: &DatabaseConnection,
    user_id: i32,
    name: &str,
    token_hash: &str,
    hint: &str,
    admin: bool,
) -> Result<Token, DbErr> {
    api_token::ActiveModel {
        user_id: Set(user_id),
        name: Set(name.into()),
        token_hash: Set(token_hash.into()),
        hint: Set(hint.into()),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        admin: Set(admin),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn tokens_of(db: &DatabaseConnection, user_id: i32) -> Result<Vec<Token>, DbErr> {
    ApiToken::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .order_by_desc(api_token::Column::Id)
        .all(db)
        .await
}

pub async fn count_tokens(db: &DatabaseConnection, user_id: i32) -> Result<u64, DbErr> {
    ApiToken::find()
        .filter(api_token::Column::UserId.eq(user_id))
        .count(db)
        .await
}

/// Revokes every token of the account (a password change that asks for it); how many.
pub async fn revoke_all_tokens(db: &DatabaseConnection, user_id: i32) -> Result<u64, DbErr> {
    Ok(ApiToken::delete_many()
        .filter(api_token::Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Revokes one of the account's tokens; false if it has no such token.
pub async fn revoke_token(db: &DatabaseConnection, user_id: i32, id: i32) -> Result<bool, DbErr> {
    Ok(ApiToken::delete_many()
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::Id.eq(id))
        .exec(db)
        .await?
        .rows_affected
        > 0)
}

/// The account a token belongs to (not banned); records its use.
/// The account of an API token, and whether the token carries its admin role.
pub async fn token_account(
    db: &DatabaseConnection,
    token_hash: &str,
) -> Result<Option<(Account, bool)>, DbErr> {
    let Some(t) = ApiToken::find()
        .filter(api_token::Column::TokenHash.eq(token_hash))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    api_token::ActiveModel {
        id: Set(t.id),
        last_used_at: Set(Some(Utc::now())),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(by_id(db, t.user_id)
        .await?
        .filter(|u| !u.banned)
        .map(|u| (u, t.admin)))
}

// ---- OAuth ----

/// Minutes a visitor has to come back from the provider.
pub const FLOW_MINUTES: i64 = 10;

pub async fn put_flow(
    db: &DatabaseConnection,
    state_hash: &str,
    provider: &str,
    pkce_verifier: &str,
    next: &str,
) -> Result<(), DbErr> {
    oauth_flow::ActiveModel {
        state_hash: Set(state_hash.into()),
        provider: Set(provider.into()),
        pkce_verifier: Set(pkce_verifier.into()),
        next: Set(next.into()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// Takes (deletes and returns) a flow that is still fresh: a state can be used once.
pub async fn take_flow(
    db: &DatabaseConnection,
    state_hash: &str,
) -> Result<Option<oauth_flow::Model>, DbErr> {
    let Some(flow) = OauthFlow::find_by_id(state_hash).one(db).await? else {
        return Ok(None);
    };
    let gone = OauthFlow::delete_by_id(state_hash)
        .exec(db)
        .await?
        .rows_affected;
    let fresh = flow.created_at > Utc::now() - chrono::Duration::minutes(FLOW_MINUTES);
    Ok((gone == 1 && fresh).then_some(flow))
}

pub async fn linked_account(
    db: &DatabaseConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Account>, DbErr> {
    let Some(link) = OauthLink::find()
        .filter(oauth_link::Column::Provider.eq(provider))
        .filter(oauth_link::Column::Subject.eq(subject))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    by_id(db, link.user_id).await
}

pub async fn link(
    db: &impl ConnectionTrait,
    user_id: i32,
    provider: &str,
    subject: &str,
) -> Result<(), DbErr> {
    oauth_link::ActiveModel {
        user_id: Set(user_id),
        provider: Set(provider.into()),
        subject: Set(subject.into()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

pub async fn providers_of(db: &DatabaseConnection, user_id: i32) -> Result<Vec<String>, DbErr> {
    Ok(OauthLink::find()
        .filter(oauth_link::Column::UserId.eq(user_id))
        .order_by_asc(oauth_link::Column::Provider)
        .all(db)
        .await?
        .into_iter()
        .map(|l| l.provider)
        .collect())
}

// ---- moving and deleting ----

/// At sign-in, a visitor's history, finished sandboxes and projects become the account's. The
/// visitor's active sandbox moves too, unless the account already has one.
pub async fn adopt(
    db: &DatabaseConnection,
    visitor_key: &OwnerKey,
    user_key: &OwnerKey,
) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    let busy = sandbox::Entity::find()
        .filter(sandbox::Column::Owner.eq(user_key))
        .filter(sandbox::Column::Active.eq(true))
        .count(&tx)
        .await?
        > 0;
    let mut moving = sandbox::Entity::update_many()
        .col_expr(sandbox::Column::Owner, Expr::value(user_key))
        .filter(sandbox::Column::Owner.eq(visitor_key));
    if busy {
        moving = moving.filter(sandbox::Column::Active.eq(false));
    }
    moving.exec(&tx).await?;
    project::Entity::update_many()
        .col_expr(project::Column::Maintainer, Expr::value(user_key))
        .filter(project::Column::Maintainer.eq(visitor_key))
        .exec(&tx)
        .await?;
    build::Entity::update_many()
        .col_expr(build::Column::Owner, Expr::value(user_key))
        .filter(build::Column::Owner.eq(visitor_key))
        .exec(&tx)
        .await?;
    tx.commit().await
}

/// What happens to a leaving account's projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectFate {
    /// Hidden from the catalogue (admins can bring them back).
    Hide,
    /// Maintained by another account from now on.
    HandOver { to_user: i32 },
}

/// What an account's deletion wrote.
#[derive(Debug, Default)]
pub struct Deleted {
    pub projects_moved: u64,
    /// Sandboxes now stopping (re-keyed to the anonymous key), whose containers go next.
    pub sandboxes: Vec<String>,
}

/// Deletes an account and its personal data (sessions, tokens, OAuth links cascade), in one
/// transaction. Try and build statistics stay, under an anonymous key that nothing links back
/// to the person; its active sandboxes are marked stopping (the caller removes the containers
/// after the commit).
pub async fn delete(
    db: &DatabaseConnection,
    user_id: i32,
    fate: &ProjectFate,
    anonymous_key: &OwnerKey,
) -> Result<Deleted, DbErr> {
    let key = OwnerKey::User(user_id);
    let tx = db.begin().await?;
    let sandboxes = crate::sandboxes::mark_stopping_of(&tx, &key).await?;
    let projects = match fate {
        ProjectFate::Hide => {
            project::Entity::update_many()
                .col_expr(
                    project::Column::Status,
                    Expr::value(crate::states::ProjectStatus::Hidden),
                )
                .col_expr(
                    project::Column::Maintainer,
                    Expr::value(Option::<String>::None),
                )
                .filter(project::Column::Maintainer.eq(&key))
                .exec(&tx)
                .await?
        }
        ProjectFate::HandOver { to_user } => {
            project::Entity::update_many()
                .col_expr(
                    project::Column::Maintainer,
                    Expr::value(OwnerKey::User(*to_user)),
                )
                .filter(project::Column::Maintainer.eq(&key))
                .exec(&tx)
                .await?
        }
    }
    .rows_affected;
    sandbox::Entity::update_many()
        .col_expr(sandbox::Column::Owner, Expr::value(anonymous_key))
        .col_expr(
            sandbox::Column::ClientIp,
            Expr::value(Option::<String>::None),
        )
        .filter(sandbox::Column::Owner.eq(&key))
        .exec(&tx)
        .await?;
    build::Entity::update_many()
        .col_expr(build::Column::Owner, Expr::value(anonymous_key))
        .filter(build::Column::Owner.eq(&key))
        .exec(&tx)
        .await?;
    // Explicit deletes as well as the cascade: SQLite enforces foreign keys only when asked.
    Session::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    ApiToken::delete_many()
        .filter(api_token::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    OauthLink::delete_many()
        .filter(oauth_link::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    EmailToken::delete_many()
        .filter(email_token::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    User::delete_by_id(user_id).exec(&tx).await?;
    crate::settings::bump_catalog_version(&tx).await?;
    tx.commit().await?;
    Ok(Deleted {
        projects_moved: projects,
        sandboxes,
    })
}
