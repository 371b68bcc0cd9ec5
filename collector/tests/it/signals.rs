//! Per-round scope summaries and the signals read from them, end to end.
//!
//! On both backends: the store's summary queries, and correlation passes
//! that store summaries, rewrite a round (and the later ones) when a late
//! report arrives for it, and leave the rounds before it alone. On SQLite,
//! the real `darkwatch-collector serve` answers `/v1/signals`, `/v1/scopes`,
//! `/v1/timeline` and `/metrics` from the summaries, and agrees with the
//! `signals` CLI on the same database.

use std::ops::RangeInclusive;

use darkwatch_collector::correlation::{last_complete_round, CorrelationSettings, Correlator};
use darkwatch_collector::store::{
    Campaign, CampaignSpec, ScopeSummary, SqlStore, Store, SummaryRound,
};
use darkwatch_correlate::Scope;
use darkwatch_schema::{round_start_ms, ReportBatch};
use reqwest::StatusCode;

use crate::common::{cli, cli_ok, kp_observation, plain_batch, Db, Server};

const INTERVAL: u64 = 60;
const PREFIXES: [&str; 2] = ["198.18.0.0/23", "198.18.2.0/23"];
const BLOCKS: [&str; 4] = [
    "198.18.0.0/24",
    "198.18.1.0/24",
    "198.18.2.0/24",
    "198.18.3.0/24",
];
/// Rounds (offsets from the first) during which the second prefix is dark.
const DARK: RangeInclusive<u64> = 4..=6;

async fn campaign(store: &SqlStore, now: i64) -> Campaign {
    store
        .put_campaign(
            &CampaignSpec {
                name: "kp".into(),
                country: Some("KP".into()),
                interval_secs: INTERVAL,
                prefixes: PREFIXES
                    .iter()
                    .map(|p| p.parse().expect("prefix"))
                    .collect(),
                control: vec![],
                agents: vec![],
            },
            false,
            now,
        )
        .await
        .expect("campaign")
}

/// One VP's reports of `rounds`: every block up, except the second prefix
/// during `DARK` (offsets from `first`).
fn reports(first: u64, rounds: impl Iterator<Item = u64>) -> ReportBatch {
    let mut observations = Vec::new();
    for round in rounds {
        for (i, b) in BLOCKS.iter().enumerate() {
            let dark = i >= 2 && DARK.contains(&(round - first));
            observations.push(kp_observation(round, b, dark, INTERVAL));
        }
    }
    plain_batch(observations)
}

/// The time at which `round` is the last complete one.
fn when_complete(round: u64) -> i64 {
    let t = round_start_ms(round + 2, INTERVAL);
    assert_eq!(last_complete_round(t, INTERVAL), Some(round));
    t
}

async fn pass(store: &SqlStore, c: &Campaign, now: i64) {
    Correlator::default()
        .pass(store, store, c, &CorrelationSettings::default(), None, now)
        .await
        .expect("correlation pass");
}

fn updated(rounds: &[SummaryRound]) -> Vec<(u64, i64)> {
    rounds.iter().map(|r| (r.round, r.updated_ms)).collect()
}

