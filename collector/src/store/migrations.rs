//! The database schema, as numbered migrations applied once each at open.
//!
//! Only BIGINT, DOUBLE PRECISION, TEXT and byte-string ({BLOB}: BLOB or
//! BYTEA) columns are used (booleans are 0/1 integers, lists are JSON
//! text), so both backends decode alike through `sqlx::Any`. On
//! PostgreSQL an advisory lock keeps collectors that start together from
//! running the DDL twice.

use sqlx::{AnyConnection, AnyPool};

use super::codec::unavailable;
use super::tables;
use super::url::Backend;
use super::StoreError;

/// Advisory lock key serializing PostgreSQL migrations ("dwmg").
const MIGRATION_LOCK: i64 = 0x6477_6d67;

/// Schema versions; `{ID}` becomes the backend's autoincrement primary key,
/// `{OBSERVATIONS}` and `{ROUND_RECORDS}` the columns of those raw tables
/// (`tables`, shared with their partitioned copies).
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0,
        last_seen_ms BIGINT
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO counters (name, value) VALUES ('campaign_generation', 0);
    CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        country TEXT,
        interval_secs BIGINT NOT NULL,
        prefixes TEXT NOT NULL,
        control TEXT NOT NULL,
        agents TEXT NOT NULL,
        generation BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        observations BIGINT NOT NULL,
        traces BIGINT NOT NULL
    );
    CREATE TABLE observations ({OBSERVATIONS});
    CREATE INDEX observations_by_round ON observations (campaign, round);
    CREATE TABLE traces (
        agent TEXT NOT NULL,
        campaign TEXT NOT NULL,
        round BIGINT NOT NULL,
        target TEXT NOT NULL,
        reached BIGINT NOT NULL,
        last_responding TEXT,
        hops TEXT NOT NULL,
        ts_ms BIGINT NOT NULL,
        PRIMARY KEY (agent, campaign, round, target)
    );
    CREATE INDEX traces_by_round ON traces (campaign, round);
    CREATE TABLE verdicts (
        id {ID},
        scope TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        campaign TEXT NOT NULL,
        start_round BIGINT NOT NULL,
        end_round BIGINT,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT,
        blocks_affected BIGINT NOT NULL,
        blocks_total BIGINT NOT NULL,
        prefixes TEXT NOT NULL,
        vantage_points TEXT NOT NULL,
        localization TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX verdicts_key ON verdicts (campaign, scope, target, kind, start_round);
    CREATE TABLE vp_faults (
        id {ID},
        agent TEXT NOT NULL,
        campaign TEXT NOT NULL,
        kind TEXT NOT NULL,
        start_round BIGINT NOT NULL,
        end_round BIGINT,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT,
        detail TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX vp_faults_key ON vp_faults (agent, campaign, kind, start_round);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    )",
    ),
    (2, "CREATE INDEX agents_by_token ON agents (token_hash)"),
    // Verdicts and faults are identified by id: a correlation pass moves a
    // row's start as late reports arrive, so the natural key is only an index
    // (mid-transaction two rows may briefly share a start). `alerts` records
    // which alerts each verdict has given (bit 0 open, bit 1 close), so that
    // each is given once; verdicts stored before were alerted as they stand.
    (
        3,
        "ALTER TABLE verdicts ADD COLUMN alerts BIGINT NOT NULL DEFAULT 0;
        UPDATE verdicts SET alerts = CASE WHEN end_round IS NULL THEN 1 ELSE 3 END;
        DROP INDEX verdicts_key;
        CREATE INDEX verdicts_by_key ON verdicts (campaign, scope, target, kind, start_round);
        DROP INDEX vp_faults_key;
        CREATE INDEX vp_faults_by_key ON vp_faults (agent, campaign, kind, start_round)",
    ),
    // Each agent's latest coverage per campaign, and each campaign's census
    // (latest known-responsive addresses per block): `census`.
    (
        4,
        "CREATE TABLE coverage (
        agent TEXT NOT NULL,
        campaign TEXT NOT NULL,
        coverage TEXT NOT NULL,
        reported_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (agent, campaign)
    );
    CREATE TABLE census (
        campaign TEXT NOT NULL,
        block TEXT NOT NULL,
        addrs TEXT NOT NULL,
        reported_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (campaign, block)
    )",
    ),
    // Per-round scope summaries (`summaries`): the signals API, the
    // timeline and the scope gauges read these instead of recorrelating.
    // Rows are looked up by scope and round range (the primary key) and
    // replaced by round range (`scope_summaries_by_round`).
    (
        5,
        "CREATE TABLE scope_summaries (
        campaign TEXT NOT NULL,
        scope TEXT NOT NULL,
        target TEXT NOT NULL,
        round BIGINT NOT NULL,
        vp TEXT NOT NULL,
        blocks_judged BIGINT NOT NULL,
        blocks_up BIGINT NOT NULL,
        probes BIGINT NOT NULL,
        replies BIGINT NOT NULL,
        PRIMARY KEY (campaign, scope, target, round, vp)
    );
    CREATE INDEX scope_summaries_by_round ON scope_summaries (campaign, round);
    CREATE TABLE summary_rounds (
        campaign TEXT NOT NULL,
        round BIGINT NOT NULL,
        interval_secs BIGINT NOT NULL,
        digest BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (campaign, round)
    );
    CREATE TABLE summary_scopes (
        campaign TEXT NOT NULL,
        scope TEXT NOT NULL,
        target TEXT NOT NULL,
        PRIMARY KEY (campaign, scope, target)
    )",
    ),
    // Compact round storage (`rounds`): one row per agent's packed round
    // chunk, its columns as stored bytes ({BLOB}), naming the block space
    // its indices refer to; `block_spaces` keeps every campaign
    // generation's prefix list by digest so older rounds still decode.
    // Rows are found by campaign and round, the key's prefix (correlation
    // and retention alike). IF NOT EXISTS: a database rebuilt by hand to an
    // older version keeps these tables and their data.
    (
        6,
        "CREATE TABLE IF NOT EXISTS block_spaces (
        campaign TEXT NOT NULL,
        digest TEXT NOT NULL,
        prefixes TEXT NOT NULL,
        blocks BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (campaign, digest)
    );
    CREATE TABLE IF NOT EXISTS round_records ({ROUND_RECORDS})",
    ),
    // The raw tables get `round_ms`, their round's start time; on
    // PostgreSQL they become partitioned by it, a partition per day, so
    // that retention drops days (`partitions`). Not plain DDL: see
    // `raw_by_time`.
    (7, ""),
    // The routers whose ICMP errors answered an agent's probes in a round
    // (`ReportBatch::probe_errors`): localization evidence beside the
    // traces. One row per record; `blocks` is a JSON list, `first_block`
    // tells apart the records of one router split over several.
    (
        8,
        "CREATE TABLE IF NOT EXISTS probe_errors (
        agent TEXT NOT NULL,
        campaign TEXT NOT NULL,
        round BIGINT NOT NULL,
        source TEXT NOT NULL,
        first_block TEXT NOT NULL,
        blocks TEXT NOT NULL,
        errors BIGINT NOT NULL,
        ts_ms BIGINT NOT NULL,
        PRIMARY KEY (campaign, round, agent, source, first_block)
    )",
    ),
    // Round timing (`timing`): one row per agent's round of a campaign,
    // from the batches' `rounds` (when it started and ended, whether on
    // time). `status` reads each agent's latest per campaign (the key) and
    // the share late; retention finds old rows by campaign and round.
    // IF NOT EXISTS as in 6. (Migrations 7 to 9 are assigned to other work.)
    (
        10,
        "CREATE TABLE IF NOT EXISTS agent_rounds (
        agent TEXT NOT NULL,
        campaign TEXT NOT NULL,
        round BIGINT NOT NULL,
        started_ms BIGINT NOT NULL,
        ended_ms BIGINT NOT NULL,
        on_time BIGINT NOT NULL,
        blocks BIGINT NOT NULL,
        probes BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        PRIMARY KEY (agent, campaign, round)
    );
    CREATE INDEX IF NOT EXISTS agent_rounds_by_round ON agent_rounds (campaign, round)",
    ),
    // Batch ids are the agent's own: one agent's id must not make another
    // agent's batch a "duplicate" (it was dropped). The key becomes
    // (agent, batch_id); SQLite cannot change a key in place, so the table
    // is copied.
    (
        11,
        "CREATE TABLE batches_by_agent (
        batch_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        observations BIGINT NOT NULL,
        traces BIGINT NOT NULL,
        PRIMARY KEY (agent, batch_id)
    );
    INSERT INTO batches_by_agent (batch_id, agent, received_ms, observations, traces)
        SELECT batch_id, agent, received_ms, observations, traces FROM batches;
    DROP TABLE batches;
    ALTER TABLE batches_by_agent RENAME TO batches",
    ),
    // Reply times of plain observations (`BlockObservation::rtt_min_ms`,
    // `rtt_median_ms`), as the packed rounds carry them: the two one-byte
    // codes of `schema::rtt` in one integer (`min << 8 | median`), NULL
    // without replies or from older agents. Packed rounds need nothing:
    // their stored columns carry the times from version 2 on. On
    // PostgreSQL the column reaches every partition. Not plain DDL: see
    // `observations_rtt`.
    (12, ""),
    // BGP rounds (`bgp`): a row per prefix and round
    // where its state changed or moved, and the sessions per round.
    (
        13,
        "CREATE TABLE IF NOT EXISTS bgp_rounds (
        round_secs BIGINT NOT NULL,
        round BIGINT NOT NULL,
        prefix TEXT NOT NULL,
        announced_by BIGINT NOT NULL,
        known_peers BIGINT NOT NULL,
        origins TEXT NOT NULL,
        announcements BIGINT NOT NULL,
        withdrawals BIGINT NOT NULL,
        cycles BIGINT NOT NULL,
        PRIMARY KEY (round_secs, prefix, round)
    );
    CREATE INDEX IF NOT EXISTS bgp_rounds_by_round ON bgp_rounds (round_secs, round);
    CREATE TABLE IF NOT EXISTS bgp_sessions (
        round_secs BIGINT NOT NULL,
        round BIGINT NOT NULL,
        peers_up BIGINT NOT NULL,
        peers_known BIGINT NOT NULL,
        PRIMARY KEY (round_secs, round)
    )",
    ),
    // How far a `degradation` departs from its baseline ("median RTT 4.1×
    // baseline, loss 38 %"); NULL for the other kinds.
    (14, "ALTER TABLE verdicts ADD COLUMN change_text TEXT"),
];

