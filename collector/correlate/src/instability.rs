//! Instability: rounds of a scope marked unstable (losses or flaps beyond
//! what background loss explains), turned into runs with the same
//! hysteresis shape as outages. The edges of blackouts and partial outages
//! flip many blocks at once; those are the outage, not instability.

use std::collections::VecDeque;

use crate::consensus::Agg;
use crate::runs::Run;
use crate::Params;

/// Log-likelihood ratio of the losses of `a` (probes to blocks believed
/// up, and how many went unanswered) between a path losing
/// `instability_loss` of its packets and background loss
/// (`instability_background_loss`); `None` when the rates make no sense.
///
/// The agent probes a block until its first reply (or its budget runs out),
/// so the number of probes depends on the losses; the likelihood of a
/// sequence of independent losses and replies does not depend on that
/// stopping rule, so every probe counts, the retries to a silent block
/// believed up included.
pub(crate) fn loss_llr(a: &Agg, p: &Params) -> Option<f64> {
    let (p1, p0) = (p.instability_loss, p.instability_background_loss);
    if !(0.0 < p0 && p0 < p1 && p1 < 1.0) {
        return None;
    }
    let (k, n) = (a.unanswered_up as f64, a.probes_up as f64);
    Some(k * (p1 / p0).ln() + (n - k) * ((1.0 - p1) / (1.0 - p0)).ln())
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

/// The lossy stretch that ends at the latest round of `recent`, if any: a
/// sequential test (a CUSUM bounded by the window) over the pooled probes.
/// Of the stretches ending now that hold at least `instability_min_probes`
/// probes, the one with the strongest evidence of loss; it is lossy when
/// that evidence reaches `instability_likelihood_ratio`. Pooling as many rounds as the
/// loss lasts is what lets a country of four blocks, a dozen probes a
/// round, be judged: one round's share of a handful of probes swings far
/// above and below the true loss rate, and a fixed pool of a few rounds
/// waits for more evidence than a long loss gives.
///
/// Returns the rounds to mark: from the stretch's first round (its
/// strongest suffix starts with a lossy round) to its last round that lost
/// more than background loss explains, so calm rounds after a burst are
/// not marked while the evidence fades.
fn lossy_stretch(recent: &VecDeque<(usize, Agg)>, p: &Params) -> Option<(usize, usize)> {
    let evidence = p.instability_likelihood_ratio.ln();
    let (mut sum, mut pooled) = (0.0, 0u64);
    let mut best: Option<(usize, f64)> = None;
    for (i, x) in recent.iter().enumerate().rev() {
        sum += loss_llr(&x.1, p)?;
        pooled += x.1.probes_up;
        if pooled >= u64::from(p.instability_min_probes)
            && sum >= evidence
            && best.is_none_or(|b| sum > b.1)
        {
            best = Some((i, sum));
        }
    }
    let first = best?.0;
    let above = |a: &Agg| {
        a.unanswered_up > 0
            && a.unanswered_up as f64 >= p.instability_background_loss * a.probes_up as f64
    };
    let last = (first..recent.len()).rev().find(|&i| above(&recent[i].1))?;
    Some((first, last))
}

/// Marks the unstable rounds of `series`. A round is unstable when it
/// flapped (see [`is_flappy`]), or when it lies in a lossy stretch (see
/// [`lossy_stretch`]) of the window's data rounds: the stretch is judged as
/// a whole, so its rounds are marked also before the round that completed
/// the evidence.
/// Blackouts split the series; the edges of outages add nothing.
fn unstable_rounds(
    series: &[Agg],
    blackouts: &[Run],
    masked: &dyn Fn(usize) -> bool,
    p: &Params,
) -> Vec<bool> {
    let window = p.instability_window.max(1) as usize;
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
        if let Some((first, last)) = lossy_stretch(&recent, p) {
            for x in recent.range(first..=last) {
                marks[x.0] = true;
            }
        }
    }
    marks
}

/// Instability runs, each with its unstable rounds.
pub(crate) fn instability_runs(
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
