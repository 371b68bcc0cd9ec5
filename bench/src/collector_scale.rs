//! The `scale` section: one collector holding N blocks × V VPs with one day
//! of 10-minute rounds already stored, then fed new rounds through its real
//! HTTP API by a synthetic fleet.
//!
//! For each N: the history (R rounds before the measured ones) is written
//! straight through the store API (`Store::ingest` of packed rounds, what
//! the HTTP handler calls after validating), which is much faster than
//! posting it. Then a collector starts on that database (a restarted
//! collector: time to listen, then time and CPU of its first pass over the
//! history). Once it has caught up, the V agents post one new round each,
//! as packed reports over HTTP (ingest obs/s), and the collector's CPU is
//! measured until that round is correlated (its campaign summary holds
//! every VP): the CPU a round costs in steady state, ingest included.
//!
//! Every wait is capped (`cap`), and the collector is killed when its RSS
//! passes `rss_cap_mib`: a figure past either is printed as "> X".

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_collector::correlation::campaign_lease;
use darkwatch_collector::store::{SqlStore, Store};
use darkwatch_correlate::Scope;
use darkwatch_netlab::{workspace_bin, KillOnDrop};
use darkwatch_schema::packed::{pack_chunks, typical_round, PackedRound};
use darkwatch_schema::{round_of, round_start_ms, BlockSpace, ReportBatch};
use ipnet::{IpNet, Ipv4Net};

use crate::collector;

/// The campaign the fleet reports on.
const CAMPAIGN: &str = "scale";
/// Its round length: IODA's 10 minutes.
pub const INTERVAL_SECS: u64 = 600;
/// Blocks per packed chunk (what the agent sends).
const CHUNK_BLOCKS: usize = 1 << 16;
/// Distinct synthetic rounds per VP in the history (packed once each, then
/// stored under each round number).
const PATTERNS: u64 = 6;
/// Seconds between the collector's correlation passes.
pub const EVERY_SECS: f64 = 2.0;

/// What to run.
pub struct ScaleConfig {
    pub blocks: u64,
    pub vps: usize,
    /// Rounds of history stored before the measured round.
    pub rounds: u64,
    /// Longest wait for a pass or a round to be correlated.
    pub cap: Duration,
    /// RSS at which the collector is killed.
    pub rss_cap_mib: f64,
    /// PostgreSQL server URL to make the run's database on (else SQLite).
    pub postgres: Option<String>,
}

/// A wait that finished, or how it was cut short.
#[derive(Debug, Clone, Copy)]
pub enum Waited {
    /// Seconds of wall time, CPU-seconds of the collector.
    Done { secs: f64, cpu: f64 },
    /// Cut at the cap after these seconds and CPU-seconds.
    TimedOut { secs: f64, cpu: f64 },
    /// The collector passed the RSS cap after these seconds and CPU-seconds.
    RssCap { secs: f64, cpu: f64 },
}

impl Waited {
    pub fn done(&self) -> bool {
        matches!(self, Waited::Done { .. })
    }

    /// CPU-seconds, as a figure or a lower bound.
    pub fn cpu_text(&self) -> String {
        match self {
            Waited::Done { cpu, .. } => format!("{cpu:.2}"),
            Waited::TimedOut { cpu, .. } => format!("> {cpu:.0} (timeout)"),
            Waited::RssCap { cpu, .. } => format!("> {cpu:.0} (RSS cap)"),
        }
    }

    /// Wall seconds, as a figure or a lower bound.
    pub fn secs_text(&self) -> String {
        match self {
            Waited::Done { secs, .. } => format!("{secs:.1}"),
            Waited::TimedOut { secs, .. } => format!("> {secs:.0} (timeout)"),
            Waited::RssCap { secs, .. } => format!("> {secs:.0} (RSS cap)"),
        }
    }

    pub fn cpu(&self) -> f64 {
        match *self {
            Waited::Done { cpu, .. }
            | Waited::TimedOut { cpu, .. }
            | Waited::RssCap { cpu, .. } => cpu,
        }
    }
}

/// What was measured for one N.
pub struct ScaleResult {
    pub blocks: u64,
    pub vps: usize,
    /// Observations stored as history.
    pub history_observations: u64,
    /// Seconds to write the history through the store API.
    pub seed_secs: f64,
    pub bytes_per_obs: f64,
    /// Restarted collector listening, seconds after spawn.
    pub ready_secs: f64,
    /// Its first pass over the history, from spawn.
    pub first_pass: Waited,
    /// Idle CPU-seconds per pass interval once caught up (no reports).
    pub idle_cpu_per_pass: Option<f64>,
    /// One round from every VP over HTTP: observations per second.
    pub ingest_per_sec: f64,
    /// CPU-seconds the collector spent taking that round in.
    pub ingest_cpu: f64,
    /// From the last ack until the round is correlated (None: not
    /// measured, the first pass never finished).
    pub round: Option<Waited>,
    pub peak_rss_mib: f64,
    /// The RSS cap the first pass was killed at, if it was.
    pub killed_at_mib: Option<f64>,
}

