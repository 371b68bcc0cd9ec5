//! Consensus of the VPs on a block: quorum, and a single VP.

use super::sim::*;
use crate::*;

#[test]
fn single_vp_without_controls_is_believed() {
    let sim = Sim {
        vps: 1,
        controls: false,
        net: dark_when(|a| (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
    assert_eq!(
        (out.verdicts[0].start_round, out.verdicts[0].end_round),
        (r(10), Some(r(20)))
    );
    assert!(out.vp_faults.is_empty());
}

#[test]
fn quorum_with_two_vps() {
    let run = |vp1: Net, params: &Params| {
        let sim = Sim {
            vps: 2,
            net: Box::new(move |a| {
                if a.prefix == 0 && (10..20).contains(&a.t) {
                    if a.vp == 0 {
                        Net::Report(BlockState::Down)
                    } else {
                        vp1
                    }
                } else {
                    Net::Normal
                }
            }),
            ..Sim::default()
        };
        correlate(&sim.input(), params)
    };
    let p0 = prefix_net(0, 8).to_string();
    let one = Params {
        quorum: 1,
        ..Params::default()
    };
    // Down to one VP, uncertain to the other: quorum 2 is not met.
    let out = run(Net::Report(BlockState::Uncertain), &Params::default());
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    // ...quorum 1 is.
    let out = run(Net::Report(BlockState::Uncertain), &one);
    assert!(
        kinds(&out).contains(&(Scope::Prefix, p0.clone(), Kind::Blackout)),
        "{:#?}",
        out.verdicts
    );
    // Up to the other VP: up wins, whatever the quorum.
    let out = run(Net::Normal, &one);
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    // Down to both.
    let out = run(Net::Report(BlockState::Down), &Params::default());
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Prefix, p0, Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(out.verdicts[1].vantage_points, vps(&["vp0", "vp1"]));
}