/// Migration 7: on PostgreSQL, `partitions::migrate`; on SQLite, the
/// `round_ms` column on each raw table that lacks it (a table recreated by
/// an older migration may).
async fn raw_by_time(
    conn: &mut AnyConnection,
    backend: Backend,
    now_ms: i64,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        return super::partitions::migrate(conn, now_ms).await;
    }
    for table in super::partitions::TABLES {
        let has: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info($1) WHERE name = 'round_ms'",
        )
        .bind(table)
        .fetch_one(&mut *conn)
        .await?;
        if has == 0 {
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD COLUMN round_ms BIGINT NOT NULL DEFAULT 0"
            ))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Migration 12 (and again after 7, which may rebuild `observations` from
/// its older column list): the `rtt` column, added where it is missing.
async fn observations_rtt(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    let missing = match backend {
        Backend::Postgres => true,
        Backend::Sqlite => {
            let has: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pragma_table_info('observations') WHERE name = 'rtt'",
            )
            .fetch_one(&mut *conn)
            .await?;
            has == 0
        }
    };
    if missing {
        let if_not = if backend == Backend::Postgres {
            "IF NOT EXISTS "
        } else {
            ""
        };
        sqlx::query(&format!(
            "ALTER TABLE observations ADD COLUMN {if_not}rtt BIGINT"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies every migration not yet recorded in `schema_migrations`.
pub(super) async fn migrate(
    pool: &AnyPool,
    backend: Backend,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    if backend == Backend::Postgres {
        // Collectors starting together must not run the DDL twice.
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = migrate_on(&mut conn, backend, now_ms).await;
    if backend == Backend::Postgres {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Never hand a connection still holding the lock back to the pool.
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
    }
    result
}

async fn migrate_on(
    conn: &mut AnyConnection,
    backend: Backend,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let id = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    };
    let blob = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    for (version, ddl) in MIGRATIONS {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        if *version == 7 {
            raw_by_time(&mut tx, backend, now_ms).await?;
        }
        if *version == 7 || *version == 12 {
            observations_rtt(&mut tx, backend).await?;
        }
        for stmt in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let stmt = stmt
                .replace("{OBSERVATIONS}", &tables::OBSERVATIONS.body())
                .replace("{ROUND_RECORDS}", &tables::ROUND_RECORDS.body())
                .replace("{ID}", id)
                .replace("{BLOB}", blob);
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(*version)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
