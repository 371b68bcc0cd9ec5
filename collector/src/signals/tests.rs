//! Pure parts of the signals: which rounds a pass rewrites, the rows it
//! writes, query parsing, ranges, grouping and CSV.

use darkwatch_correlate as core;

use super::*;
use crate::store::SummaryRound;

fn stored(round: u64, digest: u64) -> SummaryRound {
    SummaryRound {
        round,
        interval_secs: 60,
        digest: digest as i64,
        updated_ms: 0,
    }
}

#[test]
fn rewrites_start_at_the_first_changed_round() {
    // Rounds 100..=104; 101 has no data.
    let digests = [7, 0, 9, u64::MAX, 11];
    let all = [
        stored(100, 7),
        stored(102, 9),
        stored(103, u64::MAX),
        stored(104, 11),
    ];
    assert_eq!(first_changed(100, &digests, &all), None);
    // A new round at the end.
    assert_eq!(first_changed(100, &digests, &all[..3]), Some(104));
    // A late report changed round 102 (digests above u63 survive the i64 column).
    let late = [7, 0, 10, u64::MAX, 11];
    assert_eq!(first_changed(100, &late, &all), Some(102));
    // Data arrived for a round that had none.
    let filled = [7, 5, 9, u64::MAX, 11];
    assert_eq!(first_changed(100, &filled, &all), Some(101));
    // Nothing stored yet: the whole window, from its first round with data.
    assert_eq!(first_changed(100, &[0, 0, 3], &[]), Some(102));
    assert_eq!(first_changed(100, &[0, 0], &[]), None);
    // A stored round whose data is gone is rewritten (to nothing).
    assert_eq!(
        first_changed(100, &[7, 0], &[stored(100, 7), stored(101, 4)]),
        Some(101)
    );
}

fn summaries() -> (core::Input, core::Output) {
    use darkwatch_correlate::{BlockInfo, Input, Obs, PrefixInfo};
    use darkwatch_schema::BlockState::{Down, Up};
    let net = |s: &str| s.parse().unwrap();
    let mut input = Input {
        target: "KP".into(),
        is_country: true,
        vps: vec!["vp-a".into(), "vp-b".into()],
        prefixes: vec![
            PrefixInfo {
                net: net("198.18.0.0/24"),
                asns: vec![64500],
            },
            PrefixInfo {
                net: net("198.18.1.0/24"),
                asns: vec![64501],
            },
        ],
        blocks: vec![
            BlockInfo {
                net: net("198.18.0.0/24"),
                prefix: 0,
            },
            BlockInfo {
                net: net("198.18.1.0/24"),
                prefix: 1,
            },
        ],
        first_round: 10,
        last_round: 12,
        ..Input::default()
    };
    // Round 10: both up for both VPs; round 11: nothing; round 12: block 1
    // down for both, and vp-b did not report block 0.
    for (vp, block, round, state) in [
        (0, 0, 10, Up),
        (0, 1, 10, Up),
        (1, 0, 10, Up),
        (1, 1, 10, Up),
        (0, 0, 12, Up),
        (0, 1, 12, Down),
        (1, 1, 12, Down),
    ] {
        input.obs.push(Obs {
            vp,
            block,
            round,
            state,
            probes: if state == Up { 1 } else { 3 },
            replies: u32::from(state == Up),
        });
    }
    let out = core::try_correlate(&input, &core::Params::default()).unwrap();
    (input, out)
}

