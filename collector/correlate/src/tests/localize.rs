//! Localization of outages with the VPs' traceroutes.

use super::sim::*;
use crate::*;

/// Prefix 2 dark for steps 10..20, traced every step by every VP through
/// `path(vp)` (the target is added and reached when not dark).
fn traced(path: fn(usize) -> Vec<IpAddr>) -> Output {
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(move |v, t, p| {
            (p == 2).then(|| {
                let mut hops = path(v);
                let reached = !(10..20).contains(&t);
                if reached {
                    hops.push(trace_target(2, 8));
                }
                (hops, reached)
            })
        }),
        ..Sim::default()
    };
    sim.run()
}

#[test]
fn localization_at_an_upstream_border() {
    let out = traced(|v| {
        vec![
            ip(&format!("192.0.2.{}", v + 1)),
            ip(&format!("198.51.100.{}", v + 1)),
            ip("203.0.113.1"),
        ]
    });
    assert_eq!(out.verdicts.len(), 2, "{:#?}", out.verdicts);
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.1")));
        assert!(!l.inside_target);
        assert_eq!(l.vantage_points, vps(&["vp0", "vp1", "vp2"]));
        // Every failing trace of every VP during the verdict is combined,
        // and all of them end at the border.
        assert_eq!(l.traces, 3 * dark_rounds(v));
        assert_eq!(l.agreeing, l.traces);
    }
}

/// Rounds of verdict `v` during which prefix 2 was dark (see [`traced`]).
fn dark_rounds(v: &Verdict) -> usize {
    (v.start_round.max(r(10))..v.end_round.unwrap_or(u64::MAX).min(r(20))).count()
}

#[test]
fn localization_inside_the_target_space() {
    let out = traced(|v| {
        vec![
            ip(&format!("192.0.2.{}", v + 1)),
            ip("203.0.113.1"),
            ip("198.18.16.1"),
        ]
    });
    assert_eq!(out.verdicts.len(), 2, "{:#?}", out.verdicts);
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("198.18.16.1")));
        assert!(l.inside_target);
    }
}

#[test]
fn localization_without_a_common_hop_takes_the_most_common_end() {
    let out = traced(|v| match v {
        2 => vec![ip("192.0.2.3"), ip("203.0.113.9")],
        _ => vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.1")],
    });
    let l = out.verdicts[0].localization.as_ref().expect("localized");
    assert_eq!(l.last_hop, Some(ip("203.0.113.1")));
    let dark = dark_rounds(&out.verdicts[0]);
    assert_eq!((l.traces, l.agreeing), (3 * dark, 2 * dark));
}

#[test]
fn no_traces_no_localization() {
    let sim = Sim {
        net: dark_when(|a| (10..20).contains(&a.t)),
        ..Sim::default()
    };
    assert_eq!(sim.run().verdicts[0].localization, None);
}

#[test]
fn a_border_that_answers_only_the_probes_is_named() {
    // The border's errors all went to the probes: every trace ends at the
    // VP's own gateway, and each VP's probes to the dark prefix drew a "no
    // route" from the border in every dark round.
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(move |v, t, p| {
            (p == 2 && (10..20).contains(&t)).then(|| {
                (
                    vec![ip(&format!("192.0.2.{}", v + 1)), ip("198.51.100.1")],
                    false,
                )
            })
        }),
        ..Sim::default()
    };
    let mut input = sim.input();
    let border = ip("203.0.113.1");
    let dark: Vec<IpNet> = input
        .blocks
        .iter()
        .filter(|b| b.prefix == 2)
        .map(|b| b.net)
        .collect();
    for t in 10..20 {
        for vp in 0..3 {
            input.probe_errors.push(ProbeErrorObs {
                vp,
                round: r(t),
                from: border,
                blocks: dark.clone(),
            });
        }
        // A stray error for a block that is not dark is not evidence.
        input.probe_errors.push(ProbeErrorObs {
            vp: 0,
            round: r(t),
            from: ip("198.51.100.77"),
            blocks: vec![input.blocks[0].net],
        });
    }
    let out = correlate(&input, &Params::default());
    assert!(!out.verdicts.is_empty());
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(border), "{l:?}");
        assert_eq!(l.agreeing, 0);
        assert_eq!(l.probe_errors, 3 * dark_rounds(v));
        assert_eq!(l.probe_errors_agreeing, l.probe_errors);
        assert_eq!(l.evidence(), l.traces + l.probe_errors);
        assert_eq!(l.evidence_agreeing(), l.probe_errors);
    }
    // Without the errors the same traces name the gateways' shared hop.
    input.probe_errors.clear();
    let out = correlate(&input, &Params::default());
    let l = out.verdicts[0].localization.as_ref().expect("localized");
    assert_eq!(l.last_hop, Some(ip("198.51.100.1")));
}

