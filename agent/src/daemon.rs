//! `darkwatch-agent run`: the vantage-point daemon (and its cron mode, `--once`).
//!
//! Per campaign assigned by the collector: sweep the space once to find its
//! responsive addresses, then, at every round boundary (rounds are aligned to
//! the campaign interval, so all VPs count the same rounds), run one
//! Trinocular-style round over every block and control target, traceroute a
//! few targets, write the batch to the spool, and wake the sender. The sender
//! drains the spool to the collector with exponential backoff; a batch leaves
//! the spool only once the collector has acknowledged it.
//!
//! Whatever the collector assigns, the agent applies its own limits first:
//! its pps cap, `max_targets`, its local exclusion list, and the reserved
//! ranges unless the operator allowed them; it logs what it refused.
//!
//! Probing state (trackers, last round done) is kept in `spool_dir/state/`,
//! so cron runs and restarts resume where they stopped without re-sweeping.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use darkwatch_schema::{
    round_of, round_start_ms, Assignments, BlockObservation, CampaignAssignment, ReportBatch,
    TraceObservation,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::belief::{BlockTracker, RoundOutcome};
use crate::config::Config;
use crate::icmp::{Pinger, SurgePinger};
use crate::ratelimit::RateLimiter;
use crate::report::Reporter;
use crate::spool::Spool;
use crate::targets::{read_exclusions, TargetSet, TargetSpec};
use crate::trace::TraceOptions;
use crate::ProbeSettings;

/// What the agent keeps between rounds for one campaign.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CampaignState {
    pub generation: u64,
    pub prefixes: Vec<IpNet>,
    pub control: Vec<IpNet>,
    pub trackers: BTreeMap<IpNet, BlockTracker>,
    pub control_trackers: BTreeMap<IpNet, BlockTracker>,
    /// Round of the last discovery sweep.
    pub discovered_round: Option<u64>,
    /// Last round whose batch was spooled.
    pub last_round: Option<u64>,
    /// Rotates traceroutes over the campaign's prefixes.
    pub trace_cursor: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn new_batch_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Writes `value` as JSON atomically (temp file, fsync, rename).
fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(value)?;
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
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

/// The agent's own limits, applied to whatever the collector assigns.
struct LocalPolicy {
    exclude: Vec<IpNet>,
    allow: Vec<IpNet>,
    max_targets: u64,
}

impl LocalPolicy {
    fn from_config(cfg: &Config) -> Result<LocalPolicy> {
        let exclude = match &cfg.exclude_file {
            Some(p) => {
                read_exclusions(p).with_context(|| format!("exclusion list {}", p.display()))?
            }
            None => Vec::new(),
        };
        Ok(LocalPolicy {
            exclude,
            allow: cfg.allow.clone(),
            max_targets: cfg.max_targets,
        })
    }

    /// The part of `prefixes` this agent is willing to probe.
    fn targets(&self, campaign: &str, prefixes: &[IpNet]) -> Option<TargetSet> {
        if prefixes.is_empty() {
            return None;
        }
        let spec = TargetSpec {
            include: prefixes.to_vec(),
            exclude: self.exclude.clone(),
            allow: self.allow.clone(),
            exclude_reserved: true,
            max_targets: self.max_targets,
        };
        match TargetSet::build(&spec) {
            Ok(set) => {
                let kept = set.address_count();
                let asked: u128 = prefixes.iter().map(prefix_size).sum();
                if kept < asked {
                    tracing::warn!(
                        campaign,
                        asked = asked as u64,
                        kept = kept as u64,
                        "refused part of the assigned space (local exclusions or reserved ranges)"
                    );
                }
                Some(set)
            }
            Err(e) => {
                tracing::error!(campaign, error = %e, "refusing the campaign's targets");
                None
            }
        }
    }
}

/// Longest round interval the agent accepts from a collector (a week).
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;

/// Why a campaign pulled from the collector is refused outright, if it is:
/// a bad name (it becomes a file name) or an absurd interval.
pub fn campaign_acceptable(c: &CampaignAssignment) -> Result<(), &'static str> {
    if !darkwatch_schema::valid_name(&c.name) {
        return Err("invalid campaign name");
    }
    if c.interval_secs == 0 || c.interval_secs > MAX_INTERVAL_SECS {
        return Err("round interval outside 1 s .. 7 days");
    }
    Ok(())
}

fn prefix_size(p: &IpNet) -> u128 {
    match p {
        IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
        IpNet::V6(n) => 1u128
            .checked_shl(128 - u32::from(n.prefix_len()))
            .unwrap_or(u128::MAX),
    }
}

pub struct Agent {
    cfg: Config,
    spool: Arc<Spool>,
    reporter: Reporter,
    pinger: Arc<dyn Pinger>,
    limiter: Arc<RateLimiter>,
    policy: LocalPolicy,
    state_dir: PathBuf,
    settings: ProbeSettings,
}

