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
//!
//! The agents' probes are evidence too: a router that answers a probe to a
//! dark block with an ICMP error (net/host unreachable, time exceeded) says
//! the path ends there. A border that rate-limits its errors strictly may
//! spend its whole budget on the probes and answer no traceroute, so each
//! router whose errors answered a VP's probes to the verdict's prefixes
//! joins that VP's path as its end (`with_error_sources`), and counts once
//! per VP and round (`Localization::probe_errors`, and of those
//! `probe_errors_agreeing`, the ones from the hop named).
//!
//! A traceroute whose last answer was an ICMP destination unreachable
//! (`TraceObs::unreachable`) is the same evidence: that router said it has
//! no route, so the VP's path ends there even if it answered only that one
//! trace (and even if the trace's first probes reached the target, before
//! the route went away). A time-exceeded answer says only that the path
//! reaches a hop, so a hop that answered one trace that way among many
//! still needs the support above. Under a Linux border's default limits
//! (the "no route" limit of `net.ipv4.route.error_cost` and the
//! per-destination ICMP limit share one token bucket per source), a VP that
//! keeps sending towards a withdrawn prefix gets about one unreachable after
//! the fault and then none: often one trace of one VP is all the evidence
//! there is, and the many traces that end a hop early only show the limit,
//! not the path.
//!
//! That one answer goes to whichever dark prefix the VP sent to first. A
//! verdict whose own evidence stops at a hop that said nothing (a prefix
//! blackout beside the one that drew it) is carried on to the router that
//! said "no route" to the same VPs' traffic towards the country's other
//! prefixes that were dark in the same rounds, when those paths pass the
//! verdict's hop first. The counts stay the verdict's own evidence.
//!
//! A border's silence can leave a verdict with no answer past the hop before
//! it. That hop answered time-exceeded, so it had a route and forwarded (a
//! router without one sends an unreachable, not a time-exceeded). When the
//! same VPs' working traces into the country, in the verdict's rounds (its
//! other prefixes, or the verdict's own traced before the fault in the
//! verdict's first round) or in the few rounds before it (`ROUNDS_BEFORE`),
//! all go on from it to one same hop (at least two of them; traces silent
//! between it and the target say nothing, and paths that part ways name
//! nothing), that next hop is named: the packets went there and were
//! answered no further. `Localization::working_paths` says how many working
//! traces named it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::scopes::Scopes;
use crate::verdicts::Detected;
use crate::{Kind, Localization, ProbeErrorObs, TraceObs, VpId};