/// The border of a withdrawn prefix rate-limits its errors as a Linux router
/// does at its defaults: prefix 2 is dark for steps 10..20 and each VP's
/// traces end, in turn, at its own gateway (`192.0.2.{vp+1}`) and at the
/// shared transit hop: the border's "no route" went to one trace of vp0 in
/// step 11 (`unreachable`: that answer was an ICMP unreachable, else a
/// time-exceeded) and to none of the 29 others. `shared`: the VPs' paths
/// meet at the transit hop (else each VP's gateway is all its traces see
/// and only vp0's answered trace goes past it). The traces that reach the
/// target before and after never hear the border (it is silent to them
/// too), so they show nothing past the transit hop.
fn rate_limited_border(unreachable: bool, shared: bool) -> Output {
    const BORDER: &str = "203.0.113.244";
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(move |v, t, p| {
            if p != 2 {
                return None;
            }
            let gw = ip(&format!("192.0.2.{}", v + 1));
            let transit = ip("203.0.113.242");
            if !(10..20).contains(&t) {
                return Some((vec![gw, transit, trace_target(2, 8)], true));
            }
            let mut hops = vec![gw];
            if shared && t % 2 == 1 {
                hops.push(transit);
            }
            if (v, t) == (0, 11) {
                hops.push(ip(BORDER));
            }
            Some((hops, false))
        }),
        ..Sim::default()
    };
    let mut input = sim.input();
    for t in &mut input.traces {
        t.unreachable = unreachable && !t.reached && t.responding.last() == Some(&ip(BORDER));
    }
    correlate(&input, &Params::default())
}

/// The verdicts of [`rate_limited_border`] whose rounds hold step 11.
fn covering_the_answer(out: &Output) -> Vec<&Verdict> {
    let v: Vec<&Verdict> = out
        .verdicts
        .iter()
        .filter(|v| v.start_round <= r(11) && v.end_round.is_none_or(|e| r(11) < e))
        .collect();
    assert!(!v.is_empty(), "{:#?}", out.verdicts);
    v
}

#[test]
fn one_no_route_among_many_rate_limited_traces_names_the_border() {
    let out = rate_limited_border(true, true);
    for v in covering_the_answer(&out) {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
        assert_eq!(l.traces, 3 * dark_rounds(v));
        assert_eq!(l.agreeing, 1, "{l:?}");
        assert_eq!(l.probe_errors, 0);
    }
}

#[test]
fn vps_that_see_only_their_own_gateway_do_not_outvote_a_no_route() {
    // No hop is common to every VP: the fallback used to take the most
    // common end, every end once, and so the smallest address (vp0's own
    // gateway).
    let out = rate_limited_border(true, false);
    for v in covering_the_answer(&out) {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
    }
}

#[test]
fn one_time_exceeded_answer_past_the_others_is_not_enough() {
    // The same single answer without the unreachable could be a stray:
    // among many traces one answer does not move the end (nothing is
    // named that the evidence does not support).
    let out = rate_limited_border(false, true);
    for v in covering_the_answer(&out) {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
        // The traces of odd steps that ended at the transit hop: all but
        // vp0's in step 11.
        let odd = (v.start_round.max(r(10))..v.end_round.unwrap_or(u64::MAX).min(r(20)))
            .filter(|&x| (x - r(0)) % 2 == 1)
            .count();
        assert_eq!(l.agreeing, 3 * odd - 1, "{l:?}");
    }
    // Nor without a shared hop: each VP's path ends at its own gateway.
    let out = rate_limited_border(false, false);
    for v in covering_the_answer(&out) {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("192.0.2.1")), "{l:?}");
    }
}

