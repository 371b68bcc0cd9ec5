//! A verdict's evidence, for its page on the dashboard
//! (`GET /v1/verdicts/{id}`): the verdict, the share of its scope's blocks
//! up per round (consensus and per VP) from a few rounds before it started
//! to a few after it ended, the blocks that went dark, each VP's traceroutes
//! toward the scope with where they ended before and during the verdict
//! (`traces`), and the alerts it has given.
//!
//! Everything is assembled from what the store holds (observations, traces,
//! the verdict row) by pure functions; only [`load`] touches the store. The
//! per-round counts use a simple consensus that a reader can check by hand:
//! a block is judged in a round if some VP saw it up or down, and up if at
//! least half of those VPs saw it up. The correlation core decides verdicts
//! with more care (VP health, quorum); this is what the page shows of them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use darkwatch_correlate::Scope;
use darkwatch_schema::{round_start_ms, BlockState};
use ipnet::IpNet;
use serde::Serialize;

use crate::correlation::{last_complete_round, top_target};
use crate::store::{AgentObservation, AgentTrace, Campaign, Store, StoreError, Verdict};
use crate::views::{self, OutageJson};

/// Rounds shown before a verdict starts and after it ends, by default.
pub const ROUNDS_AROUND: u64 = 10;
/// At most this many rounds of evidence (a verdict lasting days shows its
/// first rounds; `truncated` says so).
pub const MAX_ROUNDS: u64 = 1440;
/// Observations read for one verdict at most (rounds x blocks x VPs), so
/// that a large campaign's evidence stays a bounded read: fewer rounds are
/// shown for a campaign with many blocks.
pub const MAX_OBSERVATIONS: u64 = 400_000;

/// One VP's counts in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VpRound {
    pub vp: String,
    pub blocks_judged: u64,
    pub blocks_up: u64,
    pub share_up: Option<f64>,
    pub probes: u64,
    pub replies: u64,
}

/// Counts of one round over the blocks of a scope: consensus and per VP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundCounts {
    pub round: u64,
    pub start_ms: i64,
    /// `before`, `during` or `after` the verdict (empty when no verdict).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub phase: &'static str,
    pub blocks_judged: u64,
    pub blocks_up: u64,
    pub share_up: Option<f64>,
    pub probes: u64,
    pub replies: u64,
    pub per_vp: Vec<VpRound>,
}

/// A block that was down (by consensus) in at least one round of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectedBlock {
    pub block: IpNet,
    /// The campaign prefix it belongs to, if any.
    pub prefix: Option<IpNet>,
    pub rounds_down: u64,
    pub rounds_judged: u64,
}

/// An alert event of the verdict and whether it was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    /// `open` or `close`.
    pub event: &'static str,
    /// Given (sent, or logged without a webhook) by a correlation pass.
    pub given: bool,
    /// The round and time the event stands for (the verdict's start or end).
    pub round: Option<u64>,
    pub time: Option<String>,
}

/// A scope by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeRef {
    pub scope: Scope,
    pub target: String,
}

/// What `GET /v1/verdicts/{id}` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub verdict: OutageJson,
    /// The verdict's campaign's top scope (its country, or itself).
    pub top_scope: ScopeRef,
    pub interval_secs: u64,
    pub first_round: u64,
    pub last_round: u64,
    /// True if the verdict lasts longer than [`MAX_ROUNDS`] allow to show.
    pub truncated: bool,
    /// The prefixes (or block) whose blocks are counted.
    pub scope_nets: Vec<IpNet>,
    pub vantage_points: Vec<String>,
    pub rounds: Vec<RoundCounts>,
    pub affected_blocks: Vec<AffectedBlock>,
    pub traces: Vec<VpTraces>,
    pub endings: Vec<Ending>,
    pub alerts: Vec<AlertRecord>,
}

/// The networks whose blocks make up a scope of `campaign`: every prefix
/// for the country or campaign, the prefix or block itself, and for an AS
/// or the unrouted group (or a target that does not parse) `fallback`, the
/// prefixes the verdict names: those of the group that had blocks down.
pub fn scope_nets(
    scope: Scope,
    target: &str,
    campaign: &Campaign,
    fallback: &[IpNet],
) -> Vec<IpNet> {
    let mut nets = match scope {
        Scope::Country | Scope::Campaign => campaign.prefixes.clone(),
        Scope::Asn | Scope::Unrouted => fallback.to_vec(),
        Scope::Prefix | Scope::Block => match target.parse::<IpNet>() {
            Ok(n) => vec![n],
            Err(_) => fallback.to_vec(),
        },
    };
    nets.sort();
    nets.dedup();
    nets
}

fn in_nets(nets: &[IpNet], block: &IpNet) -> bool {
    nets.iter().any(|n| n.contains(block))
}

fn share(up: u64, judged: u64) -> Option<f64> {
    (judged > 0).then(|| up as f64 / judged as f64)
}

/// `before`, `during` or `after` a verdict for a round.
pub fn phase(v: &Verdict, round: u64) -> &'static str {
    if round < v.start_round {
        "before"
    } else if v.end_round.is_none_or(|e| round < e) {
        "during"
    } else {
        "after"
    }
}

