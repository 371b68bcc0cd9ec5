//! Per scope: the down share and instability marks of each round, turned into
//! `blackout` / `partial` / `instability` verdicts with hysteresis.
//!
//! Rounds in which a scope has no judged block (collector downtime, every
//! report uncertain) are skipped, not counted as good or bad: a gap neither
//! opens, closes nor splits a verdict. Redundant verdicts are dropped: a
//! child scope's blackout that lies within a blackout of an enclosing scope
//! is fully explained by it.

use std::collections::VecDeque;

use crate::consensus::Agg;
use crate::grid::{Grid, DOWN, FLAP, LOSSY, STATE};
use crate::health::Health;
use crate::instability::{instability_runs, loss_llr};
use crate::scopes::Scopes;
use crate::{median, Kind, Params, Verdict, VpId};

/// Round indices: `start` is the first bad round, `end` the first good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: usize,
    pub end: Option<usize>,
}

impl Run {
    pub(crate) fn covers(&self, r: usize) -> bool {
        self.start <= r && self.end.is_none_or(|e| r < e)
    }

    fn contains(&self, o: &Run) -> bool {
        self.start <= o.start
            && match (self.end, o.end) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => b <= a,
            }
    }
}

/// Open after `open_after` consecutive bad rounds (the run starts at the
/// first of them), close after `close_after` consecutive good rounds (the run
/// ends at the first of those).
struct Hysteresis {
    open_after: u32,
    close_after: u32,
    bad: u32,
    bad_start: usize,
    open: Option<usize>,
    good: u32,
    good_start: usize,
}

impl Hysteresis {
    fn new(p: &Params) -> Self {
        Hysteresis {
            open_after: p.open_after.max(1),
            close_after: p.close_after.max(1),
            bad: 0,
            bad_start: 0,
            open: None,
            good: 0,
            good_start: 0,
        }
    }

    fn step(&mut self, r: usize, bad: bool) -> Option<Run> {
        match self.open {
            None if bad => {
                if self.bad == 0 {
                    self.bad_start = r;
                }
                self.bad += 1;
                if self.bad >= self.open_after {
                    self.open = Some(self.bad_start);
                    self.good = 0;
                }
                None
            }
            None => {
                self.bad = 0;
                None
            }
            Some(_) if bad => {
                self.good = 0;
                None
            }
            Some(start) => {
                if self.good == 0 {
                    self.good_start = r;
                }
                self.good += 1;
                if self.good < self.close_after {
                    return None;
                }
                self.open = None;
                self.bad = 0;
                Some(Run {
                    start,
                    end: Some(self.good_start),
                })
            }
        }
    }

    /// Ends an open run at `r` (something else now explains the rounds).
    fn force_close(&mut self, r: usize) -> Option<Run> {
        self.bad = 0;
        self.good = 0;
        self.open.take().map(|start| Run {
            start,
            end: Some(r),
        })
    }

    fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn finish(self) -> Option<Run> {
        self.open.map(|start| Run { start, end: None })
    }
}

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
/// rounds. The batch grid answers from its cells; the incremental engine
/// from per-round, per-prefix marks kept instead of the cells.
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
}

impl Evidence for Grid {
    fn rounds(&self) -> usize {
        self.rounds
    }

    fn first_round(&self) -> u64 {
        self.first_round
    }

    fn down_vps(
        &self,
        health: &Health,
        scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<VpId> {
        down_vps(self, health, scopes, prefixes, rounds)
    }

    fn unstable_marks(
        &self,
        health: &Health,
        scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<u64> {
        unstable_marks(self, health, scopes, prefixes, rounds)
    }
}

pub(crate) fn detect(
    vp_names: &[String],
    grid: &dyn Evidence,
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
            });
        }
        for run in parts {
            found.push(Found {
                scope: s,
                kind: Kind::Partial,
                run,
                unstable: vec![],
            });
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
                });
            }
        }
    }
    let mut out: Vec<Detected> = found
        .iter()
        .map(|f| describe(vp_names, grid, health, scopes, p, f))
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
    grid: &dyn Evidence,
    health: &Health,
    scopes: &Scopes,
    p: &Params,
    f: &Found,
) -> Detected {
    let def = &scopes.defs[f.scope];
    let series = scopes.series(f.scope);
    let instability = f.kind == Kind::Instability;
    let rounds: Vec<usize> = if instability {
        f.unstable.clone()
    } else {
        (f.run.start..f.run.end.unwrap_or(grid.rounds()))
            .filter(|&r| series[r].judged > 0)
            .collect()
    };
    let blocks_affected = rounds
        .iter()
        .map(|&r| {
            if instability {
                series[r].unstable
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
            if instability {
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
    let vps = if instability {
        let marks = grid.unstable_marks(health, scopes, &prefixes, &rounds);
        let max = marks.iter().copied().max().unwrap_or(0);
        (0..marks.len() as VpId)
            .filter(|&v| max > 0 && marks[v as usize] * 2 >= max)
            .collect()
    } else {
        grid.down_vps(health, scopes, &prefixes, &rounds)
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
            start_round: grid.first_round() + f.run.start as u64,
            end_round: f.run.end.map(|e| grid.first_round() + e as u64),
            blocks_affected,
            blocks_total: def.judged_blocks,
            prefixes: nets,
            vantage_points: names,
            localization: None,
        },
        scope: f.scope,
        vps,
    }
}

/// Healthy VPs that saw a block of `prefixes` down in one of `rounds`.
fn down_vps(
    grid: &Grid,
    health: &Health,
    scopes: &Scopes,
    prefixes: &[u32],
    rounds: &[usize],
) -> Vec<VpId> {
    let mut seen = vec![false; grid.vps];
    for &r in rounds {
        for (v, s) in seen.iter_mut().enumerate() {
            if *s || !health.healthy(r, v) {
                continue;
            }
            let row = grid.row(r, v);
            *s = prefixes.iter().any(|&q| {
                scopes.prefix_blocks[q as usize]
                    .iter()
                    .any(|&b| row[b as usize] & STATE == DOWN)
            });
        }
        if seen.iter().all(|&s| s) {
            break;
        }
    }
    (0..grid.vps as VpId)
        .filter(|&v| seen[v as usize])
        .collect()
}

/// Per VP, its marks (losses or flaps) in `prefixes` during `rounds`. The
/// verdict lists the healthy VPs with at least half as many marks as the VP
/// with the most, so that the background loss every VP sees does not list
/// them all.
fn unstable_marks(
    grid: &Grid,
    health: &Health,
    scopes: &Scopes,
    prefixes: &[u32],
    rounds: &[usize],
) -> Vec<u64> {
    let mut marks = vec![0u64; grid.vps];
    for &r in rounds {
        for (v, m) in marks.iter_mut().enumerate() {
            if !health.healthy(r, v) {
                continue;
            }
            let row = grid.row(r, v);
            for &q in prefixes {
                *m += scopes.prefix_blocks[q as usize]
                    .iter()
                    .filter(|&&b| row[b as usize] & (FLAP | LOSSY) != 0)
                    .count() as u64;
            }
        }
    }
    marks
}