/// Prefixes 1 and 2 go dark for steps 10..20 (prefix 2 only if
/// `both_dark`); every VP's traces toward either end at the shared transit
/// hop, and the border's one "no route" answered vp0's probes to prefix 2
/// in step 11. Returns the localization of prefix 1's own blackout.
fn prefix_beside_one_that_drew_the_error(both_dark: bool) -> Localization {
    let border = ip("203.0.113.244");
    let sim = Sim {
        net: dark_when(move |a| {
            (a.prefix == 1 || (both_dark && a.prefix == 2)) && (10..20).contains(&a.t)
        }),
        traces: Box::new(move |v, t, p| {
            let hops = vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.242")];
            ((p == 1 || p == 2) && (10..20).contains(&t)).then_some((hops, false))
        }),
        ..Sim::default()
    };
    let mut input = sim.input();
    input.probe_errors.push(ProbeErrorObs {
        vp: 0,
        round: r(11),
        from: border,
        blocks: vec![prefix_net(2, 8)],
    });
    let out = correlate(&input, &Params::default());
    let v = out
        .verdicts
        .iter()
        .find(|v| v.prefixes == vec![prefix_net(1, 8)] && v.kind == Kind::Blackout)
        .unwrap_or_else(|| panic!("prefix 1's blackout: {:#?}", out.verdicts));
    v.localization.clone().expect("localized")
}

#[test]
fn a_no_route_to_the_dark_prefix_beside_carries_the_path_on_to_the_border() {
    // Prefix 1's own traces all stop at the transit hop: the border spent
    // its one error on the probes to prefix 2, dark in the same rounds,
    // whose paths run through that same hop.
    let l = prefix_beside_one_that_drew_the_error(true);
    assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
    // The counts are the verdict's own evidence: none of it names the
    // border.
    assert_eq!((l.agreeing, l.probe_errors), (0, 0), "{l:?}");
    assert!(l.traces > 0);
}

#[test]
fn an_error_for_a_prefix_that_is_not_dark_is_not_borrowed() {
    let l = prefix_beside_one_that_drew_the_error(false);
    assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
    assert_eq!(l.agreeing, l.traces);
}

#[test]
fn a_trace_that_lost_its_route_midway_counts_where_the_router_said_no_route() {
    // Prefix 2 dark for steps 10..20, every trace ends at the transit hop
    // except vp0's in step 10: its first probes reached the target, the
    // later ones got the border's one "no route" (the fault fell while it
    // ran), so it is `reached` and ends at the border with an unreachable.
    let border = ip("203.0.113.244");
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(|v, t, p| {
            let hops = vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.242")];
            (p == 2 && (10..20).contains(&t)).then_some((hops, false))
        }),
        ..Sim::default()
    };
    let mut input = sim.input();
    let t = input
        .traces
        .iter_mut()
        .find(|t| t.vp == 0 && t.round == r(10))
        .expect("vp0's trace in step 10");
    t.responding.push(border);
    (t.reached, t.unreachable) = (true, true);
    let out = correlate(&input, &Params::default());
    let from_10: Vec<&Verdict> = out
        .verdicts
        .iter()
        .filter(|v| v.start_round == r(10))
        .collect();
    assert!(!from_10.is_empty(), "{:#?}", out.verdicts);
    for v in from_10 {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(border), "{l:?}");
        assert_eq!(l.agreeing, 1, "{l:?}");
    }
    // Reached without an unreachable, it is a working path: not evidence.
    let t = input
        .traces
        .iter_mut()
        .find(|t| t.vp == 0 && t.round == r(10))
        .expect("vp0's trace in step 10");
    t.unreachable = false;
    let out = correlate(&input, &Params::default());
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
    }
}

