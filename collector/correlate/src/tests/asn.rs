//! AS scopes: prefixes grouped by origin AS, multi-origin prefixes under each origin.

use super::sim::*;
use crate::*;

#[test]
fn dark_as_explains_its_prefixes() {
    let sim = Sim {
        asns: vec![vec![64500], vec![64500], vec![64501], vec![64501]],
        net: dark_when(|a| a.prefix >= 2 && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Asn, "AS64501".into(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(
        out.verdicts[0].prefixes,
        vec![prefix_net(2, 8), prefix_net(3, 8)]
    );
    assert_eq!(out.verdicts[0].blocks_affected, 16);
}

#[test]
fn moas_prefix_going_dark_counts_in_each_origin_as() {
    // Prefix 2 is announced by both AS64500 and AS64501.
    let sim = Sim {
        asns: vec![vec![64500], vec![64501], vec![64500, 64501], vec![64502]],
        net: dark_when(|a| a.prefix == 2 && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8);
    let as_verdicts: Vec<(String, Kind, Vec<IpNet>)> = in_scope(&out, Scope::Asn)
        .iter()
        .map(|v| (v.target.clone(), v.kind, v.prefixes.clone()))
        .collect();
    assert_eq!(
        as_verdicts,
        vec![
            ("AS64500".into(), Kind::Partial, vec![p2]),
            ("AS64501".into(), Kind::Partial, vec![p2]),
        ],
        "{:#?}",
        out.verdicts
    );
    // The prefix's own blackout is not explained away by either AS.
    assert!(
        kinds(&out).contains(&(Scope::Prefix, p2.to_string(), Kind::Blackout)),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn moas_prefix_is_explained_by_an_origin_that_goes_dark_whole() {
    // AS64501 holds prefixes 1 and 2; prefix 2 is also AS64500's.
    let sim = Sim {
        asns: vec![vec![64500], vec![64501], vec![64500, 64501], vec![64502]],
        net: dark_when(|a| (1..=2).contains(&a.prefix) && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Asn, "AS64500".into(), Kind::Partial),
            (Scope::Asn, "AS64501".into(), Kind::Blackout),
        ],
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn prefixes_no_route_covers_make_the_unrouted_group() {
    // Prefixes 2 and 3 have no origin beside routed ones: they are the
    // unrouted group, which goes dark as an AS would.
    let sim = Sim {
        asns: vec![vec![64500], vec![64501]],
        net: dark_when(|a| a.prefix >= 2 && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Unrouted, UNROUTED.into(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    let unrouted = in_scope(&out, Scope::Unrouted);
    assert_eq!(
        unrouted[0].prefixes,
        vec![prefix_net(2, 8), prefix_net(3, 8)]
    );
    assert_eq!(
        (unrouted[0].blocks_affected, unrouted[0].blocks_total),
        (16, 16)
    );
    // Without any origin there is no group: the country is the scope.
    let sim = Sim {
        net: dark_when(|a| a.prefix >= 2 && (10..20).contains(&a.t)),
        ..Sim::default()
    };
    assert!(in_scope(&sim.run(), Scope::Unrouted).is_empty());
}
