//! Compact round storage of [`SqlStore`] (migration 6).
//!
//! A packed round chunk (`darkwatch_schema::packed`) is stored as it came:
//! one `round_records` row per (campaign, round, agent, chunk) holding the
//! zstd-compressed columns as bytes, the digest of the block space its
//! indices refer to and its block count. That costs well under a byte per
//! observation, where a row per block in `observations` costs ~120.
//! `block_spaces` keeps the prefix list of every campaign generation by
//! digest, so a round packed against an older generation still decodes and
//! an agent one campaign change behind is still understood.
//!
//! Retention deletes old raw rounds with the other raw tables (`purge`).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use darkwatch_schema::packed::{self, BlockSpace, PackedBlock, PackedRound};
use ipnet::IpNet;
use sqlx::{AnyConnection, Row};

use super::codec::{clamp, from_json, json, round_ms, to_i64, to_u64};
use super::sql::SqlStore;
use super::{AgentObservation, Campaign, RoundRecord, StoreError, StoredSpace};

/// Records the block space of `prefixes` for `campaign` (no-op if known).
pub(super) async fn record_space(
    conn: &mut AnyConnection,
    campaign: &str,
    prefixes: &[IpNet],
    now_ms: i64,
) -> Result<(), StoreError> {
    let space = BlockSpace::new(prefixes);
    sqlx::query(
        "INSERT INTO block_spaces (campaign, digest, prefixes, blocks, created_ms)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(campaign)
    .bind(space.digest())
    .bind(json(&prefixes)?)
    .bind(to_i64(space.len(), "block count")?)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the current block space of every campaign: campaigns created
/// before migration 6 get theirs at the first open after the upgrade.
pub(super) async fn record_current_spaces(
    s: &SqlStore,
    campaigns: &[Campaign],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut conn = s.pool.acquire().await?;
    for c in campaigns {
        record_space(&mut conn, &c.name, &c.prefixes, now_ms).await?;
    }
    Ok(())
}

pub(super) async fn block_spaces(
    s: &SqlStore,
    campaign: &str,
) -> Result<Vec<StoredSpace>, StoreError> {
    let rows = sqlx::query(
        "SELECT digest, prefixes FROM block_spaces WHERE campaign = $1 ORDER BY created_ms, digest",
    )
    .bind(campaign)
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredSpace {
                digest: r.try_get("digest")?,
                prefixes: from_json(&r.try_get::<String, _>("prefixes")?, "block space prefixes")?,
            })
        })
        .collect()
}

/// Stores the packed rounds of a batch inside the caller's (ingest)
/// transaction; returns the blocks stored (a chunk already held, from a
/// batch resent under another id, stores nothing).
pub(super) async fn insert_packed(
    conn: &mut AnyConnection,
    agent: &str,
    packed: &[PackedRound],
    intervals: &HashMap<String, i64>,
) -> Result<u64, StoreError> {
    let mut stored = 0u64;
    for p in packed {
        let data = p.compressed().map_err(|e| StoreError::Corrupt {
            what: "packed round",
            why: e.to_string(),
        })?;
        let n = sqlx::query(
            "INSERT INTO round_records (campaign, round, agent, chunk, chunks, space, blocks, ts_ms, data, round_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(&p.campaign)
        .bind(to_i64(p.round, "round")?)
        .bind(agent)
        .bind(i64::from(p.chunk))
        .bind(i64::from(p.chunks))
        .bind(&p.space)
        .bind(i64::from(p.blocks))
        .bind(p.ts_ms)
        .bind(data)
        .bind(round_ms(intervals, &p.campaign, p.round, p.ts_ms))
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if n > 0 {
            stored += u64::from(p.blocks);
        }
    }
    Ok(stored)
}

pub(super) async fn round_records(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<RoundRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT agent, round, chunk, space, blocks, ts_ms, data FROM round_records
         WHERE campaign = $1 AND round >= $2 AND round <= $3 ORDER BY round, agent, chunk",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let small = |v: i64, what: &'static str| {
                u32::try_from(v).map_err(|_| StoreError::Corrupt {
                    what,
                    why: format!("{v} out of range"),
                })
            };
            Ok(RoundRecord {
                agent: r.try_get("agent")?,
                round: to_u64(r.try_get("round")?, "record round")?,
                chunk: small(r.try_get("chunk")?, "record chunk")?,
                space: r.try_get("space")?,
                blocks: small(r.try_get("blocks")?, "record blocks")?,
                ts_ms: r.try_get("ts_ms")?,
                data: r.try_get("data")?,
            })
        })
        .collect()
}

/// The block spaces of a campaign by digest, built once per read: the
/// schema's [`packed::Spaces`] (the one decoder of packed columns) over the
/// stored spaces, with its errors as the store's.
#[derive(Debug, Default)]
pub struct Spaces(packed::Spaces);

impl Spaces {
    pub fn new(stored: &[StoredSpace]) -> Spaces {
        Spaces(packed::Spaces::new(
            stored
                .iter()
                .map(|s| (s.digest.as_str(), s.prefixes.as_slice())),
        ))
    }

    pub fn get(&self, digest: &str) -> Option<&BlockSpace> {
        self.0.get(digest)
    }

    /// The blocks of `record`, checked against its space. A record whose
    /// space is unknown or whose columns do not decode is corrupt (ingest
    /// checked both before storing).
    pub fn unpack(
        &self,
        record: &RoundRecord,
    ) -> Result<(&BlockSpace, Vec<PackedBlock>), StoreError> {
        self.0
            .unpack(&record.space, &record.data, record.blocks)
            .map_err(|e| StoreError::Corrupt {
                what: "round record",
                why: e.to_string(),
            })
    }
}

/// The records of a campaign as plain observations (for callers that want
/// rows; correlation decodes records into its own input directly).
pub(super) fn records_as_observations(
    campaign: &str,
    records: &[RoundRecord],
    spaces: &Spaces,
) -> Result<Vec<AgentObservation>, StoreError> {
    let mut out = Vec::new();
    for rec in records {
        let (space, blocks) = spaces.unpack(rec)?;
        out.extend(blocks.into_iter().filter_map(|b| {
            Some(AgentObservation {
                agent: rec.agent.clone(),
                obs: b.to_observation(campaign, rec.round, space, rec.ts_ms)?,
            })
        }));
    }
    Ok(out)
}
