//! Per-round scope summaries in SQL: what the signals API, the timeline and
//! the scope gauges of `/metrics` read, so that no request recorrelates.
//!
//! Three tables (migration 5): `scope_summaries`, one row per campaign,
//! scope, target, round and VP (`vp = ''` for the consensus);
//! `summary_rounds`, per campaign and round with summaries, the digest of
//! the input they were computed from (the correlation pass compares it to
//! decide which rounds to rewrite) and the campaign's interval then; and
//! `summary_scopes`, the scopes that have summaries, so that listing them
//! does not scan every row. A pass replaces whole rounds in one
//! transaction: readers see a round before or after, never half of it.

use std::ops::RangeInclusive;

use darkwatch_correlate::Scope;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::codec::{clamp, enum_from_name, enum_name, to_i64, to_u64};
use super::ingest::multi_insert_with;
use super::sql::SqlStore;
use super::url::Backend;
use super::{ScopeSummary, StoreError, SummaryKey, SummaryRound};

/// Rows per multi-row INSERT (9 columns: well under both backends' limits).
const CHUNK: usize = 500;

const ROW_COLS: &[&str] = &[
    "campaign",
    "scope",
    "target",
    "round",
    "vp",
    "blocks_judged",
    "blocks_up",
    "probes",
    "replies",
];

pub(super) async fn summary_rounds(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<SummaryRound>, StoreError> {
    let rows = sqlx::query(
        "SELECT round, interval_secs, digest, updated_ms FROM summary_rounds
         WHERE campaign = $1 AND round >= $2 AND round <= $3 ORDER BY round",
    )
    .bind(campaign)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(round_from_row).collect()
}

pub(super) async fn latest_summary_rounds(
    s: &SqlStore,
) -> Result<Vec<(String, SummaryRound)>, StoreError> {
    // The primary key (campaign, round) makes each MAX an index lookup.
    let rows = sqlx::query(
        "SELECT r.campaign, r.round, r.interval_secs, r.digest, r.updated_ms
         FROM summary_rounds r
         JOIN (SELECT campaign, MAX(round) AS round FROM summary_rounds GROUP BY campaign) m
           ON m.campaign = r.campaign AND m.round = r.round
         ORDER BY r.campaign",
    )
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("campaign")?, round_from_row(r)?)))
        .collect()
}

fn round_from_row(r: &AnyRow) -> Result<SummaryRound, StoreError> {
    Ok(SummaryRound {
        round: to_u64(r.try_get("round")?, "summary round")?,
        interval_secs: to_u64(r.try_get("interval_secs")?, "summary interval")?,
        digest: r.try_get("digest")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

pub(super) async fn replace_summaries(
    s: &SqlStore,
    campaign: &str,
    rounds: RangeInclusive<u64>,
    digests: RangeInclusive<u64>,
    written: &[SummaryRound],
    rows: &[ScopeSummary],
) -> Result<(), StoreError> {
    let positional = s.backend() == Backend::Sqlite;
    let mut tx = s.pool.begin().await?;
    for (table, range) in [("scope_summaries", &rounds), ("summary_rounds", &digests)] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE campaign = $1 AND round >= $2 AND round <= $3"
        ))
        .bind(campaign)
        .bind(clamp(*range.start()))
        .bind(clamp(*range.end()))
        .execute(&mut *tx)
        .await?;
    }
    for chunk in written.chunks(CHUNK) {
        let sql = multi_insert_with(
            "summary_rounds",
            &["campaign", "round", "interval_secs", "digest", "updated_ms"],
            chunk.len(),
            positional,
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(campaign)
                .bind(to_i64(r.round, "round")?)
                .bind(to_i64(r.interval_secs, "interval")?)
                .bind(r.digest)
                .bind(r.updated_ms);
        }
        q.execute(&mut *tx).await?;
    }
    let mut scopes: Vec<(String, &str)> = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let sql = multi_insert_with("scope_summaries", ROW_COLS, chunk.len(), positional);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            let scope = enum_name(&r.scope, "summary scope")?;
            if r.vp.is_empty() {
                scopes.push((scope.clone(), &r.target));
            }
            q = q
                .bind(campaign)
                .bind(scope)
                .bind(&r.target)
                .bind(to_i64(r.round, "round")?)
                .bind(&r.vp)
                .bind(to_i64(r.blocks_judged, "count")?)
                .bind(to_i64(r.blocks_up, "count")?)
                .bind(to_i64(r.probes, "count")?)
                .bind(to_i64(r.replies, "count")?);
        }
        q.execute(&mut *tx).await?;
    }
    scopes.sort();
    scopes.dedup();
    for chunk in scopes.chunks(CHUNK) {
        let sql = multi_insert_with(
            "summary_scopes",
            &["campaign", "scope", "target"],
            chunk.len(),
            positional,
        );
        let mut q = sqlx::query(&sql);
        for (scope, target) in chunk {
            q = q.bind(campaign).bind(scope).bind(*target);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

const SELECT_ROWS: &str =
    "SELECT campaign, scope, target, round, vp, blocks_judged, blocks_up, probes, replies
     FROM scope_summaries";

pub(super) async fn scope_summaries(
    s: &SqlStore,
    campaign: &str,
    scope: Scope,
    target: &str,
    rounds: RangeInclusive<u64>,
) -> Result<Vec<ScopeSummary>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT_ROWS} WHERE campaign = $1 AND scope = $2 AND target = $3
         AND round >= $4 AND round <= $5 ORDER BY round, vp"
    ))
    .bind(campaign)
    .bind(enum_name(&scope, "summary scope")?)
    .bind(target)
    .bind(clamp(*rounds.start()))
    .bind(clamp(*rounds.end()))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(summary_from_row).collect()
}

