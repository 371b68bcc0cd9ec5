//! Reports in SQL: writing batches (see `ingest`) and the correlation's
//! reads of observations (rows and packed rounds, see `rounds`), control
//! observations and traces by round range.

use std::ops::RangeInclusive;

use darkwatch_schema::{BatchAck, ReportBatch};
use sqlx::Row;
use tokio::sync::oneshot;

use super::codec::{clamp, observation_from_row, probe_errors_from_row, to_u64, trace_from_row};
use super::ingest::insert_batch;
use super::sql::{IngestJob, SqlStore};
use super::{AgentObservation, AgentProbeErrors, AgentTrace, Spaces, StoreError};

pub(super) async fn ingest(
    s: &SqlStore,
    agent: &str,
    batch: &ReportBatch,
    now_ms: i64,
) -> Result<BatchAck, StoreError> {
    if let Some(writer) = &s.writer {
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".into());
        let (reply, ack) = oneshot::channel();
        let job = IngestJob {
            agent: agent.to_string(),
            batch: batch.clone(),
            now_ms,
            reply,
        };
        writer.send(job).await.map_err(|_| gone())?;
        return ack.await.map_err(|_| gone())?;
    }
    let mut tx = s.pool.begin().await?;
    let ack = insert_batch(&mut tx, agent, batch, now_ms, false).await?;
    if ack.duplicate {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(ack)
}

pub(super) async fn observations(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<AgentObservation>, StoreError> {
    let mut out = select_observations(s, campaign, rounds.clone(), false).await?;
    let records = super::rounds::round_records(s, campaign, rounds).await?;
    if !records.is_empty() {
        let spaces = Spaces::new(&super::rounds::block_spaces(s, campaign).await?);
        out.extend(super::rounds::records_as_observations(
            campaign, &records, &spaces,
        )?);
        out.sort_by(|a, b| {
            (a.obs.round, a.obs.block, &a.agent).cmp(&(b.obs.round, b.obs.block, &b.agent))
        });
    }
    Ok(out)
}

pub(super) async fn row_observations(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<AgentObservation>, StoreError> {
    select_observations(s, campaign, rounds, false).await
}

pub(super) async fn round_agents(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<(u64, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT round, agent FROM observations
         WHERE campaign = $1 AND round >= $2 AND round <= $3
         UNION SELECT round, agent FROM round_records
         WHERE campaign = $1 AND round >= $2 AND round <= $3 ORDER BY round, agent",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((to_u64(r.try_get("round")?, "round")?, r.try_get("agent")?)))
        .collect()
}

pub(super) async fn round_versions(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT round, CAST(1 AS BIGINT) AS kind, COUNT(*) AS n FROM observations
         WHERE campaign = $1 AND round >= $2 AND round <= $3 GROUP BY round
         UNION ALL SELECT round, CAST(2 AS BIGINT) AS kind, COUNT(*) AS n FROM round_records
         WHERE campaign = $1 AND round >= $2 AND round <= $3 GROUP BY round
         UNION ALL SELECT round, CAST(3 AS BIGINT) AS kind, COUNT(*) AS n FROM traces
         WHERE campaign = $1 AND round >= $2 AND round <= $3 GROUP BY round
         UNION ALL SELECT round, CAST(4 AS BIGINT) AS kind, COUNT(*) AS n FROM probe_errors
         WHERE campaign = $1 AND round >= $2 AND round <= $3 GROUP BY round",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    let mut out: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for r in &rows {
        let round = to_u64(r.try_get("round")?, "round")?;
        let kind: i64 = r.try_get("kind")?;
        let n: i64 = r.try_get("n")?;
        // One odd multiplier per table: rows are only ever added (or
        // purged whole rounds at a time), and counts that change so as to
        // keep this sum are not a thing ingest does.
        let mult: u64 = [
            0x9e37_79b9_7f4a_7c15,
            0xbf58_476d_1ce4_e5b9,
            0x94d0_49bb_1331_11eb,
            0xd6e8_feb8_6659_fd93,
        ][(kind as usize).clamp(1, 4) - 1];
        let e = out.entry(round).or_default();
        *e = e.wrapping_add((n as u64).wrapping_mul(mult));
    }
    Ok(out.into_iter().collect())
}

pub(super) async fn control_observations(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<AgentObservation>, StoreError> {
    select_observations(s, campaign, rounds, true).await
}

pub(super) async fn traces(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<AgentTrace>, StoreError> {
    let rows = sqlx::query(
        "SELECT agent, campaign, round, target, reached, last_responding, hops, ts_ms
         FROM traces WHERE campaign = $1 AND round >= $2 AND round <= $3 ORDER BY round, target, agent",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(trace_from_row).collect()
}

pub(super) async fn probe_errors(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<AgentProbeErrors>, StoreError> {
    let rows = sqlx::query(
        "SELECT agent, campaign, round, source, blocks, errors, ts_ms
         FROM probe_errors WHERE campaign = $1 AND round >= $2 AND round <= $3
         ORDER BY round, agent, source, first_block",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(probe_errors_from_row).collect()
}

/// Observations of a campaign in a round range, control targets or not.
async fn select_observations(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
    control: bool,
) -> Result<Vec<AgentObservation>, StoreError> {
    let rows = sqlx::query(
        "SELECT agent, campaign, round, block, state, probes, replies, belief, availability, control, ts_ms, rtt
         FROM observations WHERE campaign = $1 AND round >= $2 AND round <= $3 AND control = $4
         ORDER BY round, block, agent",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .bind(i64::from(control))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(observation_from_row).collect()
}