pub(crate) fn localize(
    vp_names: &[String],
    traces: &[TraceObs],
    probe_errors: &[ProbeErrorObs],
    last_round: u64,
    d: &Detected,
    scopes: &Scopes,
) -> Option<Localization> {
    let v = &d.verdict;
    // Neither kind ends a path: the probes still got answers.
    if matches!(v.kind, Kind::Instability | Kind::Degradation) {
        return None;
    }
    let in_rounds = |round: u64| {
        round >= v.start_round && round <= last_round && v.end_round.is_none_or(|e| round < e)
    };
    let keep = |vp: VpId, round: u64| d.vps.contains(&vp) && in_rounds(round);
    let own_target = |a: IpAddr| v.prefixes.iter().any(|p| p.contains(&a));
    let own_block = |b: &IpNet| v.prefixes.iter().any(|p| p.contains(b) || b.contains(p));
    let own = Evidence::gather(
        traces,
        probe_errors,
        keep,
        |a, _| own_target(a),
        |b, _| own_block(b),
    );
    let vps = own.vps();
    if vps.is_empty() {
        return None;
    }
    let mut last_hop = own.answer().map(|a| a.0);
    // The verdict's own paths stop at a hop that said nothing: the router
    // past it may have spent its few errors on the VPs' traffic to the
    // country's other dark prefixes in the same rounds. Where that evidence
    // carries the same paths on past this hop to a router that said it has
    // no route, that router is named.
    if let Some(h) = last_hop.filter(|h| !own.said().contains(h)) {
        let first = (last_round + 1).saturating_sub(scopes.rounds() as u64);
        let dark = |p: usize, round: u64| {
            round >= first
                && round <= last_round
                && scopes
                    .prefix_series(p)
                    .get((round - first) as usize)
                    .is_some_and(|a| a.judged > 0 && a.down == a.judged)
        };
        let nets = &scopes.prefix_nets;
        let all = Evidence::gather(
            traces,
            probe_errors,
            keep,
            |a, round| {
                own_target(a)
                    || nets
                        .iter()
                        .position(|n| n.contains(&a))
                        .is_some_and(|p| dark(p, round))
            },
            |b, round| {
                own_block(b)
                    || nets
                        .iter()
                        .enumerate()
                        .any(|(p, n)| (n.contains(b) || b.contains(n)) && dark(p, round))
            },
        );
        if let Some((b, reach)) = all.answer() {
            let past = |p: &Vec<IpAddr>| {
                let i = p.iter().position(|&a| a == h);
                let j = p.iter().position(|&a| a == b);
                matches!((i, j), (Some(i), Some(j)) if i < j)
            };
            if b != h && all.said().contains(&b) && reach.iter().any(past) {
                last_hop = Some(b);
            }
        }
    }
    // Still a hop that answered only with time-exceeded: it looked the
    // route up and forwarded (a router without one sends an unreachable),
    // so the packets die past it. Where every working path that the same
    // VPs traced through it into the country, in the verdict's rounds (its
    // other prefixes, or the verdict's own before the fault in its first
    // round) or in the few rounds before it (the route as it was just
    // before the fault), goes on to one same next hop, and at least two
    // did, the packets went there: that hop is named (it is where they
    // stop being answered; a rate-limited border often answers nothing at
    // all).
    let mut working_paths = 0;
    // Only a hop on every VP's failing paths: where the VPs share none,
    // one VP's gateway says nothing of where the others' packets went.
    let on_every_path = |h: &IpAddr| {
        own.by_vp
            .values()
            .all(|ps| ps.iter().any(|p| p.contains(h)))
    };
    if let Some(h) = last_hop.filter(|h| !own.said().contains(h) && on_every_path(h)) {
        let from = v.start_round.saturating_sub(ROUNDS_BEFORE);
        let around = |vp: VpId, round: u64| {
            d.vps.contains(&vp) && (in_rounds(round) || (from..v.start_round).contains(&round))
        };
        if let Some((n, paths)) = next_on_working_paths(traces, h, |t| {
            t.reached && !t.unreachable && around(t.vp, t.round)
        }) {
            last_hop = Some(n);
            working_paths = paths;
        }
    }
    let traces = own.by_vp.values().map(Vec::len).sum();
    let agreeing = own
        .by_vp
        .values()
        .flatten()
        .filter(|p| last_hop.is_some() && p.last().copied() == last_hop)
        .count();
    let probe_errors = own.errors.len();
    let probe_errors_agreeing = own.errors.iter().filter(|e| Some(e.2) == last_hop).count();
    let inside_target = last_hop.is_some_and(|h| {
        scopes.defs[d.scope]
            .prefixes
            .iter()
            .any(|&q| scopes.prefix_nets[q as usize].contains(&h))
    });
    let mut vantage_points: Vec<String> = vps
        .iter()
        .map(|&vp| vp_names[vp as usize].clone())
        .collect();
    vantage_points.sort();
    Some(Localization {
        last_hop,
        inside_target,
        vantage_points,
        traces,
        agreeing,
        probe_errors,
        probe_errors_agreeing,
        working_paths,
    })
}

/// How many rounds before a verdict's start the working traces of its VPs
/// still tell where a silent hop forwarded to. A fault that falls between
/// a round's traces and its probes starts the verdict in the next round,
/// when the border's ICMP budget may already be spent: the last paths
/// traced before the fault are then the only ones that went past the hop.
/// A few rounds (an hour of 11-minute rounds) keep them recent; all of
/// them must agree on the next hop.
const ROUNDS_BEFORE: u64 = 6;

