//! Search benchmark: 10,000 live projects in an SQLite file, then a mix of realistic queries.
//! Prints p50 / p95 / p99 per query shape and overall (the target is p99 ≤ 5 ms). Run with
//! `scripts/bench.sh` or `cargo run --release -p db --example search_bench`.
use db::{
    entities::project,
    projects::{fold, search_text, Search, CATEGORIES},
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use std::time::Instant;

const PROJECTS: usize = 10_000;
const ROUNDS: usize = 300;

const WORDS: &[&str] = &[
    "redis", "json", "query", "fast", "web", "server", "shell", "editor", "graph", "stream",
    "cache", "proxy", "lint", "build", "cloud", "deploy", "vector", "model", "data", "game",
    "terminal", "compiler", "runtime", "parser", "crypto", "image", "audio", "network", "log",
    "metrics", "search", "index", "store", "queue", "schedule", "test", "bench", "format", "diff",
    "sync", "backup", "café", "naïve", "résumé", "tiny", "micro", "turbo", "hyper", "lite", "pro",
];

/// Deterministic pseudo-random numbers (no extra dependency for a benchmark).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Makes one query of a given shape from the random stream.
type QueryMaker = dyn Fn(&mut Lcg) -> Search;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("trythis-search-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
    let db = db::connect_and_migrate(&url).await?;

    let t = Instant::now();
    let mut rng = Lcg(42);
    let now = chrono::Utc::now();
    let mut batch = Vec::new();
    for i in 0..PROJECTS {
        let name = format!(
            "{}{}{}",
            WORDS[rng.next(WORDS.len())],
            ["", "-", " "][rng.next(3)],
            WORDS[rng.next(WORDS.len())]
        );
        let summary = format!(
            "A {} {} for {} and {}.",
            WORDS[rng.next(WORDS.len())],
            WORDS[rng.next(WORDS.len())],
            WORDS[rng.next(WORDS.len())],
            WORDS[rng.next(WORDS.len())]
        );
        let tags = format!(
            "{},{}",
            WORDS[rng.next(WORDS.len())],
            WORDS[rng.next(WORDS.len())]
        );
        let category = CATEGORIES[rng.next(CATEGORIES.len())];
        batch.push(project::ActiveModel {
            slug: Set(format!("p{i}")),
            name: Set(name.clone()),
            name_fold: Set(fold(&name)),
            summary: Set(summary.clone()),
            description: Set(format!(
                "# {name}\n\n{summary}\n\n{}",
                "Lorem ipsum. ".repeat(40)
            )),
            category: Set(category.into()),
            tags: Set(fold(&tags)),
            search_text: Set(search_text(&name, &summary, &fold(&tags), category)),
            status: Set(db::ProjectStatus::Live),
            tries: Set(rng.next(5000) as i64),
            egress: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        if batch.len() == 500 {
            project::Entity::insert_many(std::mem::take(&mut batch))
                .exec(&db)
                .await?;
        }
    }
    println!(
        "search bench: {PROJECTS} projects inserted in {:.1} s (SQLite file, WAL)",
        t.elapsed().as_secs_f64()
    );

    let shapes: Vec<(&str, Box<QueryMaker>)> = vec![
        (
            "home: no text, page 1",
            Box::new(|_| Search {
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "one word",
            Box::new(|r| Search {
                q: WORDS[r.next(WORDS.len())].into(),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "prefix (3 letters)",
            Box::new(|r| Search {
                q: WORDS[r.next(WORDS.len())].chars().take(3).collect(),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "two words",
            Box::new(|r| Search {
                q: format!(
                    "{} {}",
                    WORDS[r.next(WORDS.len())],
                    WORDS[r.next(WORDS.len())]
                ),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "word + category",
            Box::new(|r| Search {
                q: WORDS[r.next(WORDS.len())].into(),
                category: Some(CATEGORIES[r.next(CATEGORIES.len())].into()),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "accented, upper case",
            Box::new(|_| Search {
                q: "CAFÉ".into(),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "no match",
            Box::new(|_| Search {
                q: "zzzqx".into(),
                page: 1,
                per_page: 24,
                ..Default::default()
            }),
        ),
        (
            "deep page (page 20)",
            Box::new(|r| Search {
                q: WORDS[r.next(WORDS.len())].chars().take(1).collect(),
                page: 20,
                per_page: 24,
                ..Default::default()
            }),
        ),
    ];
    let index = db::search::SearchIndex::new();
    // Warm the page cache and the statement cache.
    for (_, make) in &shapes {
        index.search(&db, &make(&mut rng)).await?;
    }
    let mut all = Vec::new();
    println!(
        "{:<24} {:>8} {:>8} {:>8}  (ms, {ROUNDS} queries each)",
        "query", "p50", "p95", "p99"
    );
    for (label, make) in &shapes {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let s = make(&mut rng);
            let t = Instant::now();
            let (rows, _) = index.search(&db, &s).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(rows);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{label:<24} {:>8.2} {:>8.2} {:>8.2}",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 0.99)
        );
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    let mut reloads = Vec::new();
    for _ in 0..20 {
        db::settings::bump_catalog_version(&db).await?;
        let t = Instant::now();
        index
            .search(
                &db,
                &Search {
                    q: "redis".into(),
                    page: 1,
                    per_page: 24,
                    ..Default::default()
                },
            )
            .await?;
        reloads.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    reloads.sort_by(f64::total_cmp);
    println!(
        "{:<24} {:>8.2} {:>8.2} {:>8.2}  (first search after a catalogue change)",
        "reload + search",
        percentile(&reloads, 0.5),
        percentile(&reloads, 0.95),
        percentile(&reloads, 0.99)
    );
    println!(
        "{:<24} {:>8.2} {:>8.2} {:>8.2}  (target p99 ≤ 5 ms)",
        "ALL",
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        percentile(&all, 0.99)
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
