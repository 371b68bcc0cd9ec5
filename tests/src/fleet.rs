//! Fleet load: a real fleet's rate, where `load` measures saturation.
//!
//! Each of N agents posts one packed round of B blocks per round, at its own
//! offset in the round (real agents start whenever their host did, so their
//! rounds are spread over the interval), for R rounds (the steady phase).
//! Then the burst: every agent drains a spool of H rounds at once, as after
//! a collector outage of H rounds, oldest first, one request at a time per
//! agent as the agent's sender does.
//!
//! Rounds are time-compressed: the campaign's interval (`round_secs`)
//! stands for a real round (`real_round_secs`, 600 s), so the collector sees
//! [`rate_factor`] times the request rate of the real fleet (`fleet_size`
//! agents, 5,000; fewer agents in shorter rounds can make the real rate
//! exactly, with fewer distinct agents). The CPU a
//! real round costs is the measured share divided by that factor (the work
//! per request does not depend on the rate). Latency is measured at the
//! compressed rate, a harder load than the real one. The burst does not
//! depend on compression: it is as fast as the collector takes it, and its
//! goal is to land within 2 real rounds.
//!
//! Schedule, batches and figures are pure and unit-tested; `run` is the
//! HTTP loop around them, `setup` the database set-up.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_schema::packed::{pack_chunks, PackedBlock};
use darkwatch_schema::rtt::Rtt;
use darkwatch_schema::{round_of, round_start_ms, BatchAck, BlockSpace, BlockState, ReportBatch};
use serde::Serialize;

use crate::load::{batch_id, check_loopback, percentile, Acked, LoadAgent};

/// Campaign the fleet reports for, and its prefix (65,536 /24s).
pub const FLEET_CAMPAIGN: &str = "fleet";
pub const FLEET_PREFIX: &str = "10.0.0.0/8";

/// What to send.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `http://127.0.0.1:PORT` (loopback only).
    pub base_url: String,
    pub agents: Vec<LoadAgent>,
    /// Blocks per agent per round.
    pub blocks: usize,
    /// The campaign's interval: one compressed round.
    pub round_secs: u64,
    /// The real round it stands for.
    pub real_round_secs: u64,
    /// Agents of the real fleet the run stands for.
    pub fleet_size: usize,
    /// Rounds of the steady phase.
    pub rounds: u64,
    /// Rounds each agent's spool holds at the burst.
    pub outage_rounds: u64,
    pub run_id: u32,
    pub collector_pid: Option<u32>,
}

/// One request's fate.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub acked: Vec<Acked>,
    pub latencies_ms: Vec<f64>,
    pub failures: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    /// Collector CPU seconds (user + system) over the phase.
    pub cpu_secs: Option<f64>,
}

/// The figures of a phase, against the goals.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseSummary {
    pub batches: u64,
    pub blocks: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub failed_requests: u64,
    /// Share of one core the collector used, at the rate sent.
    pub cpu_core_share: Option<f64>,
}

impl Phase {
    pub fn summary(&self) -> PhaseSummary {
        let mut lat = self.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        let secs = self.elapsed_secs.max(1e-9);
        PhaseSummary {
            batches: self.acked.len() as u64,
            blocks: self.acked.iter().map(|a| a.observations).sum(),
            seconds: self.elapsed_secs,
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            max_ms: lat.last().copied().unwrap_or(0.0),
            failed_requests: self.failures.values().sum(),
            cpu_core_share: self.cpu_secs.map(|c| c / secs),
        }
    }
}

