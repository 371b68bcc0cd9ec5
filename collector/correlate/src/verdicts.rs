//! Per scope: the down share and instability marks of each round, turned into
//! `blackout` / `partial` / `instability` verdicts with hysteresis, and its
//! loss and reply times into `degradation` verdicts (`latency`).
//!
//! Rounds in which a scope has no judged block (collector downtime, every
//! report uncertain) are skipped, not counted as good or bad: a gap neither
//! opens, closes nor splits a verdict. Redundant verdicts are dropped: a
//! child scope's blackout that lies within a blackout of an enclosing scope
//! is fully explained by it.

use std::collections::VecDeque;

use crate::consensus::Agg;
use crate::health::Health;
use crate::instability::{instability_runs, loss_llr};
use crate::latency::{self, RoundLatency};
use crate::runs::{Hysteresis, Run};
use crate::scopes::Scopes;
use crate::{median, Kind, Params, Verdict, VpId};

/// Essentially all of the scope's judged blocks are down this round.
fn is_blackout_round(a: &Agg, share: f64, p: &Params) -> bool {
    a.down > 0 && share >= p.blackout_share
}

fn blackout_runs(series: &[Agg], p: &Params) -> Vec<Run> {
    let mut h = Hysteresis::new(p);
    let mut runs = Vec::new();
    for (r, a) in series.iter().enumerate() {
        let Some(share) = a.down_share() else {
            continue;
        };
        runs.extend(h.step(r, is_blackout_round(a, share, p)));
    }
    runs.extend(h.finish());
    runs
}

fn partial_runs(series: &[Agg], blackouts: &[Run], p: &Params) -> Vec<Run> {
    let mut h = Hysteresis::new(p);
    let mut runs = Vec::new();
    // Down shares of recent quiet rounds (neither bad nor inside a verdict).
    let mut history: VecDeque<f64> = VecDeque::new();
    let mut scratch = Vec::new();
    for (r, a) in series.iter().enumerate() {
        let Some(share) = a.down_share() else {
            continue;
        };
        if blackouts.iter().any(|b| b.covers(r)) {
            runs.extend(h.force_close(r));
            continue;
        }
        // A blackout-level round outside a blackout is one that has not yet
        // passed the blackout's hysteresis (or never will): it neither opens
        // nor closes a partial, so a blackout whose onset straddles a round
        // (one round partly down, then all down) does not first surface as
        // a partial that the blackout then overturns.
        if is_blackout_round(a, share, p) {
            continue;
        }
        scratch.clear();
        scratch.extend(history.iter().copied());
        let baseline = median(&mut scratch).unwrap_or(0.0);
        let bad = a.down > 0 && share - baseline >= p.partial_share;
        runs.extend(h.step(r, bad));
        if !bad && !h.is_open() {
            history.push_back(share);
            while history.len() > p.baseline_rounds as usize {
                history.pop_front();
            }
        }
    }
    runs.extend(h.finish());
    runs
}

/// A verdict with what localization needs to know about it.
pub(crate) struct Detected {
    pub verdict: Verdict,
    pub scope: usize,
    /// Healthy VPs that saw it.
    pub vps: Vec<VpId>,
}

struct Found {
    scope: usize,
    kind: Kind,
    run: Run,
    unstable: Vec<usize>,
    /// A degradation's worst change.
    change: Option<latency::Change>,
}

/// A fault (or its repair) that lands while a round is being probed splits
/// that round: some prefixes are already down (or still down), others not,
/// so an enclosing scope's blackout starts (or ends) one round later (or
/// earlier) than its children's. Such a straddle is at most one round, so an
/// ancestor's blackout that overlaps a child's and differs by at most one
/// round at either edge is widened to cover it: the country's verdict then
/// explains its prefixes', and no partial is left over at the edge.
fn widen_to_children(blackouts: &mut [Vec<Run>], scopes: &Scopes) {
    // Children first (deeper scopes have more ancestors), so a prefix widens
    // its AS before the AS widens the country.
    let mut order: Vec<usize> = (0..blackouts.len()).collect();
    order.sort_by_key(|&s| std::cmp::Reverse(scopes.defs[s].ancestors.len()));
    for s in order {
        let children = blackouts[s].clone();
        for &a in &scopes.defs[s].ancestors {
            for ar in &mut blackouts[a] {
                for c in &children {
                    let overlaps = c.start < ar.end.unwrap_or(usize::MAX)
                        && ar.start < c.end.unwrap_or(usize::MAX);
                    let near = |x: Option<usize>, y: Option<usize>| match (x, y) {
                        (None, None) => true,
                        (Some(x), Some(y)) => x.abs_diff(y) <= 1,
                        _ => false,
                    };
                    if overlaps && c.start.abs_diff(ar.start) <= 1 && near(c.end, ar.end) {
                        ar.start = ar.start.min(c.start);
                        ar.end = ar.end.zip(c.end).map(|(x, y)| x.max(y));
                    }
                }
            }
        }
    }
}

