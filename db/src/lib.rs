//! The trythis database: entities, migrations (run at start-up) and the queries the server uses.
//!
//! SQLite is the embedded default; every query here also runs on PostgreSQL (CI tests both).

pub mod accounts;
pub mod builds;
pub mod cluster;
pub mod entities;
pub mod migrations;
pub mod projects;
pub mod recommend;
pub mod sandboxes;
pub mod search;
pub mod settings;
pub mod shares;
pub mod states;

pub use states::{BuildState, ProjectStatus, SandboxState};

pub use sea_orm;
use sea_orm::{ConnectOptions, Database};
pub use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::MigratorTrait;

/// Connects (creating the SQLite file if needed), applies every pending migration and brings the
/// search text of every project up to date.
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
    // Per connection (pragmas are): WAL lets readers run beside the one writer; synchronous=NORMAL
    // skips the fsync per commit and stays crash-safe in WAL mode; busy_timeout queues writers.
    opts.map_sqlx_sqlite_opts(|o| {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true)
    });
    if url.contains(":memory:") {
        // Each pooled connection would otherwise see its own empty in-memory database.
        opts.max_connections(1).min_connections(1);
    }
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Several app servers may start at once over one database: one migrates while the
        // others wait on this lock (released at the commit), then find nothing left to do.
        use sea_orm::ConnectionTrait;
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7310431001)")
            .await?;
        migrations::Migrator::up(&txn, None).await?;
        txn.commit().await?;
    } else {
        migrations::Migrator::up(&db, None).await?;
    }
    // What search indexes may have grown since the rows were written (commands, for one).
    projects::reindex(&db).await?;
    Ok(db)
}

/// This installation's id (created on first call): shared by every app server on the same
/// database, different for another installation on the same container engine.
pub async fn instance_id(
    db: &DatabaseConnection,
    fresh: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = db.get_database_backend();
    let read = Statement::from_string(backend, "SELECT id FROM instance LIMIT 1");
    if let Some(row) = db.query_one_raw(read.clone()).await? {
        return row.try_get::<String>("", "id");
    }
    let id = fresh();
    // Two servers starting at once: the primary key keeps one row; both then read it back.
    let insert = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "INSERT INTO instance (id) VALUES ($1) ON CONFLICT DO NOTHING"
        }
        _ => "INSERT OR IGNORE INTO instance (id) VALUES (?)",
    };
    db.execute_raw(Statement::from_sql_and_values(backend, insert, [id.into()]))
        .await?;
    let row = db
        .query_one_raw(read)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("instance".into()))?;
    row.try_get::<String>("", "id")
}

/// Cheap liveness query for `/healthz`.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}
