//! Round timing of [`SqlStore`] (migration 10): how each agent's rounds ran.
//!
//! Agents send a [`RoundInfo`] per round with the round's first batch
//! (`ReportBatch::rounds`): when probing started and ended and whether it
//! ended before the next round began. `agent_rounds` keeps one row per
//! (agent, campaign, round), so a batch resent under another id, or a round
//! reported twice, counts once; retention deletes old rows with the raw
//! rounds (`purge`). `status` reads each agent's latest round
//! of each campaign and the share of its rounds that were late over a
//! recent window ([`ReportedTiming`]).

use darkwatch_schema::RoundInfo;
use sqlx::{AnyConnection, Row};

use super::codec::{to_i64, to_u64};
use super::sql::SqlStore;
use super::StoreError;

/// One agent's round timing of one campaign, as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReportedTiming {
    pub agent: String,
    /// The latest round reported (its `campaign` names the campaign).
    pub last: RoundInfo,
    /// When the collector received it.
    pub received_ms: i64,
    /// Rounds reported that started at or after the window's start, and
    /// how many of them were late.
    pub rounds: u64,
    pub late: u64,
}

/// Writes a batch's round infos inside the caller's (ingest) transaction;
/// a round already stored for the agent is kept as it was.
pub(super) async fn write_rounds(
    conn: &mut AnyConnection,
    agent: &str,
    rounds: &[RoundInfo],
    now_ms: i64,
) -> Result<(), StoreError> {
    for r in rounds {
        sqlx::query(
            "INSERT INTO agent_rounds (agent, campaign, round, started_ms, ended_ms, on_time,
                blocks, probes, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(agent)
        .bind(&r.campaign)
        .bind(to_i64(r.round, "round")?)
        .bind(r.started_ms)
        .bind(r.ended_ms)
        .bind(i64::from(r.on_time))
        .bind(to_i64(r.blocks, "round blocks")?)
        .bind(to_i64(r.probes, "round probes")?)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Every (agent, campaign)'s latest round, with the count of rounds and of
/// late rounds that started at or after `since_ms`; by agent, campaign.
pub(super) async fn round_timings(
    s: &SqlStore,
    since_ms: i64,
) -> Result<Vec<ReportedTiming>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.agent, r.campaign, r.round, r.started_ms, r.ended_ms, r.on_time, r.blocks,
                r.probes, r.received_ms,
                (SELECT COUNT(*) FROM agent_rounds w
                  WHERE w.agent = r.agent AND w.campaign = r.campaign
                    AND w.started_ms >= $1) AS n,
                (SELECT COUNT(*) FROM agent_rounds w
                  WHERE w.agent = r.agent AND w.campaign = r.campaign
                    AND w.started_ms >= $1 AND w.on_time = 0) AS late
         FROM agent_rounds r
         JOIN (SELECT agent, campaign, MAX(round) AS round FROM agent_rounds
               GROUP BY agent, campaign) m
           ON m.agent = r.agent AND m.campaign = r.campaign AND m.round = r.round
         ORDER BY r.agent, r.campaign",
    )
    .bind(since_ms)
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReportedTiming {
                agent: r.try_get("agent")?,
                last: RoundInfo {
                    campaign: r.try_get("campaign")?,
                    round: to_u64(r.try_get("round")?, "round")?,
                    started_ms: r.try_get("started_ms")?,
                    ended_ms: r.try_get("ended_ms")?,
                    on_time: r.try_get::<i64, _>("on_time")? != 0,
                    blocks: to_u64(r.try_get("blocks")?, "round blocks")?,
                    probes: to_u64(r.try_get("probes")?, "round probes")?,
                },
                received_ms: r.try_get("received_ms")?,
                rounds: to_u64(r.try_get("n")?, "count")?,
                late: to_u64(r.try_get("late")?, "count")?,
            })
        })
        .collect()
}