/// What verdicts need of the per-block data beyond the scope totals: which
/// healthy VPs saw the blocks of some prefixes down (or unstable) in some
/// rounds. The engine answers from the per-round, per-prefix marks of its
/// consensus products (`incremental::window`); a trait, so that this stage
/// does not depend on how the engine keeps them.
pub(crate) trait Evidence {
    /// Rounds of the window.
    fn rounds(&self) -> usize;
    fn first_round(&self) -> u64;
    /// Healthy VPs that saw a block of `prefixes` down in one of `rounds`.
    fn down_vps(
        &self,
        health: &Health,
        scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<VpId>;
    /// Healthy VPs with losses or flaps in `prefixes` during `rounds`, per
    /// VP: how many block marks (flap or loss) each had.
    fn unstable_marks(
        &self,
        health: &Health,
        scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<u64>;
    /// Loss (of the healthy VPs' probes) and reply times of scope `s` per
    /// round of the window (`None`: no data that round); `None` for a scope
    /// without reply times.
    fn latency(&self, health: &Health, s: usize) -> Option<Vec<Option<RoundLatency>>>;
    /// Healthy VPs that reported blocks of scope `s` in one of `rounds`.
    fn reporting_vps(&self, health: &Health, s: usize, rounds: &[usize]) -> Vec<VpId>;
}

pub(crate) fn detect(
    vp_names: &[String],
    evidence: &dyn Evidence,
    health: &Health,
    scopes: &Scopes,
    p: &Params,
) -> Vec<Detected> {
    let n = scopes.defs.len();
    let mut blackouts: Vec<Vec<Run>> = (0..n).map(|s| blackout_runs(scopes.series(s), p)).collect();
    widen_to_children(&mut blackouts, scopes);
    let mut found = Vec::new();
    for (s, b) in blackouts.iter().enumerate() {
        let series = scopes.series(s);
        let parts = partial_runs(series, b, p);
        for (run, unstable) in instability_runs(series, b, &parts, p) {
            found.push(Found {
                scope: s,
                kind: Kind::Instability,
                run,
                unstable,
                change: None,
            });
        }
        for run in parts {
            found.push(Found {
                scope: s,
                kind: Kind::Partial,
                run,
                unstable: vec![],
                change: None,
            });
        }
    }
    // Degradations, dropped (as blackouts are) where an enclosing scope's
    // degradation contains them: a shaped border slows every prefix behind it.
    let degraded: Vec<Vec<(Run, latency::Change)>> = (0..n)
        .map(|s| {
            let series = evidence.latency(health, s).unwrap_or_default();
            latency::degradations(&series, &p.degradation)
                .into_iter()
                // `end` is the last degraded round; a run's, the first good one.
                .map(|d| {
                    let end = d.end.map(|e| e + 1);
                    (
                        Run {
                            start: d.start,
                            end,
                        },
                        d.worst,
                    )
                })
                .collect()
        })
        .collect();
    for (s, runs) in degraded.iter().enumerate() {
        for &(run, worst) in runs {
            let explained = scopes.defs[s]
                .ancestors
                .iter()
                .any(|&a| degraded[a].iter().any(|(ar, _)| ar.contains(&run)));
            if !explained {
                found.push(Found {
                    scope: s,
                    kind: Kind::Degradation,
                    run,
                    unstable: vec![],
                    change: Some(worst),
                });
            }
        }
    }
    for (s, runs) in blackouts.iter().enumerate() {
        for run in runs {
            let explained = scopes.defs[s]
                .ancestors
                .iter()
                .any(|&a| blackouts[a].iter().any(|ar| ar.contains(run)));
            if !explained {
                found.push(Found {
                    scope: s,
                    kind: Kind::Blackout,
                    run: *run,
                    unstable: vec![],
                    change: None,
                });
            }
        }
    }
    let mut out: Vec<Detected> = found
        .iter()
        .map(|f| describe(vp_names, evidence, health, scopes, p, f))
        .collect();
    out.sort_by(|a, b| {
        let key = |d: &Detected| {
            (
                d.verdict.start_round,
                d.verdict.scope,
                d.verdict.target.clone(),
                d.verdict.kind,
                d.verdict.end_round,
            )
        };
        key(a).cmp(&key(b))
    });
    out
}

/// Fills in blocks, prefixes and VPs of a verdict.
fn describe(
    vp_names: &[String],
    evidence: &dyn Evidence,
    health: &Health,
    scopes: &Scopes,
    p: &Params,
    f: &Found,
) -> Detected {
    let def = &scopes.defs[f.scope];
    let series = scopes.series(f.scope);
    let instability = f.kind == Kind::Instability;
    // A degradation is of the whole scope: its blocks answered, slowly.
    let degradation = f.kind == Kind::Degradation;
    let rounds: Vec<usize> = if instability {
        f.unstable.clone()
    } else {
        (f.run.start..f.run.end.unwrap_or(evidence.rounds()))
            .filter(|&r| series[r].judged > 0)
            .collect()
    };
    let blocks_affected = rounds
        .iter()
        .map(|&r| {
            if instability {
                series[r].unstable
            } else if degradation {
                series[r].judged - series[r].down
            } else {
                series[r].down
            }
        })
        .max()
        .unwrap_or(0) as usize;
    let mut prefixes: Vec<u32> = def
        .prefixes
        .iter()
        .copied()
        .filter(|&q| {
            let ps = scopes.prefix_series(q as usize);
            if degradation {
                rounds.iter().any(|&r| ps[r].judged > 0)
            } else if instability {
                let mut sum = Agg::default();
                for &r in &rounds {
                    sum += ps[r];
                }
                // Its losses over the verdict's rounds are better explained
                // by the lossy path than by background loss.
                let loss = sum.unanswered_up > 0 && loss_llr(&sum, p).is_some_and(|l| l > 0.0);
                let flaps = sum.judged > 0
                    && f64::from(sum.flapped) / f64::from(sum.judged) >= p.instability_flap_share;
                loss || flaps
            } else {
                rounds.iter().any(|&r| {
                    ps[r].down > 0 && ps[r].down_share().is_some_and(|s| s >= p.partial_share)
                })
            }
        })
        .collect();
    if instability && prefixes.is_empty() {
        prefixes = def
            .prefixes
            .iter()
            .copied()
            .filter(|&q| {
                rounds
                    .iter()
                    .any(|&r| scopes.prefix_series(q as usize)[r].unstable > 0)
            })
            .collect();
    }
    let vps = if degradation {
        evidence.reporting_vps(health, f.scope, &rounds)
    } else if instability {
        let marks = evidence.unstable_marks(health, scopes, &prefixes, &rounds);
        let max = marks.iter().copied().max().unwrap_or(0);
        (0..marks.len() as VpId)
            .filter(|&v| max > 0 && marks[v as usize] * 2 >= max)
            .collect()
    } else {
        evidence.down_vps(health, scopes, &prefixes, &rounds)
    };
    let mut nets: Vec<_> = prefixes
        .iter()
        .map(|&q| scopes.prefix_nets[q as usize])
        .collect();
    nets.sort();
    let mut names: Vec<String> = vps.iter().map(|&v| vp_names[v as usize].clone()).collect();
    names.sort();
    Detected {
        verdict: Verdict {
            scope: def.scope,
            target: def.target.clone(),
            kind: f.kind,
            start_round: evidence.first_round() + f.run.start as u64,
            end_round: f.run.end.map(|e| evidence.first_round() + e as u64),
            blocks_affected,
            blocks_total: def.judged_blocks,
            prefixes: nets,
            vantage_points: names,
            localization: None,
            change: f.change.map(|c| c.to_string()),
        },
        scope: f.scope,
        vps,
    }
}
