//! Load generation against a collector on loopback, and proof of what it stored.
//!
//! Many simulated agents post valid report batches concurrently for a bounded
//! time; every acknowledged batch id is recorded with its observation count.
//! Afterwards the database is read back (sqlite3 / psql) and each acked batch
//! must be stored exactly once with all of its observations. Batch making,
//! percentiles and the verification itself are pure and unit-tested; the
//! HTTP loop, the RSS sampler and the database reads are thin I/O around them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_schema::{round_of, round_start_ms, BlockObservation, BlockState, ReportBatch};
use serde::Serialize;

use crate::harness::db_query;

/// Campaign the load generator creates and reports for.
pub const LOAD_CAMPAIGN: &str = "load";
/// Prefix of that campaign: observations use its /24s.
pub const LOAD_PREFIX: &str = "10.0.0.0/8";
/// Round length of the load campaign.
pub const LOAD_INTERVAL_SECS: u64 = 60;

/// One simulated agent.
#[derive(Debug, Clone)]
pub struct LoadAgent {
    pub name: String,
    pub token: String,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `http://127.0.0.1:PORT` (loopback only).
    pub base_url: String,
    pub agents: Vec<LoadAgent>,
    pub duration: Duration,
    pub obs_per_batch: usize,
    /// Random per run, so that batch ids never collide across runs.
    pub run_id: u32,
    /// Pid of the collector, to sample its resident memory.
    pub collector_pid: Option<u32>,
}

/// A batch the collector acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acked {
    pub batch_id: String,
    pub agent: String,
    pub observations: u64,
}

/// What happened during a run.
#[derive(Debug, Default, Serialize)]
pub struct LoadOutcome {
    pub acked: Vec<Acked>,
    /// Requests that got no 200 (status or transport error), by kind.
    pub failures: BTreeMap<String, u64>,
    /// Latency of acknowledged requests, milliseconds.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
    pub elapsed_secs: f64,
    pub max_rss_kib: Option<u64>,
}

/// The figures a run yields.
#[derive(Debug, Serialize, PartialEq)]
pub struct LoadSummary {
    pub agents: usize,
    pub seconds: f64,
    pub batches_acked: u64,
    pub observations_acked: u64,
    pub batches_per_sec: f64,
    pub observations_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failed_requests: u64,
    pub max_rss_mib: Option<f64>,
}

/// Refuses anything but a loopback URL: load goes to 127.0.0.1 only.
pub fn check_loopback(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only plain http:// on loopback is supported"))?;
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    let ok = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback());
    if !ok {
        bail!("{url:?}: the load generator only talks to loopback addresses");
    }
    Ok(())
}

/// Batch id of batch `seq` of agent `agent_idx` in run `run_id` (hex, 24 chars).
pub fn batch_id(run_id: u32, agent_idx: usize, seq: u64) -> String {
    format!("{run_id:08x}{:06x}{:010x}", agent_idx & 0xff_ffff, seq)
}

/// Batch `seq` of an agent: one round per batch, counting back from
/// `first_round`, so that no two batches of an agent share a
/// (round, block) key and every observation is new.
pub fn make_batch(
    run_id: u32,
    agent_idx: usize,
    seq: u64,
    obs_per_batch: usize,
    first_round: u64,
    now_ms: i64,
) -> ReportBatch {
    let round = first_round.saturating_sub(seq);
    let ts_ms = round_start_ms(round, LOAD_INTERVAL_SECS) + 1000;
    let observations = (0..obs_per_batch)
        .map(|j| {
            // is_multiple_of is newer than the workspace's rust-version (1.85).
            #[allow(clippy::manual_is_multiple_of)]
            let up = (j + agent_idx + seq as usize) % 5 != 0;
            BlockObservation {
                campaign: LOAD_CAMPAIGN.into(),
                round,
                block: format!("10.{}.{}.0/24", (j >> 8) & 0xff, j & 0xff)
                    .parse()
                    .expect("a valid /24"),
                state: if up { BlockState::Up } else { BlockState::Down },
                probes: 4,
                replies: if up { 2 } else { 0 },
                belief: if up { 0.97 } else { 0.03 },
                availability: 0.6,
                control: false,
                rtt_min_ms: None,
                rtt_median_ms: None,
                ts_ms,
            }
        })
        .collect();
    ReportBatch {
        observations,
        ..ReportBatch::new(batch_id(run_id, agent_idx, seq), now_ms)
    }
}

