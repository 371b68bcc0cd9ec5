//! Partial outages: part of a scope dark, measured against its baseline.

use super::sim::*;
use crate::*;

#[test]
fn one_dark_prefix_is_a_partial_and_a_prefix_blackout() {
    let sim = Sim {
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8);
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Prefix, p2.to_string(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    for v in &out.verdicts {
        assert_eq!((v.start_round, v.end_round), (r(10), Some(r(20))));
        assert_eq!(v.prefixes, vec![p2]);
        assert_eq!(v.blocks_affected, 8);
        assert_eq!(v.vantage_points, vps(&["vp0", "vp1", "vp2"]));
    }
    assert_eq!(out.verdicts[0].blocks_total, 32);
    assert_eq!(out.verdicts[1].blocks_total, 8);
}

#[test]
fn partial_is_measured_against_the_baseline() {
    // Two blocks of prefix 0 never answer anyone (6% of the country); two
    // blocks of prefix 1 go dark later: 12% down, but only 6% more than usual.
    let sim = Sim {
        net: dark_when(|a| {
            let always = a.prefix == 0 && a.block < 2;
            let later = a.prefix == 1 && a.block < 2 && (20..30).contains(&a.t);
            always || later
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let out = correlate(&input, &Params::default());
    assert!(
        out.verdicts.iter().all(|v| v.scope == Scope::Prefix),
        "{:#?}",
        out.verdicts
    );
    // Prefix 1 has no such baseline: a quarter of it went dark.
    let p1 = out
        .verdicts
        .iter()
        .find(|v| v.target == prefix_net(1, 8).to_string())
        .expect("prefix 1 partial");
    assert_eq!(
        (p1.kind, p1.start_round, p1.end_round, p1.blocks_affected),
        (Kind::Partial, r(20), Some(r(30)), 2)
    );
    // Without a baseline the country would have a partial outage.
    let no_baseline = Params {
        baseline_rounds: 0,
        ..Params::default()
    };
    let out = correlate(&input, &no_baseline);
    assert!(
        kinds(&out).contains(&(Scope::Country, "KP".into(), Kind::Partial)),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn back_to_back_partials_are_not_instability() {
    // Each onset and end flips a quarter of the country's blocks: four
    // such rounds within six would be instability if they were not the
    // partial outages' own transitions.
    let sim = Sim {
        net: dark_when(|a| {
            let dark = (10..13).contains(&a.t) || (15..18).contains(&a.t);
            a.prefix == 2 && dark
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8).to_string();
    let got: Vec<_> = out
        .verdicts
        .iter()
        .map(|v| (v.scope, v.kind, v.start_round, v.end_round))
        .collect();
    assert_eq!(
        got,
        vec![
            (Scope::Country, Kind::Partial, r(10), Some(r(13))),
            (Scope::Prefix, Kind::Blackout, r(10), Some(r(13))),
            (Scope::Country, Kind::Partial, r(15), Some(r(18))),
            (Scope::Prefix, Kind::Blackout, r(15), Some(r(18))),
        ],
        "{:#?}",
        out.verdicts
    );
    assert!(out
        .verdicts
        .iter()
        .filter(|v| v.scope == Scope::Prefix)
        .all(|v| v.target == p2));
}
