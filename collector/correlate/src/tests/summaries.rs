//! Per-round scope summaries: totals that add up across scopes and VPs,
//! agree with the timeline, show a dark prefix and a faulty VP, and round
//! digests that change exactly where the input does.

use super::sim::*;
use crate::*;

fn sim() -> Sim {
    Sim {
        // AS64999 announces everything (no verdict scope of its own);
        // prefix 2 is multi-origin.
        asns: vec![
            vec![64500, 64999],
            vec![64500, 64999],
            vec![64500, 64501, 64999],
            vec![64502, 64999],
        ],
        net: dark_when(|a| a.prefix == 3 && (10..20).contains(&a.t)),
        ..Sim::default()
    }
}

fn index(s: &Summaries, scope: Scope, target: &str) -> usize {
    s.scopes
        .iter()
        .position(|x| x.scope == scope && x.target == target)
        .unwrap_or_else(|| panic!("no {scope:?} {target} in {:?}", s.scopes))
}

fn sum(ts: impl Iterator<Item = Totals>) -> Totals {
    ts.fold(Totals::default(), |a, t| Totals {
        blocks_judged: a.blocks_judged + t.blocks_judged,
        blocks_up: a.blocks_up + t.blocks_up,
        probes: a.probes + t.probes,
        replies: a.replies + t.replies,
    })
}

#[test]
fn scopes_are_top_ases_then_prefixes() {
    let out = sim().run();
    let s = &out.summaries;
    let names: Vec<String> = s.scopes.iter().map(|x| x.target.clone()).collect();
    let mut want: Vec<String> = ["KP", "AS64500", "AS64501", "AS64502", "AS64999"]
        .map(String::from)
        .to_vec();
    want.extend((0..4).map(|p| prefix_net(p, 8).to_string()));
    assert_eq!(names, want);
    assert_eq!(s.scopes[0].scope, Scope::Country);
    assert_eq!(s.per_vp_scopes, s.scopes.len());
    assert_eq!((s.first_round, s.rounds, s.vps), (r(0), 40, 3));
}

#[test]
fn totals_add_up_and_match_the_timeline_and_the_input() {
    let sim = sim();
    let input = sim.input();
    let out = sim.run();
    let s = &out.summaries;
    let prefixes: Vec<usize> = (0..4)
        .map(|p| index(s, Scope::Prefix, &prefix_net(p, 8).to_string()))
        .collect();
    let (top, as0, as9) = (
        0,
        index(s, Scope::Asn, "AS64500"),
        index(s, Scope::Asn, "AS64999"),
    );
    for r in 0..s.rounds {
        // Wider scopes are sums of their prefixes, the covering AS is the top.
        let c = |i| s.consensus(r, i);
        assert_eq!(c(top), sum(prefixes.iter().map(|&p| c(p))));
        assert_eq!(c(as0), sum(prefixes[..3].iter().map(|&p| c(p))));
        assert_eq!(c(as9), c(top));
        // The consensus probes are every VP's.
        for i in 0..s.scopes.len() {
            let vps = sum((0..3).map(|v| s.vp(r, v, i).unwrap()));
            assert_eq!((vps.probes, vps.replies), (c(i).probes, c(i).replies));
        }
        // Shares are the timeline's.
        let row = &out.timeline[r];
        assert_eq!(c(top).share_up(), row.overall);
        for v in 0..3 {
            assert_eq!(s.vp(r, v, top).unwrap().share_up(), row.per_vp[v as usize]);
            // Probes straight from the observations.
            let (probes, replies) = input
                .obs
                .iter()
                .filter(|o| o.vp == v && o.round == s.round_number(r))
                .fold((0, 0), |(p, q), o| {
                    (p + u64::from(o.probes), q + u64::from(o.replies))
                });
            let t = s.vp(r, v, top).unwrap();
            assert_eq!((t.probes, t.replies), (probes, replies));
            assert!(probes >= 32, "one probe per block at least");
        }
    }
}

#[test]
fn a_dark_prefix_shows_in_its_scopes_only() {
    let out = sim().run();
    let s = &out.summaries;
    let p3 = index(s, Scope::Prefix, &prefix_net(3, 8).to_string());
    let p0 = index(s, Scope::Prefix, &prefix_net(0, 8).to_string());
    let r15 = s.round_index(r(15)).unwrap();
    let dark = s.consensus(r15, p3);
    assert_eq!(
        (dark.blocks_judged, dark.blocks_up, dark.replies),
        (8, 0, 0)
    );
    assert!(dark.probes >= 8 * 3, "{dark:?}");
    assert_eq!(s.consensus(r15, p0).share_up(), Some(1.0));
    assert_eq!(s.consensus(r15, 0).share_up(), Some(0.75));
    let as2 = index(s, Scope::Asn, "AS64502");
    assert_eq!(s.consensus(r15, as2).share_up(), Some(0.0));
    // Every VP saw it.
    for v in 0..3 {
        assert_eq!(s.vp(r15, v, p3).unwrap().share_up(), Some(0.0));
    }
    // Before it, all up.
    let r5 = s.round_index(r(5)).unwrap();
    assert_eq!(s.consensus(r5, p3).share_up(), Some(1.0));
}

