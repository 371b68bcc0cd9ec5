//! Time partitions of the raw tables on PostgreSQL (migration 7).
//!
//! `round_records` and `observations` are partitioned by range of
//! `round_ms`, the start time of the row's round (round × the campaign's
//! interval, written at ingest; a campaign the collector does not know
//! falls back to the report's timestamp): one partition per UTC day,
//! named `<table>_YYYYMMDD`, plus a `<table>_default` partition that
//! catches rows outside every day partition (reports far in the past, or
//! days not created yet), so an insert never fails for want of a partition.
//!
//! The key is derived from the round, not from the report's own clock, so
//! a primary key extended by it (as PostgreSQL requires of a partitioned
//! table) is still unique on (campaign, round, agent, chunk/block): a round
//! resent under another batch id conflicts with the stored one and is
//! stored once, as before.
//!
//! Day partitions are created ahead (today − 1 to today + [`AHEAD_DAYS`], by
//! the database's clock) at open and whenever retention runs on a new day;
//! creating one moves the default partition's rows of that day into it.
//! Retention drops every day partition that ended before the cutoff (one
//! catalog change instead of millions of row deletes) and deletes the
//! default partition's old rows in small batches. A day's raw rows are
//! thus kept between `raw_days` and `raw_days` + 1 day. Traces are few
//! and stay in one table, deleted in batches.
//!
//! SQLite has no partitions: there `round_ms` is written but unused, and
//! retention deletes in batches (`purge`).

use std::ops::RangeInclusive;

use sqlx::{AnyConnection, AnyPool, Row};

use super::sql::SqlStore;
use super::tables;
use super::url::Backend;
use super::StoreError;

/// The partitioned tables.
pub const TABLES: [&str; 2] = [tables::ROUND_RECORDS.name, tables::OBSERVATIONS.name];
/// Day partitions created after today.
pub const AHEAD_DAYS: i64 = 2;
const DAY_MS: i64 = 86_400_000;
/// Advisory lock key serializing partition changes among collectors ("dwpt").
const LOCK: i64 = 0x6477_7074;
/// Most day partitions the upgrade creates for existing data (older rows
/// go to the default partition, which retention empties in batches).
const MAX_UPGRADE_DAYS: i64 = 400;
/// How long retention waits for a partition's lock before giving up until
/// the next pass: a queued exclusive lock would stall ingest behind it.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// The UTC day (days since 1970-01-01) holding `ms`.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// `<table>_YYYYMMDD` for `day`.
pub fn partition_name(table: &str, day: i64) -> Option<String> {
    let date = chrono::DateTime::from_timestamp(day.checked_mul(86_400)?, 0)?.date_naive();
    Some(format!("{table}_{}", date.format("%Y%m%d")))
}

