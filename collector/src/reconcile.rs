//! Reconciliation of one correlation pass with the stored verdicts (pure).
//!
//! Every pass recomputes the verdicts of a window of rounds from stored
//! observations, so late reports refine them. [`reconcile`] decides what
//! that means for the stored rows: which recomputed verdict continues which
//! stored one, which are new, which stored ones the data no longer supports,
//! and which alerts to give. It knows nothing of the database or the clock;
//! `correlation::apply` writes its changes and delivers its events.
//!
//! Identity: a recomputed verdict continues at most one stored verdict and a
//! stored verdict is continued by at most one recomputed verdict, of the
//! same scope, target and kind, touching or overlapping in rounds, pairs
//! with the longest overlap first. So two recomputed runs that overlap one
//! stored row cannot both write it, and a row keeps its id over its life.
//!
//! Alerts: each verdict gives one `open` and one `close` event in its life,
//! recorded in the row ([`Alerted`]). A verdict that late reports reopen
//! continues without a new event, and gives no second `close`.

use std::collections::BTreeMap;

use darkwatch_correlate as core;
use darkwatch_schema::round_start_ms;

use crate::store::{Alerted, Campaign, Verdict, VpFault};

/// The rounds a pass judged (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first_round: u64,
    pub last_round: u64,
}

impl Window {
    fn contains(&self, round: u64) -> bool {
        (self.first_round..=self.last_round).contains(&round)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Open,
    Close,
}

/// An alert about `Changes::verdicts[change]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub change: usize,
    pub kind: EventKind,
}

/// Rows to write: id 0 inserts, any other id updates that row. Rows that
/// did not change are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub verdicts: Vec<Verdict>,
    pub faults: Vec<VpFault>,
}

/// A run of rounds `[start, end)`, `end` `None` while ongoing.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u64,
    end: Option<u64>,
}

/// True if the runs overlap or touch (an end round is the first good round,
/// so a run starting there continues the other).
pub fn overlaps(a_start: u64, a_end: Option<u64>, b_start: u64, b_end: Option<u64>) -> bool {
    a_start <= b_end.unwrap_or(u64::MAX) && b_start <= a_end.unwrap_or(u64::MAX)
}

/// Rounds the runs share, open ends counting up to `horizon`.
fn overlap_len(a: Run, b: Run, horizon: u64) -> u64 {
    let end = a.end.unwrap_or(horizon).min(b.end.unwrap_or(horizon));
    end.saturating_sub(a.start.max(b.start))
}

/// Stored runs grouped by key, so that matching compares only runs of one
/// key (a campaign keeps every verdict it ever had).
fn by_key<K: Ord + Clone>(stored: &[(K, Run)]) -> BTreeMap<K, Vec<usize>> {
    let mut m: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, (k, _)) in stored.iter().enumerate() {
        m.entry(k.clone()).or_default().push(i);
    }
    m
}

/// For each fresh run, the index of the stored run it continues: one-to-one,
/// same key only. An ongoing fresh run continues an ongoing stored one
/// first (the verdict whose `open` alert is out), then pairs go by longest
/// overlap, an open stored run, the nearest start; deterministic whatever
/// the input order.
fn match_runs<K: Ord>(
    stored: &[(K, Run)],
    index: &BTreeMap<K, Vec<usize>>,
    fresh: &[(K, Run)],
    horizon: u64,
) -> Vec<Option<usize>> {
    let mut pairs = Vec::new();
    for (f, (fk, fr)) in fresh.iter().enumerate() {
        for &s in index.get(fk).map_or(&[][..], Vec::as_slice) {
            let sr = stored[s].1;
            if overlaps(sr.start, sr.end, fr.start, fr.end) {
                let len = overlap_len(sr, *fr, horizon);
                let ongoing = fr.end.is_none() && sr.end.is_none();
                let near = sr.start.abs_diff(fr.start);
                pairs.push((ongoing, len, sr.end.is_none(), near, s, f));
            }
        }
    }
    pairs.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.cmp(&b.3))
            .then(a.4.cmp(&b.4))
            .then(a.5.cmp(&b.5))
    });
    let mut out = vec![None; fresh.len()];
    let mut taken = vec![false; stored.len()];
    for (_, _, _, _, s, f) in pairs {
        if out[f].is_none() && !taken[s] {
            out[f] = Some(s);
            taken[s] = true;
        }
    }
    out
}

