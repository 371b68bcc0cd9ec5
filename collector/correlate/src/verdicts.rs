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
use crate::scopes::Scopes;
use crate::{median, Input, Kind, Params, Verdict, VpId};

/// Round indices: `start` is the first bad round, `end` the first good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: usize,
    pub end: Option<usize>,
}

impl Run {
    fn covers(&self, r: usize) -> bool {
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

/// Log-likelihood ratio of the losses of `a` (probes to blocks believed
/// up, and how many went unanswered) between a path losing
/// `instability_loss` of its packets and background loss
/// (`instability_background_loss`); `None` when the rates make no sense.
fn loss_llr(a: &Agg, p: &Params) -> Option<f64> {
    let (p1, p0) = (p.instability_loss, p.instability_background_loss);
    if !(0.0 < p0 && p0 < p1 && p1 < 1.0) {
        return None;
    }
    let (k, n) = (a.unanswered_up as f64, a.probes_up as f64);
    Some(k * (p1 / p0).ln() + (n - k) * ((1.0 - p1) / (1.0 - p0)).ln())
}

/// Whether pooled losses `a` are instability: at least
/// `instability_min_probes` probes, and a log-likelihood ratio (see
/// [`loss_llr`]) of at least ln 1000, so that background loss passes for
/// instability less than once in a thousand tests. Pooling rounds and
/// weighing the evidence this way is what lets a country of four blocks, a
/// dozen probes a round, be judged: one round's share of a handful of
/// probes swings far above and below the true loss rate.
fn lossy(a: &Agg, p: &Params) -> bool {
    a.probes_up >= u64::from(p.instability_min_probes.max(1))
        && loss_llr(a, p).is_some_and(|l| l >= 1000f64.ln())
}

/// A round flapped when enough of its blocks changed state (at the
/// configured share) and the window it closes (`win`) holds at least
/// `instability_min_flaps` changes. The floor applies to the window, not to
/// one round: a country of four blocks has at most one flap a round, so a
/// per-round floor would make instability unreachable exactly where a
/// country is small.
fn is_flappy(a: &Agg, win: &Agg, p: &Params) -> bool {
    a.flapped > 0
        && f64::from(a.flapped) / f64::from(a.judged.max(1)) >= p.instability_flap_share
        && win.flapped >= p.instability_min_flaps.max(1)
}

/// Marks the unstable rounds of `series`. A round is unstable when it
/// flapped (see [`is_flappy`]), or when it belongs to
/// `instability_min_rounds` consecutive data rounds whose pooled losses are
/// [`lossy`] and it lost at least the background share itself: the pool is
/// judged as a whole, so its rounds are marked also before the round that
/// completed the evidence.
/// Blackouts split the series; the edges of outages add nothing.
fn unstable_rounds(
    series: &[Agg],
    blackouts: &[Run],
    masked: &dyn Fn(usize) -> bool,
    p: &Params,
) -> Vec<bool> {
    let window = p.instability_window.max(1) as usize;
    let need = p.instability_min_rounds.max(1) as usize;
    let mut marks = vec![false; series.len()];
    // The window's data rounds and what each adds to it.
    let mut recent: VecDeque<(usize, Agg)> = VecDeque::new();
    for (r, a) in series.iter().enumerate() {
        if a.judged == 0 {
            continue;
        }
        if blackouts.iter().any(|b| b.covers(r)) {
            recent.clear();
            continue;
        }
        let own = if masked(r) { Agg::default() } else { *a };
        if recent.len() == window {
            recent.pop_front();
        }
        recent.push_back((r, own));
        let mut win = Agg::default();
        for x in &recent {
            win += x.1;
        }
        if is_flappy(&own, &win, p) {
            marks[r] = true;
        }
        if recent.len() >= need {
            let pool = recent.iter().skip(recent.len() - need);
            let mut pooled = Agg::default();
            for x in pool.clone() {
                pooled += x.1;
            }
            if lossy(&pooled, p) {
                // The pool's rounds that lost more than background loss
                // explains: not a stray loss just before a burst.
                let above = |a: &Agg| {
                    a.unanswered_up > 0
                        && a.unanswered_up as f64
                            >= p.instability_background_loss * a.probes_up as f64
                };
                for x in pool.filter(|x| above(&x.1)) {
                    marks[x.0] = true;
                }
            }
        }
    }
    marks
}

/// Instability runs, each with its unstable rounds.
fn instability_runs(
    series: &[Agg],
    blackouts: &[Run],
    partials: &[Run],
    p: &Params,
) -> Vec<(Run, Vec<usize>)> {
    // The onset and end of a blackout or partial outage flip many blocks at
    // once; those transitions are the outage, not instability.
    let masked = |r: usize| {
        blackouts
            .iter()
            .any(|b| b.start <= r && b.end.is_none_or(|e| r <= e))
            || partials.iter().any(|x| x.start == r || x.end == Some(r))
    };
    let window = p.instability_window.max(1) as usize;
    let need = p.instability_min_rounds.max(1) as usize;
    let marks = unstable_rounds(series, blackouts, &masked, p);
    let mut recent: VecDeque<(usize, bool)> = VecDeque::new();
    let mut runs = Vec::new();
    // Open run: its unstable rounds, the first data round after the latest
    // of them, and how many rounds in a row the window held too few.
    let mut open: Option<(Vec<usize>, Option<usize>, u32)> = None;
    for (r, a) in series.iter().enumerate() {
        if a.judged == 0 {
            continue;
        }
        if blackouts.iter().any(|b| b.covers(r)) {
            if let Some((rounds, _, _)) = open.take() {
                runs.push((
                    Run {
                        start: rounds[0],
                        end: Some(r),
                    },
                    rounds,
                ));
            }
            recent.clear();
            continue;
        }
        let unstable = marks[r];
        if recent.len() == window {
            recent.pop_front();
        }
        recent.push_back((r, unstable));
        let count = recent.iter().filter(|x| x.1).count();
        match &mut open {
            None => {
                if count >= need {
                    let rounds = recent.iter().filter(|x| x.1).map(|x| x.0).collect();
                    open = Some((rounds, None, 0));
                }
            }
            Some((rounds, after, calm)) => {
                if unstable {
                    rounds.push(r);
                    *after = None;
                } else if after.is_none() {
                    *after = Some(r);
                }
                if count >= need {
                    *calm = 0;
                } else {
                    *calm += 1;
                    if *calm >= p.close_after.max(1) {
                        let end = after.unwrap_or(r);
                        let rounds = std::mem::take(rounds);
                        runs.push((
                            Run {
                                start: rounds[0],
                                end: Some(end),
                            },
                            rounds,
                        ));
                        open = None;
                    }
                }
            }
        }
    }
    if let Some((rounds, _, _)) = open {
        runs.push((
            Run {
                start: rounds[0],
                end: None,
            },
            rounds,
        ));
    }
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

pub(crate) fn detect(
    input: &Input,
    grid: &Grid,
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
        .map(|f| describe(input, grid, health, scopes, p, f))
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
    input: &Input,
    grid: &Grid,
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
        (f.run.start..f.run.end.unwrap_or(grid.rounds))
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
                let loss = sum.probes_up > 0
                    && sum.unanswered_up as f64 / sum.probes_up as f64 >= p.instability_loss;
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
        unstable_vps(grid, health, scopes, &prefixes, &rounds)
    } else {
        down_vps(grid, health, scopes, &prefixes, &rounds)
    };
    let mut nets: Vec<_> = prefixes
        .iter()
        .map(|&q| scopes.prefix_nets[q as usize])
        .collect();
    nets.sort();
    let mut names: Vec<String> = vps.iter().map(|&v| input.vps[v as usize].clone()).collect();
    names.sort();
    Detected {
        verdict: Verdict {
            scope: def.scope,
            target: def.target.clone(),
            kind: f.kind,
            start_round: grid.round_number(f.run.start),
            end_round: f.run.end.map(|e| grid.round_number(e)),
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

/// Healthy VPs that saw losses or flaps in `prefixes` during `rounds`: those
/// with at least half as many marks as the VP with the most, so that the
/// background loss every VP sees does not list them all.
fn unstable_vps(
    grid: &Grid,
    health: &Health,
    scopes: &Scopes,
    prefixes: &[u32],
    rounds: &[usize],
) -> Vec<VpId> {
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
    let max = marks.iter().copied().max().unwrap_or(0);
    (0..grid.vps as VpId)
        .filter(|&v| max > 0 && marks[v as usize] * 2 >= max)
        .collect()
}
