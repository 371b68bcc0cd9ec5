//! Leases in SQL: named, expiring locks that share correlation among
//! several collectors sharing a database (a lease per campaign, and a
//! membership lease per running collector: `crate::correlation`).

use super::sql::SqlStore;
use super::StoreError;

pub(super) async fn try_lease(
    s: &SqlStore,
    name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
         WHERE leases.holder = excluded.holder OR leases.expires_ms < $4",
    )
    .bind(name)
    .bind(holder)
    .bind(now_ms.saturating_add(ttl_ms))
    .bind(now_ms)
    .execute(&s.pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn release_lease(
    s: &SqlStore,
    name: &str,
    holder: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(&s.pool)
        .await?;
    Ok(())
}

/// How long an expired lease row is kept before `live_holders` forgets it
/// (membership rows are named by holder, and each restart makes one).
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

pub(super) async fn live_holders(
    s: &SqlStore,
    prefix: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
    sqlx::query("DELETE FROM leases WHERE name LIKE $1 AND expires_ms < $2")
        .bind(&pattern)
        .bind(now_ms.saturating_sub(FORGET_AFTER_MS))
        .execute(&s.pool)
        .await?;
    let holders: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT holder FROM leases WHERE name LIKE $1 AND expires_ms >= $2 ORDER BY holder",
    )
    .bind(&pattern)
    .bind(now_ms)
    .fetch_all(&s.pool)
    .await?;
    Ok(holders)
}
