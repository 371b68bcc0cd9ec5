//! Coverage and census tables of [`SqlStore`].
//!
//! `coverage` holds each agent's latest account of what it watches of each
//! campaign (blocks tracked, addresses targeted, space skipped and why),
//! keyed by (agent, campaign). `census` holds the latest known-responsive
//! addresses of each block of a campaign, keyed by (campaign, block), learnt
//! from agents' discovery and from hitlists; the collector hands it out with
//! assignments. Both are "latest value" tables: a row replaces the one of
//! the same key unless that one was reported later (`reported_ms`: when the
//! agent made the batch), so a spooled batch replayed after an outage does
//! not undo a newer report. Callers screen what they write (campaign
//! prefixes, per-block bounds: `crate::census`); lists are JSON text, like
//! the rest of the store. Both tables are created by migration 4.

use std::collections::BTreeMap;
use std::net::IpAddr;

use darkwatch_schema::{CensusBlock, Coverage, ReportBatch};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::codec::{from_json, json, parse};
use super::sql::SqlStore;
use super::StoreError;

/// Census rows per multi-row upsert (5 parameters each).
const CENSUS_CHUNK: usize = 200;

/// An agent's latest coverage of one campaign, with when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCoverage {
    pub agent: String,
    pub updated_ms: i64,
    pub coverage: Coverage,
}

/// Writes a batch's coverage and census inside the caller's (ingest)
/// transaction, as reported at the batch's `created_ms`. A block reported
/// with no address leaves its census as it was: a block that is dark during
/// an outage must keep its known addresses, or no agent could judge it when
/// it comes back.
pub(super) async fn write_reported(
    conn: &mut AnyConnection,
    agent: &str,
    batch: &ReportBatch,
    now_ms: i64,
) -> Result<(), StoreError> {
    for c in &batch.coverage {
        sqlx::query(
            "INSERT INTO coverage (agent, campaign, coverage, reported_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (agent, campaign) DO UPDATE SET
                coverage = excluded.coverage, reported_ms = excluded.reported_ms,
                updated_ms = excluded.updated_ms
             WHERE coverage.reported_ms <= excluded.reported_ms",
        )
        .bind(agent)
        .bind(&c.campaign)
        .bind(json(c)?)
        .bind(batch.created_ms)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    let mut latest: BTreeMap<(&str, IpNet), &[IpAddr]> = BTreeMap::new();
    for cc in &batch.census {
        for b in cc.blocks.iter().filter(|b| !b.addrs.is_empty()) {
            latest.insert((cc.campaign.as_str(), b.block), &b.addrs);
        }
    }
    let rows: Vec<_> = latest.into_iter().map(|((c, b), a)| (c, b, a)).collect();
    upsert_census(conn, &rows, batch.created_ms, now_ms).await
}

/// Replaces the census of each (campaign, block) in `rows`; keys must be
/// unique (PostgreSQL refuses to update one row twice in a statement).
async fn upsert_census(
    conn: &mut AnyConnection,
    rows: &[(&str, IpNet, &[IpAddr])],
    reported_ms: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CENSUS_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO census (campaign, block, addrs, reported_ms, updated_ms) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = i * 5;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            ));
        }
        sql.push_str(
            " ON CONFLICT (campaign, block) DO UPDATE SET
                addrs = excluded.addrs, reported_ms = excluded.reported_ms,
                updated_ms = excluded.updated_ms
             WHERE census.reported_ms <= excluded.reported_ms",
        );
        let mut q = sqlx::query(&sql);
        for (campaign, block, addrs) in chunk {
            q = q
                .bind(*campaign)
                .bind(block.to_string())
                .bind(json(addrs)?)
                .bind(reported_ms)
                .bind(now_ms);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn list_coverage(s: &SqlStore) -> Result<Vec<AgentCoverage>, StoreError> {
    let rows =
        sqlx::query("SELECT agent, coverage, updated_ms FROM coverage ORDER BY agent, campaign")
            .fetch_all(&s.pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(AgentCoverage {
                agent: r.try_get("agent")?,
                updated_ms: r.try_get("updated_ms")?,
                coverage: from_json(&r.try_get::<String, _>("coverage")?, "coverage")?,
            })
        })
        .collect()
}

pub(super) async fn census(s: &SqlStore, campaign: &str) -> Result<Vec<CensusBlock>, StoreError> {
    let rows = sqlx::query("SELECT block, addrs FROM census WHERE campaign = $1")
        .bind(campaign)
        .fetch_all(&s.pool)
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(CensusBlock {
                block: parse(&r.try_get::<String, _>("block")?, "census block")?,
                addrs: from_json(&r.try_get::<String, _>("addrs")?, "census addresses")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort_by_key(|b| b.block);
    Ok(out)
}

pub(super) async fn put_census(
    s: &SqlStore,
    campaign: &str,
    blocks: &[CensusBlock],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut latest: BTreeMap<IpNet, &[IpAddr]> = BTreeMap::new();
    for b in blocks.iter().filter(|b| !b.addrs.is_empty()) {
        latest.insert(b.block, &b.addrs);
    }
    let rows: Vec<_> = latest.into_iter().map(|(b, a)| (campaign, b, a)).collect();
    let mut tx = s.pool.begin().await?;
    upsert_census(&mut tx, &rows, now_ms, now_ms).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn clear_census(s: &SqlStore, campaign: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM census WHERE campaign = $1")
        .bind(campaign)
        .execute(&s.pool)
        .await?;
    Ok(())
}
