//! Writing the per-round summaries after each correlation pass: which
//! rounds a pass rewrites (those whose input digest changed, from the first
//! such round on), the rows it writes, and the cap that spreads a large
//! rewrite over passes. See the parent module's docs for why a round is
//! rewritten when an earlier one changes and never otherwise.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use darkwatch_correlate as core;

use crate::store::{Campaign, ScopeSummary, Store, StoreError, SummaryRound};

/// Most summary rows one correlation pass writes (whole rounds; at least
/// one round): about 100 rounds of a campaign of 500 prefixes and 3 VPs.
pub const MAX_ROWS_PER_PASS: usize = 200_000;

/// The first round of the window whose digest differs from the stored one
/// (a round without data has digest 0, as has a round never stored).
pub fn first_changed(first_round: u64, digests: &[u64], stored: &[SummaryRound]) -> Option<u64> {
    let stored: BTreeMap<u64, u64> = stored.iter().map(|s| (s.round, s.digest as u64)).collect();
    digests.iter().enumerate().find_map(|(i, &d)| {
        let round = first_round + i as u64;
        (stored.get(&round).copied().unwrap_or(0) != d).then_some(round)
    })
}

/// The rows of the summaries' rounds from `from` on that have data: the
/// top scope's consensus row for every such round, other rows where
/// something was reported.
pub fn summary_rows(
    campaign: &str,
    vps: &[String],
    s: &core::Summaries,
    digests: &[u64],
    from: u64,
) -> Vec<ScopeSummary> {
    let mut rows = Vec::new();
    let Some(start) = s.round_index(from) else {
        return rows;
    };
    for r in start..s.rounds {
        if digests.get(r).copied().unwrap_or(0) == 0 {
            continue;
        }
        let round = s.round_number(r);
        for (i, scope) in s.scopes.iter().enumerate() {
            let mut push = |vp: &str, t: core::Totals| {
                rows.push(ScopeSummary {
                    campaign: campaign.to_string(),
                    scope: scope.scope,
                    target: scope.target.clone(),
                    round,
                    vp: vp.to_string(),
                    blocks_judged: t.blocks_judged.into(),
                    blocks_up: t.blocks_up.into(),
                    probes: t.probes,
                    replies: t.replies,
                })
            };
            let c = s.consensus(r, i);
            if i == 0 || c.has_data() {
                push("", c);
            }
            for (v, name) in vps.iter().enumerate() {
                if let Some(t) = s.vp(r, v as core::VpId, i).filter(core::Totals::has_data) {
                    push(name, t);
                }
            }
        }
    }
    rows
}

/// The last round of `rows` (ordered by round) such that the rows up to it
/// number at most `max_rows`; at least the first round.
pub fn last_round_within(rows: &[ScopeSummary], max_rows: usize) -> Option<u64> {
    let first = rows.first()?.round;
    let fits = rows.get(max_rows).map_or(u64::MAX, |r| r.round);
    // Rows of the round that crosses the cap are left out whole.
    Some(
        rows.iter()
            .map(|r| r.round)
            .take_while(|&r| r < fits)
            .last()
            .unwrap_or(first),
    )
}

/// Stores the summaries of the rounds of the pass's window that are new or
/// whose input changed (see the module docs), at most `max_rows` rows (the
/// collector passes [`MAX_ROWS_PER_PASS`]); returns how many rounds it
/// wrote. A pass that hits the cap writes whole rounds from the first
/// changed one and forgets the digests of the rounds after them, so that
/// the next pass goes on from there: a backfill (a new database, a changed
/// campaign) or a late round early in a large window is spread over passes
/// instead of one huge transaction. `digests` are the window's per-round
/// digests (`Incremental::round_digests`), `vps` its VPs.
#[allow(clippy::too_many_arguments)]
pub async fn store_summary_rounds<S: Store>(
    store: &S,
    campaign: &Campaign,
    window: RangeInclusive<u64>,
    vps: &[String],
    digests: &[u64],
    out: &core::Output,
    now_ms: i64,
    max_rows: usize,
) -> Result<usize, StoreError> {
    let (first_round, last_round) = (*window.start(), *window.end());
    if digests.is_empty() || out.summaries.rounds != digests.len() {
        return Ok(0);
    }
    let stored = store.summary_rounds(&campaign.name, window).await?;
    let Some(from) = first_changed(first_round, digests, &stored) else {
        return Ok(0);
    };
    let mut rows = summary_rows(&campaign.name, vps, &out.summaries, digests, from);
    let upto = match last_round_within(&rows, max_rows) {
        Some(r) if rows.len() > max_rows => r,
        _ => last_round,
    };
    rows.retain(|r| r.round <= upto);
    let written: Vec<SummaryRound> = digests
        .iter()
        .enumerate()
        .map(|(i, &d)| (first_round + i as u64, d))
        .filter(|&(round, d)| d != 0 && (from..=upto).contains(&round))
        .map(|(round, d)| SummaryRound {
            round,
            interval_secs: campaign.interval_secs,
            digest: d as i64,
            updated_ms: now_ms,
        })
        .collect();
    store
        .replace_summaries(
            &campaign.name,
            from..=upto,
            from..=last_round,
            &written,
            &rows,
        )
        .await?;
    tracing::debug!(campaign = %campaign.name, from, upto, rounds = written.len(), rows = rows.len(), "summaries stored");
    Ok(written.len())
}
