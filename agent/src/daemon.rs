//! `darkwatch-agent run`: the vantage-point daemon (and its cron mode, `--once`).
//!
//! Per campaign assigned by the collector: sweep the space once to find its
//! responsive addresses (except blocks the assignment's census already
//! covers; the sweep's findings go back to the collector's census), then, at every round boundary (rounds are aligned to
//! the campaign interval, so all VPs count the same rounds), run one
//! Trinocular-style round over every block and control target, traceroute a
//! few targets, write the batch to the spool, and wake the sender. The sender
//! drains the spool to the collector with exponential backoff; a batch leaves
//! the spool only once the collector has acknowledged it.
//!
//! The decisions (refuse or accept, when to sweep, what to trace, what to
//! report) are pure functions in `campaign`; this module does the I/O around
//! them. Whatever the collector assigns, the agent applies its own limits
//! first: its pps cap, `max_targets`, its local exclusion list, and the
//! reserved ranges unless the operator allowed them; it logs what it refused.
//! The pinger, the tracer and the wall clock are passed in, so whole rounds
//! run in tests against a simulated network and clock.
//!
//! Probing state (trackers, last round done) is kept in `spool_dir/state/`,
//! so cron runs and restarts resume where they stopped without re-sweeping.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use darkwatch_schema::{round_of, round_start_ms, Assignments, CampaignAssignment};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::campaign::{self, CampaignState, NoRound, Policy, RoundResults, Wire};
use crate::clock::Clock;
use crate::config::Config;
use crate::icmp::Pinger;
use crate::ratelimit::RateLimiter;
use crate::report::Reporter;
use crate::spool::{write_atomic, Spool};
use crate::targets::read_exclusions;
use crate::trace::{TraceOptions, TraceResult, Tracer};
use crate::ProbeSettings;

fn new_batch_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Writes `value` as JSON atomically (see [`write_atomic`]).
fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let body = serde_json::to_vec(value)?;
    write_atomic(path, &body).with_context(|| format!("writing {}", path.display()))
}

fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable state file");
            None
        }
    }
}

/// The local policy of `cfg` (its exclusion file read).
fn policy_of(cfg: &Config) -> Result<Policy> {
    let exclude = match &cfg.exclude_file {
        Some(p) => read_exclusions(p).with_context(|| format!("exclusion list {}", p.display()))?,
        None => Vec::new(),
    };
    Ok(Policy {
        exclude,
        allow: cfg.allow.clone(),
        max_targets: cfg.max_targets,
        rediscover_rounds: cfg.probe.rediscover_rounds,
        traces_per_round: cfg.trace.per_round,
    })
}

/// The daemon. Its pinger, tracer and clock come from outside: the CLI wires
/// in the real ones, tests a simulated network and clock.
pub struct Agent {
    cfg: Config,
    spool: Arc<Spool>,
    reporter: Reporter,
    pinger: Arc<dyn Pinger>,
    tracer: Arc<dyn Tracer>,
    clock: Arc<dyn Clock>,
    limiter: Arc<RateLimiter>,
    policy: Policy,
    state_dir: PathBuf,
    settings: ProbeSettings,
}

