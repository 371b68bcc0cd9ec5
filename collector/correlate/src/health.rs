//! Per vantage point and round: is the VP itself healthy?
//!
//! A VP that cannot reach anything must never make a country look dark. It is
//! faulty in a round if (a) it has control observations and all are down, or
//! (b) its share of up blocks fell by at least `vp_fault_drop` from its own
//! baseline while the other VPs' drops (median) stayed below half of that.
//! Once faulty by (b), a VP stays faulty while its own drop persists, even if
//! the others then drop too: an isolated VP that is still isolated when the
//! country later goes dark must not rejoin the consensus.
//!
//! When every VP loses everything at once, none is faulty: that is a real
//! blackout. With a single VP and no control targets there is nothing to
//! compare against, so its view is taken as real.

use std::collections::VecDeque;

use crate::cells::VpRounds;
use crate::{median, Params, VpFault};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    Control,
    Lost { down: u32, judged: u32 },
}

impl Fault {
    fn reason(self) -> String {
        match self {
            Fault::Control => "control targets unreachable".to_string(),
            Fault::Lost { down, judged } => {
                format!("lost {down} of {judged} blocks while other VPs did not")
            }
        }
    }
}

pub(crate) struct Health {
    vps: usize,
    /// `[round * vps + vp]`: `None` if healthy or without data.
    faults: Vec<Option<Fault>>,
    /// `[round * vps + vp]`: has data and is not faulty.
    healthy: Vec<bool>,
}

impl Health {
    pub fn healthy(&self, r: usize, v: usize) -> bool {
        self.healthy[r * self.vps + v]
    }

    pub fn fault(&self, r: usize, v: usize) -> Option<Fault> {
        self.faults[r * self.vps + v]
    }
}

pub(crate) fn assess(vp_rounds: VpRounds<'_>, params: &Params) -> Health {
    let n = vp_rounds.vps;
    let fd = params.vp_fault_drop;
    let mut faults = vec![None; vp_rounds.rounds * n];
    let mut healthy = vec![false; vp_rounds.rounds * n];
    let mut history: Vec<VecDeque<f64>> = vec![VecDeque::new(); n];
    // Fault of each VP in its latest round with data.
    let mut prev: Vec<Option<Fault>> = vec![None; n];
    let mut share = vec![None; n];
    let mut drop = vec![None; n];
    let mut ctl_fault = vec![false; n];
    let mut scratch = Vec::with_capacity(n);
    for r in 0..vp_rounds.rounds {
        for v in 0..n {
            let vr = vp_rounds.get(r, v);
            ctl_fault[v] = vr.ctl_total() > 0 && vr.ctl_down == vr.ctl_total();
            share[v] = vr.share_up();
            let mut base: Vec<f64> = history[v].iter().copied().collect();
            drop[v] = share[v].and_then(|s| median(&mut base).map(|b| b - s));
        }
        for v in 0..n {
            let vr = vp_rounds.get(r, v);
            if !vr.has_data() {
                continue;
            }
            // Reference group: VPs not known to be faulty themselves.
            let others = (0..n).filter(|&u| u != v && !ctl_fault[u] && prev[u].is_none());
            let fault = if ctl_fault[v] {
                Some(Fault::Control)
            } else if let Some(s) = share[v] {
                let lost = match drop[v] {
                    Some(d) => {
                        scratch.clear();
                        scratch.extend(others.filter_map(|u| drop[u]));
                        let others_fine = median(&mut scratch).is_some_and(|m| m < fd / 2.0);
                        d >= fd && (others_fine || prev[v].is_some())
                    }
                    // No baseline of its own yet (start of the window):
                    // compare with the others' current shares instead.
                    None => {
                        scratch.clear();
                        scratch.extend(others.filter_map(|u| share[u]));
                        median(&mut scratch).is_some_and(|m| m - s >= fd)
                    }
                };
                lost.then_some(Fault::Lost {
                    down: vr.down,
                    judged: vr.judged(),
                })
            } else {
                // Only uncertain reports: nothing to judge, keep the last verdict.
                prev[v]
            };
            faults[r * n + v] = fault;
            healthy[r * n + v] = fault.is_none();
        }
        for v in 0..n {
            if !vp_rounds.get(r, v).has_data() {
                continue;
            }
            prev[v] = faults[r * n + v];
            if let (None, Some(s)) = (prev[v], share[v]) {
                let h = &mut history[v];
                h.push_back(s);
                while h.len() > params.baseline_rounds as usize {
                    h.pop_front();
                }
            }
        }
    }
    Health {
        vps: n,
        faults,
        healthy,
    }
}

/// Faulty rounds of each VP as runs. Rounds without data from the VP neither
/// extend nor break a run (collector downtime must not split it).
pub(crate) fn fault_runs(vps: &[String], vp_rounds: VpRounds<'_>, health: &Health) -> Vec<VpFault> {
    let mut out = Vec::new();
    for (v, name) in vps.iter().enumerate().take(vp_rounds.vps) {
        let mut open: Option<(usize, Fault)> = None;
        for r in 0..vp_rounds.rounds {
            if !vp_rounds.get(r, v).has_data() {
                continue;
            }
            match (health.fault(r, v), open) {
                (Some(f), None) => open = Some((r, f)),
                (None, Some((start, f))) => {
                    out.push(VpFault {
                        vp: name.clone(),
                        start_round: vp_rounds.round_number(start),
                        end_round: Some(vp_rounds.round_number(r)),
                        reason: f.reason(),
                    });
                    open = None;
                }
                _ => {}
            }
        }
        if let Some((start, f)) = open {
            out.push(VpFault {
                vp: name.clone(),
                start_round: vp_rounds.round_number(start),
                end_round: None,
                reason: f.reason(),
            });
        }
    }
    out.sort_by(|a, b| (a.start_round, &a.vp).cmp(&(b.start_round, &b.vp)));
    out
}