#[test]
fn rows_cover_rounds_with_data_from_the_first_changed_one() {
    let (input, out) = summaries();
    let digests = core::round_digests(&input, &core::Params::default());
    assert_eq!(digests[1], 0);
    let rows = summary_rows("kp", &input.vps, &out.summaries, &digests, 10);
    let key = |r: &ScopeSummary| (r.round, r.target.clone(), r.vp.clone());
    let keys: Vec<_> = rows.iter().map(key).collect();
    let k = |round, t: &str, vp: &str| (round, t.to_string(), vp.to_string());
    // Round 12, prefix 198.18.0.0/24: vp-b reported nothing there.
    assert!(keys.contains(&k(12, "198.18.0.0/24", "vp-a")));
    assert!(!keys.contains(&k(12, "198.18.0.0/24", "vp-b")));
    assert!(keys.iter().all(|(r, _, _)| *r != 11), "{keys:?}");
    let top12: Vec<&ScopeSummary> = rows
        .iter()
        .filter(|r| r.round == 12 && r.target == "KP")
        .collect();
    assert_eq!(top12.len(), 3);
    assert_eq!(
        (
            top12[0].vp.as_str(),
            top12[0].blocks_judged,
            top12[0].blocks_up
        ),
        ("", 2, 1)
    );
    assert_eq!((top12[0].probes, top12[0].replies), (7, 1));
    assert_eq!(
        (
            top12[2].vp.as_str(),
            top12[2].blocks_judged,
            top12[2].blocks_up
        ),
        ("vp-b", 1, 0)
    );
    assert!(rows.iter().all(|r| r.campaign == "kp"));
    // From 12 on only.
    let later = summary_rows("kp", &input.vps, &out.summaries, &digests, 12);
    assert!(!later.is_empty() && later.iter().all(|r| r.round == 12));
    // Outside the window: nothing.
    assert!(summary_rows("kp", &input.vps, &out.summaries, &digests, 13).is_empty());
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// "Now" for parsing queries with ages.
const NOW_MS: i64 = 1_419_292_800_000;

#[test]
fn queries_parse_and_name_what_is_wrong() {
    let q = SignalsQuery::from_pairs(
        &pairs(&[
            ("scope", "country"),
            ("target", "kp"),
            ("from", "1419206400000ms"),
            ("until", "2014-12-23T00:00:00Z"),
            ("vp", "vp-a,vp-b"),
            ("vp", "vp-c"),
        ]),
        NOW_MS,
    )
    .unwrap();
    assert_eq!(q.scope, Scope::Country);
    assert_eq!(q.target, "KP");
    assert_eq!(q.from_ms, Some(1_419_206_400_000));
    assert_eq!(q.until_ms, Some(1_419_292_800_000));
    assert_eq!(q.vps, ["vp-a", "vp-b", "vp-c"]);
    let asn = SignalsQuery::from_pairs(&pairs(&[("scope", "asn"), ("target", "131279")]), NOW_MS)
        .unwrap();
    assert_eq!(asn.target, "AS131279");
    let p = SignalsQuery::from_pairs(
        &pairs(&[("scope", "prefix"), ("target", "175.45.176.0/24")]),
        NOW_MS,
    )
    .unwrap();
    assert_eq!(
        (p.target.as_str(), p.from_ms, p.until_ms),
        ("175.45.176.0/24", None, None)
    );
    let u = SignalsQuery::from_pairs(
        &pairs(&[("scope", "unrouted"), ("target", "unrouted")]),
        NOW_MS,
    )
    .unwrap();
    assert_eq!((u.scope, u.target.as_str()), (Scope::Unrouted, "unrouted"));

    for (q, needle) in [
        (vec![("target", "KP")], "scope is required"),
        (vec![("scope", "country")], "target is required"),
        (
            vec![("scope", "planet"), ("target", "KP")],
            "scope=\"planet\"",
        ),
        (vec![("scope", "country"), ("target", "KPX")], "two-letter"),
        (vec![("scope", "asn"), ("target", "ASX")], "AS number"),
        (
            vec![("scope", "unrouted"), ("target", "AS1")],
            "is not `unrouted`",
        ),
        (
            vec![("scope", "prefix"), ("target", "175.45.176.1/24")],
            "175.45.176.0/24",
        ),
        (
            vec![("scope", "prefix"), ("target", "nope")],
            "not a prefix",
        ),
        (
            vec![
                ("scope", "country"),
                ("target", "KP"),
                ("from", "yesterday"),
            ],
            "from",
        ),
        (
            vec![("scope", "country"), ("target", "KP"), ("until", "soon")],
            "until",
        ),
        (
            vec![
                ("scope", "country"),
                ("target", "KP"),
                ("from", "1419206400"),
            ],
            "no unit",
        ),
        (
            vec![("scope", "country"), ("target", "KP"), ("window", "9")],
            "\"window\"",
        ),
        (
            vec![("scope", "country"), ("scope", "asn"), ("target", "KP")],
            "twice",
        ),
    ] {
        let e = SignalsQuery::from_pairs(&pairs(&q), NOW_MS).unwrap_err();
        assert!(e.contains(needle), "{q:?}: {e}");
    }
}

#[test]
fn ranges_default_to_a_day_and_are_capped() {
    let now = 1_419_292_800_000; // a round boundary for 60 s
    let r = round_range(None, None, 60, now).unwrap();
    assert_eq!(*r.end(), now as u64 / 60_000);
    assert_eq!(r.end() - r.start(), 24 * 60);
    // Short rounds: the default shrinks to the cap instead of failing.
    let r = round_range(None, None, 1, now).unwrap();
    assert_eq!(r.end() - r.start() + 1, MAX_ROUNDS);
    // Explicit ranges: inclusive, checked.
    let r = round_range(Some(now - 600_000), Some(now), 60, 0).unwrap();
    assert_eq!(r.end() - r.start(), 10);
    assert!(round_range(Some(now), Some(now - 1), 60, now)
        .unwrap_err()
        .contains("after"));
    let e = round_range(Some(0), Some(now), 60, now).unwrap_err();
    assert!(e.contains("narrow"), "{e}");
}

fn row(round: u64, vp: &str, judged: u64, up: u64) -> ScopeSummary {
    ScopeSummary {
        campaign: "kp".into(),
        scope: Scope::Country,
        target: "KP".into(),
        round,
        vp: vp.into(),
        blocks_judged: judged,
        blocks_up: up,
        probes: judged * 3,
        replies: up * 3,
    }
}

#[test]
fn rows_group_into_rounds_and_csv() {
    let rows = [
        row(5, "", 4, 3),
        row(5, "vp-a", 4, 3),
        row(5, "vp-b", 4, 4),
        row(7, "", 0, 0),
    ];
    let rounds = group_rounds(&rows, 60, &[]);
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0].start_ms, 300_000);
    assert_eq!(rounds[0].counts.share_up, Some(0.75));
    assert_eq!(rounds[0].per_vp.len(), 2);
    assert_eq!(rounds[1].counts.share_up, None);
    let only_b = group_rounds(&rows, 60, &["vp-b".to_string()]);
    assert_eq!(only_b[0].per_vp.len(), 1);
    assert_eq!(only_b[0].per_vp[0].vp, "vp-b");
    assert_eq!(only_b[0].per_vp[0].counts.share_up, Some(1.0));

    let s = SignalsJson {
        scope: Scope::Country,
        target: "KP".into(),
        name: Some("Korea (Democratic People's Republic of)".into()),
        campaign: "k,p".into(),
        interval_secs: 60,
        rounds,
    };
    let csv = to_csv(&s);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(
        lines[1],
        "\"k,p\",country,KP,5,300000,1970-01-01T00:05:00Z,,4,3,0.75,12,9,Korea (Democratic People's Republic of)"
    );
    assert_eq!(
        lines[3],
        "\"k,p\",country,KP,5,300000,1970-01-01T00:05:00Z,vp-b,4,4,1,12,12,Korea (Democratic People's Republic of)"
    );
    assert_eq!(
        lines[4],
        "\"k,p\",country,KP,7,420000,1970-01-01T00:07:00Z,,0,0,,0,0,Korea (Democratic People's Republic of)"
    );
    let json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(json["rounds"][0]["share_up"], 0.75);
    assert_eq!(json["rounds"][0]["per_vp"][0]["vp"], "vp-a");
    assert_eq!(json["rounds"][0]["per_vp"][0]["blocks_judged"], 4);
    assert_eq!(json["scope"], "country");
    let jsonl = to_jsonl(&s).unwrap();
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first, json["rounds"][0]);
}

#[test]
fn caps_cut_between_rounds() {
    let rows: Vec<ScopeSummary> = [5, 5, 5, 6, 6, 7]
        .iter()
        .map(|&r| row(r, "", 1, 1))
        .collect();
    assert_eq!(last_round_within(&rows, 6), Some(7));
    assert_eq!(last_round_within(&rows, 5), Some(6));
    assert_eq!(last_round_within(&rows, 4), Some(5));
    assert_eq!(last_round_within(&rows, 3), Some(5));
    // A round larger than the cap still goes, alone.
    assert_eq!(last_round_within(&rows, 2), Some(5));
    assert_eq!(last_round_within(&[], 2), None);
}
