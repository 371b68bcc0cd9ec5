//! Where the paths toward a dark scope now end.
//!
//! Every trace that the verdict's VPs took during the verdict toward targets
//! in its dark prefixes and that did not reach its target (a trace that
//! reached it shows a working path) is combined. Real routers rate-limit
//! their ICMP errors, so one trace often ends a hop or more before where
//! the path really stops: the hop that drops the packets answers some traces
//! and not others, and a single trace (the latest, say) names whichever hop
//! happened to answer. So, per VP, a hop counts as reached when at least two
//! of its traces (its only trace, if it has one or two) got an answer from
//! it: a hop beyond the point where packets are dropped never answers, so
//! support for a hop is evidence that the path gets that far. The VP's path
//! ends at the farthest hop it reaches. Across VPs, the answer is the hop
//! common to every VP's path that lies farthest along them, carried on to
//! where the VPs that get past it consistently end when they all go the same
//! way (a VP whose traces the border never answered does not veto it);
//! without a common hop, the most common end. Only blackouts and partial outages are
//! localized.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::scopes::Scopes;
use crate::verdicts::Detected;
use crate::{Kind, Localization, TraceObs, VpId};

pub(crate) fn localize(
    vp_names: &[String],
    traces: &[TraceObs],
    last_round: u64,
    d: &Detected,
    scopes: &Scopes,
) -> Option<Localization> {
    let v = &d.verdict;
    if v.kind == Kind::Instability {
        return None;
    }
    let in_rounds =
        |t: &TraceObs| t.round >= v.start_round && v.end_round.is_none_or(|e| t.round < e);
    let mut by_vp: BTreeMap<VpId, Vec<Vec<IpAddr>>> = BTreeMap::new();
    for t in traces {
        if t.reached
            || t.round > last_round
            || !d.vps.contains(&t.vp)
            || !in_rounds(t)
            || !v.prefixes.iter().any(|p| p.contains(&t.target))
        {
            continue;
        }
        let path: Vec<IpAddr> = t
            .responding
            .iter()
            .copied()
            .filter(|&a| a != t.target)
            .collect();
        by_vp.entry(t.vp).or_default().push(path);
    }
    if by_vp.is_empty() {
        return None;
    }
    let pooled = support(by_vp.values().flatten());
    let reach: Vec<Vec<IpAddr>> = by_vp.values().map(|p| reached_path(p, &pooled)).collect();
    let last_hop = common_last_hop(&reach)
        .map(|c| extend_past(c, &reach))
        .or_else(|| most_common_last(&reach));
    let traces = by_vp.values().map(Vec::len).sum();
    let agreeing = by_vp
        .values()
        .flatten()
        .filter(|p| last_hop.is_some() && p.last().copied() == last_hop)
        .count();
    let inside_target = last_hop.is_some_and(|h| {
        scopes.defs[d.scope]
            .prefixes
            .iter()
            .any(|&q| scopes.prefix_nets[q as usize].contains(&h))
    });
    let mut vantage_points: Vec<String> = by_vp
        .keys()
        .map(|&vp| vp_names[vp as usize].clone())
        .collect();
    vantage_points.sort();
    Some(Localization {
        last_hop,
        inside_target,
        vantage_points,
        traces,
        agreeing,
    })
}

/// How many traces each hop answered.
fn support<'a>(paths: impl Iterator<Item = &'a Vec<IpAddr>>) -> BTreeMap<IpAddr, usize> {
    let mut n: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for p in paths {
        for a in p.iter().collect::<BTreeSet<_>>() {
            *n.entry(*a).or_default() += 1;
        }
    }
    n
}

