//! The agent's own metrics, for Prometheus: rounds done and late, probes
//! and replies, spool depth, batches the collector refused, assignments the
//! agent refused and the space it skipped, per campaign where it matters.
//!
//! [`Counters`] is plain data and [`render`] a pure function of it (and of
//! the spool's size), so both are unit-tested without I/O; the text format
//! itself is prometheus-client's, through `darkwatch_exposition` (shared
//! with the collector). [`Metrics`] is what the daemon holds: it updates
//! the counters, persists them in the state directory and rewrites the
//! node-exporter textfile after every round and spool drain, and serves
//! `/metrics` over HTTP (axum, in `http`) when configured.
//!
//! Counters are persisted (`state/metrics.json`) because `run --once` from
//! cron is a new process every round: without that its counters would
//! never pass 1 and `rate()` over them would mean nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;
use darkwatch_exposition::{Exposition, Labels};
use darkwatch_schema::Skipped;
use serde::{Deserialize, Serialize};

use crate::campaign::RoundResults;
use crate::config::MetricsConfig;
use crate::report::Drained;
use crate::spool::{write_atomic, Spool};

/// Most refused (campaign, generation) pairs remembered: enough to count
/// each refusal once, bounded against a collector that churns generations.
const MAX_REFUSALS_REMEMBERED: usize = 1024;

/// Counters of one campaign.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignCounters {
    pub rounds: u64,
    pub rounds_late: u64,
    pub probes: u64,
    pub replies: u64,
    /// Addresses skipped in the last round, by reason (`SkipReason::as_str`).
    pub skipped: BTreeMap<String, u64>,
    /// When the last round finished (Unix ms).
    pub last_round_ms: i64,
    /// Process CPU seconds over the last round, and over the last round
    /// beside which a discovery sweep ran (see [`Metrics::round_cpu`]).
    pub round_cpu_secs: f64,
    pub sweep_round_cpu_secs: f64,
}

/// Everything the agent counts. Serialized as the persisted state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub campaigns: BTreeMap<String, CampaignCounters>,
    pub batches_rejected: u64,
    /// Batches the collector stored only in part (a copy kept in
    /// rejected/).
    pub batches_partial: u64,
    /// Spool drains held back: this host's clock too far off the
    /// collector's to place its rounds.
    pub drains_held: u64,
    /// The collector's clock minus this host's (ms), as last measured.
    pub clock_offset_ms: Option<i64>,
    pub assignments_refused: u64,
    /// The refusals already counted, so that one refused assignment pulled
    /// every poll counts once.
    pub refused: BTreeSet<(String, u64)>,
}

/// What one round of one campaign did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundStats {
    pub probes: u64,
    pub replies: u64,
    pub late: bool,
    pub finished_ms: i64,
    pub skipped: BTreeMap<String, u64>,
}

impl RoundStats {
    /// The stats of a round from its results (echo requests of the round to
    /// blocks and control targets; discovery sweeps and traceroutes are not
    /// counted) and what the campaign skipped. Late means not on time as
    /// the round's [`darkwatch_schema::RoundInfo`] says (`schedule::RoundTiming::on_time`:
    /// probing ended after the next round began); `now_ms` stands in for
    /// its end when it has none.
    pub fn of(results: &RoundResults, skipped: &[Skipped], now_ms: i64) -> RoundStats {
        let all = || results.outcomes.iter().chain(&results.controls);
        RoundStats {
            probes: all().map(|o| u64::from(o.probes)).sum(),
            replies: all().map(|o| u64::from(o.replies)).sum(),
            late: results.info.as_ref().is_some_and(|i| !i.on_time),
            finished_ms: results.info.as_ref().map_or(now_ms, |i| i.ended_ms),
            skipped: skipped
                .iter()
                .map(|s| (s.reason.as_str().to_string(), s.addresses))
                .collect(),
        }
    }
}

impl Counters {
    pub fn round_done(&mut self, campaign: &str, s: &RoundStats) {
        let c = self.campaigns.entry(campaign.to_string()).or_default();
        c.rounds += 1;
        c.rounds_late += u64::from(s.late);
        c.probes += s.probes;
        c.replies += s.replies;
        c.skipped = s.skipped.clone();
        c.last_round_ms = s.finished_ms;
    }

    /// Counts a refused assignment once per (campaign, generation).
    /// Returns true if it was not counted before.
    pub fn refused(&mut self, campaign: &str, generation: u64) -> bool {
        let key = (campaign.to_string(), generation);
        if self.refused.contains(&key) {
            return false;
        }
        if self.refused.len() >= MAX_REFUSALS_REMEMBERED {
            self.refused.pop_first();
        }
        self.refused.insert(key);
        self.assignments_refused += 1;
        true
    }
}

