//! Round timing end to end, through the real `darkwatch-collector` binary:
//! an agent posts report batches carrying `RoundInfo` over HTTP, and
//! `status` (table and `--json`) and `/v1/status` show its latest round of
//! each campaign, when it started, whether on time, and the share of its
//! recent rounds that were late. A round reported again (in a batch resent
//! under another id) counts once; a round of a campaign the agent does not
//! run is refused. Every body runs against SQLite, and against PostgreSQL
//! when `DARKWATCH_TEST_PG` is set (see `common`).

use darkwatch_schema::{round_of, round_start_ms, ReportBatch, RoundInfo};
use reqwest::StatusCode;

use crate::common::{cli_ok, random_hex, Server};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Round `round` of `campaign` (60-s rounds), started 1 s into it and
/// taking `took_ms`.
fn info(campaign: &str, round: u64, took_ms: i64, on_time: bool) -> RoundInfo {
    let started_ms = round_start_ms(round, 60) + 1000;
    RoundInfo {
        campaign: campaign.into(),
        round,
        started_ms,
        ended_ms: started_ms + took_ms,
        on_time,
        blocks: 256,
        probes: 300 + round % 7,
    }
}

fn batch(rounds: Vec<RoundInfo>) -> ReportBatch {
    ReportBatch {
        rounds,
        ..ReportBatch::new(random_hex(16), now_ms())
    }
}

async fn post(srv: &Server, token: &str, b: &ReportBatch) -> (StatusCode, String) {
    let resp = reqwest::Client::new()
        .post(srv.url("/v1/reports"))
        .bearer_auth(token)
        .json(b)
        .send()
        .await
        .expect("request");
    (resp.status(), resp.text().await.unwrap_or_default())
}

fn agent<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == name))
        .unwrap_or_else(|| panic!("no agent {name} in {status:#}"))
}

async fn status_shows_each_agents_latest_round_and_late_share(db: &str) {
    let vp1 = cli_ok(db, &["agents", "add", "vp1"]).trim().to_string();
    let vp2 = cli_ok(db, &["agents", "add", "vp2"]).trim().to_string();
    for (name, prefix) in [("kp", "198.18.0.0/16"), ("kr", "198.19.0.0/16")] {
        cli_ok(
            db,
            &[
                "campaign",
                "add",
                name,
                "--prefix",
                prefix,
                "--interval",
                "60",
                "--agents",
                "vp1",
            ],
        );
    }
    let srv = Server::start(db, &[]);
    // Four rounds of kp ending with the current one, one of them late;
    // the newest arrives first (a spooled older round comes after it).
    let now = round_of(now_ms(), 60);
    let r0 = now - 3;
    let (st, body) = post(&srv, &vp1, &batch(vec![info("kp", now, 40_000, true)])).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    for (r, late) in [(r0, false), (r0 + 1, true), (r0 + 2, false)] {
        let took = if late { 61_000 } else { 40_000 };
        let (st, body) = post(&srv, &vp1, &batch(vec![info("kp", r, took, !late)])).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    // The late round again, in a batch resent under another id: once.
    let (st, _) = post(&srv, &vp1, &batch(vec![info("kp", r0 + 1, 61_000, false)])).await;
    assert_eq!(st, StatusCode::OK);
    // Another campaign, one round, on time.
    let (st, body) = post(&srv, &vp1, &batch(vec![info("kr", now - 1, 5_000, true)])).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // vp2 does not run kp: its round of kp is refused, and shows nowhere.
    let (st, body) = post(&srv, &vp2, &batch(vec![info("kp", now, 1_000, true)])).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["status", "--json"])).expect("json");
    let rounds = agent(&json, "vp1")["rounds"]
        .as_array()
        .expect("rounds")
        .clone();
    assert_eq!(rounds.len(), 2, "{rounds:#?}");
    let kp = &rounds[0];
    assert_eq!(kp["campaign"], "kp");
    assert_eq!(kp["last_round"], now);
    assert_eq!(kp["on_time"], true);
    assert_eq!(kp["blocks"], 256);
    assert_eq!(kp["probes"], 300 + now % 7);
    let started = info("kp", now, 0, true).started_ms;
    assert_eq!(
        kp["started"],
        chrono::DateTime::from_timestamp_millis(started)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(
        (kp["recent_rounds"].as_u64(), kp["recent_late"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(kp["late_share"], 0.25);
    let kr = &rounds[1];
    assert_eq!(
        (kr["campaign"].as_str(), kr["last_round"].as_u64()),
        (Some("kr"), Some(now - 1))
    );
    assert_eq!(kr["late_share"], 0.0);
    assert_eq!(agent(&json, "vp2")["rounds"], serde_json::json!([]));

    // The table: one line per campaign under the agent.
    let text = cli_ok(db, &["status"]);
    let line = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with(&format!("kp: round {now} started"))
        })
        .unwrap_or_else(|| panic!("no round line for kp in\n{text}"));
    let probes = 300 + now % 7;
    assert!(
        line.ends_with(&format!(
            "on time (took 40s, 256 blocks, {probes} probes); 1 of 4 rounds late in 24h (25.0 %)"
        )),
        "{line}"
    );
    assert!(
        text.contains(&format!("kr: round {} started", now - 1)),
        "{text}"
    );

    // The API says what the CLI prints.
    let api: serde_json::Value = reqwest::get(srv.url("/v1/status"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(agent(&api, "vp1")["rounds"], agent(&json, "vp1")["rounds"]);

    // The latest round reported again, now late: accepted, and the first
    // report of the round stands.
    let (st, _) = post(&srv, &vp1, &batch(vec![info("kp", now, 70_000, false)])).await;
    assert_eq!(st, StatusCode::OK);
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["status", "--json"])).expect("json");
    let kp = &agent(&json, "vp1")["rounds"][0];
    assert_eq!(
        (kp["on_time"].as_bool(), kp["recent_late"].as_u64()),
        (Some(true), Some(1))
    );
}

db_tests!(status_shows_each_agents_latest_round_and_late_share);