async fn late_reports_rewrite_their_round_and_later_ones(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let first = 29_000_000;
    let last = first + 9;
    let now = when_complete(last);
    let c = campaign(&store, now).await;
    store
        .ingest("vp-a", &reports(first, first..=last), now)
        .await
        .expect("ingest a");
    // vp-b's round first+5 is still in its spool.
    let b_rounds = (first..=last).filter(|r| *r != first + 5);
    store
        .ingest("vp-b", &reports(first, b_rounds), now)
        .await
        .expect("ingest b");

    pass(&store, &c, now).await;
    let all = first..=last + 1;
    let stored = store
        .summary_rounds("kp", all.clone())
        .await
        .expect("rounds");
    assert_eq!(
        updated(&stored),
        (first..=last).map(|r| (r, now)).collect::<Vec<_>>()
    );
    assert!(stored
        .iter()
        .all(|r| r.interval_secs == INTERVAL && r.digest != 0));
    let kp = |rows: &[ScopeSummary], round: u64| -> Vec<(String, u64, u64, u64, u64)> {
        rows.iter()
            .filter(|r| r.round == round)
            .map(|r| {
                (
                    r.vp.clone(),
                    r.blocks_judged,
                    r.blocks_up,
                    r.probes,
                    r.replies,
                )
            })
            .collect()
    };
    let rows = store
        .scope_summaries("kp", Scope::Country, "KP", all.clone())
        .await
        .expect("rows");
    let row = |vp: &str, j, u, p, r| (vp.to_string(), j, u, p, r);
    assert_eq!(
        kp(&rows, first),
        [
            row("", 4, 4, 8, 8),
            row("vp-a", 4, 4, 4, 4),
            row("vp-b", 4, 4, 4, 4)
        ]
    );
    // In the dark rounds only vp-a reported: a single VP's down is below
    // the quorum of 2, which is capped at the VPs reporting, so it counts.
    assert_eq!(
        kp(&rows, first + 5),
        [row("", 4, 2, 8, 2), row("vp-a", 4, 2, 8, 2)]
    );
    let prefix = store
        .scope_summaries("kp", Scope::Prefix, PREFIXES[1], first + 4..=first + 4)
        .await
        .expect("prefix rows");
    assert_eq!(
        kp(&prefix, first + 4),
        [
            row("", 2, 0, 12, 0),
            row("vp-a", 2, 0, 6, 0),
            row("vp-b", 2, 0, 6, 0)
        ]
    );

    // Nothing new: nothing rewritten.
    pass(&store, &c, now + 1).await;
    assert_eq!(
        store
            .summary_rounds("kp", all.clone())
            .await
            .expect("rounds"),
        stored
    );

    // The late round arrives: it and the rounds after it are rewritten,
    // the rounds before it keep their summaries.
    store
        .ingest("vp-b", &reports(first, first + 5..=first + 5), now + 2)
        .await
        .expect("late ingest");
    pass(&store, &c, now + 2).await;
    let after = store
        .summary_rounds("kp", all.clone())
        .await
        .expect("rounds");
    assert_eq!(
        updated(&after),
        (first..=last)
            .map(|r| (r, if r < first + 5 { now } else { now + 2 }))
            .collect::<Vec<_>>()
    );
    let changed: Vec<u64> = after
        .iter()
        .zip(&stored)
        .filter(|(a, b)| a.digest != b.digest)
        .map(|(a, _)| a.round)
        .collect();
    assert_eq!(changed, [first + 5]);
    let rows = store
        .scope_summaries("kp", Scope::Country, "KP", all.clone())
        .await
        .expect("rows");
    assert_eq!(
        kp(&rows, first + 5),
        [
            row("", 4, 2, 16, 4),
            row("vp-a", 4, 2, 8, 2),
            row("vp-b", 4, 2, 8, 2)
        ],
        "vp-b's late round counts"
    );

    // The next round: only it is written.
    let next = last + 1;
    for vp in ["vp-a", "vp-b"] {
        store
            .ingest(vp, &reports(first, next..=next), now + 3)
            .await
            .expect("ingest next");
    }
    let later = when_complete(next);
    pass(&store, &c, later).await;
    let rounds = store.summary_rounds("kp", all).await.expect("rounds");
    let mut want = updated(&after);
    want.push((next, later));
    assert_eq!(updated(&rounds), want);
    store.close().await;
}

/// A summary row of campaign `kp` (probes: 3 per judged block, a reply per up block).
fn summary(scope: Scope, target: &str, round: u64, vp: &str, judged: u64, up: u64) -> ScopeSummary {
    ScopeSummary {
        campaign: "kp".into(),
        scope,
        target: target.into(),
        round,
        vp: vp.into(),
        blocks_judged: judged,
        blocks_up: up,
        probes: 3 * judged,
        replies: up,
    }
}

fn summary_round(round: u64, interval_secs: u64, digest: i64) -> SummaryRound {
    SummaryRound {
        round,
        interval_secs,
        digest,
        updated_ms: 7,
    }
}

