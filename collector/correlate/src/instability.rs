//! Instability: rounds of a scope marked unstable (losses or flaps beyond
//! what background loss explains), turned into runs with the same
//! hysteresis shape as outages. The edges of blackouts and partial outages
//! flip many blocks at once; those are the outage, not instability.

use std::collections::VecDeque;

use crate::consensus::Agg;
use crate::verdicts::Run;
use crate::Params;

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
