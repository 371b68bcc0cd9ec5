//! Leases in SQL: named, expiring locks that elect one correlator among
//! several collectors sharing a database.

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
