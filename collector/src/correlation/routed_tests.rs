//! The feed with routed scopes: blocks counted in the routed prefixes of a
//! prefix-to-AS table and their origin ASes, unrouted blocks in their
//! group, sub-/24 allocations in their /24. One campaign engine fed stored
//! rows, no loop, no store.

use darkwatch_correlate::{self as core, Kind, Scope};
use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::{round_start_ms, BlockObservation, BlockState};

use super::edges::StoredRounds;
use super::feed::CampaignEngine;
use crate::store::{AgentObservation, Campaign};

const INTERVAL: u64 = 60;
const FIRST: u64 = 29_100_000;

fn campaign(prefixes: &[&str]) -> Campaign {
    Campaign {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: INTERVAL,
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        control: vec![],
        agents: vec![],
        generation: 1,
        created_ms: 0,
    }
}

/// 15 rounds of `blocks` seen by two VPs, those for which `dark` holds
/// down in rounds 5 to 10.
fn rounds(blocks: &[&str], dark: impl Fn(&str) -> bool) -> StoredRounds {
    let mut rows = Vec::new();
    for off in 0..15 {
        for vp in ["vp-a", "vp-b"] {
            for b in blocks {
                let down = dark(b) && (5..=10).contains(&off);
                rows.push(AgentObservation {
                    agent: vp.into(),
                    obs: BlockObservation {
                        campaign: "kp".into(),
                        round: FIRST + off,
                        block: b.parse().unwrap(),
                        state: if down {
                            BlockState::Down
                        } else {
                            BlockState::Up
                        },
                        probes: if down { 3 } else { 1 },
                        replies: u32::from(!down),
                        belief: 0.0,
                        availability: 1.0,
                        control: false,
                        ts_ms: round_start_ms(FIRST + off, INTERVAL) + 1000,
                        rtt_min_ms: None,
                        rtt_median_ms: None,
                    },
                });
            }
        }
    }
    StoredRounds {
        rows,
        ..Default::default()
    }
}

/// (scope, target, kind, affected, total, prefixes) of each verdict,
/// sorted. A blackout inside a wider one is left out by the core (the
/// wider one names its prefixes).
fn verdicts(c: &Campaign, pfx2as: Option<&str>, raw: &StoredRounds) -> Vec<V> {
    let table = pfx2as.map(|t| Pfx2As::parse(t, "t").unwrap().0);
    let mut e = CampaignEngine::new(c, &core::Params::default(), table.as_ref()).unwrap();
    e.engine_mut().set_window(FIRST, FIRST + 14).unwrap();
    for r in FIRST..FIRST + 15 {
        e.feed_round(raw, r).unwrap();
    }
    let mut v: Vec<_> = e
        .engine_mut()
        .output()
        .verdicts
        .into_iter()
        .map(|v| {
            let p: Vec<String> = v.prefixes.iter().map(|p| p.to_string()).collect();
            (
                v.scope,
                v.target,
                v.kind,
                v.blocks_affected,
                v.blocks_total,
                p.join(" "),
            )
        })
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

type V = (Scope, String, Kind, usize, usize, String);

fn v(scope: Scope, target: &str, kind: Kind, n: usize, of: usize, prefixes: &[&str]) -> V {
    (scope, target.into(), kind, n, of, prefixes.join(" "))
}

const KP: [&str; 4] = [
    "175.45.176.0/24",
    "175.45.177.0/24",
    "175.45.178.0/24",
    "175.45.179.0/24",
];

/// The /22 announced as four /24s: three by AS131279, one by AS64500.
const SPLIT: &str = "175.45.176.0\t24\t131279\n175.45.177.0\t24\t131279\n\
                     175.45.178.0\t24\t131279\n175.45.179.0\t24\t64500\n";

#[test]
fn more_specifics_of_an_allocation_are_its_prefixes_and_ases() {
    let c = campaign(&["175.45.176.0/22"]);
    let raw = rounds(&KP, |b| b != KP[3]);
    let got = verdicts(&c, Some(SPLIT), &raw);
    // The AS's blackout holds the three prefix blackouts; AS64500 is up.
    assert_eq!(
        got,
        [
            v(Scope::Country, "KP", Kind::Partial, 3, 4, &KP[..3]),
            v(Scope::Asn, "AS131279", Kind::Blackout, 3, 3, &KP[..3]),
        ]
    );
}

#[test]
fn a_route_with_two_origins_counts_in_both() {
    let c = campaign(&["175.45.176.0/22"]);
    let table = "175.45.176.0\t24\t64502\n175.45.177.0\t24\t64501\n\
                 175.45.178.0\t23\t64500_64501\n";
    let raw = rounds(&KP, |b| b == KP[2] || b == KP[3]);
    let dark = ["175.45.178.0/23"];
    assert_eq!(
        verdicts(&c, Some(table), &raw),
        [
            v(Scope::Country, "KP", Kind::Partial, 2, 4, &dark),
            v(Scope::Asn, "AS64500", Kind::Blackout, 2, 2, &dark),
            v(Scope::Asn, "AS64501", Kind::Partial, 2, 3, &dark),
        ]
    );
}

#[test]
fn unrouted_blocks_are_counted_in_their_group() {
    let c = campaign(&["175.45.176.0/22"]);
    // Only the first two /24s are announced.
    let table = "175.45.176.0\t24\t131279\n175.45.177.0\t24\t64500\n";
    let raw = rounds(&KP, |b| b == KP[2] || b == KP[3]);
    let alloc = ["175.45.176.0/22"];
    assert_eq!(
        verdicts(&c, Some(table), &raw),
        [
            v(Scope::Country, "KP", Kind::Partial, 2, 4, &alloc),
            v(Scope::Unrouted, "unrouted", Kind::Blackout, 2, 2, &alloc),
        ]
    );
}

#[test]
fn sub_24_allocations_count_once_in_their_block() {
    // Three /26 allocations in one /24 and one in the next: two blocks.
    let c = campaign(&[
        "198.51.100.0/26",
        "198.51.100.64/26",
        "198.51.100.192/26",
        "198.51.101.128/26",
    ]);
    let raw = rounds(&["198.51.100.0/24", "198.51.101.0/24"], |_| true);
    assert_eq!(
        verdicts(&c, None, &raw),
        [v(
            Scope::Country,
            "KP",
            Kind::Blackout,
            2,
            2,
            &["198.51.100.0/26", "198.51.101.128/26"]
        )]
    );
}
