//! Process counters and their Prometheus text rendering.
//!
//! Counters live in memory (they reset on restart, as Prometheus expects);
//! gauges about stored data come from the store at scrape time and are
//! passed to [`Metrics::render`] and [`render_scope_gauges`], which are pure.
//! The text format is prometheus-client's, through `darkwatch_exposition`
//! (shared with the agent); the two outputs concatenate into one scrape
//! (the Prometheus text format has no end marker).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use darkwatch_exposition::{Exposition, Labels};

use crate::correlation::stats::CorrelationStats;
use crate::fleet::{AgentCampaign, Health};
use crate::signals::ScopeGauges;
use crate::store::StoreCounts;
use crate::views::label;

#[derive(Debug, Default)]
pub struct Metrics {
    reports: AtomicU64,
    duplicates: AtomicU64,
    observations: AtomicU64,
    traces: AtomicU64,
    probes: AtomicU64,
    replies: AtomicU64,
    not_stored: AtomicU64,
    rejected: Mutex<BTreeMap<u16, u64>>,
    /// Counted by the correlation loop, read here at scrape time.
    correlation: Arc<CorrelationStats>,
    /// Alert deliveries, counted by the alert senders.
    alerts: std::sync::OnceLock<Arc<crate::alerts::DeliveryStats>>,
    /// BGP input (`[bgp]`), when configured.
    bgp: std::sync::OnceLock<Arc<crate::bgp::hub::BgpHub>>,
}

