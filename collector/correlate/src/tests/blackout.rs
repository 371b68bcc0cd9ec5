//! Blackouts of the top scope: onset, end, hysteresis, gaps in the data.

use super::sim::*;
use crate::*;

#[test]
fn full_blackout_gives_one_country_verdict() {
    let sim = Sim {
        net: dark_when(|a| (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(out.verdicts.len(), 1, "{:#?}", out.verdicts);
    let v = &out.verdicts[0];
    assert_eq!(
        (v.scope, v.target.as_str(), v.kind),
        (Scope::Country, "KP", Kind::Blackout)
    );
    // The agents spend their probe budget on the first dark step and call
    // every block down there.
    assert_eq!(v.start_round, r(10));
    assert_eq!(v.end_round, Some(r(20)));
    assert_eq!((v.blocks_affected, v.blocks_total), (32, 32));
    assert_eq!(v.prefixes.len(), 4);
    assert_eq!(v.vantage_points, vps(&["vp0", "vp1", "vp2"]));
    // Controls were fine: every VP losing everything is the country, not them.
    assert!(out.vp_faults.is_empty(), "{:#?}", out.vp_faults);
    assert_eq!(out.timeline.len(), 40);
    assert_eq!(out.timeline[15].overall, Some(0.0));
    assert!(out.timeline[5].overall.unwrap() > 0.99);
    assert_eq!(out.timeline[15].per_vp, vec![Some(0.0); 3]);
}

#[test]
fn ongoing_blackout_has_no_end() {
    let sim = Sim {
        net: dark_when(|a| a.t >= 30),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
    assert_eq!(out.verdicts[0].start_round, r(30));
    assert_eq!(out.verdicts[0].end_round, None);
}

#[test]
fn campaign_scope_when_not_a_country() {
    let sim = Sim {
        net: dark_when(|a| (10..20).contains(&a.t)),
        ..Sim::default()
    };
    let mut input = sim.input();
    input.is_country = false;
    input.target = "lab".into();
    let out = correlate(&input, &Params::default());
    assert_eq!(
        kinds(&out),
        vec![(Scope::Campaign, "lab".into(), Kind::Blackout)]
    );
}

#[test]
fn blackout_whose_onset_and_repair_straddle_a_round_is_one_country_verdict() {
    // Prefixes 0 and 1 are seen down a round before 2 and 3 (the fault
    // landed while that round was being probed) and come back a round later.
    let sim = Sim {
        net: dark_when(|a| {
            let (from, to) = if a.prefix < 2 { (11, 21) } else { (12, 20) };
            (from..to).contains(&a.t)
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
    // Prefixes 0 and 1 are down from step 11, 2 and 3 from 12; 2 and 3 are
    // back at 20, 0 and 1 at 21.
    assert_eq!((v.start_round, v.end_round), (r(11), Some(r(21))));
    // Nor does a pass that sees only the first blackout-level round (the
    // blackout not yet past its hysteresis) report the onset as a partial.
    let sim = Sim {
        steps: 13,
        net: dark_when(|a| {
            let from = if a.prefix < 2 { 11 } else { 12 };
            a.t >= from
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(
        out.verdicts.iter().all(|v| v.kind != Kind::Partial),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn back_to_back_blackouts_are_not_instability() {
    // Four transitions within a few rounds: unstable rounds if the onsets and
    // ends of the blackouts were not recognized as such.
    let sim = Sim {
        net: dark_when(|a| (10..13).contains(&a.t) || (16..19).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Blackout),
            (Scope::Country, "KP".into(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    let spans: Vec<_> = out
        .verdicts
        .iter()
        .map(|v| (v.start_round, v.end_round))
        .collect();
    assert_eq!(spans, vec![(r(10), Some(r(13))), (r(16), Some(r(19)))]);
}

#[test]
fn single_lost_round_gives_nothing() {
    let sim = Sim {
        net: Box::new(|a| {
            if a.t == 15 {
                Net::Report(BlockState::Down)
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let out = correlate(&input, &Params::default());
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    assert!(out.vp_faults.is_empty());
    // The round really was lost: without hysteresis it would be a blackout.
    let eager = Params {
        open_after: 1,
        ..Params::default()
    };
    let out = correlate(&input, &eager);
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
}

#[test]
fn collector_downtime_is_no_data_not_an_outage() {
    let gap = |t: u64| (20..26).contains(&t);
    let sim = Sim {
        missing: Box::new(gap),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    assert!(out.vp_faults.is_empty());
    assert_eq!(out.timeline[22].overall, None);
    assert_eq!(out.timeline[22].per_vp, vec![None; 3]);

    // A blackout spanning the gap stays one verdict.
    let sim = Sim {
        missing: Box::new(gap),
        net: dark_when(|a| (15..35).contains(&a.t)),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(
        (out.verdicts[0].start_round, out.verdicts[0].end_round),
        (r(15), Some(r(35)))
    );
}