/// Size of the spool's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolUsage {
    pub bytes: u64,
    pub batches: u64,
}

/// Prometheus text exposition of `c` (`darkwatch_exposition`, on
/// prometheus-client); the spool gauges are left out when the spool could
/// not be read (`None`).
pub fn render(c: &Counters, spool: Option<SpoolUsage>) -> String {
    let per_campaign = |f: fn(&CampaignCounters) -> u64| {
        c.campaigns
            .iter()
            .map(move |(name, cc)| (vec![("campaign", name.clone())], f(cc)))
    };
    let one = |v: u64| [(Labels::new(), v)];
    let mut e = Exposition::new();
    e.counter(
        "darkwatch_agent_rounds_total",
        "Rounds done (spooled), per campaign.",
        per_campaign(|cc| cc.rounds),
    )
    .counter(
        "darkwatch_agent_rounds_late_total",
        "Rounds that finished after their interval ended, per campaign.",
        per_campaign(|cc| cc.rounds_late),
    )
    .counter(
        "darkwatch_agent_probes_total",
        "Echo requests of the rounds (blocks and control targets), per campaign.",
        per_campaign(|cc| cc.probes),
    )
    .counter(
        "darkwatch_agent_replies_total",
        "Echo replies of the rounds, per campaign.",
        per_campaign(|cc| cc.replies),
    )
    .gauge(
        "darkwatch_agent_last_round_timestamp_seconds",
        "When the campaign's last round finished (Unix time).",
        c.campaigns.iter().map(|(name, cc)| {
            (
                vec![("campaign", name.clone())],
                cc.last_round_ms as f64 / 1000.0,
            )
        }),
    )
    .gauge(
        "darkwatch_agent_skipped_addresses",
        "Assigned addresses the agent refused to probe in the last round, by reason.",
        c.campaigns.iter().flat_map(|(name, cc)| {
            cc.skipped.iter().map(move |(reason, n)| {
                (
                    vec![("campaign", name.clone()), ("reason", reason.clone())],
                    *n as f64,
                )
            })
        }),
    )
    .gauge(
        "darkwatch_agent_round_cpu_seconds",
        "Process CPU seconds from the start to the end of the campaign's last round (with whatever ran beside it).",
        c.campaigns
            .iter()
            .map(|(name, cc)| (vec![("campaign", name.clone())], cc.round_cpu_secs)),
    )
    .gauge(
        "darkwatch_agent_rediscovery_round_cpu_seconds",
        "Process CPU seconds of the campaign's last round beside which a discovery sweep ran.",
        c.campaigns
            .iter()
            .map(|(name, cc)| (vec![("campaign", name.clone())], cc.sweep_round_cpu_secs)),
    )
    .counter(
        "darkwatch_agent_batches_rejected_total",
        "Report batches the collector refused as invalid (kept in the spool's rejected/).",
        one(c.batches_rejected),
    )
    .counter(
        "darkwatch_agent_batches_partial_total",
        "Report batches the collector stored only in part (a copy kept in the spool's rejected/ with the reason).",
        one(c.batches_partial),
    )
    .counter(
        "darkwatch_agent_drains_held_total",
        "Spool drains held back because this host's clock was beyond report.max_clock_offset_secs off the collector's (its rounds cannot be placed; batches stay spooled).",
        one(c.drains_held),
    )
    .gauge(
        "darkwatch_agent_clock_offset_seconds",
        "The collector's clock minus this host's, from its answers' Date header (±0.5 s); absent until measured.",
        c.clock_offset_ms
            .map(|ms| (Labels::new(), ms as f64 / 1000.0)),
    )
    .counter(
        "darkwatch_agent_assignments_refused_total",
        "Campaign assignments refused outright (bad name or interval), once per generation.",
        one(c.assignments_refused),
    );
    if let Some(s) = spool {
        e.gauge(
            "darkwatch_agent_spool_bytes",
            "Bytes of report batches waiting in the spool.",
            [(Labels::new(), s.bytes as f64)],
        )
        .gauge(
            "darkwatch_agent_spool_batches",
            "Report batches waiting in the spool.",
            [(Labels::new(), s.batches as f64)],
        );
    }
    e.render()
}

/// CPU seconds (user and system) this process has used, from
/// `/proc/self/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`); `None`
/// where it cannot be read.
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_of_stat(&stat)
}

/// `utime + stime` of a `/proc/PID/stat` line, in seconds.
fn cpu_of_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces; fields after it count
    // from its closing parenthesis: utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind: keep them.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The daemon's metrics: counters (one lock, so a scrape or a persisted
/// snapshot is consistent across labels), their files, their listener.
pub struct Metrics {
    counters: Mutex<Counters>,
    /// Serializes the file writes of concurrent rounds and drains.
    writing: Mutex<()>,
    state_file: PathBuf,
    cfg: MetricsConfig,
    spool: Arc<Spool>,
}

