//! Reading the agent and the collector from outside: CPU and RSS from
//! `/proc`, the agent's JSON log as it grows, what the collector stored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use darkwatch_tests::harness::db_query;

use super::CAMPAIGN;

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `(user + system CPU seconds, peak RSS, current RSS in MiB)` of a live
/// `pid`.
pub(super) fn cpu_and_peak(pid: u32) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
    Some((cpu, kib("VmHWM:")? / 1024.0, kib("VmRSS:")? / 1024.0))
}

/// CPU at `at_ms`, linearly between the samples around it.
pub(super) fn cpu_at(samples: &[(i64, f64)], at_ms: i64) -> Option<f64> {
    let i = samples.iter().position(|(t, _)| *t >= at_ms)?;
    if i == 0 {
        return (samples[0].0 == at_ms).then_some(samples[0].1);
    }
    let ((t0, c0), (t1, c1)) = (samples[i - 1], samples[i]);
    Some(c0 + (c1 - c0) * (at_ms - t0) as f64 / (t1 - t0).max(1) as f64)
}

/// The agent's JSON log, read as it grows.
pub(super) struct AgentLog {
    path: PathBuf,
    pos: u64,
    /// `round -> (on_time, took_ms, blocks, probes)`.
    pub(super) done: BTreeMap<u64, (bool, i64, u64, u64)>,
    /// `round -> (receive drops so far, wall ms of the line)`.
    pub(super) drops: BTreeMap<u64, (Option<u64>, i64)>,
    /// Rounds in which a sweep started, and wall ms when sweeps ended.
    pub(super) sweep_starts: Vec<(u64, i64)>,
    pub(super) sweep_ends: Vec<i64>,
    pub(super) errors: Vec<String>,
}

impl AgentLog {
    pub(super) fn new(path: PathBuf) -> Self {
        AgentLog {
            path,
            pos: 0,
            done: BTreeMap::new(),
            drops: BTreeMap::new(),
            sweep_starts: Vec::new(),
            sweep_ends: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub(super) fn poll(&mut self) -> Result<()> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.pos))?;
        let mut r = BufReader::new(f);
        let mut line = String::new();
        let now = now_ms();
        loop {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            self.pos += n as u64;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let msg = v["message"].as_str().unwrap_or("");
            let u = |k: &str| v[k].as_u64();
            match msg {
                "round done" if v["campaign"] == CAMPAIGN => {
                    if let Some(round) = u("round") {
                        self.done.insert(
                            round,
                            (
                                v["on_time"].as_bool().unwrap_or(false),
                                v["took_ms"].as_i64().unwrap_or(0),
                                u("blocks").unwrap_or(0),
                                u("probes").unwrap_or(0),
                            ),
                        );
                        self.drops.insert(round, (u("receive_drops"), now));
                    }
                }
                "discovery starts" => {
                    if let Some(round) = u("round") {
                        self.sweep_starts.push((round, now));
                    }
                }
                "background discovery done" => self.sweep_ends.push(now),
                _ => {}
            }
            if matches!(v["level"].as_str(), Some("ERROR")) {
                self.errors.push(line.trim().to_string());
            }
        }
        Ok(())
    }
}

/// `round -> (blocks, packed bytes)` the collector holds.
pub(super) fn stored(db: &str) -> Result<BTreeMap<u64, (u64, u64)>> {
    let rows = db_query(
        db,
        &format!(
            "SELECT round, SUM(blocks), SUM(LENGTH(data)) FROM round_records \
             WHERE campaign = '{CAMPAIGN}' GROUP BY round"
        ),
    )?;
    let mut m = BTreeMap::new();
    for r in rows {
        if r.len() == 3 {
            m.insert(r[0].parse()?, (r[1].parse()?, r[2].parse()?));
        }
    }
    Ok(m)
}

pub(super) fn collector_cli(bin: &Path, db: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("DARKWATCH_DB")
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "darkwatch-collector {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