/// The hop after `h` on the traces that `working` takes, when every one of
/// them that passes `h` and has an answering hop between it and the target
/// goes on to the same one, and at least two do; with how many do.
fn next_on_working_paths(
    traces: &[TraceObs],
    h: IpAddr,
    working: impl Fn(&TraceObs) -> bool,
) -> Option<(IpAddr, usize)> {
    let mut next = None;
    let mut n = 0;
    for t in traces.iter().filter(|t| working(t)) {
        let Some(i) = t.responding.iter().position(|&a| a == h) else {
            continue;
        };
        match t.responding.get(i + 1) {
            // The target next: the hop between was silent (or there is
            // none); says nothing.
            Some(&a) if a == t.target => {}
            Some(&a) if next.is_none_or(|b| b == a) => {
                next = Some(a);
                n += 1;
            }
            _ => return None,
        }
    }
    next.filter(|_| n >= 2).map(|a| (a, n))
}

/// The failing traces and the routers' errors that one question draws on.
struct Evidence {
    /// Per VP, its failing traces' answering hops (the target left out).
    by_vp: BTreeMap<VpId, Vec<Vec<IpAddr>>>,
    /// Routers that ended a VP's trace with an unreachable: one per VP,
    /// round and router, like the probes' errors.
    said_no_route: BTreeSet<(VpId, u64, IpAddr)>,
    /// One per VP, round and router whose errors answered its probes.
    errors: BTreeSet<(VpId, u64, IpAddr)>,
}

impl Evidence {
    /// The traces and errors of the VPs and rounds that `keep` takes, toward
    /// the targets and blocks that `target` and `block` take in that round.
    fn gather(
        traces: &[TraceObs],
        probe_errors: &[ProbeErrorObs],
        keep: impl Fn(VpId, u64) -> bool,
        target: impl Fn(IpAddr, u64) -> bool,
        block: impl Fn(&IpNet, u64) -> bool,
    ) -> Evidence {
        let mut by_vp: BTreeMap<VpId, Vec<Vec<IpAddr>>> = BTreeMap::new();
        let mut said_no_route = BTreeSet::new();
        for t in traces {
            // A trace that reached its target shows a working path, unless
            // a router then said it had no route (the trace's later probes,
            // once the route was gone): that one ends where the router is.
            if (t.reached && !t.unreachable) || !keep(t.vp, t.round) || !target(t.target, t.round) {
                continue;
            }
            let path: Vec<IpAddr> = t
                .responding
                .iter()
                .copied()
                .filter(|&a| a != t.target)
                .collect();
            // (An unreachable from the target itself names no router.)
            match (t.unreachable, t.responding.last(), path.last()) {
                (true, Some(a), Some(&last)) if *a == last => {
                    said_no_route.insert((t.vp, t.round, last));
                }
                _ => {}
            }
            by_vp.entry(t.vp).or_default().push(path);
        }
        let errors = probe_errors
            .iter()
            .filter(|e| keep(e.vp, e.round) && e.blocks.iter().any(|b| block(b, e.round)))
            .map(|e| (e.vp, e.round, e.from))
            .collect();
        Evidence {
            by_vp,
            said_no_route,
            errors,
        }
    }

    fn ends(&self) -> BTreeMap<VpId, Vec<IpAddr>> {
        let mut ends: BTreeMap<VpId, Vec<IpAddr>> = BTreeMap::new();
        for &(vp, _, from) in self.errors.union(&self.said_no_route) {
            ends.entry(vp).or_default().push(from);
        }
        ends
    }

    fn vps(&self) -> BTreeSet<VpId> {
        let ends = self.errors.iter().chain(&self.said_no_route).map(|e| e.0);
        self.by_vp.keys().copied().chain(ends).collect()
    }

    /// Routers that said they have no route.
    fn said(&self) -> BTreeSet<IpAddr> {
        let all = self.errors.iter().chain(&self.said_no_route);
        all.map(|e| e.2).collect()
    }

    /// Where the paths end, and each VP's reached path.
    fn answer(&self) -> Option<(IpAddr, Vec<Vec<IpAddr>>)> {
        let ends = self.ends();
        let pooled = support(self.by_vp.values().flatten());
        let reach: Vec<Vec<IpAddr>> = self
            .vps()
            .iter()
            .map(|vp| {
                let traces = self.by_vp.get(vp).map_or(&[][..], Vec::as_slice);
                let ends = ends.get(vp).map_or(&[][..], Vec::as_slice);
                with_error_sources(reached_path(traces, &pooled), ends)
            })
            .collect();
        let last = common_last_hop(&reach)
            .map(|c| extend_past(c, &reach))
            .or_else(|| most_common_last(&reach, &self.said()))?;
        Some((last, reach))
    }
}