async fn summary_queries(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let row = |scope, target: &str, round, vp: &str, n| summary(scope, target, round, vp, n, n / 2);
    let sr = |round, digest| summary_round(round, 600, digest);
    let mut rows = Vec::new();
    for round in 10..=12 {
        for (scope, target) in [
            (Scope::Country, "KP"),
            (Scope::Asn, "AS10"),
            (Scope::Asn, "AS9"),
            (Scope::Prefix, "198.18.10.0/24"),
            (Scope::Prefix, "198.18.9.0/24"),
        ] {
            rows.push(row(scope, target, round, "", round));
            rows.push(row(scope, target, round, "vp-b", 1));
            rows.push(row(scope, target, round, "vp-a", 2));
        }
    }
    store
        .replace_summaries(
            "kp",
            10..=12,
            10..=12,
            &[sr(10, -5), sr(11, i64::MAX), sr(12, 1)],
            &rows,
        )
        .await
        .expect("replace");
    store
        .replace_summaries(
            "other",
            3..=3,
            3..=3,
            &[sr(3, 9)],
            &[ScopeSummary {
                campaign: "other".into(),
                ..summary(Scope::Campaign, "other", 3, "", 1, 1)
            }],
        )
        .await
        .expect("replace other");

    let got = store
        .scope_summaries("kp", Scope::Asn, "AS9", 11..=12)
        .await
        .expect("scope rows");
    let keys: Vec<(u64, &str, u64)> = got
        .iter()
        .map(|r| (r.round, r.vp.as_str(), r.blocks_judged))
        .collect();
    assert_eq!(
        keys,
        [
            (11, "", 11),
            (11, "vp-a", 2),
            (11, "vp-b", 1),
            (12, "", 12),
            (12, "vp-a", 2),
            (12, "vp-b", 1)
        ]
    );
    assert_eq!(got[0], row(Scope::Asn, "AS9", 11, "", 11));

    let consensus = store
        .round_summaries("kp", 12, Scope::Prefix, true, 10)
        .await
        .expect("round rows");
    assert_eq!(
        consensus
            .iter()
            .map(|r| (r.target.as_str(), r.vp.as_str()))
            .collect::<Vec<_>>(),
        [("198.18.10.0/24", ""), ("198.18.9.0/24", "")]
    );
    let limited = store
        .round_summaries("kp", 12, Scope::Asn, false, 4)
        .await
        .expect("limited");
    assert_eq!(limited.len(), 4);

    let scopes = store.summary_scopes(Some("kp")).await.expect("scopes");
    assert_eq!(
        scopes
            .iter()
            .map(|k| (k.scope, k.target.as_str()))
            .collect::<Vec<_>>(),
        [
            (Scope::Country, "KP"),
            (Scope::Asn, "AS9"),
            (Scope::Asn, "AS10"),
            (Scope::Prefix, "198.18.9.0/24"),
            (Scope::Prefix, "198.18.10.0/24")
        ]
    );
    assert_eq!(store.summary_scopes(None).await.expect("all").len(), 6);

    let latest = store.latest_summary_rounds().await.expect("latest");
    assert_eq!(
        latest,
        [
            ("kp".to_string(), sr(12, 1)),
            ("other".to_string(), sr(3, 9))
        ]
    );
    assert_eq!(
        store
            .summary_rounds("kp", 0..=u64::MAX)
            .await
            .expect("rounds"),
        [sr(10, -5), sr(11, i64::MAX), sr(12, 1)]
    );

    // Replacing 11..=12 with round 11 only: round 12 is gone, 10 stays.
    store
        .replace_summaries(
            "kp",
            11..=12,
            11..=12,
            &[sr(11, 2)],
            &[row(Scope::Country, "KP", 11, "", 4)],
        )
        .await
        .expect("replace again");
    assert_eq!(
        store
            .summary_rounds("kp", 0..=u64::MAX)
            .await
            .expect("rounds"),
        [sr(10, -5), sr(11, 2)]
    );
    let left = store
        .scope_summaries("kp", Scope::Country, "KP", 0..=u64::MAX)
        .await
        .expect("rows");
    assert_eq!(
        left.iter()
            .map(|r| (r.round, r.vp.as_str(), r.blocks_judged))
            .collect::<Vec<_>>(),
        [(10, "", 10), (10, "vp-a", 2), (10, "vp-b", 1), (11, "", 4)]
    );
    assert!(store
        .scope_summaries("kp", Scope::Asn, "AS9", 11..=12)
        .await
        .expect("rows")
        .is_empty());
    store.close().await;
}