/// Per round of `rounds` that has observations of blocks in `nets`: how
/// many blocks each VP judged and saw up, and the consensus (a block is up
/// if at least half of the VPs that judged it saw it up). Rounds without
/// any observation in scope are left out.
pub fn round_counts(
    obs: &[AgentObservation],
    nets: &[IpNet],
    rounds: RangeInclusive<u64>,
    interval_secs: u64,
) -> Vec<RoundCounts> {
    #[derive(Default)]
    struct Acc {
        // block -> (VPs that saw it up, VPs that judged it)
        blocks: BTreeMap<IpNet, (u64, u64)>,
        // vp -> (judged, up, probes, replies)
        vps: BTreeMap<String, (u64, u64, u64, u64)>,
    }
    let mut by_round: BTreeMap<u64, Acc> = BTreeMap::new();
    for AgentObservation { agent, obs: o } in obs {
        if !rounds.contains(&o.round) || o.control || !in_nets(nets, &o.block) {
            continue;
        }
        let acc = by_round.entry(o.round).or_default();
        let vp = acc.vps.entry(agent.clone()).or_default();
        vp.2 += u64::from(o.probes);
        vp.3 += u64::from(o.replies);
        let up = match o.state {
            BlockState::Up => 1,
            BlockState::Down => 0,
            BlockState::Uncertain => continue,
        };
        vp.0 += 1;
        vp.1 += up;
        let b = acc.blocks.entry(o.block).or_default();
        b.0 += up;
        b.1 += 1;
    }
    by_round
        .into_iter()
        .map(|(round, acc)| {
            let judged = acc.blocks.len() as u64;
            let up = acc.blocks.values().filter(|(u, n)| 2 * u >= *n).count() as u64;
            let per_vp: Vec<VpRound> = acc
                .vps
                .into_iter()
                .map(|(vp, (j, u, p, r))| VpRound {
                    vp,
                    blocks_judged: j,
                    blocks_up: u,
                    share_up: share(u, j),
                    probes: p,
                    replies: r,
                })
                .collect();
            RoundCounts {
                round,
                start_ms: round_start_ms(round, interval_secs),
                phase: "",
                blocks_judged: judged,
                blocks_up: up,
                share_up: share(up, judged),
                probes: per_vp.iter().map(|v| v.probes).sum(),
                replies: per_vp.iter().map(|v| v.replies).sum(),
                per_vp,
            }
        })
        .collect()
}

/// Blocks in `nets` down by consensus in at least one round of `v`.
pub fn affected_blocks(
    obs: &[AgentObservation],
    nets: &[IpNet],
    v: &Verdict,
    prefixes: &[IpNet],
) -> Vec<AffectedBlock> {
    // (block, round) -> (up votes, votes)
    let mut votes: BTreeMap<(IpNet, u64), (u64, u64)> = BTreeMap::new();
    for o in obs.iter().map(|o| &o.obs) {
        if o.control || phase(v, o.round) != "during" || !in_nets(nets, &o.block) {
            continue;
        }
        let up = match o.state {
            BlockState::Up => 1,
            BlockState::Down => 0,
            BlockState::Uncertain => continue,
        };
        let e = votes.entry((o.block, o.round)).or_default();
        e.0 += up;
        e.1 += 1;
    }
    let mut blocks: BTreeMap<IpNet, (u64, u64)> = BTreeMap::new();
    for ((block, _), (up, n)) in votes {
        let b = blocks.entry(block).or_default();
        b.1 += 1;
        if 2 * up < n {
            b.0 += 1;
        }
    }
    blocks
        .into_iter()
        .filter(|(_, (down, _))| *down > 0)
        .map(|(block, (down, judged))| AffectedBlock {
            block,
            prefix: prefixes
                .iter()
                .filter(|p| p.contains(&block))
                .max_by_key(|p| p.prefix_len())
                .copied(),
            rounds_down: down,
            rounds_judged: judged,
        })
        .collect()
}

/// The alerts of a verdict from its stored flags: `open` stands for its
/// start, `close` for its end (not given while it is open).
pub fn alert_history(v: &Verdict) -> Vec<AlertRecord> {
    vec![
        AlertRecord {
            event: "open",
            given: v.alerted.open,
            round: Some(v.start_round),
            time: Some(views::rfc3339(v.start_ms)),
        },
        AlertRecord {
            event: "close",
            given: v.alerted.close,
            round: v.end_round,
            time: v.end_ms.map(views::rfc3339),
        },
    ]
}