impl Agent {
    pub fn new(
        cfg: Config,
        pinger: Arc<dyn Pinger>,
        tracer: Arc<dyn Tracer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Agent> {
        let token = cfg.token()?;
        let spool = Arc::new(Spool::open(&cfg.spool_dir, cfg.spool.max_bytes)?);
        let state_dir = cfg.spool_dir.join("state");
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let reporter = Reporter::new(
            &cfg.collector,
            &token,
            Duration::from_secs(cfg.report.http_timeout_secs),
        )?;
        let limiter = Arc::new(RateLimiter::new(cfg.pps, crate::ratelimit::DEFAULT_BURST));
        let policy = policy_of(&cfg)?;
        let settings = ProbeSettings {
            timeout: Duration::from_millis(cfg.probe.timeout_ms),
            max_probes: cfg.probe.max_probes,
            pps: cfg.pps,
            ..ProbeSettings::default()
        };
        Ok(Agent {
            cfg,
            spool,
            reporter,
            pinger,
            tracer,
            clock,
            limiter,
            policy,
            state_dir,
            settings,
        })
    }

    fn state_path(&self, campaign: &str) -> PathBuf {
        // Only called with names that passed `campaign_acceptable`.
        self.state_dir.join(format!("campaign-{campaign}.json"))
    }

    fn assignments_path(&self) -> PathBuf {
        self.state_dir.join("assignments.json")
    }

    /// Pulls assignments; falls back to the last ones seen when the
    /// collector is unreachable, so probing goes on during its outages.
    async fn assignments(&self) -> Option<Assignments> {
        match self.reporter.assignments().await {
            Ok(a) => {
                if let Err(e) = save_json(&self.assignments_path(), &a) {
                    tracing::warn!(error = %e, "cannot cache assignments");
                }
                Some(a)
            }
            Err(e) => {
                let cached: Option<Assignments> = load_json(&self.assignments_path());
                tracing::warn!(error = %e, cached = cached.is_some(), "cannot pull assignments; using the cached ones");
                cached
            }
        }
    }

    /// Runs one round of `c` (if due) as [`campaign::plan`] says, and spools
    /// its batches. Returns true if a batch was spooled.
    async fn campaign_round(&self, c: &CampaignAssignment, round: u64, wire: Wire) -> Result<bool> {
        let started_ms = self.clock.now_ms();
        // Checked before the name is used in a file path.
        if let Err(why) = campaign::campaign_acceptable(c) {
            tracing::error!(campaign = %c.name, why, "refusing an invalid campaign from the collector");
            return Ok(false);
        }
        let path = self.state_path(&c.name);
        let mut st: CampaignState = load_json(&path).unwrap_or_default();
        let plan = match campaign::plan(c, &mut st, round, &self.policy) {
            Ok(p) => p,
            Err(NoRound::Done) => return Ok(false),
            Err(NoRound::Invalid(why)) => {
                tracing::error!(campaign = %c.name, why, "refusing an invalid campaign from the collector");
                return Ok(false);
            }
        };
        let mut found = Default::default();
        if let Some(sweep) = &plan.sweep {
            for (set, control) in [(&sweep.targets, false), (&sweep.control, true)] {
                let Some(set) = set else { continue };
                let swept = crate::discovery::sweep(
                    self.pinger.clone(),
                    self.limiter.clone(),
                    set,
                    &self.settings,
                )
                .await;
                if control {
                    campaign::merge_found(&mut st.control_trackers, &swept);
                } else {
                    campaign::merge_found(&mut st.trackers, &swept);
                    found = swept;
                }
            }
            tracing::info!(campaign = %c.name, tracked = st.trackers.len(), controls = st.control_trackers.len(), "discovery done");
        }
        let trace_targets = campaign::trace_targets(c, &mut st, round, &self.policy);
        // Probing, control probing and traceroutes run side by side, so that
        // a round fits in its interval even when every block is dark.
        let (outcomes, controls, traces) = tokio::join!(
            crate::round::run_round(
                &mut st.trackers,
                self.pinger.clone(),
                self.limiter.clone(),
                &self.settings,
                plan.seed,
            ),
            crate::round::run_round(
                &mut st.control_trackers,
                self.pinger.clone(),
                self.limiter.clone(),
                &self.settings,
                plan.seed,
            ),
            self.traces(trace_targets),
        );
        let blocks = outcomes.len();
        let up = outcomes
            .iter()
            .filter(|o| o.probes > 0 && o.state == darkwatch_schema::BlockState::Up)
            .count();
        let ended_ms = self.clock.now_ms();
        let info = darkwatch_schema::RoundInfo {
            campaign: c.name.clone(),
            round,
            started_ms,
            ended_ms,
            on_time: ended_ms < round_start_ms(round + 1, c.interval_secs),
            blocks: outcomes.iter().filter(|o| o.probes > 0).count() as u64,
            probes: outcomes.iter().map(|o| u64::from(o.probes)).sum(),
        };
        let results = RoundResults {
            outcomes,
            controls,
            traces,
            found,
            info: Some(info),
        };
        let batches = campaign::record(
            c,
            &mut st,
            &plan,
            results,
            ended_ms,
            wire,
            &mut new_batch_id,
        );
        let traces: usize = batches.iter().map(|b| b.traces.len()).sum();
        tracing::info!(campaign = %c.name, round, blocks, up, traces, "round done");
        if batches.iter().any(|b| !b.packed.is_empty()) {
            self.spool.remember_space(&c.prefixes)?;
        }
        for batch in &batches {
            let dropped = self.spool.push(batch)?;
            if dropped > 0 {
                tracing::warn!(dropped, "spool full: dropped the oldest batches");
            }
        }
        save_json(&path, &st)?;
        Ok(true)
    }

    async fn traces(&self, targets: Vec<IpAddr>) -> Vec<TraceResult> {
        let opts = TraceOptions {
            max_ttl: self.cfg.trace.max_ttl,
            rounds: self.cfg.trace.rounds,
            max_round: Duration::from_millis(self.cfg.trace.max_round_ms),
            ..TraceOptions::default()
        };
        let runs = targets.into_iter().map(|t| {
            let opts = &opts;
            async move { (t, self.tracer.trace(t, opts, Some(&self.limiter)).await) }
        });
        let mut out = Vec::new();
        for (target, res) in futures::future::join_all(runs).await {
            match res {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(%target, error = %e, "traceroute failed"),
            }
        }
        out
    }

    /// One pass: pull assignments, run every campaign's current round if it
    /// was not run yet. Returns the earliest start of a next round.
    async fn tick(&self, assignments: &Option<Assignments>) -> Option<i64> {
        let a = assignments.as_ref()?;
        let mut next = None::<i64>;
        let wire = Wire::choose(
            self.cfg.report.packed,
            a.packed,
            self.cfg.report.max_blocks_per_batch,
        );
        for c in &a.campaigns {
            let round = round_of(self.clock.now_ms(), c.interval_secs);
            if let Err(e) = self.campaign_round(c, round, wire).await {
                tracing::error!(campaign = %c.name, error = format!("{e:#}"), "round failed");
            }
            // An absurd interval must not set the schedule either.
            if campaign::campaign_acceptable(c).is_err() {
                continue;
            }
            let start = round_start_ms(round + 1, c.interval_secs);
            next = Some(next.map_or(start, |n| n.min(start)));
        }
        next
    }

    /// `run --once`: one round of every campaign, then one attempt to send
    /// the spool. Data the collector did not take stays spooled for next time.
    pub async fn run_once(&self) -> Result<()> {
        let a = self.assignments().await;
        if a.is_none() {
            tracing::warn!(
                "no assignments (collector unreachable and none cached): nothing to probe"
            );
        }
        self.tick(&a).await;
        let (d, err) = self.reporter.drain(&self.spool).await;
        tracing::info!(
            sent = d.sent,
            duplicates = d.duplicates,
            rejected = d.rejected,
            unpacked = d.unpacked,
            "spool drained"
        );
        if let Some(e) = err {
            tracing::warn!(error = %e, remaining = d.remaining, "collector did not take everything; kept in the spool");
        }
        Ok(())
    }

    /// The daemon: rounds on schedule, a sender draining the spool with
    /// backoff, until SIGINT/SIGTERM.
    pub async fn run(self: Arc<Self>) -> Result<()> {
        let wake = Arc::new(Notify::new());
        let sender = tokio::spawn(sender_loop(self.clone(), wake.clone()));
        let mut assignments = self.assignments().await;
        let mut last_poll = self.clock.now_ms();
        let poll_ms = self.cfg.report.poll_secs as i64 * 1000;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            if self.clock.now_ms() - last_poll >= poll_ms {
                if let Some(a) = self.assignments().await {
                    assignments = Some(a);
                }
                last_poll = self.clock.now_ms();
            }
            let next = self.tick(&assignments).await;
            wake.notify_one();
            let until = next.unwrap_or(i64::MAX).min(last_poll + poll_ms);
            let wait = Duration::from_millis(
                (until - self.clock.now_ms()).clamp(10, poll_ms.max(10)) as u64,
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("stopping; unsent batches stay in the spool");
        sender.abort();
        Ok(())
    }
}

async fn sender_loop(agent: Arc<Agent>, wake: Arc<Notify>) {
    let max = Duration::from_secs(agent.cfg.report.retry_max_secs);
    let mut backoff = Duration::from_millis(500);
    loop {
        let (d, err) = agent.reporter.drain(&agent.spool).await;
        if d.sent > 0 || d.rejected > 0 || d.unpacked > 0 {
            tracing::info!(
                sent = d.sent,
                duplicates = d.duplicates,
                rejected = d.rejected,
                unpacked = d.unpacked,
                "spool drained"
            );
        }
        match err {
            None => {
                backoff = Duration::from_millis(500);
                wake.notified().await;
            }
            Some(e) => {
                tracing::warn!(error = %e, remaining = d.remaining, retry_in = ?backoff, "cannot reach the collector");
                // Wait out the backoff even if a new batch arrives meanwhile:
                // the collector is down, more requests would not help.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
            }
        }
    }
}

#[cfg(test)]
mod tests;