/// Prefix 2 dark for steps 10..20; its traces all stop at the transit hop
/// (time-exceeded: it forwards them), the border never answers them. The
/// same VPs' traces to prefix 0, which works, go transit, `next(v, t)`,
/// target. Returns the localizations of the verdicts.
fn beside_working_paths(next: fn(usize, u64) -> Option<IpAddr>) -> Vec<Localization> {
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(move |v, t, p| {
            let mut hops = vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.242")];
            match p {
                2 if (10..20).contains(&t) => Some((hops, false)),
                0 => {
                    hops.extend(next(v, t));
                    hops.push(trace_target(0, 8));
                    Some((hops, true))
                }
                _ => None,
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(!out.verdicts.is_empty());
    out.verdicts
        .iter()
        .map(|v| v.localization.clone().expect("localized"))
        .collect()
}

#[test]
fn a_forwarding_hop_is_not_the_end_when_every_working_path_goes_on_to_the_border() {
    // Some working traces do not hear the border either (rate-limited):
    // they say nothing; the others all go on to it.
    for l in beside_working_paths(|_, t| (t % 3 != 0).then(|| ip("203.0.113.244"))) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
        assert_eq!(l.agreeing, 0, "{l:?}");
    }
    // Working paths that part ways after the transit hop name nothing
    // past it.
    for l in beside_working_paths(|v, _| Some(ip(&format!("203.0.113.{}", 244 + v)))) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
    }
    // Nor do working paths that never hear a hop past it.
    for l in beside_working_paths(|_, _| None) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
    }
}

#[test]
fn the_paths_traced_before_the_fault_in_its_round_show_where_the_hop_forwards() {
    // The fault fell after step 10's traces: they reached the target through
    // the transit hop and the border; every later one stops at the transit
    // hop, and the border answers nothing (its budget went to the probes).
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(|v, t, p| {
            let mut hops = vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.242")];
            match (p, t) {
                (2, 10) => {
                    hops.extend([ip("203.0.113.244"), trace_target(2, 8)]);
                    Some((hops, true))
                }
                (2, 11..20) => Some((hops, false)),
                _ => None,
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let from_10: Vec<&Verdict> = out
        .verdicts
        .iter()
        .filter(|v| v.start_round == r(10))
        .collect();
    assert!(!from_10.is_empty(), "{:#?}", out.verdicts);
    for v in from_10 {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
        assert_eq!(l.agreeing, 0, "{l:?}");
    }
}

/// Prefix 2 dark for steps 10..20 and traced only by its own traces: up to
/// step 9 they reach the target through the transit hop and `before(v, t)`;
/// from the fault on they stop at the transit hop (time-exceeded: it
/// forwards them) and the border answers nothing at all, neither trace nor
/// probe (its budget went to the traffic of the round the fault fell in).
fn traced_before_the_fault(before: fn(usize, u64) -> Option<IpAddr>) -> Vec<Localization> {
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        traces: Box::new(move |v, t, p| {
            let mut hops = vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.242")];
            match (p, t) {
                (2, 10..20) => Some((hops, false)),
                (2, _) => {
                    hops.extend(before(v, t));
                    hops.push(trace_target(2, 8));
                    Some((hops, true))
                }
                _ => None,
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let from_10: Vec<Localization> = out
        .verdicts
        .iter()
        .filter(|v| v.start_round == r(10))
        .map(|v| v.localization.clone().expect("localized"))
        .collect();
    assert!(!from_10.is_empty(), "{:#?}", out.verdicts);
    from_10
}

#[test]
fn the_paths_traced_in_the_rounds_before_the_fault_show_where_the_hop_forwards() {
    // No working path in the verdict's rounds at all: the last ones before
    // the fault went on from the transit hop to the border.
    for l in traced_before_the_fault(|_, _| Some(ip("203.0.113.244"))) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.244")), "{l:?}");
        assert_eq!((l.agreeing, l.probe_errors_agreeing), (0, 0), "{l:?}");
        // Three VPs' traces of the rounds just before the fault.
        assert!(l.working_paths >= 2, "{l:?}");
    }
    // Only paths traced long before the fault went past the transit hop:
    // the route may have changed since; nothing is named past it.
    for l in traced_before_the_fault(|_, t| (t < 2).then(|| ip("203.0.113.244"))) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
        assert_eq!(l.working_paths, 0, "{l:?}");
    }
    // Paths that went different ways after it name nothing either.
    for l in traced_before_the_fault(|v, _| Some(ip(&format!("203.0.113.{}", 244 + v)))) {
        assert_eq!(l.last_hop, Some(ip("203.0.113.242")), "{l:?}");
    }
}
