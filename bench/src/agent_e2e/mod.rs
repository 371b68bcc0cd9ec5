//! The `agent-e2e` section: one real `darkwatch-agent` daemon and one real
//! `darkwatch-collector`, both on loopback inside a namespace of our own
//! that has only `lo`, watching a campaign of 127.0.0.0/8 (65,536 /24
//! blocks, every address answering on `lo`). The agent is allowed to probe
//! loopback explicitly (`allow = ["127.0.0.0/8"]`: reserved space is
//! refused by default). Rediscovery is configured to start inside the
//! counted rounds, so at least one of them runs beside a full sweep.
//!
//! Measured, from outside the two processes: time from the agent's start to
//! the first round the collector stores (and to the first round holding
//! every block), whether each counted round ended on time (the agent's
//! `round done` log events, which carry its `RoundInfo`) and reached the
//! collector before the next round ended, the agent's peak RSS (`VmHWM`)
//! and CPU per round (`/proc/PID/stat`, sampled every second and
//! interpolated at round boundaries), its state files on disk, and the
//! packed columns the collector stored per round (what travels, base64 in
//! the JSON envelope). The peer is fping sweeping one address per /24 of
//! the same space from the same namespace once the agent has stopped: the
//! work of one round, done by a tool that does nothing else.
//!
//! Files: this one runs the section; `observe` reads the two processes
//! from outside (`/proc`, the agent's log, the collector's database);
//! `peer` runs fping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkwatch_netlab::{workspace_bin, KillOnDrop, Namespaces};
use darkwatch_schema::{round_of, round_start_ms};
use ipnet::Ipv4Net;

use crate::collector;

use observe::{collector_cli, cpu_and_peak, cpu_at, now_ms, stored, tail, AgentLog};
use peer::fping_peer;

mod observe;
mod peer;
#[cfg(test)]
mod tests;

pub(crate) const NODE: &str = "e2e";
pub(crate) const CAMPAIGN: &str = "lo";

/// What to run.
#[derive(Debug, Clone)]
pub struct E2eConfig {
    /// The campaign (127.0.0.0/8; a smaller 127/x for a quick run).
    pub space: Ipv4Net,
    /// Rounds counted after the first round that holds every block.
    pub rounds: u32,
    pub round_secs: u64,
    /// The agent's packet-rate cap (half of it goes to discovery).
    pub pps: u32,
    /// Run the fping peer.
    pub peer: bool,
    /// The sparse variant: only this many addresses per /24 answer (the
    /// first, then evenly spread); the rest of the space is routed to a
    /// dummy device, where probes vanish without an answer.
    pub sparse: Option<u8>,
}

/// The `ip -batch` lines that make only `per_block` addresses of each /24
/// of `space` answer (see [`E2eConfig::sparse`]).
fn sparse_routes(space: Ipv4Net, per_block: u8) -> Vec<String> {
    let first = u32::from(space.network()) >> 8;
    let n = 1u32 << (24 - space.prefix_len().min(24));
    let k = u32::from(per_block.max(1));
    let mut lines = vec![
        "link add d0 type dummy".to_string(),
        "link set d0 up".to_string(),
        "route del table local local 127.0.0.0/8 dev lo".to_string(),
        "route add 127.0.0.0/8 dev d0".to_string(),
        "route replace table local local 127.0.0.1/32 dev lo".to_string(),
    ];
    for b in first..first + n {
        for i in 0..k {
            let host = (1 + i * 256 / k).min(254);
            let a = Ipv4Addr::from((b << 8) | host);
            lines.push(format!("route replace table local local {a}/32 dev lo"));
        }
    }
    lines
}

/// One counted round.
#[derive(Debug, Clone)]
pub struct RoundRow {
    pub round: u64,
    pub blocks: u64,
    pub probes: u64,
    /// Probing ended before the next round began (the agent's RoundInfo).
    pub on_time: bool,
    /// Seconds from the round's start to the end of its probing.
    pub took_s: f64,
    /// Seconds from the round's aligned start until the collector held
    /// every block of it (`None`: never within the run).
    pub stored_after_s: Option<f64>,
    /// Agent CPU-seconds between the round's start and the next's.
    pub cpu_s: Option<f64>,
    /// A discovery sweep ran during (part of) the round.
    pub sweeping: bool,
    /// Packed column bytes stored for the round (zstd).
    pub packed_bytes: u64,
    /// Replies the kernel dropped on the agent's rounds' socket (full
    /// receive buffer) since the previous round ended (`None`: the agent
    /// does not say).
    pub drops: Option<u64>,
    /// The agent's resident memory when the round's probing ended, MiB.
    pub rss_mib: Option<f64>,
}