impl Metrics {
    /// Records an acknowledged batch.
    pub fn batch(&self, duplicate: bool, observations: u64, traces: u64) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        if duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.observations.fetch_add(observations, Ordering::Relaxed);
        self.traces.fetch_add(traces, Ordering::Relaxed);
    }

    /// Records observations a fresh batch carried but that were not stored
    /// (`BatchAck::observations_not_stored`).
    pub fn not_stored(&self, observations: u64) {
        self.not_stored.fetch_add(observations, Ordering::Relaxed);
    }

    /// Records the echo requests sent and replies received that a newly
    /// stored batch reports (duplicates are not counted again).
    pub fn probes(&self, probes: u64, replies: u64) {
        self.probes.fetch_add(probes, Ordering::Relaxed);
        self.replies.fetch_add(replies, Ordering::Relaxed);
    }

    /// Records a request answered with an error status.
    pub fn rejected(&self, status: u16) {
        // A poisoned lock only means another thread panicked mid-increment;
        // the map is still usable.
        let mut m = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(status).or_default() += 1;
    }

    /// The correlation loop's counters (`crate::correlation::LoopSetup`),
    /// rendered with the others.
    pub fn correlation_stats(&self) -> Arc<CorrelationStats> {
        self.correlation.clone()
    }

    /// Records a correlation pass over `campaign` that panicked (the
    /// correlation loop caught it and goes on).
    pub fn correlation_panic(&self, campaign: &str) {
        self.correlation.panicked(campaign);
    }

    /// Panics caught so far in `campaign`'s correlation passes.
    pub fn correlation_panics(&self, campaign: &str) -> u64 {
        self.correlation.panics(campaign)
    }

    /// Exports `stats` (the alert senders') with the other counters.
    pub fn attach_alerts(&self, stats: Arc<crate::alerts::DeliveryStats>) {
        let _ = self.alerts.set(stats);
    }

    /// The BGP state whose gauges `/metrics` shows, and `/v1/bgp` serves.
    pub fn attach_bgp(&self, hub: Arc<crate::bgp::hub::BgpHub>) {
        let _ = self.bgp.set(hub);
    }

    pub fn bgp(&self) -> Option<&Arc<crate::bgp::hub::BgpHub>> {
        self.bgp.get()
    }

    /// Prometheus text exposition; `counts` is `None` when the store failed.
    pub fn render(&self, counts: Option<&StoreCounts>) -> String {
        let one = |v: &AtomicU64| [(Labels::new(), v.load(Ordering::Relaxed))];
        let rejected: Vec<(Labels, u64)> = lock(&self.rejected)
            .iter()
            .map(|(status, n)| (vec![("status", status.to_string())], *n))
            .collect();
        let panics: Vec<(Labels, u64)> = self
            .correlation
            .all_panics()
            .into_iter()
            .map(|(campaign, n)| (vec![("campaign", campaign)], n))
            .collect();
        let reloads = |wanted: &str| -> Vec<(Labels, u64)> {
            self.correlation
                .all_reloads()
                .into_iter()
                .filter(|((_, outcome), _)| *outcome == wanted)
                .map(|((input, _), n)| (vec![("input", input)], n))
                .collect()
        };
        let mut e = Exposition::new();
        e.counter(
            "darkwatch_reports_ingested_total",
            "Report batches acknowledged.",
            one(&self.reports),
        )
        .counter(
            "darkwatch_reports_duplicate_total",
            "Report batches acknowledged as duplicates.",
            one(&self.duplicates),
        )
        .counter(
            "darkwatch_observations_stored_total",
            "Block observations newly stored.",
            one(&self.observations),
        )
        .counter(
            "darkwatch_observations_not_stored_total",
            "Observations of newly stored batches that were not stored (an earlier batch of the agent carried them); each is logged with its reason.",
            one(&self.not_stored),
        )
        .counter(
            "darkwatch_traces_stored_total",
            "Traceroutes newly stored.",
            one(&self.traces),
        )
        .counter(
            "darkwatch_probes_reported_total",
            "Echo requests the agents report having sent, in newly stored batches.",
            one(&self.probes),
        )
        .counter(
            "darkwatch_replies_reported_total",
            "Echo replies the agents report having received, in newly stored batches.",
            one(&self.replies),
        )
        .counter(
            "darkwatch_requests_rejected_total",
            "Requests answered with an error, by status.",
            rejected,
        )
        .counter(
            "darkwatch_correlation_panics_total",
            "Correlation passes that panicked (caught; the campaign is rebuilt from the store at its next pass), by campaign.",
            panics,
        )
        .counter(
            "darkwatch_input_reloads_total",
            "Changed input files (pfx2as) read again and used, by input.",
            reloads("loaded"),
        )
        .counter(
            "darkwatch_input_reload_failures_total",
            "Changed input files refused (the data loaded before is kept), by input.",
            reloads("refused"),
        )
        .counter(
            "darkwatch_alert_deliveries_total",
            "Alert deliveries (after retries), by receiver and outcome.",
            self.alerts.get().map(|a| a.samples()).unwrap_or_default(),
        )
        .gauge(
            "darkwatch_store_up",
            "Whether the store answered this scrape.",
            [(Labels::new(), f64::from(u8::from(counts.is_some())))],
        );
        if let Some(c) = counts {
            for (name, help, v) in [
                (
                    "darkwatch_agents_known",
                    "Agents registered (including revoked).",
                    c.agents,
                ),
                (
                    "darkwatch_agents_revoked",
                    "Agents whose token is revoked.",
                    c.agents_revoked,
                ),
                (
                    "darkwatch_agents_seen_5m",
                    "Agents seen in the last 5 minutes.",
                    c.agents_seen,
                ),
                ("darkwatch_campaigns", "Campaigns defined.", c.campaigns),
                (
                    "darkwatch_batches_stored",
                    "Report batches in the store.",
                    c.batches,
                ),
                (
                    "darkwatch_observations_in_store",
                    "Block observations in the store.",
                    c.observations,
                ),
                (
                    "darkwatch_traces_in_store",
                    "Traceroutes in the store.",
                    c.traces,
                ),
                (
                    "darkwatch_verdicts_in_store",
                    "Verdicts in the store.",
                    c.verdicts,
                ),
            ] {
                e.gauge(name, help, [(Labels::new(), v as f64)]);
            }
        }
        if let Some(hub) = self.bgp.get() {
            hub.expose(&mut e);
        }
        e.render()
    }
}

/// Fleet health (`crate::fleet`): `darkwatch_agent_up{agent,campaign}` for
/// every agent and campaign it runs (0 when stale, faulty or never seen),
/// and `darkwatch_agent_last_report_timestamp_seconds{agent}` (0: none).
pub fn render_fleet(per: &[AgentCampaign], last_report_ms: &[(String, i64)]) -> String {
    let mut e = Exposition::new();
    e.gauge(
        "darkwatch_agent_up",
        "1 if the agent reported the campaign's recent rounds and is not judged faulty; 0 when it missed two rounds of the campaign, is faulty, or was never seen.",
        per.iter().map(|p| {
            (
                vec![("agent", p.agent.clone()), ("campaign", p.campaign.clone())],
                f64::from(u8::from(p.health == Health::Ok)),
            )
        }),
    )
    .gauge(
        "darkwatch_agent_last_report_timestamp_seconds",
        "When the collector last received a timed round from the agent (Unix seconds; 0: never).",
        last_report_ms
            .iter()
            .map(|(a, ms)| (vec![("agent", a.clone())], (*ms / 1000) as f64)),
    );
    e.render()
}

