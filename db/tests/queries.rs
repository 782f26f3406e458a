//! Database tests, run on SQLite and on PostgreSQL (scripts/test.sh starts it and sets
//! TRYTHIS_TEST_POSTGRES_URL; without it the PostgreSQL tests fail, they do not skip).
use db::{accounts, projects, recommend, sandboxes, settings};
use vocab::{OwnerKey, Role};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The same test body against SQLite and against PostgreSQL, as two named tests.
macro_rules! on_both {
    ($body:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() -> Result {
            $body(sqlite().await?).await
        }

        #[tokio::test]
        async fn $postgres() -> Result {
            $body(postgres().await?).await
        }
    };
}

async fn sqlite() -> Result<db::DatabaseConnection> {
    Ok(db::connect_and_migrate("sqlite::memory:").await?)
}

/// A fresh PostgreSQL database for this test.
async fn postgres() -> Result<db::DatabaseConnection> {
    Ok(db::connect_and_migrate(&fresh_postgres_url().await?).await?)
}

/// The address of a new, empty PostgreSQL database.
async fn fresh_postgres_url() -> Result<String> {
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
    Ok(format!("{base}/{name}"))
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

/// The owner key written `text` (`v:alice`).
fn key(text: &str) -> OwnerKey {
    OwnerKey::parse(text).expect("an owner key")
}

/// A sandbox row of project `p` for `owner` (image "img", expiring now).
fn sandbox_of(p: &projects::Model, id: &str, owner: &str) -> sandboxes::NewSandbox {
    sandboxes::NewSandbox {
        id: id.into(),
        owner: key(owner),
        project_id: p.id,
        project_slug: p.slug.clone(),
        category: p.category.clone(),
        image: "img".into(),
        expires_at: chrono::Utc::now(),
        client_ip: None,
    }
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
        projects::count_try(db, p.id, &key("v:seed")).await?;
    }
    Ok(projects::by_id(db, p.id).await?.ok_or("missing")?)
}

async fn one_active_sandbox_per_owner(db: db::DatabaseConnection) -> Result {
    let p = project(&db, "jq", "jq", "CLI tools", &[], 0).await?;
    let new = |id: &str, owner: &str| sandbox_of(&p, id, owner);
    sandboxes::insert_starting(&db, new("a1", "v:alice")).await?;
    assert!(matches!(
        sandboxes::insert_starting(&db, new("a2", "v:alice")).await,
        Err(sandboxes::InsertError::OwnerBusy)
    ));
    sandboxes::insert_starting(&db, new("b1", "v:bob")).await?;
    sandboxes::finish(
        &db,
        "a1",
        db::SandboxState::Ended,
        vocab::EndReason::Expired,
    )
    .await?;
    sandboxes::insert_starting(&db, new("a3", "v:alice")).await?;
    assert_eq!(sandboxes::count_active(&db).await?, 2);
    assert_eq!(sandboxes::history(&db, &key("v:alice"), 10).await?.len(), 2);
    let cats = sandboxes::tries_by_category(&db, &key("v:alice")).await?;
    assert_eq!(cats, vec![("CLI tools".to_string(), 2)]);
    Ok(())
}

/// Writes follow the transition tables as compare-and-set: a late writer never moves a record
/// back (a sandbox stopped while starting is not marked ready; a cancelled build does not run; a
/// hidden project stays hidden when its maintainer's rebuild lands).
async fn late_writers_cannot_move_records_back(db: db::DatabaseConnection) -> Result {
    use db::{builds, BuildState, ProjectStatus, SandboxState};
    let p = project(&db, "jq", "jq", "CLI tools", &[], 0).await?;
    sandboxes::insert_starting(&db, sandbox_of(&p, "s1", "v:alice")).await?;
    assert!(sandboxes::set_stopping(&db, "s1").await?);
    assert!(!sandboxes::mark_ready(&db, "s1", ("c1", None), 5).await?);
    sandboxes::finish(
        &db,
        "s1",
        SandboxState::Ended,
        vocab::EndReason::StoppedByOwner,
    )
    .await?;
    assert!(!sandboxes::set_stopping(&db, "s1").await?);
    let s = sandboxes::get(&db, "s1").await?.ok_or("sandbox")?;
    assert_eq!((s.state, s.active), (SandboxState::Ended, false));

    builds::insert_queued(
        &db,
        builds::NewBuild {
            id: "b1".into(),
            project_id: p.id,
            project_slug: "jq".into(),
            owner: key("v:alice"),
            source_kind: "dockerfile".into(),
            source: "FROM x".into(),
            dockerfile: "FROM x".into(),
            steps: 1,
            check_command: Some("x --version".into()),
            check_expect: None,
        },
    )
    .await?;
    assert!(!builds::set_state(&db, "b1", BuildState::Pushing).await?);
    assert!(builds::finish(&db, "b1", BuildState::Cancelled, None, "", None).await?);
    assert!(!builds::set_state(&db, "b1", BuildState::Running).await?);
    assert!(!builds::finish(&db, "b1", BuildState::Failed, Some("late"), "", None).await?);
    let b = builds::get(&db, "b1").await?.ok_or("build")?;
    assert_eq!((b.state, b.error), (BuildState::Cancelled, None));

    // `project()` made jq live; an admin hides it; the maintainer's next image keeps it hidden.
    assert!(projects::set_status(&db, p.id, ProjectStatus::Hidden).await?);
    projects::set_image(&db, p.id, "r", "sha256:y", 2).await?;
    let p = projects::by_id(&db, p.id).await?.ok_or("project")?;
    assert_eq!(p.status, ProjectStatus::Hidden);
    assert_eq!(p.image_digest.as_deref(), Some("sha256:y"));
    assert!(!projects::set_status(&db, p.id, ProjectStatus::Building).await?);
    Ok(())
}

