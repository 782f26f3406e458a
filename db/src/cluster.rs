//! What several app servers (replicas) over one database agree on through it: leases (one
//! holder of a cluster-wide job at a time) and rate limits every replica counts against. Each
//! is one atomic statement (an upsert with a condition), the same on SQLite and PostgreSQL;
//! times are milliseconds since the epoch by the app servers' clocks (kept in step by NTP).
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// `sql` written with `?` placeholders, numbered `$1, $2, …` for PostgreSQL.
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => sql.to_string(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Takes lease `name` for `holder` until `ttl` from now, or renews it if `holder` has it: true
/// when `holder` holds it now. Another holder's lease is taken only once it has expired.
pub async fn acquire_lease(
    db: &DatabaseConnection,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
) -> Result<bool, DbErr> {
    let now = now_ms();
    let backend = db.get_database_backend();
    let stmt = statement(
        backend,
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
        vec![
            name.into(),
            holder.into(),
            now.saturating_add(ms(ttl)).into(),
            now.into(),
        ],
    );
    Ok(db.execute_raw(stmt).await?.rows_affected() == 1)
}

/// Who holds lease `name` now (None: nobody, or it expired).
pub async fn lease_holder(db: &DatabaseConnection, name: &str) -> Result<Option<String>, DbErr> {
    let backend = db.get_database_backend();
    let stmt = statement(
        backend,
        "SELECT holder FROM leases WHERE name = ? AND expires_at >= ?",
        vec![name.into(), now_ms().into()],
    );
    match db.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(row.try_get::<String>("", "holder")?)),
        None => Ok(None),
    }
}

/// A limit of `n` events per `period` for one key, with bursts of up to `n` (as governor's
/// `Quota::per_minute(n)`), counted in the database by every replica: GCRA, whose one number per
/// key (the theoretical arrival time) moves on by `period / n` per allowed event. `Ok(None)`:
/// allowed and counted; `Ok(Some(wait))`: refused (nothing counted) for about `wait`.
pub async fn check_rate(
    db: &DatabaseConnection,
    key: &str,
    n: u32,
    period: std::time::Duration,
) -> Result<Option<std::time::Duration>, DbErr> {
    let now = now_ms();
    let tau = ms(period).max(1);
    let step = (tau / i64::from(n.max(1))).max(1);
    let backend = db.get_database_backend();
    let max = match backend {
        DatabaseBackend::Postgres => "GREATEST",
        _ => "max",
    };
    // Allowed while max(tat, now) + step stays within the burst (now + period); a refusal
    // changes nothing (the update's condition is false, so no row is written).
    let sql = format!(
        "INSERT INTO rate_limits (key, tat) VALUES (?, ?) \
         ON CONFLICT (key) DO UPDATE SET tat = {max}(rate_limits.tat, ?) + ? \
         WHERE {max}(rate_limits.tat, ?) + ? <= ?"
    );
    let stmt = statement(
        backend,
        &sql,
        vec![
            key.into(),
            (now + step).into(),
            now.into(),
            step.into(),
            now.into(),
            step.into(),
            (now + tau).into(),
        ],
    );
    if db.execute_raw(stmt).await?.rows_affected() == 1 {
        return Ok(None);
    }
    let read = statement(
        backend,
        "SELECT tat FROM rate_limits WHERE key = ?",
        vec![key.into()],
    );
    let tat = match db.query_one_raw(read).await? {
        Some(row) => row.try_get::<i64>("", "tat")?,
        None => now,
    };
    let wait = (tat + step - tau - now).max(1);
    Ok(Some(std::time::Duration::from_millis(wait as u64)))
}

/// Forgets the rate-limit keys whose every event has aged out (their arrival time is past).
pub async fn purge_rate_limits(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let stmt = statement(
        backend,
        "DELETE FROM rate_limits WHERE tat < ?",
        vec![now_ms().into()],
    );
    Ok(db.execute_raw(stmt).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn sqlite() -> DatabaseConnection {
        crate::connect_and_migrate("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("db: {e}"))
    }

    #[tokio::test]
    async fn the_shared_limit_allows_the_burst_then_refuses_without_counting() {
        let db = sqlite().await;
        let minute = Duration::from_secs(60);
        for i in 0..5 {
            let r = check_rate(&db, "login-ip:1.2.3.4", 5, minute).await;
            assert!(matches!(r, Ok(None)), "attempt {i}: {r:?}");
        }
        let refused = check_rate(&db, "login-ip:1.2.3.4", 5, minute).await;
        let Ok(Some(wait)) = refused else {
            panic!("the sixth attempt within a minute passed: {refused:?}")
        };
        assert!(
            wait <= Duration::from_secs(12) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // A refusal counts nothing: the wait does not grow with more refused attempts.
        let again = check_rate(&db, "login-ip:1.2.3.4", 5, minute).await;
        assert!(matches!(again, Ok(Some(w)) if w <= wait), "{again:?}");
        // Another key has its own allowance.
        assert!(matches!(
            check_rate(&db, "login-ip:5.6.7.8", 5, minute).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn the_shared_limit_refills_at_its_rate() {
        let db = sqlite().await;
        // 2 per 200 ms: one more every 100 ms.
        let period = Duration::from_millis(200);
        for _ in 0..2 {
            assert!(matches!(check_rate(&db, "k", 2, period).await, Ok(None)));
        }
        assert!(matches!(check_rate(&db, "k", 2, period).await, Ok(Some(_))));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(check_rate(&db, "k", 2, period).await, Ok(None)));
        // Aged-out keys are forgotten by the purge, live ones kept.
        assert!(matches!(
            check_rate(&db, "long", 1, Duration::from_secs(60)).await,
            Ok(None)
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(purge_rate_limits(&db).await, Ok(1)));
        assert!(matches!(
            check_rate(&db, "long", 1, Duration::from_secs(60)).await,
            Ok(Some(_))
        ));
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires() {
        let db = sqlite().await;
        let ttl = Duration::from_millis(200);
        assert!(matches!(
            acquire_lease(&db, "reaper", "a", ttl).await,
            Ok(true)
        ));
        assert!(matches!(
            acquire_lease(&db, "reaper", "b", ttl).await,
            Ok(false)
        ));
        // The holder renews; another job's lease is separate.
        assert!(matches!(
            acquire_lease(&db, "reaper", "a", ttl).await,
            Ok(true)
        ));
        assert!(matches!(
            acquire_lease(&db, "purge", "b", ttl).await,
            Ok(true)
        ));
        assert_eq!(
            lease_holder(&db, "reaper").await.ok().flatten().as_deref(),
            Some("a")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Expired: the next asker takes it, and the old holder no longer has it.
        assert!(matches!(
            acquire_lease(&db, "reaper", "b", ttl).await,
            Ok(true)
        ));
        assert!(matches!(
            acquire_lease(&db, "reaper", "a", ttl).await,
            Ok(false)
        ));
    }
}