/// Start of a stored run continued by a fresh one. An onset inside the
/// window is the data's word; one at the window's first round may only be
/// where the window cuts a longer run, so the stored start stands. Never
/// before the end of an earlier stored run of the same key, so rows of one
/// key stay disjoint.
fn continued_start<K: Ord>(
    stored: &[(K, Run)],
    index: &BTreeMap<K, Vec<usize>>,
    s: usize,
    fresh: Run,
    window: Window,
) -> u64 {
    let (key, run) = &stored[s];
    let start = if fresh.start > window.first_round {
        fresh.start
    } else {
        run.start.min(fresh.start)
    };
    let floor = index
        .get(key)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|&i| (i, stored[i].1))
        .filter(|(i, r)| *i != s && r.start < run.start)
        .map(|(_, r)| r.end.unwrap_or(r.start + 1))
        .max()
        .unwrap_or(0);
    start.max(floor)
}

/// Decides the writes and alerts of one pass over `campaign`'s verdicts.
pub fn reconcile(
    campaign: &Campaign,
    stored: &[Verdict],
    stored_faults: &[VpFault],
    out: &core::Output,
    window: Window,
    now_ms: i64,
) -> (Changes, Vec<Event>) {
    let interval = campaign.interval_secs;
    let horizon = window.last_round + 1;
    let mut changes = Changes::default();
    let mut events = Vec::new();

    let key = |scope, target: &str, kind| (scope, target.to_string(), kind);
    let s_runs: Vec<_> = stored
        .iter()
        .map(|v| {
            let run = Run {
                start: v.start_round,
                end: v.end_round,
            };
            (key(v.scope, &v.target, v.kind), run)
        })
        .collect();
    let f_runs: Vec<_> = out
        .verdicts
        .iter()
        .map(|v| {
            let run = Run {
                start: v.start_round,
                end: v.end_round,
            };
            (key(v.scope, &v.target, v.kind), run)
        })
        .collect();
    let index = by_key(&s_runs);
    let matched = match_runs(&s_runs, &index, &f_runs, horizon);
    let mut continued = vec![false; stored.len()];

    for (f, v) in out.verdicts.iter().enumerate() {
        let (id, start_round, alerted, prior) = match matched[f] {
            Some(s) => {
                continued[s] = true;
                let start = continued_start(&s_runs, &index, s, f_runs[f].1, window);
                (stored[s].id, start, stored[s].alerted, Some(&stored[s]))
            }
            None => (0, v.start_round, Alerted::default(), None),
        };
        let mut row = Verdict {
            id,
            scope: v.scope,
            target: v.target.clone(),
            kind: v.kind,
            campaign: campaign.name.clone(),
            start_round,
            end_round: v.end_round,
            start_ms: round_start_ms(start_round, interval),
            end_ms: v.end_round.map(|r| round_start_ms(r, interval)),
            blocks_affected: v.blocks_affected as u64,
            blocks_total: v.blocks_total as u64,
            prefixes: v.prefixes.clone(),
            vantage_points: v.vantage_points.clone(),
            localization: v.localization.clone(),
            updated_ms: prior.map_or(now_ms, |p| p.updated_ms),
            alerted,
            change: v.change.clone(),
        };
        let mut kinds = Vec::new();
        if !row.alerted.open {
            row.alerted.open = true;
            kinds.push(EventKind::Open);
        }
        if row.end_round.is_some() && !row.alerted.close {
            row.alerted.close = true;
            kinds.push(EventKind::Close);
        }
        if prior == Some(&row) {
            continue;
        }
        row.updated_ms = now_ms;
        let change = changes.verdicts.len();
        events.extend(kinds.into_iter().map(|kind| Event { change, kind }));
        changes.verdicts.push(row);
    }

    // An open verdict starting inside the window that the recomputation no
    // longer finds (late reports showed the blocks were up) is closed, not
    // kept open forever. Verdicts starting before the window are out of the
    // data's sight and stay as stored.
    //
    // One exception: a blackout that a wider blackout now contains. The core
    // drops a child scope's blackout lying within its ancestor's, but a
    // fault that falls inside a round darkens some prefixes a round before
    // the whole country, so their blackouts are out (with their `open`
    // alerts) when the country's opens over them. Their blocks are still
    // dark: such a verdict stays open, nested under the wider one
    // (`causes`), and ends when it ends. Its paths are the wider one's
    // (its blocks dark in the same rounds, to the same VPs), whose
    // localization combines the evidence of every round since, so it takes
    // that rather than keeping what its first round or two showed.
    for (s, v) in stored.iter().enumerate() {
        if continued[s] || v.end_round.is_some() || !window.contains(v.start_round) {
            continue;
        }
        let mut row = v.clone();
        let end = match out.verdicts.iter().find(|w| contains_blackout(w, v)) {
            Some(w) => {
                if w.localization.is_some() {
                    row.localization = w.localization.clone();
                }
                w.end_round
            }
            None => Some(horizon),
        };
        let Some(end) = end else {
            if row != *v {
                row.updated_ms = now_ms;
                changes.verdicts.push(row);
            }
            continue;
        };
        row.end_round = Some(end);
        row.end_ms = Some(round_start_ms(end, interval));
        row.updated_ms = now_ms;
        let change = changes.verdicts.len();
        if !row.alerted.close {
            row.alerted.close = true;
            events.push(Event {
                change,
                kind: EventKind::Close,
            });
        }
        changes.verdicts.push(row);
    }

    changes.faults = reconcile_faults(campaign, stored_faults, &out.vp_faults, window, now_ms);
    (changes, events)
}

