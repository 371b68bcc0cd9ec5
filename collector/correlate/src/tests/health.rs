//! VP health: a VP that loses everything alone is faulty, not the country.

use super::sim::*;
use crate::*;

#[test]
fn isolated_vp_is_a_fault_not_an_outage() {
    for controls in [true, false] {
        let sim = Sim {
            controls,
            net: dark_when(|a| a.vp == 1 && (10..20).contains(&a.t)),
            control_down: Box::new(|v, t| v == 1 && (10..20).contains(&t)),
            ..Sim::default()
        };
        let out = sim.run();
        assert!(
            out.verdicts.is_empty(),
            "controls {controls}: {:#?}",
            out.verdicts
        );
        assert_eq!(out.vp_faults.len(), 1, "{:#?}", out.vp_faults);
        let f = &out.vp_faults[0];
        assert_eq!((f.vp.as_str(), f.end_round), ("vp1", Some(r(20))));
        if controls {
            // Controls fail at once (the blocks look down in that round too).
            assert_eq!(f.start_round, r(10));
            assert_eq!(f.reason, "control targets unreachable");
        } else {
            assert_eq!(f.start_round, r(10));
            assert_eq!(f.reason, "lost 32 of 32 blocks while other VPs did not");
        }
        // The timeline still shows the VP's own view.
        assert_eq!(out.timeline[15].per_vp[1], Some(0.0));
        assert!(out.timeline[15].overall.unwrap() > 0.99);
    }
}

#[test]
fn isolated_vp_does_not_hide_a_later_blackout() {
    let sim = Sim {
        steps: 50,
        controls: false,
        net: dark_when(|a| {
            let isolated = a.vp == 0 && (10..40).contains(&a.t);
            isolated || (25..35).contains(&a.t)
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)],
        "{:#?}",
        out.verdicts
    );
    let v = &out.verdicts[0];
    assert_eq!((v.start_round, v.end_round), (r(25), Some(r(35))));
    assert_eq!(v.vantage_points, vps(&["vp1", "vp2"]));
    assert_eq!(out.vp_faults.len(), 1, "{:#?}", out.vp_faults);
    assert_eq!(
        (
            out.vp_faults[0].vp.as_str(),
            out.vp_faults[0].start_round,
            out.vp_faults[0].end_round
        ),
        ("vp0", r(10), Some(r(40)))
    );
}
