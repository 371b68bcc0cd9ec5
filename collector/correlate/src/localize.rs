//! Where the paths toward a dark scope now end.
//!
//! From the traces the verdict's VPs took during the verdict toward targets
//! in its dark prefixes, each VP's latest trace that did not reach its target
//! (a trace that reached it shows a working path) is kept. The last hop is
//! the responding hop common to all those paths that lies farthest along
//! them; without a common hop, the most common last responding hop. Only
//! blackouts and partial outages are localized.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::scopes::Scopes;
use crate::verdicts::Detected;
use crate::{Input, Kind, Localization, TraceObs};

pub(crate) fn localize(input: &Input, d: &Detected, scopes: &Scopes) -> Option<Localization> {
    let v = &d.verdict;
    if v.kind == Kind::Instability {
        return None;
    }
    let in_rounds =
        |t: &TraceObs| t.round >= v.start_round && v.end_round.is_none_or(|e| t.round < e);
    let mut latest: BTreeMap<u32, &TraceObs> = BTreeMap::new();
    for t in &input.traces {
        if t.reached
            || t.round > input.last_round
            || !d.vps.contains(&t.vp)
            || !in_rounds(t)
            || !v.prefixes.iter().any(|p| p.contains(&t.target))
        {
            continue;
        }
        // Latest wins; ties broken on content so input order does not matter.
        let key = |t: &TraceObs| (t.round, t.target, t.responding.clone());
        latest
            .entry(t.vp)
            .and_modify(|cur| {
                if key(t) > key(cur) {
                    *cur = t;
                }
            })
            .or_insert(t);
    }
    if latest.is_empty() {
        return None;
    }
    let paths: Vec<Vec<IpAddr>> = latest
        .values()
        .map(|t| {
            t.responding
                .iter()
                .copied()
                .filter(|&a| a != t.target)
                .collect()
        })
        .collect();
    let last_hop = common_last_hop(&paths).or_else(|| most_common_last(&paths));
    let inside_target = last_hop.is_some_and(|h| {
        scopes.defs[d.scope]
            .prefixes
            .iter()
            .any(|&q| scopes.prefix_nets[q as usize].contains(&h))
    });
    let mut vantage_points: Vec<String> = latest
        .keys()
        .map(|&vp| input.vps[vp as usize].clone())
        .collect();
    vantage_points.sort();
    Some(Localization {
        last_hop,
        inside_target,
        vantage_points,
        traces: latest.len(),
    })
}

/// The hop present in every non-empty path that is closest to the paths'
/// ends (smallest worst-case distance from the end, then smallest total).
fn common_last_hop(paths: &[Vec<IpAddr>]) -> Option<IpAddr> {
    let paths: Vec<&Vec<IpAddr>> = paths.iter().filter(|p| !p.is_empty()).collect();
    let first = paths.first()?;
    let mut common: BTreeSet<IpAddr> = first.iter().copied().collect();
    for p in &paths[1..] {
        let here: BTreeSet<IpAddr> = p.iter().copied().collect();
        common.retain(|a| here.contains(a));
    }
    common.into_iter().min_by_key(|&hop| {
        let dists = paths.iter().map(|p| {
            let i = p.iter().rposition(|&a| a == hop).unwrap_or(0);
            p.len() - 1 - i
        });
        let (worst, total) = dists.fold((0, 0), |(w, t), d| (w.max(d), t + d));
        (worst, total, hop)
    })
}

fn most_common_last(paths: &[Vec<IpAddr>]) -> Option<IpAddr> {
    let mut counts: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for p in paths {
        if let Some(&a) = p.last() {
            *counts.entry(a).or_default() += 1;
        }
    }
    // Highest count; among equals the smallest address (BTreeMap order).
    counts
        .into_iter()
        .fold(None, |best: Option<(IpAddr, usize)>, (a, c)| match best {
            Some((_, bc)) if bc >= c => best,
            _ => Some((a, c)),
        })
        .map(|(a, _)| a)
}
