//! Site settings an admin changes at run time. Values are JSON so a setting can grow fields
//! without a migration.
use crate::entities::setting::{self, Entity as Setting};
use sea_orm::{prelude::*, sea_query::OnConflict, ActiveValue::Set};
use serde::{Deserialize, Serialize};

const FEATURED: &str = "featured";
const CATALOG_VERSION: &str = "catalog_version";
const SITE_GENERATION: &str = "site_generation";

/// The home page's featured banner: one project and a line of text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Featured {
    pub slug: String,
    pub line: String,
}

pub const MAX_FEATURED_LINE: usize = 140;

/// Checks an admin's banner before it is stored: a live project and one short line of plain text.
/// What is wrong with a banner.
#[derive(Debug, thiserror::Error)]
pub enum FeaturedError {
    #[error("The banner needs a line of text.")]
    EmptyLine,
    #[error("The banner line is too long: at most {MAX_FEATURED_LINE} characters.")]
    LineTooLong,
    #[error("The banner line must be a single line of text.")]
    NotOneLine,
    #[error("Project '{0}' is not live.")]
    NotLive(String),
    #[error("There is no project '{0}'.")]
    NoSuchProject(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl FeaturedError {
    /// The form field the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            FeaturedError::NotLive(_) | FeaturedError::NoSuchProject(_) => "slug",
            _ => "line",
        }
    }
}

pub async fn validate_featured(db: &DatabaseConnection, f: &Featured) -> Result<(), FeaturedError> {
    let line = f.line.trim();
    if line.is_empty() {
        return Err(FeaturedError::EmptyLine);
    }
    if line.chars().count() > MAX_FEATURED_LINE {
        return Err(FeaturedError::LineTooLong);
    }
    if line.chars().any(char::is_control) {
        return Err(FeaturedError::NotOneLine);
    }
    // The entity, not `projects::by_slug`: `projects` bumps the catalogue version kept here.
    use crate::entities::project;
    let found = project::Entity::find()
        .filter(project::Column::Slug.eq(f.slug.as_str()))
        .one(db)
        .await?;
    match found {
        Some(p) if p.status == crate::states::ProjectStatus::Live => Ok(()),
        Some(_) => Err(FeaturedError::NotLive(f.slug.clone())),
        None => Err(FeaturedError::NoSuchProject(f.slug.clone())),
    }
}

async fn get(db: &DatabaseConnection, key: &str) -> Result<Option<String>, DbErr> {
    Ok(Setting::find_by_id(key).one(db).await?.map(|s| s.value))
}

async fn put(db: &impl ConnectionTrait, key: &str, value: String) -> Result<(), DbErr> {
    let row = setting::ActiveModel {
        key: Set(key.into()),
        value: Set(value),
        updated_at: Set(chrono::Utc::now()),
    };
    Setting::insert(row)
        .on_conflict(
            OnConflict::column(setting::Column::Key)
                .update_columns([setting::Column::Value, setting::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}

/// The featured banner, if an admin set one (a value that no longer parses counts as unset).
pub async fn featured(db: &DatabaseConnection) -> Result<Option<Featured>, DbErr> {
    Ok(get(db, FEATURED)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

pub async fn set_featured(db: &DatabaseConnection, f: Option<&Featured>) -> Result<(), DbErr> {
    match f {
        Some(f) => put(db, FEATURED, serde_json::json!(f).to_string()).await,
        None => Setting::delete_by_id(FEATURED).exec(db).await.map(|_| ()),
    }
}

/// Changes whenever a project is created, edited, re-imaged or changes status, so every process's
/// search index knows to reload. A fresh unique token, not a counter: no read-modify-write race.
/// Catalogue writes this process made (a reader that saw no change here need not ask the database
/// again for a short while).
static LOCAL_WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn local_catalog_writes() -> u64 {
    LOCAL_WRITES.load(std::sync::atomic::Ordering::SeqCst)
}

pub async fn bump_catalog_version(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let n = LOCAL_WRITES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let token = format!(
        "{}-{}-{n}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        std::process::id()
    );
    put(db, CATALOG_VERSION, token).await?;
    // Once more after the write: a search that read the old version between the first count
    // and the write would otherwise trust it for `VERSION_TTL` after this change returned.
    LOCAL_WRITES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

pub async fn catalog_version(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    get(db, CATALOG_VERSION).await
}

/// Changes on every change made through the API, on any replica: each replica's page cache
/// empties when it sees a new one (`PageCache::follow`). A fresh unique token, as the catalogue
/// version.
pub async fn bump_site_generation(db: &DatabaseConnection) -> Result<(), DbErr> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let token = format!(
        "{}-{}-{n}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        std::process::id()
    );
    put(db, SITE_GENERATION, token).await
}

pub async fn site_generation(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    get(db, SITE_GENERATION).await
}