async fn gauges_read_the_latest_round(db: &str) {
    use darkwatch_collector::signals::{scope_gauges, METRICS_MAX_PREFIXES};
    use darkwatch_collector::store::VpFault;
    let store = SqlStore::open(db).await.expect("open");
    let sr = |round| summary_round(round, 60, 1);
    let mut rows = vec![
        summary(Scope::Country, "KP", 11, "", 4, 4),
        summary(Scope::Country, "KP", 12, "", 4, 1),
        summary(Scope::Country, "KP", 12, "vp-a", 4, 1),
        summary(Scope::Country, "KP", 12, "vp-b", 4, 0),
        summary(Scope::Asn, "AS64500", 12, "", 2, 1),
        summary(Scope::Asn, "AS64500", 12, "vp-a", 2, 1),
    ];
    rows.extend((0..=METRICS_MAX_PREFIXES).map(|i| {
        let p = format!("10.{}.{}.0/24", i / 256, i % 256);
        summary(Scope::Prefix, &p, 12, "", 1, 1)
    }));
    store
        .replace_summaries("kp", 11..=12, 11..=12, &[sr(11), sr(12)], &rows)
        .await
        .expect("summaries");
    let fault = |agent: &str, start_round, end_round: Option<u64>| VpFault {
        id: 0,
        agent: agent.into(),
        campaign: "kp".into(),
        start_round,
        end_round,
        start_ms: round_start_ms(start_round, 60),
        end_ms: end_round.map(|r| round_start_ms(r, 60)),
        reason: "lost 4 of 4 blocks while other VPs did not".into(),
        updated_ms: 0,
    };
    // vp-b faulty since 11; vp-a's fault ended with round 12 (good again).
    store
        .save_vp_faults(&[fault("vp-b", 11, None), fault("vp-a", 3, Some(12))])
        .await
        .expect("faults");
    let now = round_start_ms(12, 60) + 30_000;
    let g = scope_gauges(&store, now).await.expect("gauges");
    assert_eq!(g.rounds, [("kp".to_string(), 30.0, 60)]);
    assert_eq!(
        g.vp_healthy,
        [
            ("vp-a".to_string(), "kp".to_string(), true),
            ("vp-b".to_string(), "kp".to_string(), false)
        ]
    );
    // Round 12 only, consensus only; one prefix over the limit: none of them.
    assert_eq!(
        g.scopes,
        [
            ("kp".to_string(), Scope::Country, "KP".to_string(), 4, 1),
            ("kp".to_string(), Scope::Asn, "AS64500".to_string(), 2, 1)
        ]
    );
    assert!(g.verdicts_open.is_empty());
    // At the limit, prefixes are exposed.
    let fewer: Vec<ScopeSummary> = rows
        .iter()
        .filter(|r| r.round == 12 && r.target != "10.0.0.0/24")
        .cloned()
        .collect();
    store
        .replace_summaries("kp", 12..=12, 12..=12, &[sr(12)], &fewer)
        .await
        .expect("summaries");
    let g = scope_gauges(&store, now).await.expect("gauges");
    assert_eq!(g.scopes.len(), 2 + METRICS_MAX_PREFIXES);
    store.close().await;
}

