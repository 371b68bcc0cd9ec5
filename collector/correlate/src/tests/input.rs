//! The pipeline's contract: order independence, bad input, parameters.

use super::sim::*;
use crate::*;

#[test]
fn output_does_not_depend_on_input_order() {
    let sim = Sim {
        steps: 50,
        loss: 0.05,
        net: dark_when(|a| {
            let isolated = a.vp == 0 && (5..15).contains(&a.t);
            let dark = (25..35).contains(&a.t) || (a.prefix == 1 && (40..46).contains(&a.t));
            isolated || dark
        }),
        traces: Box::new(|v, _, _| {
            Some((
                vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.1")],
                false,
            ))
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let reference = correlate(&input, &Params::default());
    assert!(reference.verdicts.len() >= 2, "{:#?}", reference.verdicts);
    assert!(!reference.vp_faults.is_empty());
    let mut rng = Rng::new(99);
    for _ in 0..5 {
        let mut shuffled = input.clone();
        rng.shuffle(&mut shuffled.obs);
        rng.shuffle(&mut shuffled.control);
        rng.shuffle(&mut shuffled.traces);
        assert_eq!(correlate(&shuffled, &Params::default()), reference);
    }
}

#[test]
fn bad_input_is_an_error_or_skipped() {
    let mut input = Sim::default().input();
    input.first_round = input.last_round + 1;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::InvertedWindow { .. })
    ));
    assert_eq!(correlate(&input, &Params::default()), Output::default());

    let mut input = Sim::default().input();
    input.last_round = u64::MAX;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::TooLarge { .. })
    ));

    let mut input = Sim::default().input();
    input.blocks[3].prefix = 99;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::BlockPrefix { .. })
    ));

    let input = Sim::default().input();
    let bad = Params {
        blackout_share: f64::NAN,
        ..Params::default()
    };
    assert!(matches!(
        try_correlate(&input, &bad),
        Err(CorrelateError::Param {
            name: "blackout_share",
            ..
        })
    ));
    let bad = Params {
        instability_min_rounds: 9,
        ..Params::default()
    };
    assert!(try_correlate(&input, &bad).is_err());
    // The loss test weighs a lossy path against background loss: the path
    // must be the lossier, and the evidence a ratio of at least 1.
    for (name, bad) in [
        (
            "instability_loss",
            Params {
                instability_background_loss: 0.5,
                ..Params::default()
            },
        ),
        (
            "instability_background_loss",
            Params {
                instability_background_loss: -0.1,
                ..Params::default()
            },
        ),
        (
            "instability_likelihood_ratio",
            Params {
                instability_likelihood_ratio: 0.5,
                ..Params::default()
            },
        ),
    ] {
        assert!(
            matches!(try_correlate(&input, &bad), Err(CorrelateError::Param { name: n, .. }) if n == name),
            "{name}"
        );
    }

    let mut input = Sim::default().input();
    let mut o = input.obs[0];
    o.vp = 7;
    input.obs.push(o);
    o.vp = 0;
    o.round = input.last_round + 1;
    input.obs.push(o);
    let out = try_correlate(&input, &Params::default()).unwrap();
    assert_eq!(out.skipped_observations, 2);
    assert!(out.verdicts.is_empty());
}

#[test]
fn params_deserialize_with_defaults_and_refuse_unknown_fields() {
    let p: Params = serde_json::from_str(r#"{"quorum": 3}"#).unwrap();
    assert_eq!(
        p,
        Params {
            quorum: 3,
            ..Params::default()
        }
    );
    assert!(serde_json::from_str::<Params>(r#"{"quorom": 3}"#).is_err());
}