impl ScaleResult {
    /// Peak RSS of the correlating collector, or the cap it was killed at.
    pub fn peak_text(&self) -> String {
        match self.killed_at_mib {
            Some(cap) => format!("> {cap:.0} (killed)"),
            None => format!("{:.0}", self.peak_rss_mib),
        }
    }
}

/// `(user + system CPU seconds, RSS, peak RSS)` of `pid` (MiB), from /proc.
fn cpu_rss(pid: u32) -> Option<(f64, f64, f64)> {
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
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((cpu, kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

/// The database of one run: a SQLite file, or a PostgreSQL database made
/// for the run on the server of `DARKWATCH_TEST_PG` (dropped after).
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres {
        server: String,
        url: String,
        name: String,
    },
}

fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

impl Db {
    fn new(dir: &Path, pg: Option<&str>) -> Result<Db> {
        let Some(server) = pg else {
            return Ok(Db::Sqlite(dir.join("scale.sqlite")));
        };
        let name = format!("dw_scale_{:08x}", rand::random::<u32>());
        psql(server, &format!("CREATE DATABASE {name}"))?;
        let mut url = reqwest::Url::parse(server).context("DARKWATCH_TEST_PG is a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Db::Postgres {
            server: server.to_string(),
            url: url.to_string(),
            name,
        })
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => p.display().to_string(),
            Db::Postgres { url, .. } => url.clone(),
        }
    }

    /// Bytes on disk: the SQLite file and its WAL, or the database's size.
    fn bytes(&self) -> Result<u64> {
        match self {
            Db::Sqlite(p) => Ok(["", "-wal"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", p.display())).ok())
                .map(|m| m.len())
                .sum()),
            Db::Postgres { url, .. } => {
                psql(url, "CHECKPOINT").ok();
                Ok(psql(url, "SELECT pg_database_size(current_database())")?.parse()?)
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { server, name, .. } = self {
            let _ = psql(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn start(bin: &Path, db: &str, config: &Path) -> Result<(KillOnDrop, String, f64)> {
    let t = Instant::now();
    let (child, url) = collector::serve(
        Command::new(bin),
        db,
        Some(config),
        Duration::from_secs(300),
    )?;
    Ok((child, url, t.elapsed().as_secs_f64()))
}

/// Aligned IPv4 prefixes from 16.0.0.0 holding exactly `blocks` /24s, in
/// address order (so block index i is the i-th /24 from 16.0.0.0).
pub fn prefixes_for(blocks: u64) -> Result<Vec<IpNet>> {
    if blocks == 0 || blocks > 1 << 20 {
        bail!("the scale campaign holds 1 to 1,048,576 blocks (16.0.0.0/4), not {blocks}");
    }
    let mut out = Vec::new();
    let mut at = u32::from(std::net::Ipv4Addr::new(16, 0, 0, 0));
    for bit in (0..=20u32).rev() {
        if blocks & (1 << bit) != 0 {
            out.push(IpNet::V4(Ipv4Net::new(at.into(), (24 - bit) as u8)?));
            at += (1u32 << bit) << 8;
        }
    }
    Ok(out)
}

fn cli(bin: &Path, db: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .args(["--db", db])
        .env_remove("DARKWATCH_DB")
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "collector {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The packed chunks of one VP's round (a typical round varied by `seed`).
fn packed(space: &BlockSpace, blocks: u64, round: u64, seed: u64) -> Result<Vec<PackedRound>> {
    let ts = round_start_ms(round, INTERVAL_SECS) + 30_000;
    Ok(pack_chunks(
        CAMPAIGN,
        round,
        space,
        ts,
        typical_round(blocks, seed),
        CHUNK_BLOCKS,
    )?)
}

fn batch(vp: usize, round: u64, packed: Vec<PackedRound>) -> ReportBatch {
    ReportBatch {
        packed,
        ..ReportBatch::new(
            format!("{:016x}{:08x}{:08x}", rand::random::<u64>(), vp, round),
            round_start_ms(round, INTERVAL_SECS) + 30_000,
        )
    }
}

/// Writes rounds `rounds` of every agent through the store API.
async fn seed(
    store: &SqlStore,
    agents: &[String],
    space: &BlockSpace,
    blocks: u64,
    rounds: std::ops::RangeInclusive<u64>,
) -> Result<u64> {
    let mut patterns: Vec<Vec<Vec<PackedRound>>> = Vec::new();
    for vp in 0..agents.len() {
        patterns.push(
            (0..PATTERNS)
                .map(|p| packed(space, blocks, 0, p * 7 + vp as u64))
                .collect::<Result<_>>()?,
        );
    }
    let mut stored = 0;
    for round in rounds {
        // The VPs of one round concurrently: one group commit for them all.
        let jobs = agents.iter().enumerate().map(|(vp, agent)| {
            let mut p = patterns[vp][(round % PATTERNS) as usize].clone();
            let ts = round_start_ms(round, INTERVAL_SECS) + 30_000;
            for c in &mut p {
                c.round = round;
                c.ts_ms = ts;
            }
            let b = batch(vp, round, p);
            async move { store.ingest(agent, &b, now_ms()).await }
        });
        for ack in futures::future::join_all(jobs).await {
            stored += ack?.observations_stored;
        }
    }
    Ok(stored)
}

/// Posts round `round` of every agent over HTTP at once; returns the
/// observations stored.
async fn post_round(
    url: &str,
    tokens: &[String],
    space: &BlockSpace,
    blocks: u64,
    round: u64,
) -> Result<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let mut bodies = Vec::new();
    for vp in 0..tokens.len() {
        let b = batch(vp, round, packed(space, blocks, round, round + vp as u64)?);
        bodies.push(serde_json::to_vec(&b)?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (token, body) in tokens.iter().zip(bodies) {
        let (client, url, token) = (client.clone(), url.to_string(), token.clone());
        tasks.spawn(async move {
            let resp = client
                .post(format!("{url}/v1/reports"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("report refused: {} {}", resp.status(), resp.text().await?);
            }
            let ack: darkwatch_schema::BatchAck = resp.json().await?;
            Ok(ack.observations_stored)
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total)
}

/// Polls `done` every 200 ms until it holds, the cap passes or the
/// collector's RSS passes its cap (then kills it). Times and CPU count
/// from `since` / `cpu0`.
async fn wait_for<F, Fut>(
    collector: &mut KillOnDrop,
    cfg: &ScaleConfig,
    since: Instant,
    cpu0: f64,
    mut done: F,
) -> Result<Waited>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let pid = collector.0.id();
    loop {
        let (cpu, rss, _) = cpu_rss(pid).context("the collector exited")?;
        let (secs, cpu) = (since.elapsed().as_secs_f64(), cpu - cpu0);
        if done().await? {
            return Ok(Waited::Done { secs, cpu });
        }
        if rss > cfg.rss_cap_mib {
            let _ = collector.0.kill();
            let _ = collector.0.wait();
            return Ok(Waited::RssCap { secs, cpu });
        }
        if since.elapsed() > cfg.cap {
            return Ok(Waited::TimedOut { secs, cpu });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// True once round `round` has a campaign summary holding `vps` VPs,
/// written at or after `after_ms`.
async fn correlated(store: &SqlStore, round: u64, vps: usize, after_ms: i64) -> Result<bool> {
    let written = store.summary_rounds(CAMPAIGN, round..=round).await?;
    if !written.iter().any(|r| r.updated_ms >= after_ms) {
        return Ok(false);
    }
    let rows = store
        .round_summaries(CAMPAIGN, round, Scope::Campaign, false, 1000)
        .await?;
    Ok(rows.iter().filter(|r| !r.vp.is_empty()).count() >= vps)
}

pub fn run(cfg: &ScaleConfig) -> Result<ScaleResult> {
    let bin = workspace_bin("darkwatch-collector")?;
    let dir = tempfile::tempdir()?;
    let db = Db::new(dir.path(), cfg.postgres.as_deref())?;
    let db_url = db.url();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("[correlation]\nevery_secs = {EVERY_SECS}\n"),
    )?;
    let prefixes = prefixes_for(cfg.blocks)?;
    let space = BlockSpace::new(&prefixes);
    let mut add = vec!["campaign", "add", CAMPAIGN, "--interval", "600"];
    let texts: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    for p in &texts {
        add.extend(["--prefix", p.as_str()]);
    }
    cli(&bin, &db_url, &add)?;
    let mut agents = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..cfg.vps {
        let name = format!("vp{i:02}");
        tokens.push(
            cli(&bin, &db_url, &["agents", "add", &name])?
                .trim()
                .to_string(),
        );
        agents.push(name);
    }
    let before = db.bytes()?;

    let rt = tokio::runtime::Runtime::new()?;
    // History: the R rounds before the measured one, which is the current.
    let measured = round_of(now_ms(), INTERVAL_SECS);
    let history = measured - cfg.rounds..=measured - 1;
    let t = Instant::now();
    let history_observations = rt.block_on(async {
        let store = SqlStore::open(&db_url).await?;
        let n = seed(&store, &agents, &space, cfg.blocks, history.clone()).await;
        store.close().await;
        n
    })?;
    let seed_secs = t.elapsed().as_secs_f64();
    let bytes = db.bytes()?.saturating_sub(before);

    // The restarted collector: ready, then its first pass.
    let spawned = Instant::now();
    let (mut collector, url, ready_secs) = start(&bin, &db_url, &config)?;
    let pid = collector.0.id();
    let reader = rt.block_on(SqlStore::open(&db_url))?;
    let last_history = *history.end();
    let first_pass = rt.block_on(wait_for(&mut collector, cfg, spawned, 0.0, || {
        correlated(&reader, last_history, cfg.vps, 0)
    }))?;

    let mut idle_cpu_per_pass = None;
    if first_pass.done() {
        // Caught up: what the passes cost with nothing new.
        let c0 = cpu_rss(pid).context("the collector exited")?.0;
        std::thread::sleep(Duration::from_secs_f64(EVERY_SECS * 3.0));
        let c1 = cpu_rss(pid).context("the collector exited")?.0;
        idle_cpu_per_pass = Some((c1 - c0) / 3.0);
    } else {
        // The first pass did not finish: measure ingest alone, on a
        // collector that the bench keeps from correlating by holding the
        // campaign's lease.
        drop(collector);
        // The killed collector's lease lapses within 3 × every_secs.
        let held = Instant::now();
        while !rt.block_on(reader.try_lease(
            &campaign_lease(CAMPAIGN),
            "darkwatch-bench",
            now_ms(),
            3_600_000,
        ))? {
            if held.elapsed() > Duration::from_secs(60) {
                bail!("the campaign lease was not released");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (c, url2, _) = start(&bin, &db_url, &config)?;
        collector = c;
        let pid = collector.0.id();
        let c0 = cpu_rss(pid).context("the collector exited")?.0;
        let t = Instant::now();
        let n = rt.block_on(post_round(&url2, &tokens, &space, cfg.blocks, measured))?;
        let secs = t.elapsed().as_secs_f64();
        let (c1, _, peak) = cpu_rss(pid).context("the collector exited")?;
        rt.block_on(reader.close());
        return Ok(ScaleResult {
            blocks: cfg.blocks,
            vps: cfg.vps,
            history_observations,
            seed_secs,
            bytes_per_obs: bytes as f64 / history_observations.max(1) as f64,
            ready_secs,
            first_pass,
            idle_cpu_per_pass,
            ingest_per_sec: n as f64 / secs,
            ingest_cpu: c1 - c0,
            round: None,
            peak_rss_mib: peak,
            killed_at_mib: matches!(first_pass, Waited::RssCap { .. }).then_some(cfg.rss_cap_mib),
        });
    }

    // Steady state: one new round from every VP, then until correlated.
    let cpu0 = cpu_rss(pid).context("the collector exited")?.0;
    let t = Instant::now();
    let n = rt.block_on(post_round(&url, &tokens, &space, cfg.blocks, measured))?;
    let ingest_secs = t.elapsed().as_secs_f64();
    let acked_ms = now_ms();
    let cpu1 = cpu_rss(pid).context("the collector exited")?.0;
    let round = rt.block_on(wait_for(&mut collector, cfg, t, cpu0, || {
        correlated(&reader, measured, cfg.vps, acked_ms)
    }))?;
    let peak = cpu_rss(pid).map_or(0.0, |(_, _, p)| p);
    rt.block_on(reader.close());
    Ok(ScaleResult {
        blocks: cfg.blocks,
        vps: cfg.vps,
        history_observations,
        seed_secs,
        bytes_per_obs: bytes as f64 / history_observations.max(1) as f64,
        ready_secs,
        first_pass,
        idle_cpu_per_pass,
        ingest_per_sec: n as f64 / ingest_secs,
        ingest_cpu: cpu1 - cpu0,
        round: Some(round),
        peak_rss_mib: peak,
        killed_at_mib: matches!(round, Waited::RssCap { .. }).then_some(cfg.rss_cap_mib),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_hold_exactly_the_blocks_in_order() {
        for n in [1u64, 10_000, 100_000, 1_000_000, 1 << 20] {
            let p = prefixes_for(n).unwrap();
            let space = BlockSpace::new(&p);
            assert_eq!(space.len(), n);
            assert_eq!(space.block_at(0).unwrap().to_string(), "16.0.0.0/24", "{n}");
            assert_eq!(
                space.block_at(n - 1).unwrap().addr(),
                std::net::Ipv4Addr::from(
                    u32::from(std::net::Ipv4Addr::new(16, 0, 0, 0)) + ((n as u32 - 1) << 8)
                ),
            );
        }
        assert!(prefixes_for(0).is_err());
        assert!(prefixes_for((1 << 20) + 1).is_err());
    }
}