/// Where in its round agent `idx` reports (ms after the round starts):
/// spread over the round by a fixed hash of the index, as hosts started at
/// unrelated times are.
pub fn offset_ms(idx: usize, round_ms: u64) -> u64 {
    // splitmix64: a fixed, well-spread hash.
    let mut z = (idx as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % round_ms.max(1)
}

/// Agent `idx`'s packed round `round`: `blocks` blocks of `space` (a
/// window that differs by agent), one in five down. Its id is unique per
/// run, agent and round.
pub fn fleet_batch(
    run_id: u32,
    idx: usize,
    round: u64,
    interval_secs: u64,
    space: &BlockSpace,
    blocks: usize,
    now_ms: i64,
) -> Result<ReportBatch> {
    let n = space.len();
    let start = (idx as u64).wrapping_mul(7_919) % n;
    let packed: Vec<PackedBlock> = (0..blocks as u64)
        .map(|j| {
            let up = (j + idx as u64 + round) % 5 != 0;
            PackedBlock {
                index: (start + j) % n,
                state: if up { BlockState::Up } else { BlockState::Down },
                probes: if up { 1 } else { 4 },
                replies: u32::from(up),
                belief: if up { 250 } else { 5 },
                availability: 150,
                // Real rounds carry reply times for blocks that answered.
                rtt: if up {
                    Rtt::from_ms(Some(40.0 + (j % 7) as f64), Some(45.0 + (j % 11) as f64))
                } else {
                    Rtt::NONE
                },
            }
        })
        .collect();
    let ts_ms = round_start_ms(round, interval_secs);
    let packed = pack_chunks(FLEET_CAMPAIGN, round, space, ts_ms, packed, blocks.max(1))?;
    Ok(ReportBatch {
        packed,
        ..ReportBatch::new(batch_id(run_id, idx, round), now_ms)
    })
}

/// The request rate sent over the real fleet's: (agents / round) over
/// (fleet size / real round).
pub fn rate_factor(cfg: &FleetConfig) -> f64 {
    let sent = cfg.agents.len() as f64 / cfg.round_secs.max(1) as f64;
    let real = cfg.fleet_size as f64 / cfg.real_round_secs.max(1) as f64;
    sent / real.max(f64::MIN_POSITIVE)
}

/// Goals of issue 28 (point 7), as a line per figure: met or not.
pub fn verdicts(
    steady: &PhaseSummary,
    burst: &PhaseSummary,
    cfg: &FleetConfig,
    lost: u64,
) -> Vec<String> {
    let compress = rate_factor(cfg);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut v = vec![
        format!(
            "p99 ingest < 100 ms: {:.1} ms, {}",
            steady.p99_ms,
            met(steady.p99_ms < 100.0)
        ),
        format!("0 lost: {lost} lost, {}", met(lost == 0)),
    ];
    if let Some(c) = steady.cpu_core_share {
        let real = c / compress;
        v.push(format!(
            "collector CPU < 25 % of a core at the real rate: {:.1} % ({:.1} % measured at {compress:.1}x), {}",
            real * 100.0,
            c * 100.0,
            met(real < 0.25)
        ));
    }
    let budget = 2.0 * cfg.real_round_secs as f64;
    v.push(format!(
        "burst lands within 2 rounds ({budget:.0} s): {:.1} s, {}",
        burst.seconds,
        met(burst.seconds <= budget)
    ));
    v
}

/// Creates the fleet campaign through the CLI (which creates the database)
/// and `n` agents straight in its `agents` table: thousands of CLI runs
/// would take longer than the load. Tokens are stored hashed, as the CLI
/// stores them.
pub fn setup(
    collector_bin: &Path,
    db_url: &str,
    n: usize,
    run_id: u32,
    round_secs: u64,
) -> Result<Vec<LoadAgent>> {
    let out = Command::new(collector_bin)
        .args(["campaign", "add", FLEET_CAMPAIGN, "--prefix", FLEET_PREFIX])
        .args(["--interval", &round_secs.to_string(), "--db", db_url])
        .env_remove("DARKWATCH_DB")
        .output()
        .with_context(|| format!("run {}", collector_bin.display()))?;
    if !out.status.success() {
        bail!(
            "campaign add: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let agents: Vec<LoadAgent> = (0..n)
        .map(|i| LoadAgent {
            name: format!("fleet-{run_id:08x}-{i}"),
            token: format!("{run_id:08x}{i:056x}"),
        })
        .collect();
    for chunk in agents.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|a| {
                use sha2::Digest;
                let hash = hex::encode(sha2::Sha256::digest(a.token.as_bytes()));
                format!("('{}', '{hash}', 0)", a.name)
            })
            .collect();
        let sql = format!(
            "INSERT INTO agents (name, token_hash, created_ms) VALUES {}",
            values.join(",")
        );
        exec(db_url, &sql)?;
    }
    Ok(agents)
}

fn exec(db_url: &str, sql: &str) -> Result<()> {
    let out = if db_url.starts_with("postgres") {
        Command::new("psql")
            .arg(db_url)
            .args(["-qtA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()?
    } else {
        let path = db_url.strip_prefix("sqlite://").unwrap_or(db_url);
        Command::new("sqlite3").args([path, sql]).output()?
    };
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// CPU seconds (user + system) `pid` has used, from /proc.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, 100 on every Linux architecture in use.
    Some(ticks as f64 / 100.0)
}

/// The wait before try `tries + 1`, as the agent's sender waits: 0.5 s,
/// doubling up to `report.retry_max_secs` (300 s by default).
pub fn retry_after(tries: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(tries.min(16))).min(Duration::from_secs(300))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Shared by an agent's tasks: where results go.
#[derive(Clone)]
struct Sink {
    client: reqwest::Client,
    url: String,
    out: Arc<Mutex<Phase>>,
}

impl Sink {
    /// Posts `batch` until acked (a failed try is counted and retried after
    /// the agent's backoff, [`retry_after`]) or `give_up` passes.
    async fn post(&self, agent: &LoadAgent, batch: &ReportBatch, give_up: Instant) {
        let Ok(body) = serde_json::to_vec(batch) else {
            return;
        };
        let blocks: u64 = batch.packed.iter().map(|p| u64::from(p.blocks)).sum();
        let mut tries = 0;
        while Instant::now() < give_up {
            let t0 = Instant::now();
            let res = self
                .client
                .post(&self.url)
                .bearer_auth(&agent.token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let kind = match res {
                Ok(r) if r.status().is_success() => match r.json::<BatchAck>().await {
                    Ok(ack) if ack.batch_id == batch.batch_id => {
                        let ms = t0.elapsed().as_secs_f64() * 1000.0;
                        let mut o = self.out.lock().expect("lock");
                        o.latencies_ms.push(ms);
                        o.acked.push(Acked {
                            batch_id: ack.batch_id,
                            agent: agent.name.clone(),
                            observations: blocks,
                        });
                        return;
                    }
                    _ => "bad ack".to_string(),
                },
                Ok(r) => format!("http {}", r.status().as_u16()),
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(e) if e.is_connect() => "connect".into(),
                Err(_) => "transport".into(),
            };
            *self
                .out
                .lock()
                .expect("lock")
                .failures
                .entry(kind)
                .or_default() += 1;
            tokio::time::sleep(retry_after(tries)).await;
            tries += 1;
        }
    }

    fn take(&self, started: Instant, cpu0: Option<f64>, pid: Option<u32>) -> Phase {
        let mut p = std::mem::take(&mut *self.out.lock().expect("lock"));
        p.elapsed_secs = started.elapsed().as_secs_f64();
        p.cpu_secs = pid.and_then(cpu_secs).zip(cpu0).map(|(b, a)| b - a);
        p
    }
}

/// The steady phase, then the burst.
pub async fn run(cfg: &FleetConfig) -> Result<(Phase, Phase)> {
    check_loopback(&cfg.base_url)?;
    let prefixes = vec![FLEET_PREFIX.parse()?];
    let space = Arc::new(BlockSpace::new(&prefixes));
    let sink = Sink {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        url: format!("{}/v1/reports", cfg.base_url.trim_end_matches('/')),
        out: Arc::default(),
    };
    let interval = cfg.round_secs;
    let round_ms = interval * 1000;
    // Steady: each agent at its offset in every round-long slice from now
    // on (no wait for a round boundary). Sends of an agent are a round
    // apart, so each reports the round it falls in once.
    let t0 = now_ms();
    let first = round_of(t0, interval);
    let started = Instant::now();
    let cpu0 = cfg.collector_pid.and_then(cpu_secs);
    let mut tasks = Vec::new();
    for (idx, agent) in cfg.agents.iter().cloned().enumerate() {
        let (sink, space, cfg) = (sink.clone(), space.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..cfg.rounds {
                let at = t0 + (r * round_ms + offset_ms(idx, round_ms)) as i64;
                let wait = (at - now_ms()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let round = round_of(at, interval);
                let Ok(b) = fleet_batch(
                    cfg.run_id,
                    idx,
                    round,
                    interval,
                    &space,
                    cfg.blocks,
                    now_ms(),
                ) else {
                    return;
                };
                // Given up once its next round is due.
                sink.post(&agent, &b, Instant::now() + Duration::from_millis(round_ms))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let steady = sink.take(started, cpu0, cfg.collector_pid);
    // Burst: the rounds before the steady phase's first, never sent (the
    // outage; the collector does not mind their order),
    // drained by every agent at once, oldest first.
    let started = Instant::now();
    let cpu0 = cfg.collector_pid.and_then(cpu_secs);
    let give_up = started + Duration::from_secs(2 * cfg.real_round_secs);
    let mut tasks = Vec::new();
    for (idx, agent) in cfg.agents.iter().cloned().enumerate() {
        let (sink, space, cfg) = (sink.clone(), space.clone(), cfg.clone());
        tasks.push(tokio::spawn(async move {
            for round in first.saturating_sub(cfg.outage_rounds)..first {
                let Ok(b) = fleet_batch(
                    cfg.run_id,
                    idx,
                    round,
                    interval,
                    &space,
                    cfg.blocks,
                    now_ms(),
                ) else {
                    return;
                };
                sink.post(&agent, &b, give_up).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let burst = sink.take(started, cpu0, cfg.collector_pid);
    Ok((steady, burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_as_the_agent_does() {
        let ms = |t| retry_after(t).as_millis();
        assert_eq!((ms(0), ms(1), ms(2)), (500, 1000, 2000));
        assert_eq!((ms(10), ms(100)), (300_000, 300_000));
    }

    #[test]
    fn offsets_spread_over_the_round() {
        let round_ms = 600_000;
        let mut tenths = [0u32; 10];
        for i in 0..5_000 {
            let o = offset_ms(i, round_ms);
            assert!(o < round_ms);
            tenths[(o * 10 / round_ms) as usize] += 1;
        }
        // About 500 a tenth: no bunching at the round's start.
        assert!(
            tenths.iter().all(|&n| (400..600).contains(&n)),
            "{tenths:?}"
        );
        assert_eq!(offset_ms(7, round_ms), offset_ms(7, round_ms));
    }

    #[test]
    fn fleet_batches_are_valid_packed_rounds_with_distinct_ids() {
        let space = BlockSpace::new(&[FLEET_PREFIX.parse().unwrap()]);
        let interval = 60;
        let round = 29_000_000;
        let now = round_start_ms(round, interval) + 5_000;
        let a = fleet_batch(1, 0, round, interval, &space, 10_000, now).unwrap();
        let b = fleet_batch(1, 1, round, interval, &space, 10_000, now).unwrap();
        let c = fleet_batch(1, 0, round - 1, interval, &space, 10_000, now).unwrap();
        for x in [&a, &b, &c] {
            x.validate(now).unwrap();
            assert_eq!(x.packed.len(), 1);
            assert_eq!(x.packed[0].blocks, 10_000);
            assert_eq!(x.packed[0].space, space.digest());
        }
        assert_ne!(a.batch_id, b.batch_id);
        assert_ne!(a.batch_id, c.batch_id);
        // Packed: far under a byte a block on the wire.
        assert!(serde_json::to_vec(&a).unwrap().len() < 10_000);
    }

    #[test]
    fn figures_and_verdicts() {
        let phase = Phase {
            acked: (0..100)
                .map(|i| Acked {
                    batch_id: i.to_string(),
                    agent: "a".into(),
                    observations: 10,
                })
                .collect(),
            latencies_ms: (1..=100).map(f64::from).collect(),
            failures: BTreeMap::from([("timeout".to_string(), 2)]),
            elapsed_secs: 10.0,
            cpu_secs: Some(2.0),
        };
        let s = phase.summary();
        assert_eq!((s.batches, s.blocks, s.failed_requests), (100, 1000, 2));
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(s.cpu_core_share, Some(0.2));
        let cfg = FleetConfig {
            base_url: String::new(),
            agents: vec![
                LoadAgent {
                    name: "a".into(),
                    token: "t".into()
                };
                100
            ],
            fleet_size: 100,
            blocks: 10,
            round_secs: 60,
            real_round_secs: 600,
            rounds: 1,
            outage_rounds: 6,
            run_id: 0,
            collector_pid: None,
        };
        let v = verdicts(&s, &s, &cfg, 0);
        assert_eq!(v[0], "p99 ingest < 100 ms: 99.0 ms, met");
        assert!(v[1].ends_with(", met"));
        assert_eq!(verdicts(&s, &s, &cfg, 3)[1], "0 lost: 3 lost, NOT met");
        // 20 % at 10x compression is 2 % of a core at the real rate.
        assert!(
            v[2].starts_with(
                "collector CPU < 25 % of a core at the real rate: 2.0 % (20.0 % measured at 10.0x)"
            ),
            "{v:?}"
        );
        assert!(v[3].ends_with(", met"));
    }
}