impl RoundRow {
    /// Ended on time and reached the collector before the next round ended.
    pub fn reported_on_time(&self, round_secs: u64) -> bool {
        self.on_time
            && self
                .stored_after_s
                .is_some_and(|s| s <= 2.0 * round_secs as f64)
    }
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct E2eResult {
    pub blocks: u64,
    pub round_secs: u64,
    /// Seconds from the agent's start to the first stored round with any
    /// block, and to the first with every block.
    pub first_round_s: Option<f64>,
    pub first_full_s: Option<f64>,
    pub first_discovery_s: Option<f64>,
    /// Every round the agent ran (the first may be partial), and the
    /// counted ones.
    pub all_rounds: Vec<RoundRow>,
    pub counted: Vec<RoundRow>,
    /// Rounds during which a rediscovery (not the first sweep) ran.
    pub rediscovery_rounds: Vec<u64>,
    pub peak_rss_mib: f64,
    pub cpu_total_s: f64,
    pub state_bytes: u64,
    pub peer: Option<PeerRun>,
    /// The agent's round line of the collector's `status`.
    pub status_line: Option<String>,
}

/// fping over one address per /24.
#[derive(Debug, Clone)]
pub struct PeerRun {
    pub addresses: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub answered: u64,
}

impl E2eResult {
    /// Share of `rows` reported on time; rounds that judged no block (the
    /// first, before any block is known) send nothing and do not count.
    pub fn on_time_share(rows: &[RoundRow], round_secs: u64) -> f64 {
        let judged: Vec<&RoundRow> = rows
            .iter()
            .filter(|r| r.blocks > 0 || !r.on_time || r.took_s.is_nan())
            .collect();
        if judged.is_empty() {
            return 0.0;
        }
        judged
            .iter()
            .filter(|r| r.reported_on_time(round_secs))
            .count() as f64
            / judged.len() as f64
    }

    /// CPU-seconds per round: median of the counted rounds without a
    /// sweep, and the largest with one.
    pub fn cpu_per_round(&self) -> (Option<f64>, Option<f64>) {
        let quiet: Vec<f64> = self
            .counted
            .iter()
            .filter(|r| !r.sweeping)
            .filter_map(|r| r.cpu_s)
            .collect();
        let busy = self
            .counted
            .iter()
            .filter(|r| r.sweeping)
            .filter_map(|r| r.cpu_s)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        (crate::stats::median(&quiet), busy)
    }

    /// Wire bytes per block per round: the median over counted rounds of
    /// the base64 text of the packed columns (what the JSON envelope
    /// carries; the envelope adds ~200 bytes per round).
    pub fn wire_per_block(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .counted
            .iter()
            .filter(|r| r.blocks > 0)
            .map(|r| (r.packed_bytes.div_ceil(3) * 4) as f64 / r.blocks as f64)
            .collect();
        crate::stats::median(&v)
    }
}

/// Rounds a sweep of `addresses` at `pps` spans, with a round to spare.
fn sweep_rounds(addresses: u64, pps: u32, round_secs: u64) -> u64 {
    let secs = addresses / u64::from(pps.max(1)) + 1;
    secs.div_ceil(round_secs.max(1)) + 1
}

pub fn run(cfg: &E2eConfig) -> Result<E2eResult> {
    if !(Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8)?).contains(&cfg.space) {
        bail!(
            "the end-to-end space must lie in 127.0.0.0/8, got {}",
            cfg.space
        );
    }
    let agent_bin = workspace_bin("darkwatch-agent")?;
    let collector_bin = workspace_bin("darkwatch-collector")?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("collector.sqlite");
    let db_url = db.display().to_string();
    let blocks = 1u64 << (24 - cfg.space.prefix_len().min(24));
    let addresses = blocks * 256;
    let (_, discovery_pps) = split(cfg.pps);
    let sweep = sweep_rounds(addresses, discovery_pps, cfg.round_secs);
    // The first sweep starts in the agent's first round and the first round
    // of every block comes about `sweep - 1` rounds later; the rediscovery
    // starts a third into the counted rounds and runs beside them.
    let rediscover = sweep - 1 + u64::from(cfg.rounds / 3).max(1);

    let token = collector_cli(&collector_bin, &db, &["agents", "add", "e2e"])?
        .trim()
        .to_string();
    let interval = cfg.round_secs.to_string();
    let space = cfg.space.to_string();
    collector_cli(
        &collector_bin,
        &db,
        &[
            "campaign",
            "add",
            CAMPAIGN,
            "--prefix",
            &space,
            "--interval",
            &interval,
        ],
    )?;