pub(super) async fn round_summaries(
    s: &SqlStore,
    campaign: &str,
    round: u64,
    scope: Scope,
    consensus_only: bool,
    limit: usize,
) -> Result<Vec<ScopeSummary>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT_ROWS} WHERE campaign = $1 AND round = $2 AND scope = $3 AND ($4 = 0 OR vp = '')
         ORDER BY target, vp LIMIT $5"
    ))
    .bind(campaign)
    .bind(to_i64(round, "round")?)
    .bind(enum_name(&scope, "summary scope")?)
    .bind(i64::from(consensus_only))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(summary_from_row).collect()
}

fn summary_from_row(r: &AnyRow) -> Result<ScopeSummary, StoreError> {
    let n = |col: &'static str| -> Result<u64, StoreError> { to_u64(r.try_get(col)?, col) };
    Ok(ScopeSummary {
        campaign: r.try_get("campaign")?,
        scope: enum_from_name(&r.try_get::<String, _>("scope")?, "summary scope")?,
        target: r.try_get("target")?,
        round: n("round")?,
        vp: r.try_get("vp")?,
        blocks_judged: n("blocks_judged")?,
        blocks_up: n("blocks_up")?,
        probes: n("probes")?,
        replies: n("replies")?,
    })
}

pub(super) async fn summary_scopes(
    s: &SqlStore,
    campaign: Option<&str>,
) -> Result<Vec<SummaryKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT campaign, scope, target FROM summary_scopes
         WHERE ($1 = '' OR campaign = $1) ORDER BY campaign, scope, target",
    )
    .bind(campaign.unwrap_or(""))
    .fetch_all(&s.pool)
    .await?;
    let mut keys = rows
        .iter()
        .map(|r| {
            Ok(SummaryKey {
                campaign: r.try_get("campaign")?,
                scope: enum_from_name(&r.try_get::<String, _>("scope")?, "summary scope")?,
                target: r.try_get("target")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The top scope first, then ASes by number, then prefixes by address.
    keys.sort_by(|a, b| {
        (&a.campaign, a.scope)
            .cmp(&(&b.campaign, b.scope))
            .then_with(|| target_order(&a.target, &b.target))
    });
    Ok(keys)
}

fn target_order(a: &str, b: &str) -> std::cmp::Ordering {
    let asn = |t: &str| t.strip_prefix("AS").and_then(|n| n.parse::<u32>().ok());
    let net = |t: &str| t.parse::<ipnet::IpNet>().ok();
    match ((asn(a), asn(b)), (net(a), net(b))) {
        ((Some(x), Some(y)), _) => x.cmp(&y),
        (_, (Some(x), Some(y))) => x.cmp(&y),
        _ => a.cmp(b),
    }
}