impl Metrics {
    /// Loads the counters persisted under `state_dir` (an unreadable file
    /// starts them afresh, with a warning) and checks that the textfile's
    /// directory exists.
    pub fn open(cfg: &MetricsConfig, state_dir: &Path, spool: Arc<Spool>) -> Result<Metrics> {
        let state_file = state_dir.join("metrics.json");
        let counters = match std::fs::read(&state_file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(file = %state_file.display(), error = %e, "unreadable metrics state; counters start from zero");
                Counters::default()
            }),
            Err(_) => Counters::default(),
        };
        if let Some(dir) = cfg.textfile.as_deref().and_then(Path::parent) {
            anyhow::ensure!(
                dir.is_dir(),
                "metrics.textfile: directory {} does not exist",
                dir.display()
            );
        }
        Ok(Metrics {
            counters: Mutex::new(counters),
            writing: Mutex::new(()),
            state_file,
            cfg: cfg.clone(),
            spool,
        })
    }

    /// Records a round of `campaign`, then persists and exports.
    pub fn round_done(&self, campaign: &str, stats: &RoundStats) {
        lock(&self.counters).round_done(campaign, stats);
        self.save();
    }

    /// Records the process CPU seconds a round of `campaign` took, and
    /// whether a discovery sweep ran beside it.
    pub fn round_cpu(&self, campaign: &str, secs: f64, sweeping: bool) {
        {
            let mut c = lock(&self.counters);
            let cc = c.campaigns.entry(campaign.to_string()).or_default();
            cc.round_cpu_secs = secs;
            if sweeping {
                cc.sweep_round_cpu_secs = secs;
            }
        }
        self.save();
    }

    /// Records a refused assignment (counted once per generation).
    pub fn refused(&self, campaign: &str, generation: u64) {
        if lock(&self.counters).refused(campaign, generation) {
            self.save();
        }
    }

    /// Records a pass over the spool (batches refused; the spool shrank).
    pub fn drained(&self, d: &Drained) {
        // Nothing to persist, and no textfile whose spool gauges would change.
        if d.rejected == 0 && d.partial == 0 && d.held == 0 && self.cfg.textfile.is_none() {
            return;
        }
        {
            let mut c = lock(&self.counters);
            c.batches_rejected += d.rejected as u64;
            c.batches_partial += d.partial as u64;
            c.drains_held += u64::from(d.held > 0);
        }
        self.save();
    }

    /// Records the clock offset measured from the collector's answers;
    /// persisted (and the textfile rewritten) only when it moved by a
    /// second or more.
    pub fn clock_offset(&self, offset_ms: Option<i64>) {
        let Some(ms) = offset_ms else { return };
        let moved = {
            let mut c = lock(&self.counters);
            let moved = c.clock_offset_ms.is_none_or(|b| (b - ms).abs() >= 1000);
            c.clock_offset_ms = Some(ms);
            moved
        };
        if moved {
            self.save();
        }
    }

    fn spool_usage(&self) -> Option<SpoolUsage> {
        let entries = self.spool.entries().ok()?;
        Some(SpoolUsage {
            bytes: entries.iter().map(|e| e.size).sum(),
            batches: entries.len() as u64,
        })
    }

    /// The metrics now, in the Prometheus text format.
    pub fn render(&self) -> String {
        let c = lock(&self.counters).clone();
        render(&c, self.spool_usage())
    }

    /// Persists the counters and rewrites the textfile (atomically, so the
    /// node exporter never reads half a file). Failures are logged: metrics
    /// must never stop probing.
    fn save(&self) {
        let _w = lock(&self.writing);
        let c = lock(&self.counters).clone();
        let state = serde_json::to_vec(&c).unwrap_or_default();
        if let Err(e) = write_atomic(&self.state_file, &state) {
            tracing::warn!(file = %self.state_file.display(), error = %e, "cannot persist metrics");
        }
        if let Some(path) = &self.cfg.textfile {
            if let Err(e) = write_atomic(path, render(&c, self.spool_usage()).as_bytes()) {
                tracing::warn!(file = %path.display(), error = %e, "cannot write the metrics textfile");
            }
        }
    }
}

/// The names of every metric [`render`] writes (for checks of dashboards
/// and alert rules against what exists).
pub fn names() -> Vec<String> {
    render(
        &Counters::default(),
        Some(SpoolUsage {
            bytes: 0,
            batches: 0,
        }),
    )
    .lines()
    .filter_map(|l| l.strip_prefix("# TYPE "))
    .filter_map(|l| l.split_whitespace().next())
    .map(str::to_string)
    .collect()
}

mod http;
#[cfg(test)]
mod tests;
