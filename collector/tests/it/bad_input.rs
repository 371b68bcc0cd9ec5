//! Bad input at the API, against the real `darkwatch-collector` binary.
//!
//! Each hostile or broken request (oversized, truncated, malformed, mistyped,
//! timestamps far off, unknown campaign or block, SQL in names, duplicate
//! batches, missing/forged/revoked/garbled tokens, slow and stalled clients)
//! must get its status code and a clear one-line message, and afterwards the
//! rows stored before it must be exactly as they were. Runs against SQLite
//! and, when `DARKWATCH_TEST_PG` is set, PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use darkwatch_collector::store::{SqlStore, Store, StoreCounts};
use darkwatch_schema::{round_of, ApiError, BatchAck, BlockObservation, BlockState, ReportBatch};
use reqwest::StatusCode;

use crate::common::{cli_ok, random_hex, Server};

/// Request deadline given to the server under test (seconds).
const DEADLINE_SECS: u64 = 2;

/// The server under test: a small body cap and a short request deadline.
fn start(db: &str) -> Server {
    Server::start_with(
        db,
        &["--max-body", "65536"],
        &[("DARKWATCH_REQUEST_TIMEOUT_SECS", &DEADLINE_SECS.to_string())],
    )
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

fn batch(blocks: u8) -> ReportBatch {
    let now = now_ms();
    ReportBatch {
        observations: (0..blocks)
            .map(|i| BlockObservation {
                campaign: "kp".into(),
                round: round_of(now, 60),
                block: format!("198.18.{i}.0/24").parse().expect("block"),
                state: BlockState::Up,
                probes: 3,
                replies: 1,
                belief: 0.9,
                availability: 0.5,
                control: false,
                rtt_min_ms: None,
                rtt_median_ms: None,
                ts_ms: now,
            })
            .collect(),
        ..ReportBatch::new(random_hex(12), now)
    }
}

async fn expect_error(resp: reqwest::Response, status: StatusCode, needle: &str) {
    let got = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    let err: ApiError = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not an ApiError ({e}): {text}"));
    assert!(
        err.error.contains(needle),
        "expected {needle:?} in {:?}",
        err.error
    );
    assert!(
        !err.error.contains('\n'),
        "one-line message: {:?}",
        err.error
    );
}

/// Sends raw bytes on a fresh connection and returns what the server
/// answered before closing (or until `wait`).
fn raw_exchange(addr: &str, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

async fn bad_input(db: &str) {
    let token = cli_ok(db, &["agents", "add", "vp1"]).trim().to_string();
    let revoked = cli_ok(db, &["agents", "add", "vp2"]).trim().to_string();
    cli_ok(db, &["agents", "revoke", "vp2"]);
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
    let srv = start(db);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/reports", srv.base);
    let post = |tok: &str, body: Vec<u8>| {
        http.post(&url)
            .bearer_auth(tok)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Something stored first, that nothing below may harm.
    let good = batch(5);
    let resp = post(&token, serde_json::to_vec(&good).expect("json"))
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let before = counts(db).await;
    assert_eq!((before.batches, before.observations), (1, 5));

    // Duplicate batch: acknowledged as such, nothing new written.
    let resp = post(&token, serde_json::to_vec(&good).expect("json"))
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let ack: BatchAck = resp.json().await.expect("ack");
    assert!(ack.duplicate && ack.observations_stored == 0, "{ack:?}");
    // Same id, different content: still the first one wins.
    let mut changed = batch(7);
    changed.batch_id = good.batch_id.clone();
    let ack: BatchAck = post(&token, serde_json::to_vec(&changed).expect("json"))
        .await
        .expect("post")
        .json()
        .await
        .expect("ack");
    assert!(ack.duplicate, "{ack:?}");

    // Authentication: missing, garbled, forged, revoked.
    let r = http.post(&url).body("{}").send().await.expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "missing bearer token").await;
    let r = http
        .post(&url)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body("{}")
        .send()
        .await
        .expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "not 'Bearer <token>'").await;
    let r = http
        .post(&url)
        .header("authorization", b"Bearer \xff\xfe".as_slice())
        .body("{}")
        .send()
        .await
        .expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "").await;
    let r = post(
        &random_hex(32),
        serde_json::to_vec(&batch(1)).expect("json"),
    )
    .await
    .expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid token").await;
    // The stored hash is not a token.
    let r = post(
        &darkwatch_collector::tokens::hash(&token),
        serde_json::to_vec(&batch(1)).expect("json"),
    )
    .await
    .expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid token").await;
    let r = post(&revoked, serde_json::to_vec(&batch(1)).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::UNAUTHORIZED, "revoked").await;

    // Body shape.
    let r = post(&token, vec![b' '; 70_000]).await.expect("post");
    expect_error(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the collector accepts",
    )
    .await;
    let full = serde_json::to_vec(&batch(3)).expect("json");
    let r = post(&token, full[..full.len() / 2].to_vec())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "invalid report JSON").await;
    let r = post(&token, Vec::new()).await.expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "invalid report JSON").await;
    let r = post(&token, b"\x00\x01binary\xff".to_vec())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "invalid report JSON").await;
    let r = post(&token, b"[1,2,3]".to_vec()).await.expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "invalid report JSON").await;
    let mut v = serde_json::to_value(batch(2)).expect("json");
    v["observations"][0]["belief"] = serde_json::json!("high");
    let r = post(&token, v.to_string().into_bytes())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "observations[0].belief").await;
    let mut v = serde_json::to_value(batch(2)).expect("json");
    v["observations"][1]["probes"] = serde_json::json!(-4);
    let r = post(&token, v.to_string().into_bytes())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "observations[1].probes").await;
    let mut v = serde_json::to_value(batch(1)).expect("json");
    v["sneaky"] = serde_json::json!(1);
    let r = post(&token, v.to_string().into_bytes())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "unknown field").await;
    let mut v = serde_json::to_value(batch(1)).expect("json");
    v["observations"][0]["block"] = serde_json::json!("198.18.0.0/33");
    let r = post(&token, v.to_string().into_bytes())
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "observations[0].block").await;

    // Values serde accepts but the collector must not.
    let mut b = batch(1);
    b.batch_id = "'; DROP TABLE batches; --".into();
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "batch_id").await;
    let mut b = batch(1);
    b.observations[0].campaign = "kp' OR '1'='1".into();
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "campaign name").await;
    let mut b = batch(1);
    b.created_ms = 631_152_000_000; // 1990
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "outside the accepted range").await;
    let mut b = batch(1);
    b.observations[0].ts_ms = now_ms() + 365 * 24 * 3600 * 1000;
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "outside the accepted range").await;
    let mut b = batch(1);
    b.observations[0].ts_ms = i64::MIN;
    b.created_ms = i64::MAX;
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "outside the accepted range").await;
    let mut b = batch(1);
    b.observations[0].round = u64::MAX;
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "does not match timestamp").await;
    let mut b = batch(1);
    b.observations[0].belief = f64::MAX;
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::BAD_REQUEST, "[0, 1]").await;
    let mut b = batch(1);
    b.observations[0].campaign = "cu".into();
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "unknown campaign").await;
    let mut b = batch(2);
    b.observations[1].block = "203.0.113.0/24".parse().expect("block");
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "not part of campaign").await;
    // A round that has not begun by the collector's clock (an agent clock a
    // round ahead, timestamps consistent with it): 409 with the reason, and
    // nothing stored, so the real round is stored when it comes (it used to
    // be answered `observations_stored: 0` behind the early one).
    let mut b = batch(1);
    let ahead = now_ms() + 120_000; // two rounds: no minute boundary can make it current
    b.observations[0].ts_ms = ahead;
    b.observations[0].round = round_of(ahead, 60);
    let r = post(&token, serde_json::to_vec(&b).expect("json"))
        .await
        .expect("post");
    expect_error(
        r,
        StatusCode::CONFLICT,
        "has not begun by the collector's clock",
    )
    .await;

    // A stalled upload: headers promise a body that never comes. It is cut
    // with 408, and meanwhile other clients are served.
    let addr = srv.addr();
    let stalled = {
        let addr = addr.clone();
        let token = token.clone();
        std::thread::spawn(move || {
            let head = format!(
                "POST /v1/reports HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
                 content-type: application/json\r\ncontent-length: 5000\r\n\r\n{{\"batch_id\""
            );
            raw_exchange(&addr, head.as_bytes(), Duration::from_secs(60))
        })
    };
    // A client that never finishes its headers, held open alongside.
    let mut half = TcpStream::connect(&addr).expect("connect");
    half.write_all(b"POST /v1/reports HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    for _ in 0..3 {
        let r = http
            .get(format!("{}/v1/health", srv.base))
            .send()
            .await
            .expect("health while a client stalls");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let answer = stalled.join().expect("stalled client thread");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled upload must get 408, got {answer:?}"
    );
    assert!(answer.contains("slow or stalled"), "{answer}");
    drop(half);

    // A dribbling client: a byte at a time, slower than the deadline allows.
    let dribble = {
        let addr = addr.clone();
        let token = token.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            let head = format!(
                "POST /v1/reports HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
                 content-length: 200\r\n\r\n"
            );
            s.write_all(head.as_bytes()).expect("write");
            for _ in 0..(DEADLINE_SECS * 4 + 8) {
                if s.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).to_string()
        })
    };
    let answer = dribble.join().expect("dribble thread");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "dribbling upload must get 408, got {answer:?}"
    );

    // A good batch still goes through, and nothing stored before was touched.
    let mut after_good = batch(4);
    for (i, o) in after_good.observations.iter_mut().enumerate() {
        // Other blocks than the first batch's: same (agent, round, block) is one row.
        o.block = format!("198.18.{}.0/24", 100 + i).parse().expect("block");
    }
    let r = post(&token, serde_json::to_vec(&after_good).expect("json"))
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let after = counts(db).await;
    assert_eq!(
        (after.batches, after.observations, after.traces),
        (before.batches + 1, before.observations + 4, before.traces),
        "refused requests must not change what is stored"
    );
    let listed = cli_ok(db, &["agents", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("vp1")), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("vp2") && l.ends_with("yes")),
        "{listed}"
    );
}

db_tests!(bad_input);