/// One VP's path as far as its traces consistently reach: the hops answered
/// in at least two traces (one, if the VP has fewer than three), or answered
/// once here and in at least two traces of all VPs (`pooled`: a strictly
/// rate-limited router may answer each VP only once in many rounds), in path
/// order. A hop's place along the path is the farthest position it held in
/// any trace, since a silent hop before it only shifts it closer.
fn reached_path(paths: &[Vec<IpAddr>], pooled: &BTreeMap<IpAddr, usize>) -> Vec<IpAddr> {
    let min_support = if paths.len() >= 3 { 2 } else { 1 };
    // hop -> (traces that saw it, farthest position)
    let mut seen: BTreeMap<IpAddr, (usize, usize)> = BTreeMap::new();
    for p in paths {
        let mut in_this: BTreeSet<IpAddr> = BTreeSet::new();
        for (i, &a) in p.iter().enumerate() {
            let e = seen.entry(a).or_default();
            if in_this.insert(a) {
                e.0 += 1;
            }
            e.1 = e.1.max(i);
        }
    }
    let mut hops: Vec<(usize, usize, IpAddr)> = seen
        .into_iter()
        .filter(|&(a, (support, _))| {
            support >= min_support || pooled.get(&a).is_some_and(|&n| n >= 2)
        })
        .map(|(a, (support, pos))| (pos, usize::MAX - support, a))
        .collect();
    hops.sort();
    hops.into_iter().map(|(_, _, a)| a).collect()
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

/// Past the common hop `c`, the farthest hop some VP consistently reaches,
/// when every VP that gets past `c` goes the same way. A VP that stops
/// earlier does not contradict it: a rate-limited router answers some VPs'
/// traces and not others', and silence is no evidence that the path ends.
/// Where VPs' paths diverge after `c`, `c` is the last hop they share.
fn extend_past(c: IpAddr, paths: &[Vec<IpAddr>]) -> IpAddr {
    let suffixes: Vec<&[IpAddr]> = paths
        .iter()
        .filter_map(|p| p.iter().rposition(|&a| a == c).map(|i| &p[i + 1..]))
        .collect();
    let Some(longest) = suffixes.iter().max_by_key(|s| s.len()) else {
        return c;
    };
    if suffixes.iter().all(|s| longest.starts_with(s)) {
        longest.last().copied().unwrap_or(c)
    } else {
        c
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn path(hops: &[&str]) -> Vec<IpAddr> {
        hops.iter().map(|h| ip(h)).collect()
    }

    #[test]
    fn a_rate_limited_border_is_still_the_end_of_the_path() {
        // Half the traces got the border's error, half ended at the
        // gateway; one had a silent transit hop.
        let traces = vec![
            path(&["192.0.2.1", "203.0.113.5", "203.0.113.9"]),
            path(&["192.0.2.1", "203.0.113.5"]),
            path(&["192.0.2.1", "203.0.113.9"]),
            path(&["192.0.2.1"]),
            path(&["192.0.2.1", "203.0.113.5", "203.0.113.9"]),
            path(&["192.0.2.1", "203.0.113.5"]),
        ];
        assert_eq!(
            reached_path(&traces, &support(traces.iter())),
            path(&["192.0.2.1", "203.0.113.5", "203.0.113.9"])
        );
    }

    #[test]
    fn one_stray_answer_is_not_enough_with_many_traces() {
        let traces = vec![
            path(&["192.0.2.1", "203.0.113.5"]),
            path(&["192.0.2.1", "203.0.113.5"]),
            path(&["192.0.2.1", "203.0.113.5", "198.18.9.9"]),
        ];
        assert_eq!(
            reached_path(&traces, &support(traces.iter())),
            path(&["192.0.2.1", "203.0.113.5"])
        );
        // With only one or two traces, every answer counts.
        assert_eq!(
            reached_path(&traces[1..], &support(traces[1..].iter())),
            path(&["192.0.2.1", "203.0.113.5", "198.18.9.9"])
        );
    }

    #[test]
    fn a_vp_whose_traces_never_got_the_border_answer_does_not_hide_it() {
        let reach = vec![
            path(&["203.0.113.241", "203.0.113.242", "203.0.113.244"]),
            path(&["203.0.113.241", "203.0.113.242"]),
            path(&["203.0.113.241", "203.0.113.242", "203.0.113.244"]),
        ];
        let c = common_last_hop(&reach).unwrap();
        assert_eq!(c, ip("203.0.113.242"));
        assert_eq!(extend_past(c, &reach), ip("203.0.113.244"));
        // Paths that part ways after the shared hop end there.
        let parted = vec![
            path(&["203.0.113.241", "203.0.113.242", "203.0.113.244"]),
            path(&["203.0.113.241", "203.0.113.242", "203.0.113.245"]),
        ];
        assert_eq!(extend_past(c, &parted), ip("203.0.113.242"));
    }

    #[test]
    fn one_answer_to_each_of_two_vps_counts_one_stray_in_all_does_not() {
        let near = path(&["203.0.113.241", "203.0.113.242"]);
        let far = path(&["203.0.113.241", "203.0.113.242", "203.0.113.244"]);
        let vp1 = vec![far.clone(), near.clone(), near.clone()];
        let vp2 = vec![near.clone(), near.clone(), far.clone()];
        let pooled = support(vp1.iter().chain(vp2.iter()));
        assert_eq!(reached_path(&vp1, &pooled), far);
        assert_eq!(reached_path(&vp2, &pooled), far);
        let vp2 = [near.clone(), near.clone(), near.clone()];
        let pooled = support(vp1.iter().chain(vp2.iter()));
        assert_eq!(reached_path(&vp1, &pooled), near);
    }

    #[test]
    fn vps_with_their_own_gateways_meet_at_the_shared_border() {
        // Each VP's own first hop differs; the border is common even though
        // most traces of vp2 stopped at its gateway.
        let vp1 = reached_path(
            &[
                path(&["192.0.2.1", "203.0.113.9"]),
                path(&["192.0.2.1"]),
                path(&["192.0.2.1", "203.0.113.9"]),
            ],
            &BTreeMap::new(),
        );
        let vp2 = reached_path(
            &[
                path(&["192.0.2.2"]),
                path(&["192.0.2.2", "203.0.113.9"]),
                path(&["192.0.2.2"]),
                path(&["192.0.2.2", "203.0.113.9"]),
            ],
            &BTreeMap::new(),
        );
        assert_eq!(common_last_hop(&[vp1, vp2]), Some(ip("203.0.113.9")));
    }
}