async fn search_ranks_and_filters(db: db::DatabaseConnection) -> Result {
    let index = db::search::SearchIndex::new();
    project(&db, "redis", "Redis", "Databases", &["cache"], 5).await?;
    project(&db, "redict", "Redict", "Databases", &["cache"], 50).await?;
    project(&db, "cafe", "Café Tools", "CLI tools", &["coffee"], 1).await?;
    project(&db, "jq", "jq", "CLI tools", &["json"], 9).await?;
    let s = |q: &str, cat: Option<&str>| projects::Search {
        q: q.into(),
        category: cat.map(String::from),
        page: 1,
        per_page: 10,
        sort: projects::SearchSort::Relevance,
    };
    let (r, _) = index.search(&db, &s("redis", None)).await?;
    assert_eq!(
        r.first().map(|p| p.slug.as_str()),
        Some("redis"),
        "exact name first"
    );
    let (r, _) = index.search(&db, &s("red", None)).await?;
    assert_eq!(
        slugs(&r),
        ["redict", "redis"],
        "prefix matches by popularity"
    );
    let (r, _) = index.search(&db, &s("CAFE", None)).await?;
    assert_eq!(r.len(), 1, "case- and accent-insensitive");
    let (r, _) = index.search(&db, &s("coff", None)).await?;
    assert_eq!(r.len(), 1, "tags, prefix-tolerant");
    let (r, total) = index.search(&db, &s("", Some("CLI tools"))).await?;
    assert_eq!((total, r[0].slug.as_str()), (2, "jq"));
    let (r, total) = index
        .search(
            &db,
            &projects::Search {
                page: 2,
                per_page: 3,
                ..s("", None)
            },
        )
        .await?;
    assert_eq!((total, r.len()), (4, 1), "pagination");
    let (r, _) = index.search(&db, &s("json", None)).await?;
    assert_eq!(slugs(&r), ["jq"], "tags are searched");
    let (r, _) = index.search(&db, &s("cache", None)).await?;
    assert_eq!(slugs(&r), ["redict", "redis"], "text matches by popularity");
    let (r, total) = index.search(&db, &s("100%_", None)).await?;
    assert_eq!((r.len(), total), (0, 0), "LIKE wildcards are literal");
    for wildcard in ["%", "_", "%%"] {
        let (_, total) = index.search(&db, &s(wildcard, None)).await?;
        assert_eq!(
            total, 0,
            "{wildcard:?} alone is literal text, not every project"
        );
    }
    let (r, _) = index.search(&db, &s("rediss", None)).await?;
    assert_eq!(
        slugs(&r),
        ["redict", "redis"],
        "two typos away, by popularity"
    );
    let (r, _) = index.search(&db, &s("rdis", Some("CLI tools"))).await?;
    assert!(r.is_empty(), "typo matches keep the category filter");
    let (r, _) = index.search(&db, &s("tools", None)).await?;
    assert_eq!(
        slugs(&r),
        ["cafe", "jq"],
        "name contains ranks before category text"
    );
    // The orders Explore offers: popularity (no words), newest first, by name.
    let sorted = |sort| projects::Search {
        sort,
        ..s("", None)
    };
    let (r, _) = index
        .search(&db, &sorted(projects::SearchSort::Relevance))
        .await?;
    assert_eq!(
        slugs(&r),
        ["redict", "jq", "redis", "cafe"],
        "most tried first"
    );
    let (r, _) = index
        .search(&db, &sorted(projects::SearchSort::Newest))
        .await?;
    assert_eq!(slugs(&r), ["jq", "cafe", "redict", "redis"], "newest first");
    let (r, _) = index
        .search(&db, &sorted(projects::SearchSort::Name))
        .await?;
    assert_eq!(slugs(&r), ["cafe", "jq", "redict", "redis"], "by name");
    let by_name_in_cli = projects::Search {
        category: Some("CLI tools".into()),
        ..sorted(projects::SearchSort::Name)
    };
    let (r, _) = index.search(&db, &by_name_in_cli).await?;
    assert_eq!(slugs(&r), ["cafe", "jq"], "an order keeps the filter");
    // A catalogue write is visible to the next search (the index reloads on the version bump).
    let jq = projects::by_slug(&db, "jq").await?.ok_or("jq")?;
    projects::set_status(&db, jq.id, db::ProjectStatus::Hidden).await?;
    let (r, _) = index.search(&db, &s("json", None)).await?;
    assert!(r.is_empty(), "hidden projects leave search at once");
    project(&db, "jqlang", "jqlang", "CLI tools", &["json"], 0).await?;
    let (r, _) = index.search(&db, &s("json", None)).await?;
    assert_eq!(slugs(&r), ["jqlang"], "new projects appear at once");
    Ok(())
}