/// `darkwatch_build_info` and the standard `process_*` metrics (CPU,
/// resident memory, open files, start time), read from `/proc` at scrape
/// time; the process ones are left out where `/proc` cannot be read.
pub fn render_process() -> String {
    let mut e = Exposition::new();
    e.gauge(
        "darkwatch_build_info",
        "Always 1; the labels say which build runs.",
        [(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            1.0,
        )],
    );
    if let Some(p) = process_figures() {
        e.counter_f64(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            [(Labels::new(), p.cpu_secs)],
        )
        .gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            [(Labels::new(), p.rss_bytes)],
        )
        .gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            [(Labels::new(), p.open_fds)],
        )
        .gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            [(Labels::new(), p.start_secs)],
        );
    }
    e.render()
}

struct ProcessFigures {
    cpu_secs: f64,
    rss_bytes: f64,
    open_fds: f64,
    start_secs: f64,
}

fn process_figures() -> Option<ProcessFigures> {
    let me = procfs::process::Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    Some(ProcessFigures {
        cpu_secs: (stat.utime + stat.stime) as f64 / ticks,
        rss_bytes: stat.rss as f64 * procfs::page_size() as f64,
        open_fds: me.fd_count().ok()? as f64,
        start_secs: boot + stat.starttime as f64 / ticks,
    })
}

/// A poisoned lock only means another thread panicked mid-increment; the
/// map is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn scope_labels(c: &str, s: &str, t: &str) -> Labels {
    vec![
        ("campaign", c.to_string()),
        ("scope", s.to_string()),
        ("target", t.to_string()),
    ]
}

