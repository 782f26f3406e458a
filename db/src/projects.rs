//! Catalogue queries.
use crate::entities::project::{self, Entity as Project};
use crate::states::ProjectStatus;
use sea_orm::{
    prelude::*, ActiveValue::Set, ExprTrait, PaginatorTrait, QueryOrder, QuerySelect,
    TransactionTrait,
};

pub use project::Model;

/// The fixed category list (admin-extendable later through the admin pages).
pub const CATEGORIES: &[&str] = &[
    "Databases",
    "Languages & runtimes",
    "CLI tools",
    "Web servers",
    "DevOps & cloud",
    "AI & data",
    "Editors",
    "Games & fun",
    "Other",
];

/// Lower-cases and strips the accents of Latin letters, so "Café" matches "cafe".
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => 'i',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ś' | 'š' | 'ş' => 's',
            'ť' | 'ţ' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            'ß' => {
                out.push_str("ss");
                continue;
            }
            c => c,
        };
        out.push(base);
    }
    out
}

/// The text a project is searched by: name, summary, tags and category, folded.
pub fn search_text(name: &str, summary: &str, tags: &str, category: &str) -> String {
    fold(&format!(
        "{name} {summary} {} {category}",
        tags.replace(',', " ")
    ))
}

/// The command names a piece of shell runs: the first word of each command (after `sudo`,
/// `env`, variable assignments and a `$ ` prompt; a `#` line is a comment), and the names
/// `command -v`/`which` look up.
/// Searching `redis-cli` then finds the project whose smoke check or README runs it.
pub fn commands_of(shell: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let seps: &[char] = &['\n', ';', '|', '&', '(', ')', '`'];
    for segment in shell.split(seps) {
        let mut words = segment.split_whitespace().peekable();
        // Prompts, privilege and environment in front of the command itself.
        while let Some(w) = words.peek() {
            if matches!(*w, "$" | ">" | "sudo" | "env" | "exec" | "time" | "!")
                || (w.contains('=') && !w.starts_with('='))
            {
                words.next();
            } else {
                break;
            }
        }
        let Some(first) = words.next() else { continue };
        let names: Vec<&str> = if matches!(first, "command" | "which" | "type" | "hash") {
            words.filter(|w| !w.starts_with('-')).collect()
        } else {
            vec![first]
        };
        for name in names {
            // `/usr/bin/jq` is `jq`; anything that is not a plain name (quotes, globs, $VAR) is not
            // a command.
            let name = fold(name.rsplit('/').next().unwrap_or(name));
            let plain = name.chars().next().is_some_and(|c| c.is_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
            if plain && name.len() <= 40 && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The commands a Markdown description shows: its fenced code blocks and its code spans.
pub fn commands_in(markdown: &str) -> Vec<String> {
    let mut code = String::new();
    let mut in_block = false;
    for line in markdown.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            code.push_str(line);
            code.push('\n');
        } else {
            // `code spans`: every odd piece between backticks.
            for span in line.split('`').skip(1).step_by(2) {
                code.push_str(span);
                code.push('\n');
            }
        }
    }
    commands_of(&code)
}

/// The text a project is searched by: [`search_text`] plus the commands its description and its
/// smoke checks run.
fn index_text(p: &Model, checks: &[String]) -> String {
    let mut text = search_text(&p.name, &p.summary, &p.tags, &p.category);
    let mut commands = commands_in(&p.description);
    for c in checks.iter().flat_map(|c| commands_of(c)) {
        if !commands.contains(&c) {
            commands.push(c);
        }
    }
    for c in commands {
        text.push(' ');
        text.push_str(&c);
    }
    text
}

/// The smoke check commands of the project's builds that may have put its image live.
async fn check_commands(db: &impl ConnectionTrait, id: i32) -> Result<Vec<String>, DbErr> {
    use crate::entities::build;
    Ok(build::Entity::find()
        .select_only()
        .column(build::Column::CheckCommand)
        .filter(build::Column::ProjectId.eq(id))
        .filter(build::Column::CheckCommand.is_not_null())
        .filter(build::Column::State.is_not_in([
            crate::states::BuildState::Failed,
            crate::states::BuildState::Cancelled,
        ]))
        .order_by_desc(build::Column::CreatedAt)
        .limit(3)
        .into_tuple::<Option<String>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Recomputes one project's search text (after a build: its smoke check is new); true if it
/// changed.
pub async fn reindex_one(db: &impl ConnectionTrait, id: i32) -> Result<bool, DbErr> {
    let Some(p) = Project::find_by_id(id).one(db).await? else {
        return Ok(false);
    };
    let text = index_text(&p, &check_commands(db, id).await?);
    if text == p.search_text {
        return Ok(false);
    }
    Project::update_many()
        .col_expr(project::Column::SearchText, Expr::value(text))
        .filter(project::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(true)
}

/// Recomputes every project's search text (at start-up: what is indexed may have grown since the
/// rows were written); bumps the catalogue version when any changed. Returns how many changed.
pub async fn reindex(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let ids: Vec<i32> = Project::find()
        .select_only()
        .column(project::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut changed = 0;
    for id in ids {
        if reindex_one(db, id).await? {
            changed += 1;
        }
    }
    if changed > 0 {
        crate::settings::bump_catalog_version(db).await?;
    }
    Ok(changed)
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchSort {
    /// Best match first (exact name, prefix, contains, other text), then the most tried.
    #[default]
    Relevance,
    /// The most recently published first.
    Newest,
    /// By name, A to Z.
    Name,
}

impl SearchSort {
    pub const ALL: [SearchSort; 3] = [SearchSort::Relevance, SearchSort::Newest, SearchSort::Name];

    /// The URL value (`sort=`); empty is the default.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "relevance" => Some(SearchSort::Relevance),
            "newest" => Some(SearchSort::Newest),
            "name" => Some(SearchSort::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SearchSort::Relevance => "relevance",
            SearchSort::Newest => "newest",
            SearchSort::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Search {
    pub q: String,
    pub category: Option<String>,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
    pub sort: SearchSort,
}

pub async fn by_slug(db: &impl ConnectionTrait, slug: &str) -> Result<Option<Model>, DbErr> {
    Project::find()
        .filter(project::Column::Slug.eq(slug))
        .one(db)
        .await
}

/// Display names of projects by id (for lists that store the slug).
pub async fn names(
    db: &DatabaseConnection,
    ids: impl IntoIterator<Item = i32>,
) -> Result<std::collections::HashMap<i32, String>, DbErr> {
    let ids: Vec<i32> = ids.into_iter().collect();
    Ok(Project::find()
        .filter(project::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect())
}

pub async fn by_id(db: &DatabaseConnection, id: i32) -> Result<Option<Model>, DbErr> {
    Project::find_by_id(id).one(db).await
}

/// Most-tried live projects of all time.
pub async fn most_tried(db: &DatabaseConnection, limit: u64) -> Result<Vec<Model>, DbErr> {
    Project::find()
        .filter(project::Column::Status.eq(ProjectStatus::Live))
        .filter(project::Column::Listed.eq(true))
        .order_by_desc(project::Column::Tries)
        .order_by_asc(project::Column::Name)
        .limit(limit)
        .all(db)
        .await
}

pub async fn newest(db: &DatabaseConnection, limit: u64) -> Result<Vec<Model>, DbErr> {
    Project::find()
        .filter(project::Column::Status.eq(ProjectStatus::Live))
        .filter(project::Column::Listed.eq(true))
        .order_by_desc(project::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// What a project is created or updated from (catalogue seed, publishing).
#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub slug: String,
    pub name: String,
    pub summary: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    pub welcome: Option<String>,
    pub egress: bool,
    /// Set when a maintainer publishes; kept on later updates (ownership never moves silently).
    pub maintainer: Option<vocab::OwnerKey>,
    /// Created unlisted (moderation: waiting for an admin's review); later updates keep the
    /// project's listing as it is.
    pub unlisted: bool,
}

/// Tags as the row stores them: folded, comma-separated.
fn tags_column(tags: &[String]) -> String {
    tags.iter()
        .map(|t| fold(t.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates the project or updates its metadata (keeping image, tries and status).
pub async fn upsert(db: &impl ConnectionTrait, p: &NewProject) -> Result<Model, DbErr> {
    let now = chrono::Utc::now();
    let tags = tags_column(&p.tags);
    let text = search_text(&p.name, &p.summary, &tags, &p.category);
    let existing = by_slug(db, &p.slug).await?;
    let mut am = match &existing {
        Some(m) => project::ActiveModel::from(m.clone()),
        None => project::ActiveModel {
            slug: Set(p.slug.clone()),
            status: Set(ProjectStatus::Building),
            image_repo: Set(None),
            image_digest: Set(None),
            image_size: Set(None),
            owner_id: Set(None),
            tries: Set(0),
            created_at: Set(now),
            egress: Set(false),
            maintainer: Set(p.maintainer.clone()),
            listed: Set(!p.unlisted),
            ..Default::default()
        },
    };
    am.name = Set(p.name.clone());
    am.name_fold = Set(fold(&p.name));
    am.summary = Set(p.summary.clone());
    am.description = Set(p.description.clone());
    am.category = Set(p.category.clone());
    am.tags = Set(tags);
    am.homepage = Set(p.homepage.clone());
    am.repository = Set(p.repository.clone());
    am.license = Set(p.license.clone());
    am.welcome = Set(p.welcome.clone());
    am.egress = Set(p.egress);
    am.search_text = Set(text);
    am.updated_at = Set(now);
    let mut saved = match existing {
        Some(_) => am.update(db).await?,
        None => am.insert(db).await?,
    };
    // The description's commands (and the smoke checks of earlier builds) are searchable too.
    if reindex_one(db, saved.id).await? {
        saved = by_slug(db, &p.slug).await?.unwrap_or(saved);
    }
    crate::settings::bump_catalog_version(db).await?;
    Ok(saved)
}

/// A maintainer's change of a published project's metadata: each field given replaces the
/// stored one (`Some(None)` clears an optional one); the others stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChange {
    pub name: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub homepage: Option<Option<String>>,
    pub repository: Option<Option<String>>,
    pub license: Option<Option<String>>,
    pub welcome: Option<Option<String>>,
}

/// Applies `change` to project `id` (only the columns it names are written, so a build going
/// live meanwhile keeps its image) and brings the project's search text up to date in the same
/// transaction; then bumps the catalogue version, so this process's searches see the change at
/// once (other processes within a second). `None` if there is no such project.
pub async fn edit(
    db: &DatabaseConnection,
    id: i32,
    change: &MetadataChange,
) -> Result<Option<Model>, DbErr> {
    let txn = db.begin().await?;
    let Some(current) = Project::find_by_id(id).one(&txn).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let mut am = project::ActiveModel::from(current);
    if let Some(name) = &change.name {
        am.name = Set(name.clone());
        am.name_fold = Set(fold(name));
    }
    if let Some(v) = &change.summary {
        am.summary = Set(v.clone());
    }
    if let Some(v) = &change.description {
        am.description = Set(v.clone());
    }
    if let Some(v) = &change.category {
        am.category = Set(v.clone());
    }
    if let Some(v) = &change.tags {
        am.tags = Set(tags_column(v));
    }
    if let Some(v) = &change.homepage {
        am.homepage = Set(v.clone());
    }
    if let Some(v) = &change.repository {
        am.repository = Set(v.clone());
    }
    if let Some(v) = &change.license {
        am.license = Set(v.clone());
    }
    if let Some(v) = &change.welcome {
        am.welcome = Set(v.clone());
    }
    am.updated_at = Set(chrono::Utc::now());
    am.update(&txn).await?;
    reindex_one(&txn, id).await?;
    let saved = Project::find_by_id(id).one(&txn).await?;
    txn.commit().await?;
    crate::settings::bump_catalog_version(db).await?;
    Ok(saved)
}

/// Creates a new project; `None` if the slug is taken, even by a submission that committed a
/// moment ago (the unique index decides, not an earlier read).
pub async fn create(db: &impl ConnectionTrait, p: &NewProject) -> Result<Option<Model>, DbErr> {
    if by_slug(db, &p.slug).await?.is_some() {
        return Ok(None);
    }
    match upsert(db, p).await {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Points the project at a new image; a project not yet live (building, or its first build
/// failed) goes live. A hidden one stays hidden: only an admin brings it back.
pub async fn set_image(
    db: &DatabaseConnection,
    id: i32,
    repo: &str,
    digest: &str,
    size: i64,
) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    Project::update_many()
        .col_expr(project::Column::ImageRepo, Expr::value(Some(repo)))
        .col_expr(project::Column::ImageDigest, Expr::value(Some(digest)))
        .col_expr(project::Column::ImageSize, Expr::value(Some(size)))
        .col_expr(project::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(project::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    Project::update_many()
        .col_expr(project::Column::Status, Expr::value(ProjectStatus::Live))
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::Status.is_in([ProjectStatus::Building, ProjectStatus::Failed]))
        .exec(&txn)
        .await?;
    // The build that made this image ran a smoke check: its commands become searchable.
    reindex_one(&txn, id).await?;
    txn.commit().await?;
    crate::settings::bump_catalog_version(db).await
}

/// Moves the project to `status` if the transition table allows it from where it is; false
/// otherwise (nothing changes).
pub async fn set_status(
    db: &DatabaseConnection,
    id: i32,
    status: ProjectStatus,
) -> Result<bool, DbErr> {
    let moved = Project::update_many()
        .col_expr(project::Column::Status, Expr::value(status))
        .col_expr(project::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::Status.is_in(status.comes_from().iter().copied()))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if moved {
        crate::settings::bump_catalog_version(db).await?;
    }
    Ok(moved)
}

/// Counts one more Try of the project.
/// Counts a Try of the project by `owner`: once per identity per project per day (its sandbox
/// row, just written, is the first of the day or the Try is not counted again).
pub async fn count_try(
    db: &DatabaseConnection,
    id: i32,
    owner: &vocab::OwnerKey,
) -> Result<(), DbErr> {
    use crate::entities::sandbox;
    let today = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(chrono::Utc::now);
    let todays = sandbox::Entity::find()
        .filter(sandbox::Column::Owner.eq(owner))
        .filter(sandbox::Column::ProjectId.eq(id))
        .filter(sandbox::Column::CreatedAt.gte(today))
        .count(db)
        .await?;
    if todays > 1 {
        return Ok(());
    }
    Project::update_many()
        .col_expr(
            project::Column::Tries,
            Expr::col(project::Column::Tries).add(1),
        )
        .filter(project::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// How many projects an identity maintains (publishing quota).
pub async fn count_maintained(
    db: &DatabaseConnection,
    maintainer: &vocab::OwnerKey,
) -> Result<u64, DbErr> {
    Project::find()
        .filter(project::Column::Maintainer.eq(maintainer))
        .count(db)
        .await
}

/// The projects `maintainer` publishes, any status, newest first (their account page).
pub async fn maintained_by(
    db: &DatabaseConnection,
    maintainer: &vocab::OwnerKey,
) -> Result<Vec<Model>, DbErr> {
    Project::find()
        .filter(project::Column::Maintainer.eq(maintainer))
        .order_by_desc(project::Column::CreatedAt)
        .all(db)
        .await
}

/// Every project, any status, newest first (admin), optionally filtered by slug or name.
pub async fn list_all(
    db: &DatabaseConnection,
    query: &str,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Model>, u64), DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut select = Project::find();
    let q = fold(query.trim());
    if !q.is_empty() {
        select = select.filter(
            sea_orm::Condition::any()
                .add(project::Column::Slug.contains(&q))
                .add(project::Column::NameFold.contains(&q)),
        );
    }
    let total = select.clone().count(db).await?;
    let rows = select
        .order_by_desc(project::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Deletes a project and its build records. Try statistics (sandbox rows) stay, anonymised:
/// they no longer name the project (a new project may take its slug, or in SQLite its id), so
/// My Containers shows them as a deleted project; their category still counts.
pub async fn delete(db: &DatabaseConnection, id: i32) -> Result<(), DbErr> {
    use crate::entities::sandbox;
    use sea_orm::TransactionTrait;
    let tx = db.begin().await?;
    sandbox::Entity::update_many()
        .col_expr(sandbox::Column::ProjectId, Expr::value(DELETED_PROJECT_ID))
        .col_expr(sandbox::Column::ProjectSlug, Expr::value(""))
        .filter(sandbox::Column::ProjectId.eq(id))
        .exec(&tx)
        .await?;
    crate::entities::build::Entity::delete_many()
        .filter(crate::entities::build::Column::ProjectId.eq(id))
        .exec(&tx)
        .await?;
    Project::delete_by_id(id).exec(&tx).await?;
    crate::settings::bump_catalog_version(&tx).await?;
    tx.commit().await
}

/// The project id of the tries of deleted projects (no project has it: ids start at 1).
pub const DELETED_PROJECT_ID: i32 = 0;

/// Lists or unlists a project (an admin's approval lists it); false if there is no such project.
pub async fn set_listed(db: &DatabaseConnection, id: i32, listed: bool) -> Result<bool, DbErr> {
    let changed = Project::update_many()
        .col_expr(project::Column::Listed, Expr::value(listed))
        .filter(project::Column::Id.eq(id))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if changed {
        crate::settings::bump_catalog_version(db).await?;
    }
    Ok(changed)
}

/// Projects waiting for an admin's review (unlisted, not hidden), oldest first.
pub async fn awaiting_review(db: &DatabaseConnection, limit: u64) -> Result<Vec<Model>, DbErr> {
    Project::find()
        .filter(project::Column::Listed.eq(false))
        .filter(project::Column::Status.ne(ProjectStatus::Hidden))
        .order_by_asc(project::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Gives the project to another maintainer (identity key), or to the site (None).
pub async fn set_maintainer(
    db: &DatabaseConnection,
    id: i32,
    maintainer: Option<&vocab::OwnerKey>,
) -> Result<(), DbErr> {
    project::ActiveModel {
        id: Set(id),
        maintainer: Set(maintainer.cloned()),
        ..Default::default()
    }
    .update(db)
    .await
    .map(|_| ())
}

/// Hides every project `maintainer` maintains (a ban); returns how many changed.
pub async fn hide_maintained_by(
    db: &impl ConnectionTrait,
    maintainer: &vocab::OwnerKey,
) -> Result<u64, DbErr> {
    let hidden = Project::update_many()
        .col_expr(project::Column::Status, Expr::value(ProjectStatus::Hidden))
        .col_expr(project::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(project::Column::Maintainer.eq(maintainer))
        .filter(project::Column::Status.is_in(ProjectStatus::Hidden.comes_from().iter().copied()))
        .exec(db)
        .await?
        .rows_affected;
    if hidden > 0 {
        crate::settings::bump_catalog_version(db).await?;
    }
    Ok(hidden)
}

/// The live project that serves `repo@digest` now, if any: what builds may read of the
/// platform's registry (another project's older builds and tags are not public).
pub async fn serving(
    db: &impl ConnectionTrait,
    repo: &str,
    digest: &str,
) -> Result<Option<Model>, DbErr> {
    Project::find()
        .filter(project::Column::ImageRepo.eq(repo))
        .filter(project::Column::ImageDigest.eq(digest))
        .filter(project::Column::Status.eq(ProjectStatus::Live))
        .one(db)
        .await
}

#[cfg(test)]
mod command_tests {
    use super::{commands_in, commands_of};

    #[test]
    fn the_first_word_of_each_command() {
        assert_eq!(
            commands_of("$ sudo apt-get update && FOO=1 env BAR=2 jq . x.json | less -R; ./run.sh\n# a comment"),
            ["apt-get", "jq", "less", "run.sh"]
        );
        assert_eq!(
            commands_of("command -v vim nano redis-cli | wc -l"),
            ["vim", "nano", "redis-cli", "wc"]
        );
        assert_eq!(commands_of("/usr/local/bin/greeter --version"), ["greeter"]);
        assert!(commands_of("\"quoted\" $HOME *.txt 'x'").is_empty());
    }

    #[test]
    fn code_blocks_and_spans_of_markdown_only() {
        let md = "Run `sqlite3` or `redis-cli ping`, not plain words like python.\n\n```\nlua5.4 -e 'print(1)'\n```\nafter the block: node";
        assert_eq!(commands_in(md), ["sqlite3", "redis-cli", "lua5.4"]);
    }
}