/// How many /24 (IPv4) or /48 (IPv6) blocks `nets` hold, saturating.
pub fn blocks_in(nets: &[IpNet]) -> u64 {
    nets.iter()
        .map(|n| {
            let unit = if matches!(n, IpNet::V4(_)) { 24 } else { 48 };
            1u64.checked_shl(u32::from(unit.max(n.prefix_len()) - n.prefix_len()))
                .unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add)
}

/// The blocks of a campaign that are watched: the IPv4 /24s of its
/// prefixes (a sub-/24 allocation counts its /24, once) and the IPv6 /48s
/// of `census` inside them. An IPv6 allocation is not a count: a /32 holds
/// 65,536 /48s, of which only those with census addresses are tracked.
pub fn tracked_blocks<'a>(prefixes: &[IpNet], census: impl IntoIterator<Item = &'a IpNet>) -> u64 {
    let space = crate::space::Space::new(prefixes);
    let v6: BTreeSet<&IpNet> = census
        .into_iter()
        .filter(|b| matches!(b, IpNet::V6(_)) && space.overlaps(b))
        .collect();
    u64::try_from(space.v4_blocks())
        .unwrap_or(u64::MAX)
        .saturating_add(v6.len() as u64)
}

/// Most rounds of evidence for a campaign of `blocks` blocks seen by `vps`
/// VPs: [`MAX_OBSERVATIONS`] spread over them, within [`MAX_ROUNDS`], and
/// never so few that the start of a verdict and `around` rounds on each
/// side of it are cut.
pub fn max_rounds(blocks: u64, vps: u64, around: u64) -> u64 {
    let per_round = blocks.max(1).saturating_mul(vps.max(1));
    (MAX_OBSERVATIONS / per_round).clamp((2 * around + 2).min(MAX_ROUNDS), MAX_ROUNDS)
}

/// The rounds shown for `v`: `around` rounds before its start to `around`
/// after its end (or `last` while open, or when that is sooner), at most
/// `max` rounds. Returns the range and whether it was cut short.
pub fn window(
    v: &Verdict,
    around: u64,
    last: Option<u64>,
    max: u64,
) -> (RangeInclusive<u64>, bool) {
    let first = v.start_round.saturating_sub(around);
    let mut end = match v.end_round {
        Some(e) => e.saturating_add(around),
        None => last.unwrap_or(v.start_round),
    };
    if let Some(l) = last {
        end = end.min(l.max(v.start_round));
    }
    let end = end.max(v.start_round);
    let cap = first.saturating_add(max.max(1) - 1);
    (first..=end.min(cap), end > cap)
}

/// Everything the page shows, from what [`load`] read.
pub fn assemble(
    v: &Verdict,
    outage: OutageJson,
    campaign: &Campaign,
    rounds: RangeInclusive<u64>,
    truncated: bool,
    obs: &[AgentObservation],
    trace_rows: &[AgentTrace],
) -> Evidence {
    let nets = scope_nets(v.scope, &v.target, campaign, &v.prefixes);
    let mut counts = round_counts(obs, &nets, rounds.clone(), campaign.interval_secs);
    for r in &mut counts {
        r.phase = phase(v, r.round);
    }
    let vantage_points: BTreeSet<String> = counts
        .iter()
        .flat_map(|r| r.per_vp.iter().map(|p| p.vp.clone()))
        .collect();
    let (traces, endings) = traces(trace_rows, &nets, v);
    let (target, is_country) = top_target(campaign);
    Evidence {
        verdict: outage,
        top_scope: ScopeRef {
            scope: if is_country {
                Scope::Country
            } else {
                Scope::Campaign
            },
            target,
        },
        interval_secs: campaign.interval_secs,
        first_round: *rounds.start(),
        last_round: *rounds.end(),
        truncated,
        affected_blocks: affected_blocks(obs, &nets, v, &campaign.prefixes),
        scope_nets: nets,
        vantage_points: vantage_points.into_iter().collect(),
        rounds: counts,
        traces,
        endings,
        alerts: alert_history(v),
    }
}

/// The evidence of verdict `id`, or `None` if there is no such verdict (or
/// its campaign is gone); the verdict and its causes named from `as_names`.
pub async fn load<S: Store>(
    store: &S,
    id: i64,
    around: u64,
    now_ms: i64,
    as_names: &darkwatch_schema::inputs::asnames::AsNames,
) -> Result<Option<Evidence>, StoreError> {
    let all = store.list_verdicts(None, None).await?;
    let Some(i) = all.iter().position(|v| v.id == id) else {
        return Ok(None);
    };
    let v = &all[i];
    let campaigns = store.list_campaigns().await?;
    let Some(campaign) = campaigns.iter().find(|c| c.name == v.campaign) else {
        return Ok(None);
    };
    let outage = views::with_causes(&all, as_names).swap_remove(i);
    let census = store.census(&campaign.name).await?;
    let max = max_rounds(
        tracked_blocks(&campaign.prefixes, census.iter().map(|b| &b.block)),
        v.vantage_points.len() as u64,
        around,
    );
    let (rounds, truncated) = window(
        v,
        around,
        last_complete_round(now_ms, campaign.interval_secs),
        max,
    );
    let obs = store.observations(&campaign.name, rounds.clone()).await?;
    let trace_rows = store.traces(&campaign.name, rounds.clone()).await?;
    Ok(Some(assemble(
        v,
        outage,
        campaign,
        rounds,
        truncated,
        &obs,
        &trace_rows,
    )))
}

mod traces;

pub use traces::{traces, Ending, TraceJson, VpTraces};

#[cfg(test)]
mod tests;
