//! Retention of the raw tables (packed rounds, per-block observations,
//! traces, round timing, probe errors): one bounded delete for both
//! backends.
//!
//! Each statement deletes at most `limit` rows of one table, picked through
//! the (campaign, round) index by the row's physical id (`rowid` on SQLite,
//! `ctid` on PostgreSQL, where it is unique within one table, which a
//! partitioned parent is not), so it holds the SQLite write lock for
//! milliseconds; callers repeat until it returns 0. On PostgreSQL the
//! partitioned tables first lose whole day partitions past the cutoff
//! (`partitions`), and the bounded delete only empties their default
//! partitions of old rows. Verdicts and VP faults are never deleted.

use std::sync::atomic::Ordering;

use super::codec::clamp;
use super::partitions;
use super::sql::SqlStore;
use super::url::Backend;
use super::StoreError;

/// Every raw table, in the order retention deletes from them.
pub(super) const RAW_TABLES: [&str; 5] = [
    "round_records",
    "observations",
    "traces",
    "agent_rounds",
    "probe_errors",
];

/// Deletes up to `limit` rows of each raw table of `campaign` before
/// `before_round` (and on PostgreSQL drops the day partitions past the
/// cutoff); returns how many rows went.
pub(super) async fn purge_raw(
    s: &SqlStore,
    campaign: &str,
    before_round: u64,
    limit: u64,
) -> Result<u64, StoreError> {
    let dropped = match s.backend {
        Backend::Sqlite => 0,
        Backend::Postgres => drop_days(s, campaign, before_round).await?,
    };
    let mut deleted = 0;
    for table in RAW_TABLES {
        deleted += sqlx::query(&bounded_delete(s.backend, table))
            .bind(campaign)
            .bind(clamp(before_round))
            .bind(clamp(limit))
            .execute(&s.pool)
            .await?
            .rows_affected();
    }
    Ok(dropped + deleted)
}

/// The statement deleting up to `$3` rows of `campaign = $1` before round
/// `$2` from `table` (on PostgreSQL, from a partitioned table's default
/// partition).
fn bounded_delete(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}
             WHERE campaign = $1 AND round < $2 LIMIT $3)"
        ),
        Backend::Postgres => {
            let table = if partitions::TABLES.contains(&table) {
                format!("{table}_default")
            } else {
                table.to_string()
            };
            format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}
                 WHERE campaign = $1 AND round < $2 LIMIT $3))"
            )
        }
    }
}

/// PostgreSQL: makes the day partitions ready once a day (by the
/// database's clock), then drops those that ended before the start of
/// `before_round`; returns the rows they held.
async fn drop_days(s: &SqlStore, campaign: &str, before_round: u64) -> Result<u64, StoreError> {
    let today = partitions::day_of(partitions::db_now_ms(&s.pool).await?);
    if s.partitions_day.load(Ordering::Relaxed) != today {
        partitions::ensure_days(&s.pool, partitions::around(today * 86_400_000)).await?;
        s.partitions_day.store(today, Ordering::Relaxed);
    }
    let interval: Option<i64> =
        sqlx::query_scalar("SELECT interval_secs FROM campaigns WHERE name = $1")
            .bind(campaign)
            .fetch_optional(&s.pool)
            .await?;
    match interval {
        Some(i) => {
            let cutoff = i64::try_from(before_round)
                .ok()
                .and_then(|r| r.checked_mul(i.checked_mul(1000)?))
                .ok_or(StoreError::Range("retention cutoff"))?;
            partitions::drop_before(&s.pool, cutoff).await
        }
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioned_tables_purge_their_default_partition_on_postgres() {
        let pg = bounded_delete(Backend::Postgres, "observations");
        assert!(pg.starts_with("DELETE FROM observations_default WHERE ctid"));
        let pg = bounded_delete(Backend::Postgres, "traces");
        assert!(pg.starts_with("DELETE FROM traces WHERE ctid"));
        let lite = bounded_delete(Backend::Sqlite, "observations");
        assert!(lite.starts_with("DELETE FROM observations WHERE rowid"));
    }
}