/// The `p`-th percentile (0..=100) of `sorted` (nearest rank), 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl LoadOutcome {
    pub fn summary(&self, agents: usize) -> LoadSummary {
        let mut lat = self.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let obs: u64 = self.acked.iter().map(|a| a.observations).sum();
        let secs = self.elapsed_secs.max(1e-9);
        LoadSummary {
            agents,
            seconds: self.elapsed_secs,
            batches_acked: self.acked.len() as u64,
            observations_acked: obs,
            batches_per_sec: self.acked.len() as f64 / secs,
            observations_per_sec: obs as f64 / secs,
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            failed_requests: self.failures.values().sum(),
            max_rss_mib: self.max_rss_kib.map(|k| k as f64 / 1024.0),
        }
    }
}

/// What the database holds, as far as verification needs it.
#[derive(Debug, Default, Clone)]
pub struct Stored {
    /// batch_id → (agent, observations recorded with the batch).
    pub batches: HashMap<String, (String, u64)>,
    /// Rows of the observations table per agent.
    pub observation_rows: HashMap<String, u64>,
}

/// Result of checking acked batches against the database.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Verification {
    pub acked: u64,
    /// Acked but absent: lost.
    pub missing: Vec<String>,
    /// Present, but under another agent or with fewer observations.
    pub wrong: Vec<String>,
    /// Stored without an ack reaching the client (e.g. cut by a crash):
    /// allowed, the agent would resend and get `duplicate`.
    pub unacked_stored: u64,
    /// Agents whose observation rows differ from the sum over their batches
    /// (a duplicate or partial insert).
    pub row_mismatch: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.wrong.is_empty() && self.row_mismatch.is_empty()
    }
}

/// Checks that every acked batch is stored exactly once with all its
/// observations. Only agents named in `acked` are considered.
pub fn verify(acked: &[Acked], stored: &Stored) -> Verification {
    let mut v = Verification {
        acked: acked.len() as u64,
        ..Default::default()
    };
    let mut agents: BTreeMap<&str, ()> = BTreeMap::new();
    let mut acked_ids: HashMap<&str, ()> = HashMap::new();
    for a in acked {
        agents.insert(&a.agent, ());
        acked_ids.insert(&a.batch_id, ());
        match stored.batches.get(&a.batch_id) {
            None => v.missing.push(a.batch_id.clone()),
            Some((agent, n)) if *agent != a.agent || *n != a.observations => {
                v.wrong.push(a.batch_id.clone())
            }
            Some(_) => {}
        }
    }
    let mut per_agent: HashMap<&str, u64> = HashMap::new();
    for (id, (agent, n)) in &stored.batches {
        if agents.contains_key(agent.as_str()) {
            *per_agent.entry(agent).or_default() += n;
            if !acked_ids.contains_key(id.as_str()) {
                v.unacked_stored += 1;
            }
        }
    }
    for agent in agents.keys() {
        let expect = per_agent.get(agent).copied().unwrap_or(0);
        let rows = stored.observation_rows.get(*agent).copied().unwrap_or(0);
        if expect != rows {
            v.row_mismatch
                .push(format!("{agent}: {rows} rows, batches say {expect}"));
        }
    }
    v
}

/// Reads batches and per-agent observation counts from the database.
pub fn read_stored(db_url: &str) -> Result<Stored> {
    let mut s = Stored::default();
    for r in db_query(db_url, "SELECT batch_id, agent, observations FROM batches")? {
        if let [id, agent, n] = r.as_slice() {
            s.batches.insert(id.clone(), (agent.clone(), n.parse()?));
        }
    }
    for r in db_query(
        db_url,
        "SELECT agent, COUNT(*) FROM observations GROUP BY agent",
    )? {
        if let [agent, n] = r.as_slice() {
            s.observation_rows.insert(agent.clone(), n.parse()?);
        }
    }
    // Packed rounds are stored as they came, a record per chunk: their
    // blocks count as the agent's rows.
    for r in db_query(
        db_url,
        "SELECT agent, SUM(blocks) FROM round_records GROUP BY agent",
    )? {
        if let [agent, n] = r.as_slice() {
            *s.observation_rows.entry(agent.clone()).or_default() += n.parse::<u64>()?;
        }
    }
    Ok(s)
}