/// Records a finished Try of `p` by `owner`, `days_ago` days back.
async fn tried(
    db: &db::DatabaseConnection,
    owner: &str,
    p: &projects::Model,
    days_ago: i64,
) -> Result {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let id = format!("t{}", rand_suffix());
    sandboxes::insert_starting(db, sandbox_of(p, &id, owner)).await?;
    sandboxes::finish(db, &id, db::SandboxState::Ended, vocab::EndReason::Expired).await?;
    db::entities::sandbox::ActiveModel {
        id: Set(id),
        created_at: Set(chrono::Utc::now() - chrono::Duration::days(days_ago)),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

fn slugs(v: &[projects::Model]) -> Vec<&str> {
    v.iter().map(|p| p.slug.as_str()).collect()
}

/// Trending counts one try per identity per project per day: one visitor re-trying (or a script
/// minting tries) does not outrank two people.
async fn trending_counts_each_identity_once_a_day(db: db::DatabaseConnection) -> Result {
    let a = project(&db, "a", "A", "CLI tools", &[], 0).await?;
    let b = project(&db, "b", "B", "CLI tools", &[], 0).await?;
    for _ in 0..5 {
        tried(&db, "v:x", &a, 0).await?;
    }
    tried(&db, "v:y", &b, 0).await?;
    tried(&db, "v:z", &b, 0).await?;
    assert_eq!(slugs(&recommend::trending(&db, 2).await?), ["b", "a"]);
    // The same visitor on three different days is three tries.
    tried(&db, "v:x", &a, 1).await?;
    tried(&db, "v:x", &a, 2).await?;
    assert_eq!(slugs(&recommend::trending(&db, 2).await?), ["a", "b"]);
    // The all-time counter follows the same rule.
    let me = "v:counted";
    for _ in 0..3 {
        tried(&db, me, &b, 0).await?;
        projects::count_try(&db, b.id, &key(me)).await?;
    }
    assert_eq!(projects::by_id(&db, b.id).await?.ok_or("b")?.tries, 1);
    Ok(())
}

async fn trending_counts_the_last_week(db: db::DatabaseConnection) -> Result {
    let old = project(&db, "old", "Old favourite", "Editors", &[], 100).await?;
    let hot = project(&db, "hot", "Hot", "CLI tools", &[], 1).await?;
    let warm = project(&db, "warm", "Warm", "CLI tools", &[], 2).await?;
    project(&db, "quiet", "Quiet", "Other", &[], 0).await?;
    // Quiet week: all-time order.
    assert_eq!(
        slugs(&recommend::trending(&db, 3).await?),
        ["old", "warm", "hot"]
    );
    for _ in 0..3 {
        tried(&db, "v:a", &hot, 1).await?;
    }
    tried(&db, "v:b", &warm, 2).await?;
    for _ in 0..5 {
        tried(&db, "v:c", &old, 30).await?; // a month ago: not trending
    }
    assert_eq!(
        slugs(&recommend::trending(&db, 2).await?),
        ["hot", "warm"],
        "the week's tries rank first"
    );
    assert_eq!(
        slugs(&recommend::trending(&db, 4).await?),
        ["hot", "warm", "old", "quiet"],
        "a short week is filled with all-time favourites"
    );
    projects::set_status(&db, hot.id, db::ProjectStatus::Hidden).await?;
    assert_eq!(
        slugs(&recommend::trending(&db, 1).await?),
        ["warm"],
        "hidden projects never trend"
    );
    Ok(())
}

async fn recommendations_follow_category_shares(db: db::DatabaseConnection) -> Result {
    // Cloud (DevOps & cloud) 6 tries, AI 2, System (CLI tools) 2 → 6 / 2 / 2 of 10 slots.
    let mut by_cat = std::collections::HashMap::new();
    for (cat, n) in [
        ("DevOps & cloud", 8),
        ("AI & data", 4),
        ("CLI tools", 4),
        ("Games & fun", 4),
    ] {
        let mut v = Vec::new();
        for i in 0..n {
            let slug = format!(
                "{}-{i}",
                cat.split(' ').next().unwrap_or("x").to_lowercase()
            );
            v.push(project(&db, &slug, &slug, cat, &[], 100 - i as i64).await?);
        }
        by_cat.insert(cat, v);
    }
    let cloud = &by_cat["DevOps & cloud"];
    // Six tries of cloud (two of them today, of cloud-0), two AI, two CLI, all older than a day
    // except cloud-0.
    tried(&db, "v:me", &cloud[0], 0).await?;
    tried(&db, "v:me", &cloud[0], 0).await?;
    for _ in 0..4 {
        tried(&db, "v:me", &cloud[1], 3).await?;
    }
    for _ in 0..2 {
        tried(&db, "v:me", &by_cat["AI & data"][0], 3).await?;
        tried(&db, "v:me", &by_cat["CLI tools"][0], 3).await?;
    }
    let recs = recommend::for_owner(&db, &key("v:me"), 10, &[])
        .await?
        .items;
    let count = |cat: &str| recs.iter().filter(|p| p.category == cat).count();
    assert_eq!(recs.len(), 10);
    assert_eq!(
        (
            count("DevOps & cloud"),
            count("AI & data"),
            count("CLI tools")
        ),
        (6, 2, 2)
    );
    assert!(
        !recs.iter().any(|p| p.slug == "devops-0"),
        "tried today: skipped"
    );
    assert_eq!(
        slugs(&recs[..2]),
        ["devops-1", "devops-2"],
        "most-tried of the category first"
    );
    // No history: not trending again (that is on the page already) but a tour.
    let fresh = recommend::for_owner(&db, &key("v:new"), 3, &[]).await?;
    assert!(!fresh.personal);
    // One category with too few projects: the rest comes from trending.
    let games = &by_cat["Games & fun"];
    tried(&db, "v:gamer", &games[0], 2).await?;
    let recs = recommend::for_owner(&db, &key("v:gamer"), 6, &[])
        .await?
        .items;
    assert_eq!(recs.len(), 6);
    assert_eq!(
        recs.iter().filter(|p| p.category == "Games & fun").count(),
        4,
        "all four games, then trending"
    );
    Ok(())
}

/// A newcomer's "you may like" is a tour: the most tried project of each category, leaving out
/// what Trending shows; empty when Trending shows everything.
async fn newcomers_get_a_tour_without_trending(db: db::DatabaseConnection) -> Result {
    project(&db, "db-1", "Db one", "Databases", &[], 90).await?;
    project(&db, "db-2", "Db two", "Databases", &[], 80).await?;
    project(&db, "db-3", "Db three", "Databases", &[], 70).await?;
    project(&db, "ed-1", "Ed one", "Editors", &[], 60).await?;
    project(&db, "ed-2", "Ed two", "Editors", &[], 10).await?;
    project(&db, "game-1", "Game one", "Games & fun", &[], 5).await?;
    let trending = recommend::trending(&db, 2).await?;
    assert_eq!(slugs(&trending), ["db-1", "db-2"]);
    let shown: Vec<i32> = trending.iter().map(|p| p.id).collect();
    let tour = recommend::for_owner(&db, &key("v:newcomer"), 10, &shown).await?;
    assert!(!tour.personal);
    assert_eq!(
        slugs(&tour.items),
        ["db-3", "ed-1", "game-1"],
        "one per category, the best not already trending, most tried first"
    );
    let two = recommend::for_owner(&db, &key("v:newcomer"), 2, &shown).await?;
    assert_eq!(slugs(&two.items), ["db-3", "ed-1"], "at most n");
    let everything: Vec<i32> = recommend::trending(&db, 12)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    let none = recommend::for_owner(&db, &key("v:newcomer"), 10, &everything).await?;
    assert!(
        none.items.is_empty(),
        "Trending shows it all: nothing to add ({:?})",
        slugs(&none.items)
    );
    Ok(())
}

/// Searching a command finds the project that installs it: the commands of its description's
/// code blocks and spans and of its smoke check are indexed; rows written before that are
/// reindexed at start-up; a corrected typo says what it searched for.
async fn search_finds_the_commands_a_project_runs(db: db::DatabaseConnection) -> Result {
    let index = db::search::SearchIndex::new();
    let p = projects::upsert(
        &db,
        &projects::NewProject {
            slug: "kv".into(),
            name: "Key Value".into(),
            summary: "A small store.".into(),
            description: "Start it, then `kv-cli` talks to it:\n\n```sh\n$ sudo kv-server --port 7 &\nKV_MODE=fast kv-bench | tee /tmp/out\n```\n".into(),
            category: "Databases".into(),
            ..Default::default()
        },
    )
    .await?;
    db::builds::insert_queued(
        &db,
        db::builds::NewBuild {
            id: "b1".into(),
            project_id: p.id,
            project_slug: "kv".into(),
            owner: key("v:m"),
            source_kind: "dockerfile".into(),
            source: String::new(),
            dockerfile: String::new(),
            steps: 1,
            check_command: Some(
                "command -v kv-dump kv-load >/dev/null && /usr/bin/kv-top -h".into(),
            ),
            check_expect: None,
        },
    )
    .await?;
    projects::set_image(&db, p.id, "r", "sha256:x", 1).await?;
    let s = |q: &str| projects::Search {
        q: q.into(),
        page: 1,
        per_page: 10,
        ..Default::default()
    };
    for q in [
        "kv-cli",
        "kv-server",
        "kv-bench",
        "kv-dump",
        "kv-load",
        "kv-top",
        "KV-CLI",
    ] {
        let (r, _) = index.search(&db, &s(q)).await?;
        assert_eq!(slugs(&r), ["kv"], "{q}");
    }
    for q in ["sudo", "port", "fast", "out"] {
        let (r, _) = index.search(&db, &s(q)).await?;
        assert!(r.is_empty(), "{q} is not a command of it: {:?}", slugs(&r));
    }
    // A row indexed before commands were (an older version wrote it): brought up to date.
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    db::entities::project::ActiveModel {
        id: Set(p.id),
        search_text: Set("key value a small store. databases".into()),
        ..Default::default()
    }
    .update(&db)
    .await?;
    assert_eq!(projects::reindex(&db).await?, 1);
    assert_eq!(projects::reindex(&db).await?, 0, "nothing left to change");
    let (r, _) = index.search(&db, &s("kv-bench")).await?;
    assert_eq!(slugs(&r), ["kv"], "reindexed");
    // "Nothing matches “kv-benhc”. Showing results for …": said, not guessed.
    project(&db, "hello", "Hello", "Other", &[], 0).await?;
    let found = index.find(&db, &s("helo")).await?;
    assert_eq!(slugs(&found.items), ["hello"]);
    assert_eq!(found.searched_for.as_deref(), Some("hello"));
    let found = index.find(&db, &s("hello")).await?;
    assert_eq!(found.searched_for, None, "nothing corrected");
    Ok(())
}

async fn featured_banner_round_trips(db: db::DatabaseConnection) -> Result {
    assert_eq!(settings::featured(&db).await?, None);
    let f = settings::Featured {
        slug: "jq".into(),
        line: "Slice JSON like a pro".into(),
    };
    settings::set_featured(&db, Some(&f)).await?;
    settings::set_featured(&db, Some(&f)).await?; // upsert, not a duplicate key
    assert_eq!(settings::featured(&db).await?, Some(f));
    settings::set_featured(&db, None).await?;
    assert_eq!(settings::featured(&db).await?, None);
    Ok(())
}

on_both!(trending_counts_the_last_week: sqlite_trending_counts_the_last_week, postgres_trending_counts_the_last_week);

on_both!(recommendations_follow_category_shares: sqlite_recommendations_follow_category_shares, postgres_recommendations_follow_category_shares);

on_both!(newcomers_get_a_tour_without_trending: sqlite_newcomers_get_a_tour_without_trending, postgres_newcomers_get_a_tour_without_trending);

on_both!(search_finds_the_commands_a_project_runs: sqlite_search_finds_the_commands_a_project_runs, postgres_search_finds_the_commands_a_project_runs);

on_both!(featured_banner_round_trips: sqlite_featured_banner_round_trips, postgres_featured_banner_round_trips);

on_both!(one_active_sandbox_per_owner: sqlite_one_active_sandbox_per_owner, postgres_one_active_sandbox_per_owner);

on_both!(search_ranks_and_filters: sqlite_search_ranks_and_filters, postgres_search_ranks_and_filters);

#[test]
fn fold_strips_accents_and_case() {
    assert_eq!(db::projects::fold("Café ÉLAN Straße"), "cafe elan strasse");
}

async fn accounts_sessions_tokens_and_deletion(db: db::DatabaseConnection) -> Result {
    let a = accounts::create(
        &db,
        " Ann@Example.test ",
        "Ann",
        Some("h".into()),
        Role::User,
    )
    .await?;
    assert_eq!(a.email, "ann@example.test");
    assert!(matches!(
        accounts::create(&db, "ANN@example.test", "x", None, Role::User).await,
        Err(accounts::CreateError::EmailTaken)
    ));
    let heir = accounts::create(&db, "heir@example.test", "Heir", None, Role::User).await?;
    // Sessions: live ones resolve, expired ones do not; bans end them.
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    accounts::create_session(&db, "s1", a.id, soon).await?;
    accounts::create_session(
        &db,
        "old",
        a.id,
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
    .await?;
    assert_eq!(
        accounts::session_account(&db, "s1").await?.map(|u| u.id),
        Some(a.id)
    );
    assert!(accounts::session_account(&db, "old").await?.is_none());
    assert_eq!(accounts::purge_expired(&db).await?, 1);
    // Tokens and OAuth links.
    let t = accounts::create_token(&db, a.id, "CI", "th", "abcd", false).await?;
    assert_eq!(
        accounts::token_account(&db, "th")
            .await?
            .map(|(u, admin)| (u.id, admin)),
        Some((a.id, false))
    );
    accounts::link(&db, a.id, "github", "42").await?;
    assert_eq!(
        accounts::linked_account(&db, "github", "42")
            .await?
            .map(|u| u.id),
        Some(a.id)
    );
    assert!(
        accounts::link(&db, heir.id, "github", "42").await.is_err(),
        "one account per identity"
    );
    // OAuth flows are single use.
    accounts::put_flow(&db, "st", "github", "verifier", "/").await?;
    assert!(accounts::take_flow(&db, "st").await?.is_some());
    assert!(accounts::take_flow(&db, "st").await?.is_none());
    // A visitor's history becomes the account's at sign-in.
    let p = project(&db, "tool", "Tool", "CLI tools", &[], 0).await?;
    tried(&db, "v:visitor", &p, 0).await?;
    projects::set_maintainer(&db, p.id, Some(&key("v:visitor"))).await?;
    accounts::adopt(&db, &key("v:visitor"), &OwnerKey::User(a.id)).await?;
    assert_eq!(
        sandboxes::history(&db, &OwnerKey::User(a.id), 10)
            .await?
            .len(),
        1
    );
    // Deletion: projects handed over, tries anonymised, personal rows gone.
    accounts::delete(
        &db,
        a.id,
        &accounts::ProjectFate::HandOver { to_user: heir.id },
        &key("gone:x"),
    )
    .await?;
    assert!(accounts::by_id(&db, a.id).await?.is_none());
    assert!(accounts::session_account(&db, "s1").await?.is_none());
    assert!(accounts::token_account(&db, "th").await?.is_none());
    assert!(accounts::linked_account(&db, "github", "42")
        .await?
        .is_none());
    assert!(!accounts::revoke_token(&db, a.id, t.id).await?);
    assert_eq!(sandboxes::history(&db, &key("gone:x"), 10).await?.len(), 1);
    let p = projects::by_id(&db, p.id).await?.ok_or("p")?;
    assert_eq!(p.maintainer, Some(OwnerKey::User(heir.id)));
    // Hiding instead.
    accounts::delete(&db, heir.id, &accounts::ProjectFate::Hide, &key("gone:y")).await?;
    let p = projects::by_id(&db, p.id).await?.ok_or("p")?;
    assert_eq!((p.status.as_str(), p.maintainer), ("hidden", None));
    Ok(())
}

on_both!(accounts_sessions_tokens_and_deletion: sqlite_accounts_sessions_tokens_and_deletion, postgres_accounts_sessions_tokens_and_deletion);

on_both!(late_writers_cannot_move_records_back: sqlite_late_writers_cannot_move_records_back, postgres_late_writers_cannot_move_records_back);

on_both!(trending_counts_each_identity_once_a_day: sqlite_trending_counts_each_identity_once_a_day, postgres_trending_counts_each_identity_once_a_day);

/// A badge burst: as many visitors at once as the pool holds each get a distinct pool member.
async fn a_burst_of_claims_takes_every_pool_member(db: db::DatabaseConnection) -> Result {
    const N: usize = 20;
    let p = project(&db, "burst", "Burst", "Other", &[], 0).await?;
    for i in 0..N {
        let id = format!("pool{i}");
        sandboxes::insert_starting(
            &db,
            sandboxes::NewSandbox {
                image: "r@sha256:x".into(),
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
                ..sandbox_of(&p, &id, "pool")
            },
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        assert!(sandboxes::mark_ready(&db, &id, ("c", Some("node-a")), 1).await?);
    }
    let claims: Vec<_> = (0..N)
        .map(|i| {
            let db = db.clone();
            let owner = OwnerKey::Visitor(format!("visitor{i}"));
            tokio::spawn(async move {
                sandboxes::claim_pool(
                    &db,
                    p.id,
                    "r@sha256:x",
                    &owner,
                    chrono::Utc::now() + chrono::Duration::minutes(20),
                    None,
                    &[],
                )
                .await
            })
        })
        .collect();
    let mut claimed = std::collections::BTreeSet::new();
    for c in claims {
        let row = c
            .await?
            .map_err(|e| format!("{e:?}"))?
            .ok_or("a visitor got no pool member")?;
        assert!(row.owner.to_string().starts_with("v:visitor"), "{row:?}");
        claimed.insert(row.id);
    }
    assert_eq!(claimed.len(), N, "every claim took a different member");
    assert!(sandboxes::pool_members(&db).await?.is_empty());
    Ok(())
}

on_both!(a_burst_of_claims_takes_every_pool_member: sqlite_a_burst_of_claims_takes_every_pool_member, postgres_a_burst_of_claims_takes_every_pool_member);

/// Cluster runtime: a member on a sandbox node that is drained or down is never handed out (the
/// visitor would get a sandbox on a machine leaving the cluster); one on a working node is, and
/// the row says which node holds it.
async fn members_on_an_avoided_node_are_not_claimed(db: db::DatabaseConnection) -> Result {
    let p = project(&db, "nodes", "Nodes", "Other", &[], 0).await?;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    for (id, node) in [("on-drained", "node-b"), ("on-working", "node-a")] {
        sandboxes::insert_starting(
            &db,
            sandboxes::NewSandbox {
                image: "r@sha256:x".into(),
                expires_at: later,
                ..sandbox_of(&p, id, "pool")
            },
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        assert!(sandboxes::mark_ready(&db, id, ("c", Some(node)), 1).await?);
    }
    let avoid = ["node-b".to_string()];
    for visitor in ["v:one", "v:two"] {
        let got =
            sandboxes::claim_pool(&db, p.id, "r@sha256:x", &key(visitor), later, None, &avoid)
                .await
                .map_err(|e| format!("{e:?}"))?;
        match visitor {
            "v:one" => {
                let row = got.ok_or("the member on the working node")?;
                assert_eq!(
                    (row.id.as_str(), row.node.as_deref()),
                    ("on-working", Some("node-a"))
                );
            }
            _ => assert!(
                got.is_none(),
                "the drained node's member was handed out: {got:?}"
            ),
        }
    }
    Ok(())
}

on_both!(members_on_an_avoided_node_are_not_claimed: sqlite_members_on_an_avoided_node_are_not_claimed, postgres_members_on_an_avoided_node_are_not_claimed);

/// A warm-pool member the pool is giving back (`stopping`, still owned by the pool) is never
/// handed to a visitor: they would get a sandbox that ends under them.
async fn a_member_being_given_back_cannot_be_claimed(db: db::DatabaseConnection) -> Result {
    let p = project(&db, "giveback", "Give back", "Other", &[], 0).await?;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    for id in ["member-ready", "member-stopping"] {
        sandboxes::insert_starting(
            &db,
            sandboxes::NewSandbox {
                image: "r@sha256:x".into(),
                expires_at: later,
                ..sandbox_of(&p, id, "pool")
            },
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        assert!(sandboxes::mark_ready(&db, id, ("c", None), 1).await?);
    }
    assert!(sandboxes::release_pool_member(&db, "member-stopping").await?);
    let claim = |id: &'static str, owner: &'static str| {
        let db = db.clone();
        async move {
            sandboxes::claim_member(&db, id, &key(owner), later, None)
                .await
                .map_err(|e| format!("{e:?}"))
        }
    };
    assert!(
        claim("member-stopping", "v:late").await?.is_none(),
        "a stopping member was handed out"
    );
    let row = claim("member-ready", "v:first")
        .await?
        .ok_or("ready member")?;
    assert_eq!(row.owner, key("v:first"));
    assert!(claim("member-ready", "v:second").await?.is_none());
    Ok(())
}

on_both!(a_member_being_given_back_cannot_be_claimed: sqlite_a_member_being_given_back_cannot_be_claimed, postgres_a_member_being_given_back_cannot_be_claimed);
/// Moderation: an unlisted project is in no listing (search, newest, most tried, trending,
/// recommendations) but is found by its slug; an approval lists it and marks the maintainer.
/// Deleting a project keeps its tries, anonymised.
async fn unlisted_projects_stay_out_of_listings(db: db::DatabaseConnection) -> Result {
    let listed = project(&db, "listed-one", "Listed One", "CLI tools", &["mod"], 2).await?;
    let hidden = projects::upsert(
        &db,
        &projects::NewProject {
            slug: "pending-one".into(),
            name: "Pending One".into(),
            summary: "Pending One summary".into(),
            category: "CLI tools".into(),
            tags: vec!["mod".into()],
            maintainer: Some(OwnerKey::User(1)),
            unlisted: true,
            ..Default::default()
        },
    )
    .await?;
    projects::set_image(&db, hidden.id, "r", "sha256:y", 1).await?;
    for _ in 0..5 {
        projects::count_try(&db, hidden.id, &key("v:seed")).await?;
    }
    tried(&db, "v:a", &hidden, 0).await?;
    tried(&db, "v:b", &hidden, 0).await?;
    let pending = projects::by_slug(&db, "pending-one")
        .await?
        .ok_or("by slug")?;
    assert!(!pending.listed && pending.status == db::ProjectStatus::Live);
    assert!(listed.listed);
    let index = db::search::SearchIndex::new();
    let all = |q: &str| projects::Search {
        q: q.into(),
        page: 1,
        per_page: 50,
        ..Default::default()
    };
    let (found, _) = index.search(&db, &all("mod")).await?;
    assert_eq!(slugs(&found), ["listed-one"]);
    assert_eq!(slugs(&projects::newest(&db, 10).await?), ["listed-one"]);
    assert_eq!(slugs(&projects::most_tried(&db, 10).await?), ["listed-one"]);
    assert_eq!(slugs(&recommend::trending(&db, 10).await?), ["listed-one"]);
    tried(&db, "v:c", &listed, 0).await?;
    let recs = recommend::for_owner(&db, &key("v:c"), 10, &[]).await?;
    assert!(!slugs(&recs.items).contains(&"pending-one"));
    assert_eq!(
        slugs(&projects::awaiting_review(&db, 10).await?),
        ["pending-one"]
    );

    // Approved: listed everywhere (the search index reloads with the catalogue's version).
    assert!(projects::set_listed(&db, hidden.id, true).await?);
    let (found, _) = index.search(&db, &all("mod")).await?;
    assert_eq!(slugs(&found), ["pending-one", "listed-one"]);
    assert!(projects::awaiting_review(&db, 10).await?.is_empty());
    let user = accounts::create(&db, "pub@example.test", "Pub", None, Role::User).await?;
    assert!(!user.approved_publisher);
    accounts::set_approved_publisher(&db, user.id).await?;
    assert!(
        accounts::by_id(&db, user.id)
            .await?
            .ok_or("user")?
            .approved_publisher
    );

    // Deleted: its tries stay, without its id or slug (a new project may take them).
    projects::delete(&db, hidden.id).await?;
    for owner in ["v:a", "v:b"] {
        let rows = sandboxes::history(&db, &key(owner), 10).await?;
        assert_eq!(rows.len(), 1, "{owner}");
        assert_eq!(rows[0].project_id, projects::DELETED_PROJECT_ID);
        assert_eq!(rows[0].project_slug, "");
        assert_eq!(rows[0].category, "CLI tools", "category statistics stay");
    }
    assert_eq!(
        sandboxes::history(&db, &key("v:c"), 10).await?[0].project_slug,
        "listed-one"
    );
    Ok(())
}

on_both!(unlisted_projects_stay_out_of_listings: sqlite_unlisted_projects_stay_out_of_listings, postgres_unlisted_projects_stay_out_of_listings);

/// End reasons older servers wrote as free text become one word each: renamed where the text
/// named an event, `launch_failed` for a failed launch's error text, `other` for anything else;
/// NULL and the words already right stay.
async fn old_end_reasons_get_one_spelling(db: db::DatabaseConnection) -> Result {
    use sea_orm::{sea_query::Query, ConnectionTrait};
    use sea_orm_migration::MigratorTrait;
    use vocab::EndReason;
    db::migrations::Migrator::up(&db, Some(11)).await?;
    let rows: [(&str, &str, Option<&str>, Option<EndReason>); 10] = [
        (
            "a",
            "ended",
            Some("stopped by admin"),
            Some(EndReason::StoppedByAdmin),
        ),
        (
            "b",
            "ended",
            Some("admin_stopped"),
            Some(EndReason::StoppedByAdmin),
        ),
        ("c", "ended", Some("time limit"), Some(EndReason::Expired)),
        (
            "d",
            "ended",
            Some("out of memory"),
            Some(EndReason::OutOfMemory),
        ),
        (
            "e",
            "ended",
            Some("owner_banned"),
            Some(EndReason::OwnerBanned),
        ),
        (
            "f",
            "failed",
            Some("server restarted"),
            Some(EndReason::ServerRestarted),
        ),
        (
            "g",
            "failed",
            Some("Docker responded with 500: no such image"),
            Some(EndReason::LaunchFailed),
        ),
        (
            "h",
            "ended",
            Some("something a newer server wrote"),
            Some(EndReason::Other),
        ),
        ("i", "ready", None, None),
        ("j", "ended", Some("idle"), Some(EndReason::Idle)),
    ];
    let now = chrono::Utc::now();
    for (id, state, reason, _) in &rows {
        let col = |c: &str| sea_orm::sea_query::Alias::new(c);
        let insert = Query::insert()
            .into_table(col("sandboxes"))
            .columns(
                [
                    "id",
                    "owner",
                    "project_id",
                    "project_slug",
                    "category",
                    "state",
                    "active",
                    "image",
                    "created_at",
                    "expires_at",
                    "last_activity_at",
                    "end_reason",
                    "extensions",
                ]
                .map(col),
            )
            .values_panic([
                (*id).into(),
                "v:old".into(),
                1.into(),
                "old".into(),
                "Other".into(),
                (*state).into(),
                (*state == "ready").into(),
                "img".into(),
                now.into(),
                now.into(),
                now.into(),
                reason.map(str::to_string).into(),
                0.into(),
            ])
            .to_owned();
        db.execute(&insert).await?;
    }
    db::migrations::Migrator::up(&db, None).await?;
    for (id, _, old, new) in rows {
        let row = sandboxes::get(&db, id).await?.ok_or("row")?;
        assert_eq!(row.end_reason, new, "{old:?}");
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_old_end_reasons_get_one_spelling() -> Result {
    let opts = sea_orm::ConnectOptions::new("sqlite::memory:")
        .max_connections(1)
        .min_connections(1)
        .to_owned();
    old_end_reasons_get_one_spelling(sea_orm::Database::connect(opts).await?).await
}

#[tokio::test]
async fn postgres_old_end_reasons_get_one_spelling() -> Result {
    let url = fresh_postgres_url().await?;
    old_end_reasons_get_one_spelling(sea_orm::Database::connect(&url).await?).await
}

/// A maintainer's edit: the fields given change, the others (and the image a build set
/// meanwhile) stay; a search for a word of the new summary finds the project at once, and the
/// old words no longer do; optional fields clear with `Some(None)`.
async fn an_edit_changes_only_its_fields_and_search_sees_it_at_once(
    db: db::DatabaseConnection,
) -> Result {
    let index = db::search::SearchIndex::new();
    let p = project(&db, "ed", "Editable", "CLI tools", &["one"], 0).await?;
    projects::edit(
        &db,
        p.id,
        &projects::MetadataChange {
            license: Some(Some("MIT".into())),
            welcome: Some(Some("Hi".into())),
            ..Default::default()
        },
    )
    .await?;
    let s = |q: &str| projects::Search {
        q: q.into(),
        page: 1,
        per_page: 10,
        ..Default::default()
    };
    // The index is loaded (and trusted) before the edit.
    assert!(index.search(&db, &s("zanzibar")).await?.0.is_empty());
    let edited = projects::edit(
        &db,
        p.id,
        &projects::MetadataChange {
            name: Some("Édité".into()),
            summary: Some("Sails to Zanzibar.".into()),
            tags: Some(vec!["Boat".into(), "sea".into()]),
            license: Some(None),
            ..Default::default()
        },
    )
    .await?
    .ok_or("edited")?;
    assert_eq!(
        (
            edited.name.as_str(),
            edited.name_fold.as_str(),
            edited.tags.as_str()
        ),
        ("Édité", "edite", "boat,sea")
    );
    assert_eq!(edited.license, None, "cleared");
    assert_eq!(edited.welcome.as_deref(), Some("Hi"), "not named, kept");
    assert_eq!(
        (edited.category.as_str(), edited.image_digest.as_deref()),
        ("CLI tools", Some("sha256:x"))
    );
    for q in ["zanzibar", "boat", "edite", "Édité"] {
        assert_eq!(slugs(&index.search(&db, &s(q)).await?.0), ["ed"], "{q}");
    }
    assert!(index.search(&db, &s("one")).await?.0.is_empty(), "old tag");
    assert!(
        projects::edit(&db, 9999, &projects::MetadataChange::default())
            .await?
            .is_none(),
        "no such project"
    );
    Ok(())
}

on_both!(an_edit_changes_only_its_fields_and_search_sees_it_at_once: sqlite_an_edit_changes_only_its_fields_and_search_sees_it_at_once, postgres_an_edit_changes_only_its_fields_and_search_sees_it_at_once);

/// The build a project serves is the succeeded one whose image it points at, not its newest.
async fn the_served_build_is_the_one_whose_image_is_live(db: db::DatabaseConnection) -> Result {
    let p = project(&db, "srv", "Served", "Other", &[], 0).await?;
    let build = |id: &str| db::builds::NewBuild {
        id: id.into(),
        project_id: p.id,
        project_slug: "srv".into(),
        owner: key("v:m"),
        source_kind: "dockerfile".into(),
        source: format!("FROM base\nRUN echo {id}\n"),
        dockerfile: format!("FROM base\nRUN echo {id}\n"),
        steps: 2,
        check_command: None,
        check_expect: None,
    };
    let pushed = |digest: &str| db::builds::Pushed {
        repo: "r".into(),
        tag: "t".into(),
        digest: digest.into(),
        size: 1,
    };
    let run = |id: &'static str, end: db::BuildState, digest: Option<&'static str>| {
        let db = db.clone();
        let b = build(id);
        async move {
            db::builds::insert_queued(&db, b).await?;
            db::builds::set_state(&db, id, db::BuildState::Running).await?;
            db::builds::set_state(&db, id, db::BuildState::Pushing).await?;
            let image = digest.map(pushed);
            assert!(db::builds::finish(&db, id, end, None, "", image.as_ref()).await?);
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    // `project` pointed it at r@sha256:x, which no build made yet.
    assert!(db::builds::served(&db, &p).await?.is_none());
    run("old", db::BuildState::Succeeded, Some("sha256:x")).await?;
    // A newer build that failed, and one that succeeded but is not (yet) served.
    run("bad", db::BuildState::Failed, None).await?;
    run("new", db::BuildState::Succeeded, Some("sha256:y")).await?;
    let served = db::builds::served(&db, &p).await?.ok_or("served")?;
    assert_eq!(served.id, "old");
    projects::set_image(&db, p.id, "r", "sha256:y", 1).await?;
    let p = projects::by_id(&db, p.id).await?.ok_or("project")?;
    assert_eq!(
        db::builds::served(&db, &p).await?.ok_or("served")?.id,
        "new"
    );
    Ok(())
}

on_both!(the_served_build_is_the_one_whose_image_is_live: sqlite_the_served_build_is_the_one_whose_image_is_live, postgres_the_served_build_is_the_one_whose_image_is_live);

/// Share links: stored by their token's hash (unique), listed while unrevoked, revoked once and
/// only by naming their own sandbox; the mode reads back as written.
async fn shares_are_found_by_hash_and_revoked_once(db: db::DatabaseConnection) -> Result {
    use db::shares;
    let p = project(&db, "jq", "jq", "CLI tools", &[], 0).await?;
    sandboxes::insert_starting(&db, sandbox_of(&p, "s1", "v:alice")).await?;
    sandboxes::insert_starting(&db, sandbox_of(&p, "s2", "v:bob")).await?;
    let new = |id: &str, sandbox: &str, hash: &str, mode| shares::NewShare {
        id: id.into(),
        sandbox_id: sandbox.into(),
        token_hash: hash.into(),
        mode,
    };
    shares::create(&db, new("a", "s1", "h-a", vocab::ShareMode::View)).await?;
    shares::create(&db, new("b", "s1", "h-b", vocab::ShareMode::Control)).await?;
    assert!(
        shares::create(&db, new("c", "s2", "h-a", vocab::ShareMode::View))
            .await
            .is_err(),
        "a token hash names one share"
    );
    let found = shares::by_token_hash(&db, "h-b").await?.ok_or("no share")?;
    assert_eq!(
        (found.id.as_str(), found.mode),
        ("b", vocab::ShareMode::Control)
    );
    assert_eq!(shares::count_unrevoked(&db, "s1").await?, 2);
    assert!(
        !shares::revoke(&db, "s2", "a").await?,
        "only through its own sandbox"
    );
    assert!(shares::revoke(&db, "s1", "a").await?);
    assert!(!shares::revoke(&db, "s1", "a").await?, "revoked once");
    let left: Vec<String> = shares::unrevoked_of(&db, "s1")
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec!["b".to_string()]);
    let revoked = shares::by_token_hash(&db, "h-a").await?.ok_or("no share")?;
    assert!(revoked.revoked_at.is_some());
    Ok(())
}

on_both!(shares_are_found_by_hash_and_revoked_once: sqlite_shares_are_found_by_hash_and_revoked_once, postgres_shares_are_found_by_hash_and_revoked_once);

/// Several replicas over one database: a queued build is claimed by one of them; a running
/// build whose claim went stale is taken over by one of any number that saw it stale, once; the
/// old runner's later writes are refused; the shared rate limit and the job leases hold.
async fn builds_are_claimed_and_taken_over_once(db: db::DatabaseConnection) -> Result {
    use db::{builds, cluster, BuildState};
    let p = project(&db, "jq", "jq", "CLI tools", &[], 0).await?;
    builds::insert_queued(
        &db,
        builds::NewBuild {
            id: "b1".into(),
            project_id: p.id,
            project_slug: "jq".into(),
            owner: key("v:alice"),
            source_kind: "dockerfile".into(),
            source: "FROM x".into(),
            dockerfile: "FROM x".into(),
            steps: 1,
            check_command: None,
            check_expect: None,
        },
    )
    .await?;
    assert!(builds::claim(&db, "b1", "a").await?);
    assert!(!builds::claim(&db, "b1", "b").await?);
    assert!(builds::renew(&db, "b1", "a").await?);
    assert!(!builds::renew(&db, "b1", "b").await?);
    // Fresh: not stale yet.
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(30);
    assert!(builds::stale(&db, cutoff).await?.is_empty());
    // A's claim is old by the time B and C look (a cutoff in the future stands for the TTL).
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let seen_by_b = builds::stale(&db, later).await?;
    let seen_by_c = builds::stale(&db, later).await?;
    assert_eq!(seen_by_b.len(), 1);
    assert!(builds::take_over(&db, &seen_by_b[0], later, "a stopped; b starts it again").await?);
    assert!(!builds::take_over(&db, &seen_by_c[0], later, "a stopped; c starts it again").await?);
    let b = builds::get(&db, "b1").await?.ok_or("build")?;
    assert_eq!((b.state, b.runner.as_deref()), (BuildState::Queued, None));
    assert_eq!(b.log, "a stopped; b starts it again\n");
    // A, back from a stall, finds the build no longer its own.
    assert!(!builds::renew(&db, "b1", "a").await?);
    assert!(!builds::advance_as(&db, "b1", "a", BuildState::Pushing).await?);
    assert!(!builds::finish_as(&db, "b1", Some("a"), BuildState::Failed, None, "", None).await?);
    assert!(builds::claim(&db, "b1", "b").await?);
    assert!(!builds::finish_as(&db, "b1", Some("a"), BuildState::Failed, None, "", None).await?);
    assert!(builds::advance_as(&db, "b1", "b", BuildState::Pushing).await?);

    // The shared limit: 3 a minute for one key, whichever replica asks.
    let minute = std::time::Duration::from_secs(60);
    for _ in 0..3 {
        assert_eq!(cluster::check_rate(&db, "k", 3, minute).await?, None);
    }
    assert!(cluster::check_rate(&db, "k", 3, minute).await?.is_some());
    // One lease holder at a time.
    assert!(cluster::acquire_lease(&db, "reaper", "a", minute).await?);
    assert!(!cluster::acquire_lease(&db, "reaper", "b", minute).await?);
    assert!(cluster::acquire_lease(&db, "reaper", "a", minute).await?);
    Ok(())
}

on_both!(builds_are_claimed_and_taken_over_once: sqlite_builds_are_claimed_and_taken_over_once, postgres_builds_are_claimed_and_taken_over_once);
