//! The trythis database: entities, migrations (run at start-up) and the queries the server uses.
//!
//! SQLite is the embedded default; every query here also runs on PostgreSQL (CI tests both).

pub mod entities;
pub mod migrations;
pub mod projects;
pub mod sandboxes;

use sea_orm::{ConnectOptions, Database};
pub use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

/// Connects (creating the SQLite file if needed) and applies every pending migration.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut url = url.to_string();
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        url.push_str(if url.contains('?') {
            "&mode=rwc"
        } else {
            "?mode=rwc"
        });
    }
    let mut opts = ConnectOptions::new(url.clone());
    opts.sqlx_logging(false);
    if url.contains(":memory:") {
        // Each pooled connection would otherwise see its own empty in-memory database.
        opts.max_connections(1).min_connections(1);
    }
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        use sea_orm::ConnectionTrait;
        // WAL lets readers run beside the one writer (synchronous=NORMAL: no fsync per commit, still
        // crash-safe in WAL mode); busy_timeout queues writers instead of failing.
        db.execute_unprepared(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;",
        )
        .await?;
    }
    migrations::Migrator::up(&db, None).await?;
    Ok(db)
}

/// Cheap liveness query for `/healthz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}