/// Creates `n` agents and the load campaign through the collector CLI.
pub fn setup(collector_bin: &Path, db_url: &str, n: usize, run_id: u32) -> Result<Vec<LoadAgent>> {
    let cli = |args: &[&str]| -> Result<String> {
        let out = Command::new(collector_bin)
            .args(args)
            .args(["--db", db_url])
            .env_remove("DARKWATCH_DB")
            .output()
            .with_context(|| format!("run {}", collector_bin.display()))?;
        if !out.status.success() {
            bail!(
                "collector {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    let interval = LOAD_INTERVAL_SECS.to_string();
    let listed = cli(&["campaign", "list"]).unwrap_or_default();
    if !listed
        .lines()
        .any(|l| l.split_whitespace().next() == Some(LOAD_CAMPAIGN))
    {
        cli(&[
            "campaign",
            "add",
            LOAD_CAMPAIGN,
            "--prefix",
            LOAD_PREFIX,
            "--interval",
            &interval,
        ])?;
    }
    (0..n)
        .map(|i| {
            let name = format!("load-{run_id:08x}-{i}");
            let token = cli(&["agents", "add", &name])?.trim().to_string();
            Ok(LoadAgent { name, token })
        })
        .collect()
}

/// Resident set size of `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Posts batches from every agent concurrently until `cfg.duration` is up
/// (or `stop` is set), recording every ack.
pub async fn run(cfg: &LoadConfig, stop: Arc<AtomicBool>) -> Result<LoadOutcome> {
    check_loopback(&cfg.base_url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/v1/reports", cfg.base_url.trim_end_matches('/'));
    let first_round = round_of(now_ms(), LOAD_INTERVAL_SECS);
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let max_rss = Arc::new(AtomicU64::new(0));

    let sampler = cfg.collector_pid.map(|pid| {
        let max_rss = max_rss.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if let Some(k) = rss_kib(pid) {
                    max_rss.fetch_max(k, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    let mut tasks = Vec::new();
    for (idx, agent) in cfg.agents.iter().cloned().enumerate() {
        let (client, url, acked, lat, failures, stop) = (
            client.clone(),
            url.clone(),
            acked.clone(),
            lat.clone(),
            failures.clone(),
            stop.clone(),
        );
        let (run_id, per) = (cfg.run_id, cfg.obs_per_batch);
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let batch = make_batch(run_id, idx, seq, per, first_round, now_ms());
                let body = match serde_json::to_vec(&batch) {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let t0 = Instant::now();
                let res = client
                    .post(&url)
                    .bearer_auth(&agent.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let kind = match res {
                    Ok(r) if r.status().is_success() => {
                        // The ack is the body; a cut body is not an ack.
                        match r.json::<darkwatch_schema::BatchAck>().await {
                            Ok(ack) if ack.batch_id == batch.batch_id => {
                                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                                lat.lock().expect("lock").push(ms);
                                acked.lock().expect("lock").push(Acked {
                                    batch_id: ack.batch_id,
                                    agent: agent.name.clone(),
                                    observations: batch.observations.len() as u64,
                                });
                                seq += 1;
                                continue;
                            }
                            _ => "bad ack".to_string(),
                        }
                    }
                    Ok(r) => format!("http {}", r.status().as_u16()),
                    Err(e) if e.is_timeout() => "timeout".into(),
                    Err(e) if e.is_connect() => "connect".into(),
                    Err(_) => "transport".into(),
                };
                *failures.lock().expect("lock").entry(kind).or_default() += 1;
                // Resend the same batch (as an agent would) after a pause.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let elapsed_secs = started.elapsed().as_secs_f64();
    let max = max_rss.load(Ordering::Relaxed);
    let failures = std::mem::take(&mut *failures.lock().expect("lock"));
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let latencies_ms = std::mem::take(&mut *lat.lock().expect("lock"));
    Ok(LoadOutcome {
        acked,
        latencies_ms,
        failures,
        elapsed_secs,
        max_rss_kib: (max > 0).then_some(max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("http://127.0.0.1:8080").is_ok());
        assert!(check_loopback("http://localhost:1/x").is_ok());
        assert!(check_loopback("http://[::1]:9").is_ok());
        assert!(check_loopback("http://192.0.2.1:80").is_err());
        assert!(check_loopback("http://example.com").is_err());
        assert!(check_loopback("https://127.0.0.1:1").is_err());
    }

    #[test]
    fn batches_are_valid_and_distinct() {
        let now = 1_800_000_000_000;
        let first = round_of(now, LOAD_INTERVAL_SECS);
        let a = make_batch(7, 3, 0, 300, first, now);
        let b = make_batch(7, 3, 1, 300, first, now);
        a.validate(now).expect("valid");
        b.validate(now).expect("valid");
        assert_ne!(a.batch_id, b.batch_id);
        assert_ne!(a.observations[0].round, b.observations[0].round);
        assert_eq!(a.observations.len(), 300);
        // Every block of a batch is different.
        let mut blocks: Vec<_> = a.observations.iter().map(|o| o.block).collect();
        blocks.sort();
        blocks.dedup();
        assert_eq!(blocks.len(), 300);
        assert_ne!(batch_id(1, 2, 3), batch_id(1, 3, 2));
        assert_eq!(
            round_of(a.observations[0].ts_ms, LOAD_INTERVAL_SECS),
            a.observations[0].round
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    fn acked(id: &str, agent: &str, n: u64) -> Acked {
        Acked {
            batch_id: id.into(),
            agent: agent.into(),
            observations: n,
        }
    }

    #[test]
    fn verification_finds_loss_partial_and_duplicates() {
        let acks = [
            acked("a1", "x", 10),
            acked("a2", "x", 10),
            acked("b1", "y", 5),
        ];
        let mut s = Stored::default();
        s.batches.insert("a1".into(), ("x".into(), 10));
        s.batches.insert("a2".into(), ("x".into(), 10));
        s.batches.insert("b1".into(), ("y".into(), 5));
        s.batches.insert("b2".into(), ("y".into(), 5)); // stored, ack lost
        s.batches.insert("z".into(), ("other".into(), 99)); // not ours
        s.observation_rows.insert("x".into(), 20);
        s.observation_rows.insert("y".into(), 10);
        let v = verify(&acks, &s);
        assert!(v.ok(), "{v:?}");
        assert_eq!(v.unacked_stored, 1);

        let mut lost = s.clone();
        lost.batches.remove("a2");
        lost.observation_rows.insert("x".into(), 10);
        let v = verify(&acks, &lost);
        assert_eq!(v.missing, vec!["a2".to_string()]);
        assert!(!v.ok());

        let mut partial = s.clone();
        partial.batches.insert("a1".into(), ("x".into(), 9));
        assert_eq!(verify(&acks, &partial).wrong, vec!["a1".to_string()]);

        let mut dup = s.clone();
        dup.observation_rows.insert("x".into(), 30);
        assert_eq!(verify(&acks, &dup).row_mismatch.len(), 1);
    }

    #[test]
    fn summary_figures() {
        let o = LoadOutcome {
            acked: vec![acked("a", "x", 100), acked("b", "x", 100)],
            latencies_ms: vec![3.0, 1.0],
            elapsed_secs: 2.0,
            max_rss_kib: Some(2048),
            ..Default::default()
        };
        let s = o.summary(1);
        assert_eq!(s.batches_per_sec, 1.0);
        assert_eq!(s.observations_per_sec, 100.0);
        assert_eq!((s.p50_ms, s.p99_ms), (1.0, 3.0));
        assert_eq!(s.max_rss_mib, Some(2.0));
    }
}
