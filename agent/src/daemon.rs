//! `darkwatch-agent run`: the vantage-point daemon (and its cron mode, `--once`).
//!
//! Per campaign assigned by the collector: discover the space's responsive
//! addresses (except blocks the assignment's census already covers; the
//! findings go back to the collector's census) in a paced background sweep
//! beside the rounds, and, at every round boundary (rounds are aligned to the
//! campaign interval, so all VPs count the same rounds), run one
//! Trinocular-style round over every block known so far and the control
//! targets, spread over the interval in slices (`schedule`), traceroute a
//! few targets, write the batch to the spool, and wake the sender. A round
//! never waits for a sweep: blocks join the rounds as their responsive hosts
//! become known. The sender drains the spool to the collector with
//! exponential backoff; a batch leaves the spool only once the collector has
//! acknowledged it.
//!
//! The round's number and start are taken when it starts, and the daemon
//! records when it ended and whether it ended before the next round began
//! ([`Agent::status`], `state/rounds.json`, and the report).
//!
//! The decisions (refuse or accept, when to sweep, what to trace, what to
//! report, which slice a block is probed in) are pure functions in `campaign`
//! and `schedule`, and the sequencing of a round between them is the
//! sans-IO `driver`: this module does the I/O around them (`rounds` carries
//! out a round's actions). Each assignment is checked once, when its round
//! is found due ([`Agent::due`]); a refused one gets no round. Whatever the
//! collector assigns, the agent applies its own limits first: its pps cap
//! (split between discovery and rounds, see `schedule`), `max_targets`, its
//! local exclusion list, and the reserved ranges unless the operator allowed
//! them; it logs what it refused. The pinger, the tracer and the wall clock
//! are passed in, so whole rounds run in tests against a simulated network
//! and clock.
//!
//! Probing state (trackers, last round done) is kept in memory between rounds
//! and in `spool_dir/state/` between runs (see `state`: the responsive sets
//! are rewritten only when they change, beliefs every round), so cron runs
//! and restarts resume where they stopped without re-sweeping.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use darkwatch_schema::{round_of, round_start_ms, Assignments, RoundInfo};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::campaign::{self, CampaignState, Policy, Wire};
use crate::clock::Clock;
use crate::config::Config;
use crate::discovery::Background;
use crate::icmp::Pinger;
use crate::ratelimit::RateLimiter;
use crate::report::Reporter;
use crate::schedule;
use crate::spool::{write_atomic, Spool};
use crate::targets::read_exclusions;
use crate::trace::Tracer;
use crate::ProbeSettings;

mod census;
mod rounds;

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
        rediscovery: crate::rediscovery::Rediscovery {
            stale_after: cfg.probe.rediscover_stale_after,
            sample_per_mille: cfg.probe.rediscover_sample_per_mille,
        },
        traces_per_round: cfg.trace.per_round,
        min_campaign_probes: cfg.probe.min_campaign_probes,
    })
}

/// How rounds are run: the daemon spreads them over slices and lets
/// discovery run beside them; `--once` (cron) has no next round in the same
/// process to protect, so it sweeps to the end first and probes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Once,
}

/// A round due of a campaign that passed the acceptance check: only
/// [`Agent::due`] makes one, so the name of a campaign whose round runs is
/// safe in a file path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Due {
    /// The campaign's place in its assignments.
    index: usize,
    round: u64,
    /// Taken when the round was found due.
    started_ms: i64,
}