    // From here on, a failure tears the namespace down (and what runs in it).
    let mut ns = Namespaces::new();
    ns.add(&[NODE])?;
    if let Some(k) = cfg.sparse {
        // Loopback addresses may leave `lo` only with route_localnet.
        ns.sysctl(
            NODE,
            &[
                "net.ipv4.conf.all.route_localnet=1",
                "net.ipv4.conf.default.route_localnet=1",
            ],
        )?;
        ns.batch(NODE, &sparse_routes(cfg.space, k))?;
    }
    let collector_log = dir.path().join("collector.log");
    let mut c = ns.command(NODE, &collector_bin);
    c.stderr(std::fs::File::create(&collector_log)?);
    let (collector, url) = collector::serve(c, &db, None, Duration::from_secs(120))?;

    let spool = dir.path().join("spool");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "collector = \"{url}\"\ntoken = \"{token}\"\nspool_dir = \"{}\"\npps = {}\n\
             # Reserved space is refused unless allowed: loopback, explicitly.\n\
             allow = [\"127.0.0.0/8\"]\n\
             [probe]\nrediscover_rounds = {rediscover}\n\
             [report]\npoll_secs = {}\n",
            spool.display(),
            cfg.pps,
            cfg.round_secs.min(60),
        ),
    )?;
    let agent_log = dir.path().join("agent.log");
    let mut a = ns.command(NODE, &agent_bin);
    a.args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log)?);
    let t0 = now_ms();
    let started = Instant::now();
    let mut agent = KillOnDrop(a.spawn().context("start the agent")?);
    let pid = agent.0.id();

    let mut log = AgentLog::new(agent_log.clone());
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut rss: Vec<(i64, f64)> = Vec::new();
    let mut peak = 0.0f64;
    // Wall ms when the collector first held a round with any block;
    // `round -> wall ms` when it first held every block of the space in a
    // round; `round -> (blocks, wall ms)` when its count last grew.
    let mut first_any: Option<i64> = None;
    let mut full_at: BTreeMap<u64, i64> = BTreeMap::new();
    let mut grew: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    let mut packed: BTreeMap<u64, u64> = BTreeMap::new();
    let first_round = round_of(t0, cfg.round_secs);
    let deadline =
        started + Duration::from_secs(cfg.round_secs * (sweep * 2 + u64::from(cfg.rounds) + 6));
    let mut counted_from: Option<u64> = None;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let t = now_ms();
        if let Some(status) = agent.0.try_wait()? {
            bail!("the agent exited ({status}):\n{}", tail(&agent_log, 20));
        }
        if let Some((cpu, hwm, now_rss)) = cpu_and_peak(pid) {
            samples.push((t, cpu));
            rss.push((t, now_rss));
            peak = peak.max(hwm);
        }
        log.poll()?;
        for (round, (n, bytes)) in stored(&db_url)? {
            if grew.get(&round).is_none_or(|g| n > g.0) {
                grew.insert(round, (n, t));
            }
            if n > 0 && first_any.is_none() {
                first_any = Some(t);
                eprintln!(
                    "  agent-e2e: first round stored after {:.1} s",
                    (t - t0) as f64 / 1000.0
                );
            }
            if n >= blocks && !full_at.contains_key(&round) {
                full_at.insert(round, t);
                packed.insert(round, bytes);
                eprintln!(
                    "  agent-e2e: round {round} stored whole ({n} blocks, {bytes} B) after {:.1} s{}",
                    (t - t0) as f64 / 1000.0,
                    log.done
                        .get(&round)
                        .map_or(String::new(), |d| format!(", on time: {}", d.0))
                );
                if counted_from.is_none() {
                    counted_from = Some(round);
                }
            }
        }
        if let Some(from) = counted_from {
            let last = from + u64::from(cfg.rounds) - 1;
            let current = round_of(t, cfg.round_secs);
            // Every counted round ended; the last one stored, or its next
            // round ended without it.
            if log.done.contains_key(&last) && (full_at.contains_key(&last) || current > last + 1) {
                break;
            }
        }
        if Instant::now() > deadline {
            eprintln!("  agent-e2e: deadline reached; reporting what was measured");
            break;
        }
    }
    let cpu_total = samples.last().map_or(0.0, |s| s.1);
    // SIGTERM: the agent stops cleanly; its state stays on disk.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = agent.0.wait();
    // What the collector's `status` says of the agent's rounds.
    let status_line = collector_cli(&collector_bin, &db, &["status", "--json"])
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v["agents"][0]["rounds"][0]["summary"]
                .as_str()
                .map(str::to_string)
        });
    drop(collector);
    let state_bytes: u64 = std::fs::read_dir(spool.join("state"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("campaign-{CAMPAIGN}."))
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);

    // Rounds during which a sweep ran: from the round it started in to the
    // round in which it ended (or the run's end).
    let mut sweeping: BTreeSet<u64> = BTreeSet::new();
    let mut rediscovery_rounds = Vec::new();
    for (i, (start, _)) in log.sweep_starts.iter().enumerate() {
        let end = log
            .sweep_ends
            .get(i)
            .map_or(u64::MAX, |ms| round_of(*ms, cfg.round_secs));
        let last = end.min(round_of(now_ms(), cfg.round_secs));
        for r in *start..=last {
            sweeping.insert(r);
            if i > 0 {
                rediscovery_rounds.push(r);
            }
        }
    }
    let row = |round: u64, &(on_time, took_ms, n, probes): &(bool, i64, u64, u64)| {
        let start = round_start_ms(round, cfg.round_secs);
        let next = round_start_ms(round + 1, cfg.round_secs);
        RoundRow {
            round,
            blocks: n,
            probes,
            on_time,
            took_s: took_ms as f64 / 1000.0,
            // Every block the round judged is stored (rounds during the
            // first sweep judge the blocks known so far).
            stored_after_s: grew
                .get(&round)
                .filter(|g| n > 0 && g.0 >= n)
                .map(|g| (g.1 - start) as f64 / 1000.0),
            cpu_s: match (cpu_at(&samples, start), cpu_at(&samples, next)) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            sweeping: sweeping.contains(&round),
            packed_bytes: packed.get(&round).copied().unwrap_or(0),
            drops: log.drops.get(&round).and_then(|(d, _)| {
                let before = log
                    .drops
                    .range(..round)
                    .next_back()
                    .and_then(|(_, (p, _))| *p)
                    .unwrap_or(0);
                Some(d.as_ref()?.saturating_sub(before))
            }),
            rss_mib: log.drops.get(&round).and_then(|(_, at)| {
                rss.iter()
                    .find(|(t, _)| t >= at)
                    .or(rss.last())
                    .map(|(_, m)| *m)
            }),
        }
    };
    let all_rounds: Vec<RoundRow> = log.done.iter().map(|(r, d)| row(*r, d)).collect();
    let counted: Vec<RoundRow> = match counted_from {
        Some(from) => (from..from + u64::from(cfg.rounds))
            .map(|r| {
                log.done.get(&r).map_or(
                    RoundRow {
                        round: r,
                        blocks: 0,
                        probes: 0,
                        on_time: false,
                        took_s: f64::NAN,
                        stored_after_s: None,
                        cpu_s: None,
                        sweeping: sweeping.contains(&r),
                        packed_bytes: 0,
                        drops: None,
                        rss_mib: None,
                    },
                    |d| row(r, d),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    for e in log.errors.iter().take(5) {
        eprintln!("  agent-e2e: agent error: {e}");
    }
    eprintln!(
        "  agent-e2e: rounds from {first_round}: {}",
        all_rounds
            .iter()
            .map(|r| format!(
                "{}:{}{}",
                r.round,
                if r.reported_on_time(cfg.round_secs) {
                    "ok"
                } else {
                    "LATE"
                },
                if r.sweeping { "+sweep" } else { "" }
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );

    let peer = if cfg.peer {
        match fping_peer(&ns, cfg.space, dir.path()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("  agent-e2e: fping peer not run: {e:#}");
                None
            }
        }
    } else {
        None
    };
    ns.teardown()?;
    if let Some(keep) = std::env::var_os("DARKWATCH_E2E_AGENT_LOG") {
        if let Err(e) = std::fs::copy(&agent_log, &keep) {
            eprintln!("  agent-e2e: cannot keep the agent log: {e}");
        }
    }
    Ok(E2eResult {
        blocks,
        round_secs: cfg.round_secs,
        first_round_s: first_any.map(|t| (t - t0) as f64 / 1000.0),
        first_full_s: full_at.values().min().map(|t| (t - t0) as f64 / 1000.0),
        first_discovery_s: log.sweep_ends.first().map(|t| (t - t0) as f64 / 1000.0),
        all_rounds,
        counted,
        rediscovery_rounds,
        peak_rss_mib: peak,
        cpu_total_s: cpu_total,
        state_bytes,
        peer,
        status_line,
    })
}

/// The agent's split of its cap (see `darkwatch_agent::schedule`).
fn split(pps: u32) -> (u32, u32) {
    darkwatch_agent::schedule::split_pps(pps)
}