impl Agent {
    pub fn new(cfg: Config) -> Result<Agent> {
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
        let pinger: Arc<dyn Pinger> = Arc::new(SurgePinger::new()?);
        let limiter = Arc::new(RateLimiter::new(cfg.pps, crate::ratelimit::DEFAULT_BURST));
        let policy = LocalPolicy::from_config(&cfg)?;
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
            limiter,
            policy,
            state_dir,
            settings,
        })
    }

    fn state_path(&self, campaign: &str) -> PathBuf {
        // Campaign names are validated by the schema (no slashes, no dots-only).
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

    /// Runs one round of `c` (if due) and spools its batch. Returns true if a
    /// batch was spooled.
    async fn campaign_round(&self, c: &CampaignAssignment, round: u64) -> Result<bool> {
        if let Err(why) = campaign_acceptable(c) {
            tracing::error!(campaign = %c.name, why, "refusing an invalid campaign from the collector");
            return Ok(false);
        }
        let path = self.state_path(&c.name);
        let mut st: CampaignState = load_json(&path).unwrap_or_default();
        if st.last_round.is_some_and(|r| r >= round) {
            return Ok(false);
        }
        let changed =
            st.generation != c.generation || st.prefixes != c.prefixes || st.control != c.control;
        let rediscover = self.cfg.probe.rediscover_rounds > 0
            && st
                .discovered_round
                .is_none_or(|d| round >= d + self.cfg.probe.rediscover_rounds);
        if changed || rediscover || st.discovered_round.is_none() {
            self.discover(c, &mut st, changed).await;
            st.discovered_round = Some(round);
        }
        let seed = round ^ 0x5eed;
        // Probing, control probing and traceroutes run side by side, so that
        // a round fits in its interval even when every block is dark.
        let trace_targets = self.trace_targets(c, &mut st, round);
        let (outcomes, controls, traces) = tokio::join!(
            crate::round::run_round(
                &mut st.trackers,
                self.pinger.clone(),
                self.limiter.clone(),
                &self.settings,
                seed
            ),
            crate::round::run_round(
                &mut st.control_trackers,
                self.pinger.clone(),
                self.limiter.clone(),
                &self.settings,
                seed,
            ),
            self.traces(c, trace_targets, round),
        );
        let ts = now_ms();
        let obs = |o: &RoundOutcome, control: bool| BlockObservation {
            campaign: c.name.clone(),
            round,
            block: o.block,
            state: o.state,
            probes: o.probes,
            replies: o.replies,
            belief: o.belief.clamp(0.0, 1.0),
            availability: o.availability.clamp(0.0, 1.0),
            control,
            ts_ms: ts,
        };
        // A block that never answered cannot be judged: nothing is reported.
        let observations: Vec<BlockObservation> = outcomes
            .iter()
            .filter(|o| o.probes > 0)
            .map(|o| obs(o, false))
            .chain(
                controls
                    .iter()
                    .filter(|o| o.probes > 0)
                    .map(|o| obs(o, true)),
            )
            .collect();
        let batch = ReportBatch {
            batch_id: new_batch_id(),
            created_ms: ts,
            observations,
            traces,
            coverage: Vec::new(),
            census: Vec::new(),
        };
        let up = batch
            .observations
            .iter()
            .filter(|o| !o.control && o.state == darkwatch_schema::BlockState::Up)
            .count();
        tracing::info!(campaign = %c.name, round, blocks = outcomes.len(), up, traces = batch.traces.len(), "round done");
        let dropped = self.spool.push(&batch)?;
        if dropped > 0 {
            tracing::warn!(dropped, "spool full: dropped the oldest batches");
        }
        st.last_round = Some(round);
        save_json(&path, &st)?;
        Ok(true)
    }

    async fn discover(&self, c: &CampaignAssignment, st: &mut CampaignState, changed: bool) {
        if changed {
            // Keep what we learnt about blocks that are still assigned.
            st.trackers
                .retain(|b, _| c.prefixes.iter().any(|p| p.contains(b) || b.contains(p)));
            st.control_trackers
                .retain(|b, _| c.control.iter().any(|p| p.contains(b) || b.contains(p)));
            st.generation = c.generation;
            st.prefixes = c.prefixes.clone();
            st.control = c.control.clone();
        }
        for (nets, trackers) in [
            (&c.prefixes, &mut st.trackers),
            (&c.control, &mut st.control_trackers),
        ] {
            let Some(set) = self.policy.targets(&c.name, nets) else {
                continue;
            };
            let found = crate::discovery::sweep(
                self.pinger.clone(),
                self.limiter.clone(),
                &set,
                &self.settings,
            )
            .await;
            for (block, addrs) in found {
                match trackers.get_mut(&block) {
                    Some(t) => t.merge_discovery(&addrs),
                    None if !addrs.is_empty() => {
                        trackers.insert(block, BlockTracker::from_discovery(block, addrs));
                    }
                    None => {}
                }
            }
        }
        tracing::info!(campaign = %c.name, tracked = st.trackers.len(), controls = st.control_trackers.len(), "discovery done");
    }

    /// Picks this round's traceroute targets: a few prefixes (rotating), one
    /// known-responsive address of each, or its first address if none is known.
    fn trace_targets(
        &self,
        c: &CampaignAssignment,
        st: &mut CampaignState,
        round: u64,
    ) -> Vec<IpAddr> {
        let n = self.cfg.trace.per_round.min(c.prefixes.len());
        let mut targets = Vec::new();
        for i in 0..n {
            let p = c.prefixes[(st.trace_cursor + i) % c.prefixes.len()];
            let known: Vec<IpAddr> = st
                .trackers
                .values()
                .filter(|t| p.contains(&t.block))
                .flat_map(|t| t.responsive.iter())
                .collect();
            let target = if known.is_empty() {
                p.hosts().next().unwrap_or(p.network())
            } else {
                known[(round as usize) % known.len()]
            };
            if self
                .policy
                .targets(&c.name, &[IpNet::from(target)])
                .is_some()
            {
                targets.push(target);
            }
        }
        if n > 0 {
            st.trace_cursor = (st.trace_cursor + n) % c.prefixes.len();
        }
        targets
    }

    async fn traces(
        &self,
        c: &CampaignAssignment,
        targets: Vec<IpAddr>,
        round: u64,
    ) -> Vec<TraceObservation> {
        let opts = TraceOptions {
            max_ttl: self.cfg.trace.max_ttl,
            rounds: self.cfg.trace.rounds,
            max_round: Duration::from_millis(self.cfg.trace.max_round_ms),
            ..TraceOptions::default()
        };
        let limiter = self.limiter.clone();
        let runs = targets.into_iter().map(|t| {
            let (opts, limiter) = (opts.clone(), limiter.clone());
            async move { (t, crate::trace::trace(t, &opts, Some(&limiter)).await) }
        });
        let mut out = Vec::new();
        for (target, res) in futures::future::join_all(runs).await {
            match res {
                Ok(r) => out.push(TraceObservation {
                    campaign: c.name.clone(),
                    round,
                    target,
                    hops: r.hops,
                    reached: r.reached,
                    last_responding: r.last_responding,
                    ts_ms: now_ms(),
                }),
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
        for c in &a.campaigns {
            let round = round_of(now_ms(), c.interval_secs);
            if let Err(e) = self.campaign_round(c, round).await {
                tracing::error!(campaign = %c.name, error = format!("{e:#}"), "round failed");
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
        let mut last_poll = now_ms();
        let poll_ms = self.cfg.report.poll_secs as i64 * 1000;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            if now_ms() - last_poll >= poll_ms {
                if let Some(a) = self.assignments().await {
                    assignments = Some(a);
                }
                last_poll = now_ms();
            }
            let next = self.tick(&assignments).await;
            wake.notify_one();
            let until = next.unwrap_or(i64::MAX).min(last_poll + poll_ms);
            let wait = Duration::from_millis((until - now_ms()).clamp(10, poll_ms.max(10)) as u64);
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
        if d.sent > 0 || d.rejected > 0 {
            tracing::info!(
                sent = d.sent,
                duplicates = d.duplicates,
                rejected = d.rejected,
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
mod tests {
    use super::*;

    fn campaign(name: &str, interval_secs: u64) -> CampaignAssignment {
        CampaignAssignment {
            name: name.into(),
            country: None,
            interval_secs,
            prefixes: vec!["198.18.0.0/24".parse().unwrap()],
            control: vec![],
            generation: 1,
            census: Vec::new(),
        }
    }

    #[test]
    fn absurd_campaigns_are_refused() {
        assert_eq!(campaign_acceptable(&campaign("kp", 60)), Ok(()));
        assert_eq!(
            campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS)),
            Ok(())
        );
        assert!(campaign_acceptable(&campaign("kp", 0)).is_err());
        assert!(campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS + 1)).is_err());
        assert!(campaign_acceptable(&campaign("kp", u64::MAX)).is_err());
        assert!(campaign_acceptable(&campaign("../etc", 60)).is_err());
    }

    #[test]
    fn local_policy_overrides_the_collector() {
        let policy = LocalPolicy {
            exclude: vec!["198.18.7.0/24".parse().unwrap()],
            allow: vec!["198.18.0.0/15".parse().unwrap()],
            max_targets: 1024,
        };
        let nets = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        // The excluded /24 is cut out of what the collector assigned.
        let set = policy
            .targets("kp", &nets(&["198.18.6.0/23"]))
            .expect("allowed part");
        assert_eq!(set.address_count(), 256);
        assert!(!set.contains("198.18.7.1".parse().unwrap()));
        // Reserved ranges not carved back by `allow` are never targets.
        for reserved in ["127.0.0.0/24", "10.1.2.0/24", "224.0.0.0/24", "0.0.0.0/24"] {
            let set = policy.targets("kp", &nets(&[reserved]));
            assert!(
                set.is_none_or(|s| s.address_count() == 0),
                "{reserved} must be refused"
            );
        }
        // More than max_targets: the whole assignment is refused.
        assert!(policy.targets("kp", &nets(&["198.19.0.0/16"])).is_none());
    }
}
