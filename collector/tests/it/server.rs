//! End-to-end tests of the real `darkwatch-collector` binary.
//!
//! Each test starts the binary on 127.0.0.1 with port 0 (it prints the
//! address it bound) against a fresh database, drives it over HTTP with
//! reqwest and through its CLI, and checks the rows in the database. Every
//! test body takes a database URL and runs twice: against a temporary SQLite
//! file, and against a fresh PostgreSQL database when `DARKWATCH_TEST_PG`
//! holds a server URL (skipped without it, unless `CI=true`).

use std::process::{Command, Stdio};
use std::time::Duration;

use darkwatch_collector::store::{SqlStore, Store, StoreCounts};
use darkwatch_schema::{
    round_of, ApiError, Assignments, BatchAck, BlockObservation, BlockState, Hop, ReportBatch,
    TraceObservation,
};
use reqwest::StatusCode;

use crate::common::{cli, cli_ok, random_hex, Db, Server, BIN};

// ---------- fixtures ----------

fn add_agent(db: &str, name: &str) -> String {
    let token = cli_ok(db, &["agents", "add", name]).trim().to_string();
    assert_eq!(token.len(), 64, "token {token:?}");
    token
}

async fn counts(db: &str) -> StoreCounts {
    let store = SqlStore::open(db).await.expect("open store");
    let c = store.counts(0).await.expect("counts");
    store.close().await;
    c
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn batch(campaign: &str, interval: u64, blocks: u8) -> ReportBatch {
    let now = now_ms();
    let round = round_of(now, interval);
    let observations = (0..blocks)
        .map(|i| BlockObservation {
            campaign: campaign.into(),
            round,
            block: format!("198.18.{i}.0/24").parse().expect("block"),
            state: if i % 2 == 0 {
                BlockState::Up
            } else {
                BlockState::Down
            },
            probes: 4,
            replies: if i % 2 == 0 { 3 } else { 0 },
            belief: if i % 2 == 0 { 0.99 } else { 0.02 },
            availability: 0.75,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: now,
        })
        .collect();
    let traces = vec![TraceObservation {
        campaign: campaign.into(),
        round,
        target: "198.18.1.1".parse().expect("addr"),
        hops: vec![
            Hop {
                ttl: 1,
                addr: Some("192.0.2.1".parse().expect("addr")),
                rtt_ms: Some(0.3),
                unreachable: None,
            },
            Hop {
                ttl: 2,
                addr: None,
                rtt_ms: None,
                unreachable: None,
            },
        ],
        reached: false,
        last_responding: Some("192.0.2.1".parse().expect("addr")),
        ts_ms: now,
    }];
    ReportBatch {
        observations,
        traces,
        ..ReportBatch::new(random_hex(16), now)
    }
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: ApiError = resp.json().await.expect("error body is an ApiError");
    (status, body.error)
}

// ---------- test bodies, generic over the database ----------

async fn tokens_and_auth(db: &str) {
    let token = add_agent(db, "vp1");
    let listed = cli_ok(db, &["agents", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("vp1") && l.ends_with("no")),
        "{listed}"
    );
    // Names are unique.
    assert_eq!(cli(db, &["agents", "add", "vp1"]).status.code(), Some(65));

    let srv = Server::start(db, &[]);
    let http = reqwest::Client::new();
    let url = srv.url("/v1/assignments");

    let (st, msg) = error_of(http.get(&url).send().await.expect("request")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("missing bearer token"), "{msg}");

    let forged = random_hex(32);
    let (st, msg) = error_of(
        http.get(&url)
            .bearer_auth(&forged)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("invalid token"), "{msg}");

    let resp = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let a: Assignments = resp.json().await.expect("assignments");
    assert_eq!(a.agent, "vp1");

    // The agents endpoint lists the agent, never its token or hash.
    let body = http
        .get(srv.url("/v1/agents"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        body.contains("\"vp1\"") && !body.contains(&token) && !body.contains("token"),
        "{body}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["agents", "list", "--json"])).expect("json");
    assert!(
        listed[0]["last_seen_ms"].as_i64().is_some_and(|t| t > 0),
        "authenticated use is recorded: {listed}"
    );

    // Revocation through the CLI takes effect on the running server.
    cli_ok(db, &["agents", "revoke", "vp1"]);
    let (st, msg) = error_of(
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(msg.contains("revoked"), "{msg}");
    let listed = cli_ok(db, &["agents", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("vp1") && l.ends_with("yes")),
        "{listed}"
    );
    assert_eq!(
        cli(db, &["agents", "revoke", "nobody"]).status.code(),
        Some(65)
    );

    let metrics = http
        .get(srv.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("darkwatch_requests_rejected_total{status=\"401\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("darkwatch_agents_known 1"), "{metrics}");
}

async fn reports_are_stored_once(db: &str) {
    let token = add_agent(db, "vp1");
    let other = add_agent(db, "vp2");
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--interval",
            "60",
        ],
    );
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "solo",
            "--prefix",
            "198.19.0.0/16",
            "--interval",
            "60",
            "--agents",
            "vp2",
        ],
    );
    let srv = Server::start(db, &["--max-body", "65536"]);
    let http = reqwest::Client::new();
    let url = srv.url("/v1/reports");
    let post = |token: &str, body: String| {
        http.post(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Malformed and mistyped JSON: 400, saying what is wrong and where.
    let (st, msg) = error_of(
        post(&token, "{\"batch_id\": ".into())
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.contains("invalid report JSON"), "{msg}");
    let mut v = serde_json::to_value(batch("kp", 60, 2)).expect("json");
    v["observations"][1]["probes"] = serde_json::json!("four");
    let (st, msg) = error_of(post(&token, v.to_string()).await.expect("request")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("observations[1].probes") && msg.contains("invalid type"),
        "{msg}"
    );

    // Over the body cap: 413.
    // A valid batch padded with JSON whitespace past the cap.
    let big = format!(
        "{}{}",
        serde_json::to_string(&batch("kp", 60, 4)).expect("json"),
        " ".repeat(70_000)
    );
    assert!(
        big.len() > 65536,
        "test body must exceed the cap ({} bytes)",
        big.len()
    );
    let (st, msg) = error_of(post(&token, big).await.expect("request")).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(msg.contains("larger"), "{msg}");

    // Unknown campaign, campaign assigned to someone else: 422. Bad round: 400.
    let (st, msg) = error_of(
        post(
            &token,
            serde_json::to_string(&batch("cu", 60, 1)).expect("json"),
        )
        .await
        .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg.contains("unknown campaign \"cu\""), "{msg}");
    let (st, msg) = error_of(
        post(
            &token,
            serde_json::to_string(&batch("solo", 60, 1)).expect("json"),
        )
        .await
        .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(msg.contains("not assigned"), "{msg}");
    let mut skewed = batch("kp", 60, 1);
    skewed.observations[0].round -= 10;
    let (st, msg) = error_of(
        post(&token, serde_json::to_string(&skewed).expect("json"))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.contains("does not match timestamp"), "{msg}");
    assert_eq!(
        counts(db).await.batches,
        0,
        "refused batches must not be stored"
    );

    // A valid batch is stored and acknowledged.
    let good = batch("kp", 60, 6);
    let body = serde_json::to_string(&good).expect("json");
    let resp = post(&token, body.clone()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let ack: BatchAck = resp.json().await.expect("ack");
    assert_eq!(
        (ack.duplicate, ack.observations_stored, ack.traces_stored),
        (false, 6, 1)
    );
    let c = counts(db).await;
    assert_eq!((c.batches, c.observations, c.traces), (1, 6, 1));

    // The same batch again: duplicate, nothing written twice.
    let ack: BatchAck = post(&token, body)
        .await
        .expect("request")
        .json()
        .await
        .expect("ack");
    assert!(ack.duplicate);
    assert_eq!((ack.observations_stored, ack.traces_stored), (0, 0));
    let c = counts(db).await;
    assert_eq!((c.batches, c.observations, c.traces), (1, 6, 1));

    // The same observations under a new batch id (an agent resending after
    // a lost ack with a rebuilt batch): stored once only.
    let mut again = good.clone();
    again.batch_id = random_hex(16);
    let ack: BatchAck = post(&token, serde_json::to_string(&again).expect("json"))
        .await
        .expect("request")
        .json()
        .await
        .expect("ack");
    assert_eq!(
        (ack.duplicate, ack.observations_stored, ack.traces_stored),
        (false, 0, 0)
    );
    let c = counts(db).await;
    assert_eq!((c.batches, c.observations, c.traces), (2, 6, 1));

    // Another agent's observations of the same blocks are separate rows.
    // Same round as `good` (a fresh `batch()` could fall in the next round).
    let mut theirs = good.clone();
    theirs.batch_id = random_hex(16);
    let ack: BatchAck = post(&other, serde_json::to_string(&theirs).expect("json"))
        .await
        .expect("request")
        .json()
        .await
        .expect("ack");
    assert_eq!(ack.observations_stored, 6);

    // What was stored reads back as sent.
    let store = SqlStore::open(db).await.expect("open store");
    let round = good.observations[0].round;
    let obs = store
        .observations("kp", round..=round)
        .await
        .expect("observations");
    assert_eq!(obs.len(), 12);
    let mine: Vec<_> = obs
        .iter()
        .filter(|o| o.agent == "vp1")
        .map(|o| o.obs.clone())
        .collect();
    let mut sent = good.observations.clone();
    sent.sort_by_key(|o| o.block.to_string());
    assert_eq!(mine, sent);
    let traces = store.traces("kp", 0..=u64::MAX).await.expect("traces");
    assert_eq!(
        traces.iter().find(|t| t.agent == "vp1").map(|t| &t.trace),
        Some(&good.traces[0])
    );
    let rounds = store
        .round_agents("kp", 0..=u64::MAX)
        .await
        .expect("rounds");
    let agents: std::collections::BTreeSet<_> = rounds.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(agents.into_iter().collect::<Vec<_>>(), ["vp1", "vp2"]);
    store.close().await;

    let metrics = http
        .get(srv.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("darkwatch_reports_ingested_total 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("darkwatch_reports_duplicate_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("darkwatch_observations_stored_total 12\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("darkwatch_requests_rejected_total{status=\"413\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("darkwatch_agents_seen_5m 2\n"),
        "{metrics}"
    );
}

async fn assignments_follow_campaigns(db: &str) {
    let token = add_agent(db, "vp1");
    let srv = Server::start(db, &[]);
    let http = reqwest::Client::new();
    let get = || async {
        let resp = http
            .get(srv.url("/v1/assignments"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Assignments>().await.expect("assignments")
    };
    assert!(get().await.campaigns.is_empty());

    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--control",
            "198.19.255.0/24",
        ],
    );
    // Agents named by a campaign must be registered (`--agents` checks).
    add_agent(db, "vp7");
    add_agent(db, "vp8");
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "elsewhere",
            "--prefix",
            "198.19.0.0/24",
            "--agents",
            "vp7,vp8",
        ],
    );
    let a = get().await;
    assert_eq!(a.campaigns.len(), 1, "{a:?}");
    let kp = &a.campaigns[0];
    assert_eq!((kp.name.as_str(), kp.interval_secs), ("kp", 600));
    assert_eq!(
        kp.prefixes,
        ["198.18.0.0/16".parse::<ipnet::IpNet>().expect("net")]
    );
    assert_eq!(
        kp.control,
        ["198.19.255.0/24".parse::<ipnet::IpNet>().expect("net")]
    );
    let gen1 = kp.generation;
    // vp1's phase slot in kp: first by name of the three agents that run it.
    assert_eq!(
        a.phases.get("kp"),
        Some(&darkwatch_schema::phase::PhaseSlot { rank: 0, of: 3 })
    );
    assert_eq!(a.phases.len(), 1, "{a:?}");

    // Adding an existing name without --replace is refused and changes nothing.
    let out = cli(db, &["campaign", "add", "kp", "--prefix", "198.18.0.0/24"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(get().await.campaigns[0].generation, gen1);

    // Changing it bumps the generation.
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/17",
            "--interval",
            "60",
            "--replace",
        ],
    );
    let kp = get().await.campaigns.remove(0);
    assert!(kp.generation > gen1);
    assert_eq!(kp.interval_secs, 60);
    assert_eq!(
        kp.prefixes,
        ["198.18.0.0/17".parse::<ipnet::IpNet>().expect("net")]
    );
    let gen2 = kp.generation;

    // Remove, then re-add: the generation never goes back.
    cli_ok(db, &["campaign", "remove", "kp"]);
    assert!(get().await.campaigns.is_empty());
    assert_eq!(
        cli(db, &["campaign", "remove", "kp"]).status.code(),
        Some(65)
    );
    cli_ok(db, &["campaign", "add", "kp", "--prefix", "198.18.0.0/16"]);
    assert!(get().await.campaigns[0].generation > gen2);

    // Listing, as text and JSON, and over HTTP.
    let text = cli_ok(db, &["campaign", "list"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("elsewhere") && l.contains("vp7,vp8")),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "list", "--json"])).expect("json");
    assert_eq!(json.as_array().map(|a| a.len()), Some(2));
    let over_http: serde_json::Value = http
        .get(srv.url("/v1/campaigns"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, json);
}

async fn delegated_campaign(db: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("delegated-apnic");
    std::fs::write(
        &file,
        "2|apnic|20241122|3|19830613|20241121|+1000\n\
         apnic|*|ipv4|*|2|summary\n\
         apnic|KP|ipv4|175.45.176.0|1024|20071109|allocated\n\
         apnic|CN|ipv4|1.0.1.0|256|20110414|allocated\n",
    )
    .expect("write delegated file");
    let f = file.to_str().expect("utf-8 path");
    cli_ok(
        db,
        &["campaign", "add", "kp", "--country", "kp", "--delegated", f],
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "list", "--json"])).expect("json");
    assert_eq!(json[0]["country"], "KP");
    assert_eq!(json[0]["prefixes"], serde_json::json!(["175.45.176.0/22"]));

    std::fs::write(
        &file,
        "apnic|KP|ipv4|175.45.176.0|many|20071109|allocated\n",
    )
    .expect("write");
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "kp2",
            "--country",
            "KP",
            "--delegated",
            f,
        ],
    );
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{f}:1: ")));
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "kp3",
            "--country",
            "FR",
            "--delegated",
            f,
        ],
    );
    assert_eq!(out.status.code(), Some(65), "no prefixes for FR");

    // A file as APNIC publishes it: extended records, registry space,
    // an IPv6 allocation, an odd IPv4 count; one broken line is skipped.
    std::fs::write(
        &file,
        "2|apnic|20241122|6|19830613|20241121|+1000\n\
         apnic|*|ipv4|*|4|summary\n\
         apnic|KP|ipv4|175.45.176.0|768|20071109|allocated|A92E1062\n\
         apnic|ZZ|ipv4|175.45.180.0|256||available|\n\
         apnic||ipv4|175.45.181.0|256||reserved|\n\
         apnic|KP|ipv4|175.45.182.0|lots|20071109|allocated|A92E1062\n\
         apnic|KP|ipv6|2400:8b00::|32|20110216|allocated|A92E1062\n",
    )
    .expect("write");
    let out = cli(
        db,
        &[
            "campaign",
            "add",
            "kp4",
            "--country",
            "KP",
            "--delegated",
            f,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{f}:6: bad IPv4 address count")),
        "{err}"
    );
    assert!(err.contains("1 unparseable line(s)"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(db, &["campaign", "list", "--json"])).expect("json");
    let kp4 = json
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == "kp4")
        .expect("kp4 saved");
    assert_eq!(
        kp4["prefixes"],
        serde_json::json!(["175.45.176.0/23", "175.45.178.0/24", "2400:8b00::/32"])
    );
}

// ---------- instantiation: SQLite always, PostgreSQL when configured ----------

/// Packed rounds over HTTP: stored packed (and counted as observations),
/// accepted against an older generation of the campaign's prefixes the
/// collector knows, refused with 409 `unknown_block_space` against a space
/// it never saw, so that the agent resends plain observations.
async fn packed_reports_follow_known_block_spaces(db: &str) {
    use darkwatch_schema::packed::{pack_chunks, ERROR_UNKNOWN_BLOCK_SPACE};
    use darkwatch_schema::{BlockSpace, PackedBlock};
    let token = add_agent(db, "vp1");
    let add = |prefixes: &[&str], replace: bool| {
        let mut args = vec!["campaign", "add", "kp", "--interval", "60"];
        for p in prefixes {
            args.extend(["--prefix", p]);
        }
        if replace {
            args.push("--replace");
        }
        cli_ok(db, &args);
    };
    add(&["198.18.0.0/20"], false);
    let srv = Server::start(db, &[]);
    let http = reqwest::Client::new();
    // Each post reports another round (a chunk is stored once per round).
    let packed = |prefixes: &[&str], back: u64| {
        let nets: Vec<ipnet::IpNet> = prefixes.iter().map(|p| p.parse().expect("net")).collect();
        let space = BlockSpace::new(&nets);
        let now = now_ms();
        let blocks = (0..space.len())
            .map(|index| PackedBlock {
                index,
                state: BlockState::Up,
                probes: 2,
                replies: 1,
                belief: 255,
                availability: 200,
                rtt: darkwatch_schema::rtt::Rtt::NONE,
            })
            .collect();
        let mut b = batch("kp", 60, 0);
        b.traces.clear();
        b.packed =
            pack_chunks("kp", round_of(now, 60) - back, &space, now, blocks, 10).expect("pack");
        // One round says when its slices started, as agents with phases do.
        if back == 1 {
            let round = round_of(now, 60) - back;
            for p in &mut b.packed {
                p.schedule = Some(darkwatch_schema::phase::RoundSchedule {
                    anchor_ms: darkwatch_schema::round_start_ms(round, 60),
                    span_ms: 50_000,
                    slices: 60,
                    phase: 12,
                });
            }
        }
        b
    };
    let post = |b: ReportBatch| {
        http.post(srv.url("/v1/reports"))
            .bearer_auth(&token)
            .json(&b)
            .send()
    };
    let resp = post(packed(&["198.18.0.0/20"], 0)).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let ack: BatchAck = resp.json().await.expect("ack");
    assert_eq!(ack.observations_stored, 16);

    // The campaign grows; a round packed against the old prefixes (an agent
    // that has not fetched its assignment yet) is still understood.
    add(&["198.18.0.0/20", "198.18.64.0/24"], true);
    let resp = post(packed(&["198.18.0.0/20"], 1)).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post(packed(&["198.18.0.0/20", "198.18.64.0/24"], 2))
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post(packed(&["198.18.0.0/21"], 0)).await.expect("post");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body: ApiError = resp.json().await.expect("error");
    assert_eq!(body.code.as_deref(), Some(ERROR_UNKNOWN_BLOCK_SPACE));
    assert_eq!(counts(db).await.observations, 16 + 16 + 17);
}

db_tests!(
    tokens_and_auth,
    reports_are_stored_once,
    packed_reports_follow_known_block_spaces,
    assignments_follow_campaigns,
    delegated_campaign
);

// ---------- database-independent CLI behaviour ----------

#[test]
fn exit_codes() {
    let out = Command::new(BIN)
        .args(["campaign", "add"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64), "usage error");
    let out = Command::new(BIN).args(["--help"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0));

    // Nothing listens on port 1: the database is unavailable.
    let out = cli("postgres://nobody:x@127.0.0.1:1/none", &["agents", "list"]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line on stderr: {stderr}"
    );
    assert!(
        stderr.starts_with("darkwatch-collector: database unavailable"),
        "{stderr}"
    );

    let out = cli("/nonexistent-dir/x.sqlite", &["agents", "list"]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli("mysql://h/db", &["agents", "list"]);
    assert_eq!(out.status.code(), Some(64));

    let db = Db::sqlite();
    let out = cli(&db.url, &["agents", "add", "bad name!"]);
    assert_eq!(out.status.code(), Some(65));
    let out = cli(&db.url, &["serve", "--tls-cert", "c.pem"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nunknown_key = 1\n").expect("write");
    let out = cli(
        &db.url,
        &["serve", "--config", cfg.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_and_health() {
    let db = Db::sqlite();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("collector.toml");
    // The file names a database; the --db flag (given by Server::start) wins.
    std::fs::write(
        &cfg,
        "db = \"/nonexistent-dir/never.sqlite\"\nmax_body = 4096\n",
    )
    .expect("write");
    let srv = Server::start(&db.url, &["--config", cfg.to_str().expect("utf-8")]);
    let http = reqwest::Client::new();
    let health: serde_json::Value = http
        .get(srv.url("/v1/health"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let resp = http
        .get(srv.url("/v1/nothing-here"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Authentication comes before reading the body: an anonymous large post
    // is a 401; an authenticated one hits the file's max_body, 413.
    let resp = http
        .post(srv.url("/v1/reports"))
        .body(vec![b' '; 8192])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let token = add_agent(&db.url, "vp1");
    let resp = http
        .post(srv.url("/v1/reports"))
        .bearer_auth(&token)
        .body(vec![b' '; 8192])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but openssl cannot make a test certificate"
        );
        eprintln!("skipping TLS test: openssl unavailable");
        return;
    }
    let db = Db::sqlite();
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let srv = Server::start(&db.url, &["--tls-cert", c, "--tls-key", k]);
    assert!(srv.base.starts_with("https://"), "{}", srv.base);
    let root =
        reqwest::Certificate::from_pem(&std::fs::read(&cert).expect("read cert")).expect("cert");
    let http = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .expect("client");
    let resp = http
        .get(srv.url("/v1/health"))
        .send()
        .await
        .expect("https request");
    assert_eq!(resp.status(), StatusCode::OK);
    // Plain HTTP to the TLS port is not served.
    let plain = srv.base.replacen("https://", "http://", 1);
    let plain_ok = reqwest::get(format!("{plain}/v1/health"))
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!plain_ok);

    // A key that is not a key: one clear line, bad data.
    std::fs::write(&key, "not a key").expect("write");
    let out = cli(
        &db.url,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            c,
            "--tls-key",
            k,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let db = Db::sqlite();
    let mut srv = Server::start(&db.url, &[]);
    let pid = srv.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    // Bounded wait so a hang fails the test instead of stalling the suite.
    let mut exit = None;
    for _ in 0..600 {
        if let Some(s) = srv.child.try_wait().expect("wait") {
            exit = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let exit = exit.expect("collector exits after SIGTERM");
    assert_eq!(exit.code(), Some(0), "graceful shutdown exits 0");
}

/// Only PostgreSQL can lose its database under a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_failure_is_503() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let token = add_agent(&db.url, "vp1");
    cli_ok(
        &db.url,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--interval",
            "60",
        ],
    );
    let srv = Server::start(&db.url, &[]);
    let http = reqwest::Client::new();
    let body = serde_json::to_string(&batch("kp", 60, 2)).expect("json");
    let resp = http
        .post(srv.url("/v1/reports"))
        .bearer_auth(&token)
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);

    assert!(db.break_database().await);
    let (st, msg) = error_of(
        http.post(srv.url("/v1/reports"))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    assert!(msg.contains("storage unavailable"), "{msg}");
    let resp = http
        .get(srv.url("/v1/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let metrics = http
        .get(srv.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(metrics.contains("darkwatch_store_up 0"), "{metrics}");
}