/// With a cap of 2 rounds' rows per pass, passes catch up round by round,
/// also after a late report early in the window: the rounds after the
/// rewritten ones lose their digest (and keep their rows) until rewritten.
async fn capped_passes_catch_up(db: &str) {
    use darkwatch_collector::correlation::feed::CampaignEngine;
    use darkwatch_collector::correlation::RoundSource;
    use darkwatch_collector::signals::store_summary_rounds;
    let store = SqlStore::open(db).await.expect("open");
    let first = 29_100_000;
    let last = first + 9;
    let now = when_complete(last);
    let c = campaign(&store, now).await;
    store
        .ingest("vp-a", &reports(first, first..=last), now)
        .await
        .expect("ingest a");
    let b_rounds = (first..=last).filter(|r| *r != first + 2);
    store
        .ingest("vp-b", &reports(first, b_rounds), now)
        .await
        .expect("ingest b");
    let settings = CorrelationSettings::default();
    let run = |t: i64| {
        let (store, c, settings) = (&store, &c, &settings);
        async move {
            // The whole window fed to a fresh engine.
            let window = last.saturating_sub(settings.window_rounds - 1)..=last;
            let mut st = CampaignEngine::new(c, &settings.params, None).expect("engine");
            st.engine_mut()
                .set_window(*window.start(), last)
                .expect("window");
            let raw = store
                .stored_rounds("kp", window.clone())
                .await
                .expect("rounds");
            for r in window.clone() {
                st.feed_round(&raw, r).expect("feed");
            }
            let e = st.engine_mut();
            let out = e.output();
            // 9 rows a round: the country and 2 prefixes, each with 2 VPs.
            store_summary_rounds(store, c, window, &e.vps(), &e.round_digests(), &out, t, 20)
                .await
                .expect("store")
        }
    };
    let stored = || async {
        store
            .summary_rounds("kp", 0..=u64::MAX)
            .await
            .expect("rounds")
            .len()
    };
    for pass in 1..=5u64 {
        assert_eq!(run(now + pass as i64).await, 2, "pass {pass}");
        assert_eq!(stored().await as u64, 2 * pass);
    }
    assert_eq!(run(now + 6).await, 0, "caught up");

    store
        .ingest("vp-b", &reports(first, first + 2..=first + 2), now)
        .await
        .expect("late ingest");
    assert_eq!(run(now + 7).await, 2);
    let after = store
        .summary_rounds("kp", 0..=u64::MAX)
        .await
        .expect("rounds");
    assert_eq!(
        updated(&after),
        [
            (first, now + 1),
            (first + 1, now + 1),
            (first + 2, now + 7),
            (first + 3, now + 7)
        ],
        "later rounds lost their digests"
    );
    let rows = store
        .scope_summaries("kp", Scope::Country, "KP", first + 4..=last)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 6 * 3, "and kept their rows");
    for pass in 8..=10 {
        assert_eq!(run(now + pass).await, 2);
    }
    assert_eq!(run(now + 11).await, 0);
    let after = store
        .summary_rounds("kp", 0..=u64::MAX)
        .await
        .expect("rounds");
    assert_eq!(after.len(), 10);
    assert!(after[2..].iter().all(|r| r.updated_ms >= now + 7));
    let late = store
        .scope_summaries("kp", Scope::Country, "KP", first + 2..=first + 2)
        .await
        .expect("rows");
    assert_eq!(late.len(), 3, "vp-b's late round is in");
    store.close().await;
}

db_tests!(
    capped_passes_catch_up,
    late_reports_rewrite_their_round_and_later_ones,
    summary_queries,
    gauges_read_the_latest_round
);

// ---------- API and CLI ----------

async fn get(server: &Server, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = reqwest::get(server.url(path)).await.expect("GET");
    let status = resp.status();
    (status, resp.json().await.expect("JSON body"))
}

