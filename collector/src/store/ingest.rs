//! Writing report batches (rows of plain observations and traces, packed
//! rounds as they came: `rounds`, round timing: `timing`). A batch is one transaction, acknowledged only
//! after commit; a batch id seen before writes nothing. SQLite runs with
//! `synchronous=FULL` and has one writer anyway, so its batches go through
//! one task that commits every batch waiting at that moment in a single
//! transaction (group commit: one fsync for many acks).

use std::collections::HashMap;

use darkwatch_schema::{BatchAck, ReportBatch};
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::mpsc;

use super::codec::{json, round_ms, rtt_code, to_i64};
use super::sql::IngestJob;
use super::StoreError;

/// Rows per multi-row INSERT: well under both backends' parameter limits.
const INSERT_CHUNK: usize = 500;

/// Most observations + traces one group commit writes.
const GROUP_MAX_ITEMS: usize = 50_000;

/// Batches waiting for the SQLite writer; senders wait beyond this.
pub(super) const GROUP_QUEUE: usize = 1024;

/// Why observations of a fresh batch were not stored
/// ([`BatchAck::not_stored_reason`]).
pub const NOT_STORED_ALREADY: &str =
    "already stored: an earlier batch of this agent carried these rounds and blocks";

/// Inserts one batch on `conn` inside the caller's transaction; a batch id
/// the same agent sent before writes nothing and is acknowledged as a
/// duplicate (ids are each agent's own).
pub(super) async fn insert_batch(
    conn: &mut AnyConnection,
    agent: &str,
    batch: &ReportBatch,
    now_ms: i64,
    positional: bool,
) -> Result<BatchAck, StoreError> {
    let fresh = sqlx::query(
        "INSERT INTO batches (batch_id, agent, received_ms, observations, traces)
         VALUES ($1, $2, $3, 0, 0) ON CONFLICT DO NOTHING",
    )
    .bind(&batch.batch_id)
    .bind(agent)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Ok(BatchAck {
            batch_id: batch.batch_id.clone(),
            duplicate: true,
            observations_stored: 0,
            traces_stored: 0,
            observations_not_stored: 0,
            not_stored_reason: None,
        });
    }

    let intervals = if batch.observations.is_empty() && batch.packed.is_empty() {
        HashMap::new()
    } else {
        campaign_intervals(conn).await?
    };
    let mut obs_stored = 0u64;
    for chunk in batch.observations.chunks(INSERT_CHUNK) {
        let sql = multi_insert_with("observations", OBS_COLS, chunk.len(), positional);
        let mut q = sqlx::query(&sql);
        for o in chunk {
            q = q
                .bind(agent)
                .bind(&o.campaign)
                .bind(to_i64(o.round, "round")?)
                .bind(o.block.to_string())
                .bind(o.state.as_str())
                .bind(i64::from(o.probes))
                .bind(i64::from(o.replies))
                .bind(o.belief)
                .bind(o.availability)
                .bind(i64::from(o.control))
                .bind(o.ts_ms)
                .bind(round_ms(&intervals, &o.campaign, o.round, o.ts_ms))
                .bind(rtt_code(o));
        }
        obs_stored += q.execute(&mut *conn).await?.rows_affected();
    }

    obs_stored += super::rounds::insert_packed(conn, agent, &batch.packed, &intervals).await?;

    let mut traces_stored = 0u64;
    for chunk in batch.traces.chunks(INSERT_CHUNK) {
        let sql = multi_insert_with("traces", TRACE_COLS, chunk.len(), positional);
        let mut q = sqlx::query(&sql);
        for t in chunk {
            q = q
                .bind(agent)
                .bind(&t.campaign)
                .bind(to_i64(t.round, "round")?)
                .bind(t.target.to_string())
                .bind(i64::from(t.reached))
                .bind(t.last_responding.map(|a| a.to_string()))
                .bind(json(&t.hops)?)
                .bind(t.ts_ms);
        }
        traces_stored += q.execute(&mut *conn).await?.rows_affected();
    }
    for chunk in batch.probe_errors.chunks(INSERT_CHUNK) {
        let sql = multi_insert_with("probe_errors", PROBE_ERROR_COLS, chunk.len(), positional);
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q
                .bind(agent)
                .bind(&p.campaign)
                .bind(to_i64(p.round, "round")?)
                .bind(p.from.to_string())
                .bind(p.blocks.first().map(|b| b.to_string()).unwrap_or_default())
                .bind(json(&p.blocks)?)
                .bind(i64::from(p.errors))
                .bind(p.ts_ms);
        }
        q.execute(&mut *conn).await?;
    }
    super::census::write_reported(conn, agent, batch, now_ms).await?;
    super::timing::write_rounds(conn, agent, &batch.rounds, now_ms).await?;

    sqlx::query(
        "UPDATE batches SET observations = $1, traces = $2 WHERE agent = $3 AND batch_id = $4",
    )
    .bind(to_i64(obs_stored, "count")?)
    .bind(to_i64(traces_stored, "count")?)
    .bind(agent)
    .bind(&batch.batch_id)
    .execute(&mut *conn)
    .await?;
    // Rows are keyed by (agent, campaign, round, block): what is left out
    // had come in an earlier batch of this agent (a round resent under a
    // new id, or a round that came early and took the real one's place).
    let carried = batch.observations.len() as u64
        + batch
            .packed
            .iter()
            .map(|p| u64::from(p.blocks))
            .sum::<u64>();
    let not_stored = carried.saturating_sub(obs_stored);
    Ok(BatchAck {
        batch_id: batch.batch_id.clone(),
        duplicate: false,
        observations_stored: obs_stored,
        observations_not_stored: not_stored,
        not_stored_reason: (not_stored > 0).then(|| NOT_STORED_ALREADY.to_string()),
        traces_stored,
    })
}