#[test]
fn a_faulty_vp_collapses_alone() {
    let sim = Sim {
        net: dark_when(|a| a.vp == 0 && (20..30).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(
        out.vp_faults.iter().any(|f| f.vp == "vp0"),
        "{:?}",
        out.vp_faults
    );
    let s = &out.summaries;
    let r25 = s.round_index(r(25)).unwrap();
    assert_eq!(s.consensus(r25, 0).share_up(), Some(1.0));
    assert_eq!(s.vp(r25, 0, 0).unwrap().share_up(), Some(0.0));
    assert_eq!(s.vp(r25, 0, 0).unwrap().replies, 0);
    assert_eq!(s.vp(r25, 1, 0).unwrap().share_up(), Some(1.0));
}

#[test]
fn per_vp_prefix_totals_stop_at_the_limit() {
    let input = sim().input();
    let params = Params {
        summary_vp_prefixes: 3,
        ..Params::default()
    };
    let s = try_correlate(&input, &params).unwrap().summaries;
    let p0 = index(&s, Scope::Prefix, &prefix_net(0, 8).to_string());
    assert_eq!(s.per_vp_scopes, p0, "top and ASes only");
    assert_eq!(s.vp(0, 0, p0), None);
    // The wider scopes are unchanged.
    let full = try_correlate(&input, &Params::default()).unwrap().summaries;
    for r in 0..s.rounds {
        for v in 0..3 {
            for i in 0..p0 {
                assert_eq!(s.vp(r, v, i), full.vp(r, v, i));
            }
        }
        for i in 0..s.scopes.len() {
            assert_eq!(s.consensus(r, i), full.consensus(r, i));
        }
    }
}

#[test]
fn rounds_without_data_are_empty() {
    let sim = Sim {
        missing: Box::new(|t| (5..8).contains(&t)),
        ..Sim::default()
    };
    let out = sim.run();
    let s = &out.summaries;
    let r6 = s.round_index(r(6)).unwrap();
    for i in 0..s.scopes.len() {
        assert!(!s.consensus(r6, i).has_data());
        assert!(!s.vp(r6, 1, i).unwrap().has_data());
    }
    let d = round_digests(&sim.input(), &Params::default());
    assert_eq!(&d[5..8], &[0, 0, 0]);
    assert!(d[..5].iter().chain(&d[8..]).all(|&x| x != 0));
}

#[test]
fn digests_change_exactly_where_the_input_does() {
    let input = sim().input();
    let params = Params::default();
    let d = round_digests(&input, &params);
    assert_eq!(d.len(), 40);
    // Order and VP numbering do not matter.
    let mut shuffled = input.clone();
    shuffled.obs.reverse();
    shuffled.control.reverse();
    shuffled.vps.reverse();
    for o in &mut shuffled.obs {
        o.vp = 2 - o.vp;
    }
    for c in &mut shuffled.control {
        c.vp = 2 - c.vp;
    }
    assert_eq!(round_digests(&shuffled, &params), d);
    // A late report changes its round only.
    let mut late = input.clone();
    let i = late.obs.iter().position(|o| o.round == r(12)).unwrap();
    late.obs[i].replies = 0;
    late.obs[i].state = BlockState::Uncertain;
    let dl = round_digests(&late, &params);
    let changed: Vec<usize> = (0..40).filter(|&i| dl[i] != d[i]).collect();
    assert_eq!(changed, [12]);
    // So does an extra control observation.
    let mut ctl = input.clone();
    ctl.control.push(ControlObs {
        vp: 1,
        round: r(30),
        state: BlockState::Down,
    });
    let dc = round_digests(&ctl, &params);
    assert_eq!((0..40).filter(|&i| dc[i] != d[i]).collect::<Vec<_>>(), [30]);
    // Other parameters or scopes change every round.
    let other = Params {
        quorum: 1,
        ..Params::default()
    };
    let dp = round_digests(&input, &other);
    assert!((0..40).all(|i| dp[i] != d[i]));
    let mut moved = input.clone();
    moved.prefixes[3].asns = vec![64503];
    let dm = round_digests(&moved, &params);
    assert!((0..40).all(|i| dm[i] != d[i]));
    // An inverted window has no rounds.
    let inverted = Input {
        first_round: 5,
        last_round: 4,
        ..Input::default()
    };
    assert!(round_digests(&inverted, &params).is_empty());
}
