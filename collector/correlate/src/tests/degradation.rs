//! `degradation` verdicts from the engine's loss and reply times: a shaped
//! border degrades its country once (not each prefix behind it), a blackout
//! that follows is its own verdict, and steady or absent times give none.

use crate::incremental::Incremental;
use crate::*;
use darkwatch_schema::rtt::quantize_ms;
use darkwatch_schema::BlockState;

const ROUNDS: u64 = 30;

/// Two prefixes of two /24s each, seen by two VPs.
fn campaign() -> Input {
    let net = |s: &str| s.parse::<ipnet::IpNet>().expect("net");
    Input {
        target: "KP".into(),
        is_country: true,
        vps: vec!["a".into(), "b".into()],
        prefixes: vec![
            PrefixInfo {
                net: net("198.18.0.0/23"),
                asns: vec![],
            },
            PrefixInfo {
                net: net("198.18.2.0/23"),
                asns: vec![],
            },
        ],
        blocks: (0..4)
            .map(|i| BlockInfo {
                net: net(&format!("198.18.{i}.0/24")),
                prefix: i / 2,
            })
            .collect(),
        first_round: 0,
        last_round: ROUNDS - 1,
        ..Input::default()
    }
}

/// What every block showed in round `r`: state, probes sent, replies and
/// reply time (ms; `None`: no time reported).
type Round = (BlockState, u32, u32, Option<f64>);

fn run(round: impl Fn(u64) -> Round) -> Output {
    let input = campaign();
    let mut engine = Incremental::new(&input, &Params::default()).expect("engine");
    engine.set_window(0, ROUNDS - 1).expect("window");
    for r in 0..ROUNDS {
        let (state, probes, replies, ms) = round(r);
        let mut feed = engine.round(r);
        for vp in ["a", "b"] {
            let v = feed.vp(vp);
            for b in 0..4 {
                feed.observe(v, b, state, probes, replies);
                if let Some(ms) = ms {
                    feed.rtt(b, quantize_ms(ms + f64::from(b)));
                }
            }
        }
        feed.finish();
    }
    engine.output()
}

fn calm() -> Round {
    (BlockState::Up, 1, 1, Some(40.0))
}

/// Shaped: 4× the latency, 5 probes for 3 replies (40 % lost).
fn shaped() -> Round {
    (BlockState::Up, 5, 3, Some(160.0))
}

fn degradations(out: &Output) -> Vec<&Verdict> {
    out.verdicts
        .iter()
        .filter(|v| v.kind == Kind::Degradation)
        .collect()
}

#[test]
fn a_shaped_border_degrades_its_country_once_with_the_change() {
    let out = run(|r| {
        if (12..18).contains(&r) {
            shaped()
        } else {
            calm()
        }
    });
    let d = degradations(&out);
    assert_eq!(d.len(), 1, "{:?}", out.verdicts);
    let v = d[0];
    assert_eq!((v.scope, v.target.as_str()), (Scope::Country, "KP"));
    assert_eq!((v.start_round, v.end_round), (12, Some(18)));
    assert_eq!(
        v.change.as_deref(),
        Some("median RTT 3.7× baseline, loss 40 % (baseline 0 %)")
    );
    assert_eq!((v.blocks_affected, v.blocks_total), (4, 4));
    assert_eq!(v.prefixes.len(), 2);
    assert_eq!(v.vantage_points, ["a", "b"]);
    assert_eq!(v.localization, None);
    // The other kinds carry no change, and none is serialized for them.
    for o in out.verdicts.iter().filter(|v| v.kind != Kind::Degradation) {
        assert_eq!(o.change, None);
        assert!(serde_json::to_value(o)
            .expect("json")
            .get("change")
            .is_none());
    }
}

#[test]
fn latency_alone_degrades_while_it_lasts() {
    let out = run(|r| {
        if r >= 20 {
            (BlockState::Up, 1, 1, Some(90.0))
        } else {
            calm()
        }
    });
    let d = degradations(&out);
    assert_eq!(d.len(), 1, "{:?}", out.verdicts);
    assert_eq!((d[0].start_round, d[0].end_round), (20, None));
    assert!(d[0]
        .change
        .as_deref()
        .unwrap()
        .starts_with("median RTT 2.2×"));
    // No loss: nothing else to report.
    assert_eq!(out.verdicts.len(), 1, "{:?}", out.verdicts);
}

#[test]
fn a_blackout_after_throttling_is_its_own_verdict_after_the_degradation() {
    let out = run(|r| match r {
        10..14 => shaped(),
        14..22 => (BlockState::Down, 3, 0, None),
        _ => calm(),
    });
    let d = degradations(&out);
    assert_eq!(d.len(), 1, "{:?}", out.verdicts);
    assert_eq!((d[0].start_round, d[0].end_round), (10, Some(14)));
    let blackout = out
        .verdicts
        .iter()
        .find(|v| v.kind == Kind::Blackout && v.scope == Scope::Country)
        .expect("blackout");
    assert_eq!((blackout.start_round, blackout.end_round), (14, Some(22)));
}

#[test]
fn steady_or_absent_reply_times_never_degrade() {
    // Jitter of a few ms and one slow round.
    let steady = run(|r| {
        let ms = if r == 15 {
            200.0
        } else {
            40.0 + (r % 3) as f64
        };
        (BlockState::Up, 1, 1, Some(ms))
    });
    assert_eq!(steady.verdicts, vec![]);
    // Without times (older agents), loss alone is instability's to judge.
    let untimed = run(|r| {
        let (s, p, q, _) = if (12..18).contains(&r) {
            shaped()
        } else {
            calm()
        };
        (s, p, q, None)
    });
    assert!(degradations(&untimed).is_empty(), "{:?}", untimed.verdicts);
}

/// An isolated VP loses every probe it sends; its loss is its own fault
/// (health flags it), not the scope's: no degradation, whatever share of
/// the pooled probes it lost (lab scenario s3).
#[test]
fn an_isolated_vp_does_not_degrade_the_scope() {
    let mut input = campaign();
    input.vps = vec!["a".into(), "b".into(), "c".into()];
    let mut engine = Incremental::new(&input, &Params::default()).expect("engine");
    engine.set_window(0, ROUNDS - 1).expect("window");
    for r in 0..ROUNDS {
        let mut feed = engine.round(r);
        for vp in ["a", "b", "c"] {
            let v = feed.vp(vp);
            let isolated = vp == "c" && r >= 10;
            for b in 0..4 {
                if isolated {
                    feed.observe(v, b, BlockState::Down, 4, 0);
                } else {
                    feed.observe(v, b, BlockState::Up, 1, 1);
                    feed.rtt(b, quantize_ms(40.0 + f64::from(b)));
                }
            }
        }
        feed.finish();
    }
    let out = engine.output();
    assert_eq!(
        degradations(&out),
        Vec::<&Verdict>::new(),
        "{:#?}",
        out.verdicts
    );
}
