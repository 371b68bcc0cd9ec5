//! kill -9 of the collector in the middle of heavy ingest loses nothing.
//!
//! Many concurrent simulated agents post batches to the real binary; the
//! collector is SIGKILLed while requests are in flight, then restarted on the
//! same database. Every batch it acknowledged before dying must be stored
//! exactly once with all its observations, resending it must be answered
//! `duplicate`, and a batch whose ack was cut off must be storable by a
//! resend. Runs against SQLite and, with `DARKWATCH_TEST_PG`, PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use darkwatch_schema::{
    round_of, round_start_ms, BatchAck, BlockObservation, BlockState, ReportBatch,
};
use sqlx::Row;

use crate::common::{cli_ok, random_hex, Server};

const AGENTS: usize = 40;
const OBS_PER_BATCH: usize = 50;

fn start(db: &str) -> Server {
    Server::start_with(db, &[], &[("RUST_LOG", "error")])
}

/// Batch `seq` of agent `a`: its own round, so every observation is new.
fn make_batch(a: usize, seq: u64, first_round: u64) -> ReportBatch {
    let round = first_round - seq;
    let ts = round_start_ms(round, 60) + 500;
    ReportBatch {
        observations: (0..OBS_PER_BATCH)
            .map(|j| BlockObservation {
                campaign: "kp".into(),
                round,
                block: format!("10.0.{j}.0/24").parse().expect("block"),
                state: BlockState::Down,
                probes: 4,
                replies: 0,
                belief: 0.1,
                availability: 0.5,
                control: false,
                rtt_min_ms: None,
                rtt_median_ms: None,
                ts_ms: ts,
            })
            .collect(),
        ..ReportBatch::new(
            format!("{:04x}{:08x}{}", a, seq, random_hex(4)),
            chrono::Utc::now().timestamp_millis(),
        )
    }
}

type Acked = Vec<(String, ReportBatch)>;

/// Posts from `AGENTS` agents until `stop`; returns acked and unanswered batches.
async fn hammer(
    base: String,
    tokens: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
    acked_so_far: Arc<AtomicUsize>,
) -> (Acked, Acked) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let first_round = round_of(chrono::Utc::now().timestamp_millis(), 60);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let cut = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (a, (name, token)) in tokens.into_iter().enumerate() {
        let (http, base, stop, acked, cut, acked_so_far) = (
            http.clone(),
            base.clone(),
            stop.clone(),
            acked.clone(),
            cut.clone(),
            acked_so_far.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let b = make_batch(a, seq, first_round);
                seq += 1;
                let res = http
                    .post(format!("{base}/v1/reports"))
                    .bearer_auth(&token)
                    .json(&b)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => match r.json::<BatchAck>().await {
                        Ok(ack) if ack.batch_id == b.batch_id && !ack.duplicate => {
                            acked.lock().expect("lock").push((name.clone(), b));
                            acked_so_far.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => cut.lock().expect("lock").push((name.clone(), b)),
                    },
                    // Refused (e.g. 503): not acked, the agent would resend.
                    Ok(_) => cut.lock().expect("lock").push((name.clone(), b)),
                    Err(_) => {
                        // The collector died under us: this batch may or may not be stored.
                        cut.lock().expect("lock").push((name.clone(), b));
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("agent task");
    }
    let a = std::mem::take(&mut *acked.lock().expect("lock"));
    let c = std::mem::take(&mut *cut.lock().expect("lock"));
    (a, c)
}

async fn stored(db: &str) -> (HashMap<String, (String, i64)>, HashMap<String, i64>) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(db)
        .await
        .expect("connect to database");
    let mut batches = HashMap::new();
    for r in sqlx::query("SELECT batch_id, agent, observations FROM batches")
        .fetch_all(&mut conn)
        .await
        .expect("batches")
    {
        batches.insert(
            r.try_get::<String, _>(0).expect("id"),
            (
                r.try_get::<String, _>(1).expect("agent"),
                r.try_get::<i64, _>(2).expect("n"),
            ),
        );
    }
    let mut rows = HashMap::new();
    for r in sqlx::query("SELECT agent, COUNT(*) FROM observations GROUP BY agent")
        .fetch_all(&mut conn)
        .await
        .expect("observations")
    {
        rows.insert(
            r.try_get::<String, _>(0).expect("agent"),
            r.try_get::<i64, _>(1).expect("n"),
        );
    }
    (batches, rows)
}

async fn kill_during_ingest(db: &str) {
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "10.0.0.0/8",
            "--interval",
            "60",
        ],
    );
    let tokens: Vec<(String, String)> = (0..AGENTS)
        .map(|i| {
            let name = format!("vp{i}");
            let t = cli_ok(db, &["agents", "add", &name]).trim().to_string();
            (name, t)
        })
        .collect();

    let mut srv = start(db);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(hammer(
        srv.base.clone(),
        tokens.clone(),
        stop.clone(),
        acked_so_far.clone(),
    ));
    // Let ingest get going (a loaded machine may take seconds to ack the
    // first batches), then SIGKILL mid-flight, with batches still arriving.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked_so_far.load(Ordering::Relaxed) < AGENTS && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.kill();
    stop.store(true, Ordering::Relaxed);
    let (acked, cut) = load.await.expect("load");
    assert!(
        acked.len() >= AGENTS,
        "the load must get going before the crash ({} acked)",
        acked.len()
    );

    // Restart on the same database: the acked batches are all there, once.
    let srv = start(db);
    let (batches, rows) = stored(db).await;
    let mut per_agent: HashMap<&str, i64> = HashMap::new();
    for (agent, n) in batches.values() {
        *per_agent.entry(agent.as_str()).or_default() += n;
    }
    for (agent, b) in &acked {
        let got = batches.get(&b.batch_id);
        assert_eq!(
            got,
            Some(&(agent.clone(), OBS_PER_BATCH as i64)),
            "acked batch {} lost or partial after kill -9",
            b.batch_id
        );
    }
    for (agent, n) in &per_agent {
        assert_eq!(
            rows.get(*agent).copied().unwrap_or(0),
            *n,
            "observation rows of {agent}"
        );
    }

    // Resending: acked ones are duplicates, cut ones are stored now (or were).
    let http = reqwest::Client::new();
    let token_of: HashMap<&str, &str> = tokens
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    for (agent, b) in acked.iter().take(20).chain(cut.iter()) {
        let ack: BatchAck = http
            .post(srv.url("/v1/reports"))
            .bearer_auth(token_of[agent.as_str()])
            .json(b)
            .send()
            .await
            .expect("resend")
            .json()
            .await
            .expect("ack");
        if acked.iter().any(|(_, a)| a.batch_id == b.batch_id) {
            assert!(ack.duplicate, "acked batch {} stored twice", b.batch_id);
        }
    }
    let (batches, _) = stored(db).await;
    for (_, b) in acked.iter().chain(cut.iter()) {
        assert!(
            batches.contains_key(&b.batch_id),
            "batch {} missing after resend",
            b.batch_id
        );
    }
    eprintln!(
        "kill -9 during ingest: {} acked, {} cut, 0 lost, {} batches stored",
        acked.len(),
        cut.len(),
        batches.len()
    );
}

db_tests!(kill_during_ingest);