/// True if `wider` is a blackout of a strictly wider scope than the stored
/// blackout `v`, over all of `v`'s prefixes, from `v`'s start or earlier.
fn contains_blackout(wider: &core::Verdict, v: &Verdict) -> bool {
    wider.kind == core::Kind::Blackout
        && v.kind == core::Kind::Blackout
        && wider.scope < v.scope
        && wider.start_round <= v.start_round
        && !v.prefixes.is_empty()
        && v.prefixes
            .iter()
            .all(|p| wider.prefixes.iter().any(|q| q.contains(p)))
}

/// VP faults follow the verdicts' identity rules, without alerts: a
/// recomputed fault continues at most one stored fault of the same agent,
/// and an open one starting in the window that the data no longer supports
/// is closed (else its VP would show as faulty for ever).
fn reconcile_faults(
    campaign: &Campaign,
    stored: &[VpFault],
    fresh: &[core::VpFault],
    window: Window,
    now_ms: i64,
) -> Vec<VpFault> {
    let interval = campaign.interval_secs;
    let s_runs: Vec<_> = stored
        .iter()
        .map(|f| {
            let run = Run {
                start: f.start_round,
                end: f.end_round,
            };
            (f.agent.as_str(), run)
        })
        .collect();
    let f_runs: Vec<_> = fresh
        .iter()
        .map(|f| {
            let run = Run {
                start: f.start_round,
                end: f.end_round,
            };
            (f.vp.as_str(), run)
        })
        .collect();
    let index = by_key(&s_runs);
    let matched = match_runs(&s_runs, &index, &f_runs, window.last_round + 1);
    let mut out = Vec::new();
    let mut continued = vec![false; stored.len()];
    for (i, f) in fresh.iter().enumerate() {
        let prior = matched[i].map(|s| &stored[s]);
        if let Some(s) = matched[i] {
            continued[s] = true;
        }
        let start_round = match matched[i] {
            Some(s) => continued_start(&s_runs, &index, s, f_runs[i].1, window),
            None => f.start_round,
        };
        let mut row = VpFault {
            id: prior.map_or(0, |p| p.id),
            agent: f.vp.clone(),
            campaign: campaign.name.clone(),
            start_round,
            end_round: f.end_round,
            start_ms: round_start_ms(start_round, interval),
            end_ms: f.end_round.map(|r| round_start_ms(r, interval)),
            reason: f.reason.clone(),
            updated_ms: prior.map_or(now_ms, |p| p.updated_ms),
        };
        if prior != Some(&row) {
            row.updated_ms = now_ms;
            out.push(row);
        }
    }
    for (s, f) in stored.iter().enumerate() {
        if continued[s] || f.end_round.is_some() || !window.contains(f.start_round) {
            continue;
        }
        let end = window.last_round + 1;
        out.push(VpFault {
            end_round: Some(end),
            end_ms: Some(round_start_ms(end, interval)),
            updated_ms: now_ms,
            ..f.clone()
        });
    }
    out
}

#[cfg(test)]
mod tests;