/// A correlated database of ten complete rounds, two VPs, the second
/// prefix dark in three of them; returns its first round.
async fn fixture(db: &str) -> u64 {
    let store = SqlStore::open(db).await.expect("open");
    let now = chrono::Utc::now().timestamp_millis();
    let last = last_complete_round(now, INTERVAL).expect("after 1970");
    let first = last - 9;
    let c = campaign(&store, now).await;
    for vp in ["vp-a", "vp-b"] {
        store
            .ingest(vp, &reports(first, first..=last), now)
            .await
            .expect("ingest");
    }
    pass(&store, &c, now).await;
    store.close().await;
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_cli_give_the_same_signals() {
    let db = Db::sqlite();
    let first = fixture(&db.url).await;
    let server = Server::start(&db.url, &[]);

    let (status, s) = get(&server, "/v1/signals?scope=country&target=kp").await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (
            &s["scope"],
            &s["target"],
            &s["campaign"],
            &s["interval_secs"]
        ),
        (
            &serde_json::json!("country"),
            &serde_json::json!("KP"),
            &serde_json::json!("kp"),
            &serde_json::json!(INTERVAL)
        )
    );
    let rounds = s["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 10);
    let dark = &rounds[5];
    assert_eq!(dark["round"], first + 5);
    assert_eq!(
        dark["start_ms"],
        round_start_ms(first + 5, INTERVAL),
        "{dark}"
    );
    assert_eq!(
        (
            &dark["blocks_judged"],
            &dark["blocks_up"],
            &dark["share_up"],
            &dark["probes"],
            &dark["replies"]
        ),
        (
            &serde_json::json!(4),
            &serde_json::json!(2),
            &serde_json::json!(0.5),
            &serde_json::json!(16),
            &serde_json::json!(4)
        )
    );
    assert_eq!(
        dark["per_vp"],
        serde_json::json!([
            {"vp": "vp-a", "blocks_judged": 4, "blocks_up": 2, "share_up": 0.5, "probes": 8, "replies": 2},
            {"vp": "vp-b", "blocks_judged": 4, "blocks_up": 2, "share_up": 0.5, "probes": 8, "replies": 2}
        ])
    );
    assert_eq!(rounds[0]["share_up"], 1.0);

    // The CLI prints the same rounds as JSON lines, and as CSV.
    let jsonl = cli_ok(
        &db.url,
        &[
            "signals", "--scope", "country", "--target", "KP", "--format", "jsonl",
        ],
    );
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(&lines, rounds);
    let csv = cli_ok(
        &db.url,
        &["signals", "--scope", "country", "--target", "KP"],
    );
    let csv: Vec<&str> = csv.lines().collect();
    assert_eq!(csv[0], darkwatch_collector::signals::CSV_HEADER);
    assert_eq!(csv.len(), 1 + 10 * 3);
    let dark_start = chrono::DateTime::from_timestamp_millis(round_start_ms(first + 5, INTERVAL))
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        csv[1 + 5 * 3],
        format!(
            "kp,country,KP,{},{},{dark_start},,4,2,0.5,16,4,Korea (Democratic People's Republic of)",
            first + 5,
            round_start_ms(first + 5, INTERVAL)
        )
    );

    // Ranges, a prefix, one VP: API and CLI still agree.
    let from = round_start_ms(first + 4, INTERVAL);
    let until = chrono::DateTime::from_timestamp_millis(round_start_ms(first + 6, INTERVAL))
        .expect("time")
        .to_rfc3339();
    let path = format!(
        "/v1/signals?scope=prefix&target={}&from={from}ms&until={}&vp=vp-b",
        PREFIXES[1],
        until.replace('+', "%2B")
    );
    let (status, p) = get(&server, &path).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let prounds = p["rounds"].as_array().expect("rounds");
    assert_eq!(
        prounds
            .iter()
            .map(|r| r["round"].clone())
            .collect::<Vec<_>>(),
        [first + 4, first + 5, first + 6].map(|r| serde_json::json!(r))
    );
    assert!(prounds.iter().all(|r| r["share_up"] == 0.0
        && r["per_vp"].as_array().map(Vec::len) == Some(1)
        && r["per_vp"][0]["vp"] == "vp-b"));
    let from_s = format!("{from}ms");
    let cli_lines = cli_ok(
        &db.url,
        &[
            "signals",
            "--scope",
            "prefix",
            "--target",
            PREFIXES[1],
            "--from",
            &from_s,
            "--until",
            &until,
            "--vp",
            "vp-b",
            "--format",
            "jsonl",
        ],
    );
    let cli_rounds: Vec<serde_json::Value> = cli_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(&cli_rounds, prounds);

    // The timeline is the same signal.
    let (status, t) = get(&server, "/v1/timeline?country=KP").await;
    assert_eq!(status, StatusCode::OK);
    let trounds = t[0]["rounds"].as_array().expect("timeline rounds");
    assert_eq!(trounds.len(), 10);
    for (tr, sr) in trounds.iter().zip(rounds) {
        assert_eq!(tr["round"], sr["round"]);
        assert_eq!(tr["overall"], sr["share_up"]);
        assert_eq!(tr["per_vp"]["vp-b"], sr["per_vp"][1]["share_up"]);
    }
    assert_eq!(t[0]["vantage_points"], serde_json::json!(["vp-a", "vp-b"]));

    // Scopes with summaries, for the dashboard's toggles.
    let (status, scopes) = get(&server, "/v1/scopes?campaign=kp").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        scopes,
        serde_json::json!([
            {"campaign": "kp", "scope": "country", "target": "KP"},
            {"campaign": "kp", "scope": "prefix", "target": PREFIXES[0]},
            {"campaign": "kp", "scope": "prefix", "target": PREFIXES[1]},
        ])
    );
    assert_eq!(get(&server, "/v1/scopes").await.1, scopes);
    assert_eq!(
        get(&server, "/v1/scopes?campaign=fr").await.1,
        serde_json::json!([])
    );

    // Bad requests: a 400 (or 404) naming the problem; the CLI exits 64 / 65.
    let long_ago = "2014-12-22T00:00:00Z";
    for (path, status, needle) in [
        ("/v1/signals?target=KP", 400, "scope is required"),
        ("/v1/signals?scope=country", 400, "target is required"),
        ("/v1/signals?scope=galaxy&target=KP", 400, "galaxy"),
        ("/v1/signals?scope=country&target=KPX", 400, "two-letter"),
        ("/v1/signals?scope=country&target=KP&from=noon", 400, "from"),
        // A bare number has no unit (Unix seconds read as milliseconds
        // once made a range of 29,914,407 rounds).
        (
            "/v1/signals?scope=country&target=KP&from=1419206400",
            400,
            "no unit",
        ),
        ("/v1/signals?scope=country&target=KP&step=5", 400, "step"),
        (
            "/v1/signals?scope=country&target=KP&from=2014-12-22T00:00:00Z",
            400,
            "narrow",
        ),
        ("/v1/signals?scope=country&target=FR", 404, "no summaries"),
        ("/v1/signals?scope=asn&target=AS64500", 404, "/v1/scopes"),
        ("/v1/scopes?country=KP", 400, "country"),
    ] {
        let resp = reqwest::get(server.url(path)).await.expect("GET");
        assert_eq!(resp.status().as_u16(), status, "GET {path}");
        let body: serde_json::Value = resp.json().await.expect("JSON error");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "GET {path}: {msg}");
    }
    for (args, code, needle) in [
        (vec!["--scope", "galaxy", "--target", "KP"], 64, "galaxy"),
        (
            vec!["--scope", "country", "--target", "KP", "--from", long_ago],
            64,
            "narrow",
        ),
        (
            vec!["--scope", "country", "--target", "FR"],
            65,
            "no summaries",
        ),
    ] {
        let out = cli(&db.url, &[&["signals"][..], &args[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // Gauges from the same summaries.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "darkwatch_scope_blocks_up_ratio{campaign=\"kp\",scope=\"country\",target=\"KP\"} 1",
        "darkwatch_scope_blocks_judged{campaign=\"kp\",scope=\"country\",target=\"KP\"} 4",
        "darkwatch_scope_blocks_judged{campaign=\"kp\",scope=\"prefix\",target=\"198.18.2.0/23\"} 2",
        "darkwatch_vp_healthy{agent=\"vp-a\",campaign=\"kp\"} 1",
        "darkwatch_vp_healthy{agent=\"vp-b\",campaign=\"kp\"} 1",
        "darkwatch_campaign_interval_seconds{campaign=\"kp\"} 60",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    let age = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("darkwatch_last_correlated_round_age_seconds{campaign=\"kp\"} ")
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no round age in\n{metrics}"));
    assert!(age >= 60.0, "the last round is complete: {age}");
}

/// `replay` (issue 29) re-derives the stored verdicts of a correlated
/// database from its stored rounds (exit 0), and exits 65 naming a stored
/// verdict that the rounds do not give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_cli_rederives_the_stored_verdicts() {
    use darkwatch_collector::correlation::{RoundSource, VerdictSink};
    let db = Db::sqlite();
    let first = fixture(&db.url).await;
    let (from, until) = (first.to_string(), (first + 9).to_string());
    let args = [
        "replay",
        "--campaign",
        "kp",
        "--from",
        &from,
        "--until",
        &until,
    ];
    let out = cli_ok(&db.url, &args);
    assert!(out.contains("0 only stored, 0 only recomputed"), "{out}");
    assert!(!out.contains(" 0 verdict(s) identical"), "{out}");

    let store = SqlStore::open(&db.url).await.expect("open");
    let stored = store.stored_verdicts("kp").await.expect("verdicts");
    let forged = darkwatch_collector::store::Verdict {
        id: 0,
        start_round: first + 1,
        ..stored[0].clone()
    };
    store.write_verdicts(&[forged]).await.expect("write");
    store.close().await;
    let out = cli(&db.url, &args);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 only stored") && text.contains("stored only"),
        "{text}"
    );
}
