//! The `scale` section: a synthetic fleet of V agents posts packed rounds of
//! N blocks through the collector's real HTTP API (a history of R rounds,
//! posted as fast as the collector takes them), then the collector is
//! restarted so that its first correlation pass runs alone on the stored
//! history. Measured: ingest in observations/s, bytes on disk per stored
//! observation (growth of the SQLite file after clean stops), the time to be ready after a
//! restart, the CPU-seconds of that one pass, and peak RSS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_netlab::{announced_url, workspace_bin, KillOnDrop};
use darkwatch_schema::packed::{pack_chunks, typical_round};
use darkwatch_schema::{round_of, BlockSpace, ReportBatch};
use darkwatch_tests::load::{self, LoadAgent, LOAD_CAMPAIGN, LOAD_INTERVAL_SECS, LOAD_PREFIX};

/// What to run.
pub struct ScaleConfig {
    pub blocks: u64,
    pub vps: usize,
    pub rounds: u64,
}

/// What was measured.
pub struct ScaleResult {
    pub observations: u64,
    pub ingest_per_sec: f64,
    pub bytes_per_obs: f64,
    pub ready_secs: f64,
    pub pass_cpu_secs: f64,
    pub ingest_peak_rss_mib: f64,
    pub pass_peak_rss_mib: f64,
}

/// `(user + system CPU seconds, peak RSS in MiB)` of `pid`, from /proc.
fn cpu_and_peak(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is 3rd.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((cpu, hwm_kib / 1024.0))
}

fn start(bin: &Path, db: &Path, config: &Path) -> Result<(KillOnDrop, String, f64)> {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .env_remove("DARKWATCH_DB")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let url = announced_url(&mut child, Duration::from_secs(300))?;
    Ok((KillOnDrop(child), url, t.elapsed().as_secs_f64()))
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

async fn post_history(url: &str, agents: &[LoadAgent], cfg: &ScaleConfig) -> Result<u64> {
    let space = BlockSpace::new(&[LOAD_PREFIX.parse()?]);
    if cfg.blocks > space.len() {
        bail!("at most {} blocks (the load campaign's)", space.len());
    }
    let now = chrono_now_ms();
    let last = round_of(now, LOAD_INTERVAL_SECS) - 1;
    let first = last + 1 - cfg.rounds;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut tasks = tokio::task::JoinSet::new();
    for (vp, agent) in agents.iter().enumerate() {
        let (client, url, token) = (client.clone(), url.to_string(), agent.token.clone());
        let (blocks, space) = (cfg.blocks, space.clone());
        tasks.spawn(async move {
            let mut stored = 0u64;
            for round in first..=last {
                let ts = (round * LOAD_INTERVAL_SECS) as i64 * 1000 + 30_000;
                let packed = pack_chunks(
                    LOAD_CAMPAIGN,
                    round,
                    &space,
                    ts,
                    typical_round(blocks, round + vp as u64),
                    1 << 16,
                )?;
                let batch = ReportBatch {
                    batch_id: format!("{:016x}{:08x}{:08x}", rand::random::<u64>(), vp, round),
                    created_ms: ts,
                    observations: vec![],
                    traces: vec![],
                    coverage: vec![],
                    census: vec![],
                    packed,
                    rounds: vec![],
                    probe_errors: Vec::new(),
                };
                let resp = client
                    .post(format!("{url}/v1/reports"))
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("report refused: {} {}", resp.status(), resp.text().await?);
                }
                let ack: darkwatch_schema::BatchAck = resp.json().await?;
                stored += ack.observations_stored;
            }
            Ok(stored)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total)
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(cfg: &ScaleConfig) -> Result<ScaleResult> {
    let bin = workspace_bin("darkwatch-collector")?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("scale.sqlite");
    let db_url = db.display().to_string();
    // One pass at start, then none for the rest of the run: the restarted
    // collector's CPU is that one pass over the whole history.
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[correlation]\nevery_secs = 86400.0\nwindow_rounds = {}\n",
            cfg.rounds
        ),
    )?;
    // The first collector starts before the campaign exists, so it holds
    // no campaign lease (which would outlive it by 3 × every_secs) and the
    // restarted one takes the campaign at once.
    // Sizes are of the database file after a clean stop, which folds the
    // WAL back into it: first of the empty database, then with the history.
    let stop = |c: &mut KillOnDrop| {
        let _ = Command::new("kill").arg(c.0.id().to_string()).status();
        let _ = c.0.wait();
    };
    let (mut empty, _, _) = start(&bin, &db, &config)?;
    stop(&mut empty);
    let before = db_bytes(&db);
    let (mut first, url, _) = start(&bin, &db, &config)?;
    let agents = load::setup(&bin, &db_url, cfg.vps, rand::random())?;
    let rt = tokio::runtime::Runtime::new()?;
    let t = Instant::now();
    let observations = rt.block_on(post_history(&url, &agents, cfg))?;
    let ingest_secs = t.elapsed().as_secs_f64();
    let ingest_peak = cpu_and_peak(first.0.id()).map_or(0.0, |(_, p)| p);
    stop(&mut first);
    let bytes = db_bytes(&db).saturating_sub(before);

    let (second, _, ready_secs) = start(&bin, &db, &config)?;
    let pid = second.0.id();
    // The pass runs right after start: wait until the CPU time stops moving.
    let mut last = cpu_and_peak(pid).context("read /proc")?;
    let mut still = 0;
    while still < 4 {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_and_peak(pid).context("read /proc")?;
        still = if now.0 > last.0 { 0 } else { still + 1 };
        last = now;
    }
    drop(second);
    Ok(ScaleResult {
        observations,
        ingest_per_sec: observations as f64 / ingest_secs,
        bytes_per_obs: bytes as f64 / observations.max(1) as f64,
        ready_secs,
        pass_cpu_secs: last.0,
        ingest_peak_rss_mib: ingest_peak,
        pass_peak_rss_mib: last.1,
    })
}