/// One VP's reached path with the routers whose ICMP errors answered its
/// probes (`sources`, one entry per round): a router that says it has no
/// route is where the path ends, whether or not a traceroute ever got an
/// answer from it (its error budget may have gone to the probes). Sources
/// the path already holds stay where they are; the others follow its end,
/// the most frequent last.
fn with_error_sources(mut path: Vec<IpAddr>, sources: &[IpAddr]) -> Vec<IpAddr> {
    let mut count: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for &s in sources {
        *count.entry(s).or_default() += 1;
    }
    let mut extra: Vec<(usize, IpAddr)> = count
        .into_iter()
        .filter(|(s, _)| !path.contains(s))
        .map(|(s, n)| (n, s))
        .collect();
    extra.sort();
    path.extend(extra.into_iter().map(|(_, s)| s));
    path
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

/// Where paths that share no hop end: a router that said it has no route
/// (`said`: a trace's unreachable or the probes' errors) before any other;
/// then the end most VPs' paths share; then the farthest along its path. A
/// VP whose traces got no answer past its own gateway says only that the
/// rest stayed silent, so its gateway does not outweigh a hop that another
/// VP's path reached beyond its own. Among equals the smallest address.
fn most_common_last(paths: &[Vec<IpAddr>], said: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    // end -> (paths ending there, farthest position)
    let mut ends: BTreeMap<IpAddr, (usize, usize)> = BTreeMap::new();
    for p in paths {
        if let Some(&a) = p.last() {
            let e = ends.entry(a).or_default();
            e.0 += 1;
            e.1 = e.1.max(p.len() - 1);
        }
    }
    ends.into_iter()
        .map(|(a, (n, pos))| (said.contains(&a), n, pos, std::cmp::Reverse(a)))
        .max()
        .map(|(_, _, _, std::cmp::Reverse(a))| a)
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
    fn a_router_that_answered_the_probes_ends_the_path_it_never_answered_traces_for() {
        let gw1 = path(&["192.0.2.1", "203.0.113.242"]);
        let gw2 = path(&["192.0.2.2", "203.0.113.242"]);
        let border = ip("203.0.113.244");
        let vp1 = with_error_sources(gw1.clone(), &[border, border]);
        let vp2 = with_error_sources(gw2.clone(), &[border]);
        assert_eq!(vp1, path(&["192.0.2.1", "203.0.113.242", "203.0.113.244"]));
        let reach = [vp1, vp2.clone()];
        assert_eq!(common_last_hop(&reach), Some(border));
        // A VP without errors does not veto where the others' paths end.
        let reach = [gw1.clone(), vp2];
        let c = common_last_hop(&reach).unwrap();
        assert_eq!(extend_past(c, &reach), border);
        // A source the path already holds keeps its place; several new
        // ones follow the end, the most frequent last.
        assert_eq!(with_error_sources(gw1.clone(), &[ip("192.0.2.1")]), gw1);
        assert_eq!(
            with_error_sources(gw1, &[border, ip("203.0.113.250"), border]),
            path(&[
                "192.0.2.1",
                "203.0.113.242",
                "203.0.113.250",
                "203.0.113.244"
            ])
        );
    }

    #[test]
    fn without_a_common_hop_a_vps_own_gateway_does_not_outweigh_a_farther_end() {
        let reach = [
            path(&["192.0.2.1"]),
            path(&["192.0.2.2", "203.0.113.9"]),
            path(&["192.0.2.3"]),
        ];
        assert_eq!(common_last_hop(&reach), None);
        assert_eq!(
            most_common_last(&reach, &BTreeSet::new()),
            Some(ip("203.0.113.9"))
        );
        // A router that said it has no route comes first, then the end
        // most paths share.
        let said = [ip("192.0.2.3")].into_iter().collect();
        assert_eq!(most_common_last(&reach, &said), Some(ip("192.0.2.3")));
        let reach = [
            path(&["192.0.2.1", "203.0.113.5"]),
            path(&["192.0.2.2", "203.0.113.5"]),
            path(&["192.0.2.3", "198.51.100.1", "203.0.113.9"]),
        ];
        assert_eq!(
            most_common_last(&reach, &BTreeSet::new()),
            Some(ip("203.0.113.5"))
        );
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