/// Each campaign's round length in ms, by name.
async fn campaign_intervals(conn: &mut AnyConnection) -> Result<HashMap<String, i64>, StoreError> {
    let rows = sqlx::query("SELECT name, interval_secs FROM campaigns")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get::<i64, _>("interval_secs")? * 1000,
            ))
        })
        .collect()
}

/// Writes `jobs` in one transaction; all commit or none do.
async fn commit_group(pool: &AnyPool, jobs: &[IngestJob]) -> Result<Vec<BatchAck>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut acks = Vec::with_capacity(jobs.len());
    for j in jobs {
        acks.push(insert_batch(&mut tx, &j.agent, &j.batch, j.now_ms, true).await?);
    }
    tx.commit().await?;
    Ok(acks)
}

/// The SQLite writer: takes every batch already waiting (up to
/// `GROUP_MAX_ITEMS` items), commits them together, then acknowledges each.
/// If a group fails, its batches are retried one by one so that one bad
/// batch cannot fail the others.
pub(super) async fn group_writer(pool: AnyPool, mut rx: mpsc::Receiver<IngestJob>) {
    let items = |j: &IngestJob| {
        j.batch.observations.len() + j.batch.packed.len() + j.batch.traces.len() + 1
    };
    while let Some(first) = rx.recv().await {
        let mut n = items(&first);
        let mut jobs = vec![first];
        while n < GROUP_MAX_ITEMS {
            match rx.try_recv() {
                Ok(j) => {
                    n += items(&j);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        match commit_group(&pool, &jobs).await {
            Ok(acks) => {
                for (j, ack) in jobs.into_iter().zip(acks) {
                    let _ = j.reply.send(Ok(ack));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(j) = jobs.pop() {
                    let _ = j.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = jobs.len(), "group commit failed; retrying batches one by one");
                for j in jobs {
                    let r = commit_group(&pool, std::slice::from_ref(&j)).await;
                    let _ = j.reply.send(r.map(|mut acks| acks.remove(0)));
                }
            }
        }
    }
}

/// `INSERT INTO table (cols) VALUES ($1,..),(..) ON CONFLICT DO NOTHING` for `rows` rows.
/// With `positional`, anonymous `?` placeholders instead (SQLite only):
/// SQLite looks each numbered parameter up by name in a list, so binding n
/// numbered parameters costs O(n²), which with 5,500 parameters per
/// statement dominated ingest; `?` binds in order.
pub(super) fn multi_insert_with(
    table: &str,
    cols: &[&str],
    rows: usize,
    positional: bool,
) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if positional {
                sql.push('?');
            } else {
                sql.push_str(&format!("${n}"));
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

const OBS_COLS: &[&str] = &[
    "agent",
    "campaign",
    "round",
    "block",
    "state",
    "probes",
    "replies",
    "belief",
    "availability",
    "control",
    "ts_ms",
    "round_ms",
    "rtt",
];
const PROBE_ERROR_COLS: &[&str] = &[
    "agent",
    "campaign",
    "round",
    "source",
    "first_block",
    "blocks",
    "errors",
    "ts_ms",
];
const TRACE_COLS: &[&str] = &[
    "agent",
    "campaign",
    "round",
    "target",
    "reached",
    "last_responding",
    "hops",
    "ts_ms",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_insert_numbers_parameters() {
        assert_eq!(
            multi_insert_with("t", &["a", "b"], 2, false),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            multi_insert_with("t", &["a", "b"], 2, true),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
    }
}