/// The per-scope gauges (`crate::signals::scope_gauges`): Prometheus text.
pub fn render_scope_gauges(g: &ScopeGauges) -> String {
    let scopes: Vec<(Labels, u64, u64)> = g
        .scopes
        .iter()
        .map(|(c, s, t, judged, up)| (scope_labels(c, &label(s), t), *judged, *up))
        .collect();
    let mut open: BTreeMap<(&str, String, String, &str), u64> = BTreeMap::new();
    for (c, k, s, t) in &g.verdicts_open {
        *open.entry((c, label(k), label(s), t)).or_default() += 1;
    }
    let mut e = Exposition::new();
    e.gauge(
        "darkwatch_scope_blocks_up_ratio",
        "Share of the scope's judged blocks up in the campaign's latest correlated round (consensus of healthy VPs); absent when no block was judged.",
        scopes
            .iter()
            .filter(|x| x.1 > 0)
            .map(|(l, judged, up)| (l.clone(), *up as f64 / *judged as f64)),
    )
    .gauge(
        "darkwatch_scope_blocks_judged",
        "Blocks of the scope judged up or down in the campaign's latest correlated round.",
        scopes.iter().map(|(l, judged, _)| (l.clone(), *judged as f64)),
    )
    .gauge(
        "darkwatch_verdicts_open",
        "Outage verdicts still open (no end yet), by kind and scope.",
        open.into_iter().map(|((c, k, s, t), n)| {
            (
                vec![
                    ("campaign", c.to_string()),
                    ("kind", k),
                    ("scope", s),
                    ("target", t.to_string()),
                ],
                n as f64,
            )
        }),
    )
    .gauge(
        "darkwatch_vp_healthy",
        "1 if the VP reported the campaign's latest correlated round and was not judged faulty in it, 0 if faulty.",
        g.vp_healthy.iter().map(|(a, c, ok)| {
            (
                vec![("agent", a.clone()), ("campaign", c.clone())],
                f64::from(u8::from(*ok)),
            )
        }),
    )
    .gauge(
        "darkwatch_last_correlated_round_age_seconds",
        "Seconds since the start of the campaign's latest correlated round.",
        g.rounds
            .iter()
            .map(|(c, age, _)| (vec![("campaign", c.clone())], *age)),
    )
    .gauge(
        "darkwatch_campaign_interval_seconds",
        "Round length of the campaign's latest correlated round (to scale alert thresholds).",
        g.rounds
            .iter()
            .map(|(c, _, i)| (vec![("campaign", c.clone())], *i as f64)),
    );
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.batch(false, 10, 2);
        m.batch(true, 0, 0);
        m.rejected(401);
        m.rejected(401);
        m.rejected(413);
        m.probes(12, 7);
        m.not_stored(3);
        m.correlation_panic("k\"p");
        m.correlation_panic("k\"p");
        m.correlation_stats().input_reloaded("pfx2as", true);
        m.correlation_stats().input_reloaded("pfx2as", false);
        m.correlation_stats().input_reloaded("pfx2as", false);
        let text = m.render(Some(&StoreCounts {
            agents: 3,
            agents_seen: 1,
            verdicts_open: 2,
            ..Default::default()
        }));
        assert!(
            text.contains("darkwatch_reports_ingested_total 2\n"),
            "{text}"
        );
        assert!(text.contains("darkwatch_reports_duplicate_total 1\n"));
        assert!(text.contains("darkwatch_observations_stored_total 10\n"));
        assert!(text.contains("darkwatch_observations_not_stored_total 3\n"));
        assert!(text.contains("darkwatch_requests_rejected_total{status=\"401\"} 2\n"));
        assert!(text.contains("darkwatch_requests_rejected_total{status=\"413\"} 1\n"));
        assert!(text.contains("darkwatch_agents_known 3\n"));
        assert!(text.contains("darkwatch_agents_seen_5m 1\n"));
        assert!(text.contains("darkwatch_store_up 1\n"));
        assert!(
            text.contains("darkwatch_probes_reported_total 12\n"),
            "{text}"
        );
        assert!(text.contains("darkwatch_replies_reported_total 7\n"));
        assert!(text.contains("darkwatch_input_reloads_total{input=\"pfx2as\"} 1\n"));
        assert!(text.contains("darkwatch_input_reload_failures_total{input=\"pfx2as\"} 2\n"));
        assert!(
            text.contains("darkwatch_correlation_panics_total{campaign=\"k\\\"p\"} 2\n"),
            "{text}"
        );
        assert_eq!(m.correlation_panics("k\"p"), 2);
        // Open verdicts are counted by kind and scope (render_scope_gauges).
        assert!(!text.contains("darkwatch_verdicts_open"), "{text}");

        let down = m.render(None);
        assert!(down.contains("darkwatch_store_up 0\n"));
        assert!(!down.contains("darkwatch_agents_known"));
    }

    #[test]
    fn renders_scope_gauges_with_escaped_labels() {
        use darkwatch_correlate::{Kind, Scope};
        let g = ScopeGauges {
            scopes: vec![
                ("kp".into(), Scope::Country, "KP".into(), 4, 3),
                ("kp".into(), Scope::Prefix, "198.18.0.0/24".into(), 0, 0),
            ],
            verdicts_open: vec![
                (
                    "kp".into(),
                    Kind::Blackout,
                    Scope::Prefix,
                    "198.18.0.0/24".into(),
                ),
                ("k\"p".into(), Kind::Partial, Scope::Country, "KP".into()),
            ],
            vp_healthy: vec![
                ("vp-a".into(), "kp".into(), true),
                ("vp-b".into(), "kp".into(), false),
            ],
            rounds: vec![("kp".into(), 90.5, 60)],
        };
        let text = render_scope_gauges(&g);
        for line in [
            "# TYPE darkwatch_scope_blocks_up_ratio gauge",
            "darkwatch_scope_blocks_up_ratio{campaign=\"kp\",scope=\"country\",target=\"KP\"} 0.75",
            "darkwatch_scope_blocks_judged{campaign=\"kp\",scope=\"prefix\",target=\"198.18.0.0/24\"} 0",
            "darkwatch_verdicts_open{campaign=\"kp\",kind=\"blackout\",scope=\"prefix\",target=\"198.18.0.0/24\"} 1",
            "darkwatch_verdicts_open{campaign=\"k\\\"p\",kind=\"partial\",scope=\"country\",target=\"KP\"} 1",
            "darkwatch_vp_healthy{agent=\"vp-a\",campaign=\"kp\"} 1",
            "darkwatch_vp_healthy{agent=\"vp-b\",campaign=\"kp\"} 0",
            "darkwatch_last_correlated_round_age_seconds{campaign=\"kp\"} 90.5",
            "darkwatch_campaign_interval_seconds{campaign=\"kp\"} 60",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // No ratio for a scope without judged blocks.
        assert!(!text.contains("darkwatch_scope_blocks_up_ratio{campaign=\"kp\",scope=\"prefix\""));
    }
}
