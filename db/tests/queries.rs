//! Database tests, run on SQLite and on PostgreSQL (scripts/test.sh starts it and sets
//! TRYTHIS_TEST_POSTGRES_URL; without it the PostgreSQL tests fail, they do not skip).
use db::{projects, sandboxes};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn sqlite() -> Result<db::DatabaseConnection> {
    Ok(db::connect_and_migrate("sqlite::memory:").await?)
}

/// A fresh PostgreSQL database for this test.
async fn postgres() -> Result<db::DatabaseConnection> {
    let url = std::env::var("TRYTHIS_TEST_POSTGRES_URL").map_err(|_| {
        "TRYTHIS_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL"
    })?;
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(&url).await?;
    let name = format!("trythis_test_{}_{}", std::process::id(), rand_suffix());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let base = url.rsplit_once('/').map(|(b, _)| b).ok_or("bad url")?;
    Ok(db::connect_and_migrate(&format!("{base}/{name}")).await?)
}

fn rand_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}_{n}")
}

async fn project(
    db: &db::DatabaseConnection,
    slug: &str,
    name: &str,
    cat: &str,
    tags: &[&str],
    tries: i64,
) -> Result<projects::Model> {
    let p = projects::upsert(
        db,
        &projects::NewProject {
            slug: slug.into(),
            name: name.into(),
            summary: format!("{name} summary"),
            category: cat.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        },
    )
    .await?;
    projects::set_image(db, p.id, "r", "sha256:x", 1).await?;
    for _ in 0..tries {
        projects::count_try(db, p.id).await?;
    }
    Ok(projects::by_id(db, p.id).await?.ok_or("missing")?)
}

async fn one_active_sandbox_per_owner(db: db::DatabaseConnection) -> Result {
    let p = project(&db, "jq", "jq", "CLI tools", &[], 0).await?;
    let new = |id: &str, owner: &str| sandboxes::NewSandbox {
        id: id.into(),
        owner: owner.into(),
        project_id: p.id,
        project_slug: "jq".into(),
        category: "CLI tools".into(),
        image: "img".into(),
        expires_at: chrono::Utc::now(),
        client_ip: None,
    };
    sandboxes::insert_starting(&db, new("a1", "v:alice")).await?;
    assert!(matches!(
        sandboxes::insert_starting(&db, new("a2", "v:alice")).await,
        Err(sandboxes::InsertError::OwnerBusy)
    ));
    sandboxes::insert_starting(&db, new("b1", "v:bob")).await?;
    sandboxes::finish(&db, "a1", "ended", "test").await?;
    sandboxes::insert_starting(&db, new("a3", "v:alice")).await?;
    assert_eq!(sandboxes::count_active(&db).await?, 2);
    assert_eq!(sandboxes::history(&db, "v:alice", 10).await?.len(), 2);
    let cats = sandboxes::tries_by_category(&db, "v:alice").await?;
    assert_eq!(cats, vec![("CLI tools".to_string(), 2)]);
    Ok(())
}

async fn search_ranks_and_filters(db: db::DatabaseConnection) -> Result {
    project(&db, "redis", "Redis", "Databases", &["cache"], 5).await?;
    project(&db, "redict", "Redict", "Databases", &["cache"], 50).await?;
    project(&db, "cafe", "Café Tools", "CLI tools", &["coffee"], 1).await?;
    project(&db, "jq", "jq", "CLI tools", &["json"], 9).await?;
    let s = |q: &str, cat: Option<&str>| projects::Search {
        q: q.into(),
        category: cat.map(String::from),
        page: 1,
        per_page: 10,
    };
    let (r, _) = projects::search(&db, &s("redis", None)).await?;
    assert_eq!(
        r.first().map(|p| p.slug.as_str()),
        Some("redis"),
        "exact name first"
    );
    let (r, _) = projects::search(&db, &s("red", None)).await?;
    let slugs: Vec<_> = r.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["redict", "redis"], "prefix matches by popularity");
    let (r, _) = projects::search(&db, &s("CAFE", None)).await?;
    assert_eq!(r.len(), 1, "case- and accent-insensitive");
    let (r, _) = projects::search(&db, &s("coff", None)).await?;
    assert_eq!(r.len(), 1, "tags, prefix-tolerant");
    let (r, total) = projects::search(&db, &s("", Some("CLI tools"))).await?;
    assert_eq!((total, r[0].slug.as_str()), (2, "jq"));
    let (r, total) = projects::search(
        &db,
        &projects::Search {
            page: 2,
            per_page: 3,
            ..s("", None)
        },
    )
    .await?;
    assert_eq!((total, r.len()), (4, 1), "pagination");
    Ok(())
}

#[tokio::test]
async fn sqlite_one_active_sandbox_per_owner() -> Result {
    one_active_sandbox_per_owner(sqlite().await?).await
}

#[tokio::test]
async fn postgres_one_active_sandbox_per_owner() -> Result {
    one_active_sandbox_per_owner(postgres().await?).await
}

#[tokio::test]
async fn sqlite_search_ranks_and_filters() -> Result {
    search_ranks_and_filters(sqlite().await?).await
}

#[tokio::test]
async fn postgres_search_ranks_and_filters() -> Result {
    search_ranks_and_filters(postgres().await?).await
}

#[test]
fn fold_strips_accents_and_case() {
    assert_eq!(db::projects::fold("Café ÉLAN Straße"), "cafe elan strasse");
}