/// The day of partition `name` of `table`, if it is a day partition.
pub fn day_of_partition(table: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(table)?.strip_prefix('_')?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

async fn is_partitioned(conn: &mut AnyConnection, table: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_partitioned_table WHERE partrelid = to_regclass($1)",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

/// Migration 7 on PostgreSQL, inside the migration's transaction: each raw
/// table not yet partitioned is renamed, a partitioned table takes its
/// name, day partitions are created for the days its rows cover (the last
/// [`MAX_UPGRADE_DAYS`]) and around `now_ms`, the rows are copied with
/// their round's start time, and the old table is dropped.
pub(super) async fn migrate(conn: &mut AnyConnection, now_ms: i64) -> Result<(), StoreError> {
    for raw in tables::PARTITIONED {
        let table = raw.name;
        if is_partitioned(conn, table).await? {
            continue;
        }
        let old = format!("{table}_v6");
        for stmt in [
            format!("ALTER TABLE {table} RENAME TO {old}"),
            format!("ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey"),
        ] {
            sqlx::query(&stmt).execute(&mut *conn).await?;
        }
        if table == "observations" {
            sqlx::query(
                "ALTER INDEX IF EXISTS observations_by_round RENAME TO observations_v6_by_round",
            )
            .execute(&mut *conn)
            .await?;
        }
        create_parent(conn, raw).await?;
        // Rows of campaigns removed since keep their report time.
        let round_ms = "COALESCE(o.round * c.interval_secs * 1000, o.ts_ms)";
        let from = format!("FROM {old} o LEFT JOIN campaigns c ON c.name = o.campaign");
        let range = sqlx::query(&format!(
            "SELECT MIN({round_ms}) AS lo, MAX({round_ms}) AS hi {from}"
        ))
        .fetch_one(&mut *conn)
        .await?;
        let (lo, hi): (Option<i64>, Option<i64>) = (range.try_get("lo")?, range.try_get("hi")?);
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let last = day_of(hi);
            for day in day_of(lo).max(last - MAX_UPGRADE_DAYS + 1)..=last {
                create_day(conn, table, day).await?;
            }
        }
        for day in around(now_ms) {
            create_day(conn, table, day).await?;
        }
        let cols = raw.column_names();
        let selected = cols
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "INSERT INTO {table} ({cols}, round_ms) SELECT {selected}, {round_ms} {from}"
        ))
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!("DROP TABLE {old}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn create_parent(conn: &mut AnyConnection, raw: &tables::RawTable) -> Result<(), StoreError> {
    let table = raw.name;
    let stmts = [
        format!("{} PARTITION BY RANGE (round_ms)", raw.partitioned_ddl()),
        format!("CREATE TABLE {table}_default PARTITION OF {table} DEFAULT"),
    ];
    for stmt in stmts {
        sqlx::query(&stmt).execute(&mut *conn).await?;
    }
    if table == "observations" {
        sqlx::query("CREATE INDEX observations_by_round ON observations (campaign, round)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The days kept ready around `now_ms`: yesterday to [`AHEAD_DAYS`] ahead.
pub fn around(now_ms: i64) -> RangeInclusive<i64> {
    let today = day_of(now_ms);
    today - 1..=today + AHEAD_DAYS
}

/// Creates the day partition of `table` for `day` if missing, inside the
/// caller's transaction, moving the default partition's rows of that day
/// into it first (attaching a range the default holds rows of would fail).
/// Returns true if created.
async fn create_day(conn: &mut AnyConnection, table: &str, day: i64) -> Result<bool, StoreError> {
    let Some(name) = partition_name(table, day) else {
        return Ok(false);
    };
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&name)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let (lo, hi) = (day * DAY_MS, (day + 1) * DAY_MS);
    sqlx::query(&format!(
        "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "WITH moved AS (DELETE FROM {table}_default WHERE round_ms >= $1 AND round_ms < $2 RETURNING *)
         INSERT INTO {name} SELECT * FROM moved"
    ))
    .bind(lo)
    .bind(hi)
    .execute(&mut *conn)
    .await?;
    // Bounds are integers computed here, not input: inlined (DDL takes no
    // parameters).
    sqlx::query(&format!(
        "ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Creates the day partitions of `days` missing from both tables, in one
/// transaction serialized among collectors.
pub(super) async fn ensure_days(
    pool: &AnyPool,
    days: RangeInclusive<i64>,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    let mut created = 0;
    for table in TABLES {
        for day in days.clone() {
            created += u64::from(create_day(&mut tx, table, day).await?);
        }
    }
    tx.commit().await?;
    Ok(created)
}

/// The day partitions of `table`, as (name, day), by day.
pub(super) async fn day_partitions(
    conn: &mut AnyConnection,
    table: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<(String, i64)> = names
        .into_iter()
        .filter_map(|n| day_of_partition(table, &n).map(|d| (n, d)))
        .collect();
    out.sort_by_key(|p| p.1);
    Ok(out)
}

/// Drops every day partition of both tables that ended at or before
/// `cutoff_ms`; returns the rows they held (the planner's estimate, at
/// least 1 per partition dropped).
pub(super) async fn drop_before(pool: &AnyPool, cutoff_ms: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    let mut rows = 0u64;
    for table in TABLES {
        for (name, day) in day_partitions(&mut tx, table).await? {
            if (day + 1) * DAY_MS > cutoff_ms {
                break;
            }
            let est: i64 = sqlx::query_scalar(
                "SELECT GREATEST(reltuples::BIGINT, 1) FROM pg_class WHERE oid = to_regclass($1)",
            )
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(&mut *tx)
                .await?;
            rows += u64::try_from(est).unwrap_or(1);
            tracing::info!(partition = %name, "dropped a day of raw rounds past the retention");
        }
    }
    tx.commit().await?;
    Ok(rows)
}

/// The database's clock, in ms: partitions are kept ready by it.
pub(super) async fn db_now_ms(pool: &AnyPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT")
            .fetch_one(pool)
            .await?,
    )
}

impl SqlStore {
    /// PostgreSQL: creates the raw tables' missing day partitions around
    /// `now_ms` (yesterday to two days ahead), moving rows of those days
    /// out of the default partition; returns how many were created. A
    /// no-op on SQLite.
    pub async fn ensure_partitions(&self, now_ms: i64) -> Result<u64, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(0);
        }
        ensure_days(&self.pool, around(now_ms)).await
    }

    /// PostgreSQL: the names of the raw tables' day partitions (empty on
    /// SQLite), by table then day.
    pub async fn raw_partitions(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        if self.backend == Backend::Postgres {
            let mut conn = self.pool.acquire().await?;
            for table in TABLES {
                out.extend(
                    day_partitions(&mut conn, table)
                        .await?
                        .into_iter()
                        .map(|p| p.0),
                );
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let day = day_of(1_796_000_000_000);
        let name = partition_name("observations", day).unwrap();
        assert_eq!(name, "observations_20261130");
        assert_eq!(day_of_partition("observations", &name), Some(day));
        assert_eq!(day_of_partition("round_records", &name), None);
        assert_eq!(
            day_of_partition("observations", "observations_default"),
            None
        );
        assert_eq!(partition_name("t", 0).unwrap(), "t_19700101");
        assert_eq!(day_of(-1), -1);
    }
}