/// What the daemon holds for one campaign between its rounds.
#[derive(Default)]
struct CampaignRun {
    /// Loaded from disk at the campaign's first round in this process.
    st: Option<CampaignState>,
    discovery: Option<Background>,
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
    /// Rounds and traceroutes.
    limiter: Arc<RateLimiter>,
    /// Background discovery (see [`schedule::split_pps`]).
    discovery_limiter: Arc<RateLimiter>,
    policy: Policy,
    state_dir: PathBuf,
    settings: ProbeSettings,
    metrics: Arc<crate::metrics::Metrics>,
    runs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<CampaignRun>>>>,
    /// The last round of every campaign (see [`Agent::status`]).
    last_rounds: Mutex<BTreeMap<String, RoundInfo>>,
    /// How rounds travel, as the latest assignments allow, and whether the
    /// collector accepts the probes' ICMP errors.
    wire: Mutex<(Wire, bool)>,
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
        )?
        .with_max_clock_offset(Duration::from_secs(cfg.report.max_clock_offset_secs));
        let (round_pps, discovery_pps) = schedule::split_pps(cfg.pps);
        let limiter = Arc::new(RateLimiter::new(round_pps, crate::ratelimit::DEFAULT_BURST));
        let discovery_limiter = Arc::new(RateLimiter::new(
            discovery_pps,
            crate::ratelimit::DEFAULT_BURST,
        ));
        let policy = policy_of(&cfg)?;
        let metrics = crate::metrics::Metrics::open(&cfg.metrics, &state_dir, spool.clone())?;
        let settings = ProbeSettings {
            timeout: Duration::from_millis(cfg.probe.timeout_ms),
            max_probes: cfg.probe.max_probes,
            pps: cfg.pps,
            ..ProbeSettings::default()
        };
        let last_rounds = load_json(&state_dir.join("rounds.json")).unwrap_or_default();
        Ok(Agent {
            cfg,
            spool,
            reporter,
            pinger,
            tracer,
            clock,
            limiter,
            discovery_limiter,
            policy,
            state_dir,
            settings,
            runs: Mutex::new(HashMap::new()),
            last_rounds: Mutex::new(last_rounds),
            wire: Mutex::new((Wire::Plain, false)),
            metrics: Arc::new(metrics),
        })
    }

    fn state_files(&self, campaign: &str) -> crate::state::Files {
        // Only called with names that passed `campaign_acceptable` (`Due`).
        crate::state::Files::new(&self.state_dir, campaign)
    }

    fn assignments_path(&self) -> PathBuf {
        self.state_dir.join("assignments.json")
    }

    /// The last round of every campaign: when it started and ended, whether
    /// on time, its blocks and probes (also in `state/rounds.json`).
    pub fn status(&self) -> Vec<RoundInfo> {
        let rounds = self.last_rounds.lock().unwrap_or_else(|e| e.into_inner());
        rounds.values().cloned().collect()
    }

    /// True while a discovery sweep of `campaign` runs.
    pub async fn discovering(&self, campaign: &str) -> bool {
        let run = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(campaign)
            .cloned();
        match run {
            Some(run) => run
                .lock()
                .await
                .discovery
                .as_ref()
                .is_some_and(|d| d.running()),
            None => false,
        }
    }

    fn run_of(&self, campaign: &str) -> Arc<tokio::sync::Mutex<CampaignRun>> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.entry(campaign.to_string()).or_default().clone()
    }

    /// Pulls assignments; falls back to the last ones seen when the
    /// collector is unreachable, so probing goes on during its outages.
    /// The cache is rewritten only when they differ from `previous` (the
    /// ones in use): with its census, an assignment of a large campaign is
    /// hundreds of MB of JSON.
    async fn assignments(&self, previous: Option<&Arc<Assignments>>) -> Option<Arc<Assignments>> {
        let cached = || {
            let mut a = load_json::<Assignments>(&self.assignments_path())?;
            self.load_cached_census(&mut a);
            Some(Arc::new(a))
        };
        let a = match self.reporter.assignments().await {
            Ok(Some(mut a)) => {
                self.metrics.clock_offset(self.reporter.clock_offset_ms());
                self.fill_census(&mut a, previous.map(|p| p.as_ref())).await;
                if previous.map(|p| p.as_ref()) != Some(&a) {
                    self.save_assignments(&mut a);
                }
                Some(Arc::new(a))
            }
            // Unchanged since the last ones received (which are cached).
            Ok(None) => {
                self.metrics.clock_offset(self.reporter.clock_offset_ms());
                previous.cloned().or_else(cached)
            }
            Err(e) => {
                let cached = cached();
                tracing::warn!(error = %e, cached = cached.is_some(), "cannot pull assignments; using the cached ones");
                cached
            }
        };
        let r = &self.cfg.report;
        *self.wire.lock().unwrap_or_else(|e| e.into_inner()) = (
            Wire::choose(
                r.packed,
                a.as_ref().and_then(|a| a.packed),
                r.max_blocks_per_batch,
            ),
            a.as_ref().is_some_and(|a| a.probe_errors),
        );
        a
    }

    /// The round due now of every campaign the agent accepts (number and
    /// start, taken now), and the earliest start of a next round. The one
    /// acceptance check of an assignment: a refused campaign (a bad name, an
    /// absurd interval) is logged, counted, and gets neither a round nor a
    /// say in the schedule. Forgets campaigns no longer assigned (stopping
    /// their sweeps).
    fn due(&self, a: &Assignments) -> (Vec<Due>, Option<i64>) {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| a.campaigns.iter().any(|c| &c.name == name));
        let now = self.clock.now_ms();
        let mut next = None::<i64>;
        let mut due = Vec::new();
        for (index, c) in a.campaigns.iter().enumerate() {
            if let Err(why) = campaign::campaign_acceptable(c) {
                tracing::error!(campaign = %c.name, why, "refusing an invalid campaign from the collector");
                self.metrics.refused(&c.name, c.generation);
                continue;
            }
            let round = round_of(now, c.interval_secs);
            due.push(Due {
                index,
                round,
                started_ms: now,
            });
            let start = round_start_ms(round + 1, c.interval_secs);
            next = Some(next.map_or(start, |n| n.min(start)));
        }
        (due, next)
    }

    async fn round_logged(&self, a: &Assignments, due: Due, mode: Mode) {
        if let Err(e) = self.campaign_round(a, due, mode).await {
            let name = &a.campaigns[due.index].name;
            tracing::error!(campaign = %name, error = format!("{e:#}"), "round failed");
        }
    }

    /// Runs the due round of every campaign (side by side) and waits for
    /// them. Returns the earliest start of a next round.
    #[cfg(test)]
    async fn tick(&self, assignments: &Option<Assignments>) -> Option<i64> {
        self.tick_mode(assignments.as_ref(), Mode::Daemon).await
    }

    async fn tick_mode(&self, assignments: Option<&Assignments>, mode: Mode) -> Option<i64> {
        let a = assignments?;
        let (due, next) = self.due(a);
        let rounds = due.into_iter().map(|d| self.round_logged(a, d, mode));
        futures::future::join_all(rounds).await;
        next
    }

    /// `run --once`: one round of every campaign, then one attempt to send
    /// the spool. Data the collector did not take stays spooled for next time.
    pub async fn run_once(&self) -> Result<()> {
        let a = self.assignments(None).await;
        if a.is_none() {
            tracing::warn!(
                "no assignments (collector unreachable and none cached): nothing to probe"
            );
        }
        self.tick_mode(a.as_deref(), Mode::Once).await;
        let (d, err) = self.reporter.drain(&self.spool).await;
        self.metrics.drained(&d);
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

    /// The daemon: every campaign's rounds on its own schedule (a round in
    /// progress is never waited for by another campaign's), a sender
    /// draining the spool with backoff, until SIGINT/SIGTERM.
    pub async fn run(self: Arc<Self>) -> Result<()> {
        self.metrics.listen()?;
        let wake = Arc::new(Notify::new());
        let sender = tokio::spawn(sender_loop(self.clone(), wake.clone()));
        // Assignments are pulled by a task of their own: a slow or
        // unreachable collector must not hold back a round's start.
        // Shared, not cloned: an assignment carries its campaigns' census
        // (every known-responsive address, hundreds of MB for a large
        // campaign), and the loop below looks at it every second.
        let (tx, mut assignments) = tokio::sync::watch::channel(self.assignments(None).await);
        let poll = Duration::from_secs(self.cfg.report.poll_secs.max(1));
        let poller = tokio::spawn({
            let agent = self.clone();
            async move {
                loop {
                    tokio::time::sleep(poll).await;
                    let previous = tx.borrow().clone();
                    if let Some(a) = agent.assignments(previous.as_ref()).await {
                        tx.send_replace(Some(a));
                    }
                }
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut rounds: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            rounds.retain(|_, h| !h.is_finished());
            let current = assignments.borrow_and_update().clone();
            let mut next = None;
            if let Some(a) = &current {
                let (due, n) = self.due(a);
                next = n;
                for d in due {
                    let c = &a.campaigns[d.index];
                    // A round still running past its interval: the next one
                    // starts when it is done (it was not on time).
                    if rounds.contains_key(&c.name) {
                        continue;
                    }
                    let (agent, a2, wake) = (self.clone(), a.clone(), wake.clone());
                    rounds.insert(
                        c.name.clone(),
                        tokio::spawn(async move {
                            agent.round_logged(&a2, d, Mode::Daemon).await;
                            wake.notify_one();
                        }),
                    );
                }
            }
            // Until the next round starts (checked again at least every
            // second, so that a round that ran late is followed promptly).
            let wait = next.map_or(1000, |n| (n - self.clock.now_ms()).clamp(1, 1000));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = assignments.changed() => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("stopping; unsent batches stay in the spool");
        for h in rounds.values() {
            h.abort();
        }
        poller.abort();
        sender.abort();
        Ok(())
    }
}

async fn sender_loop(agent: Arc<Agent>, wake: Arc<Notify>) {
    let max = Duration::from_secs(agent.cfg.report.retry_max_secs);
    let mut backoff = Duration::from_millis(500);
    loop {
        let (d, err) = agent.reporter.drain(&agent.spool).await;
        agent.metrics.drained(&d);
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
                tracing::warn!(error = %e, remaining = d.remaining, retry_in = ?backoff, "the spool is not drained; trying again");
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
