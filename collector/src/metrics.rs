//! Process counters and their Prometheus text rendering.
//!
//! Counters live in memory (they reset on restart, as Prometheus expects);
//! gauges about stored data come from the store at scrape time and are
//! passed to [`Metrics::render`] and [`render_scope_gauges`], which are pure.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
    rejected: Mutex<BTreeMap<u16, u64>>,
    correlation_panics: Mutex<BTreeMap<String, u64>>,
    /// Alert deliveries, counted by the alert senders.
    alerts: std::sync::OnceLock<std::sync::Arc<crate::alerts::DeliveryStats>>,
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

    /// Records a correlation pass over `campaign` that panicked (the
    /// correlation loop caught it and goes on).
    pub fn correlation_panic(&self, campaign: &str) {
        let mut m = self
            .correlation_panics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry(campaign.to_string()).or_default() += 1;
    }

    /// Panics caught so far in `campaign`'s correlation passes.
    pub fn correlation_panics(&self, campaign: &str) -> u64 {
        let m = self
            .correlation_panics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.get(campaign).copied().unwrap_or(0)
    }

    /// Exports `stats` (the alert senders') with the other counters.
    pub fn attach_alerts(&self, stats: std::sync::Arc<crate::alerts::DeliveryStats>) {
        let _ = self.alerts.set(stats);
    }

    /// Prometheus text exposition; `counts` is `None` when the store failed.
    pub fn render(&self, counts: Option<&StoreCounts>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "darkwatch_reports_ingested_total",
            "Report batches acknowledged.",
            self.reports.load(Ordering::Relaxed),
        );
        counter(
            "darkwatch_reports_duplicate_total",
            "Report batches acknowledged as duplicates.",
            self.duplicates.load(Ordering::Relaxed),
        );
        counter(
            "darkwatch_observations_stored_total",
            "Block observations newly stored.",
            self.observations.load(Ordering::Relaxed),
        );
        counter(
            "darkwatch_traces_stored_total",
            "Traceroutes newly stored.",
            self.traces.load(Ordering::Relaxed),
        );
        counter(
            "darkwatch_probes_reported_total",
            "Echo requests the agents report having sent, in newly stored batches.",
            self.probes.load(Ordering::Relaxed),
        );
        counter(
            "darkwatch_replies_reported_total",
            "Echo replies the agents report having received, in newly stored batches.",
            self.replies.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP darkwatch_requests_rejected_total Requests answered with an error, by status.\n\
             # TYPE darkwatch_requests_rejected_total counter"
        );
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (status, n) in rejected {
            let _ = writeln!(
                out,
                "darkwatch_requests_rejected_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP darkwatch_correlation_panics_total Correlation passes that panicked (caught; the campaign is rebuilt from the store at its next pass), by campaign.\n\
             # TYPE darkwatch_correlation_panics_total counter"
        );
        let panics = self
            .correlation_panics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (campaign, n) in panics {
            let _ = writeln!(
                out,
                "darkwatch_correlation_panics_total{{campaign=\"{}\"}} {n}",
                escape(&campaign)
            );
        }
        if let Some(a) = self.alerts.get() {
            out.push_str(&a.render_prometheus());
        }
        let up = u8::from(counts.is_some());
        let _ = writeln!(
            out,
            "# HELP darkwatch_store_up Whether the store answered this scrape.\n# TYPE darkwatch_store_up gauge\ndarkwatch_store_up {up}"
        );
        if let Some(c) = counts {
            let mut gauge = |name: &str, help: &str, v: u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            };
            gauge(
                "darkwatch_agents_known",
                "Agents registered (including revoked).",
                c.agents,
            );
            gauge(
                "darkwatch_agents_revoked",
                "Agents whose token is revoked.",
                c.agents_revoked,
            );
            gauge(
                "darkwatch_agents_seen_5m",
                "Agents seen in the last 5 minutes.",
                c.agents_seen,
            );
            gauge("darkwatch_campaigns", "Campaigns defined.", c.campaigns);
            gauge(
                "darkwatch_batches_stored",
                "Report batches in the store.",
                c.batches,
            );
            gauge(
                "darkwatch_observations_in_store",
                "Block observations in the store.",
                c.observations,
            );
            gauge(
                "darkwatch_traces_in_store",
                "Traceroutes in the store.",
                c.traces,
            );
            gauge(
                "darkwatch_verdicts_in_store",
                "Verdicts in the store.",
                c.verdicts,
            );
        }
        out
    }
}

/// A label value, escaped as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one gauge family: HELP, TYPE, then a sample per `(labels, value)`.
fn family(out: &mut String, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(out, "{name}{{{}}} {v}", labels.join(","));
    }
}

fn scope_labels<'a>(c: &'a str, s: &'a str, t: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![("campaign", c), ("scope", s), ("target", t)]
}

/// The per-scope gauges (`crate::signals::scope_gauges`): Prometheus text.
pub fn render_scope_gauges(g: &ScopeGauges) -> String {
    let mut out = String::new();
    let scopes: Vec<(String, String, String, u64, u64)> = g
        .scopes
        .iter()
        .map(|(c, s, t, judged, up)| (c.clone(), label(s), t.clone(), *judged, *up))
        .collect();
    family(
        &mut out,
        "darkwatch_scope_blocks_up_ratio",
        "Share of the scope's judged blocks up in the campaign's latest correlated round (consensus of healthy VPs); absent when no block was judged.",
        &scopes
            .iter()
            .filter(|x| x.3 > 0)
            .map(|(c, s, t, judged, up)| (scope_labels(c, s, t), *up as f64 / *judged as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "darkwatch_scope_blocks_judged",
        "Blocks of the scope judged up or down in the campaign's latest correlated round.",
        &scopes
            .iter()
            .map(|(c, s, t, judged, _)| (scope_labels(c, s, t), *judged as f64))
            .collect::<Vec<_>>(),
    );
    let verdicts: Vec<(String, String, String, String)> = g
        .verdicts_open
        .iter()
        .map(|(c, k, s, t)| (c.clone(), label(k), label(s), t.clone()))
        .collect();
    let mut open: BTreeMap<(&str, &str, &str, &str), u64> = BTreeMap::new();
    for (c, k, s, t) in &verdicts {
        *open.entry((c, k, s, t)).or_default() += 1;
    }
    family(
        &mut out,
        "darkwatch_verdicts_open",
        "Outage verdicts still open (no end yet), by kind and scope.",
        &open
            .iter()
            .map(|((c, k, s, t), n)| {
                (
                    vec![
                        ("campaign", *c),
                        ("kind", *k),
                        ("scope", *s),
                        ("target", *t),
                    ],
                    *n as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "darkwatch_vp_healthy",
        "1 if the VP reported the campaign's latest correlated round and was not judged faulty in it, 0 if faulty.",
        &g.vp_healthy
            .iter()
            .map(|(a, c, ok)| (vec![("agent", a.as_str()), ("campaign", c.as_str())], f64::from(u8::from(*ok))))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "darkwatch_last_correlated_round_age_seconds",
        "Seconds since the start of the campaign's latest correlated round.",
        &g.rounds
            .iter()
            .map(|(c, age, _)| (vec![("campaign", c.as_str())], *age))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "darkwatch_campaign_interval_seconds",
        "Round length of the campaign's latest correlated round (to scale alert thresholds).",
        &g.rounds
            .iter()
            .map(|(c, _, i)| (vec![("campaign", c.as_str())], *i as f64))
            .collect::<Vec<_>>(),
    );
    out
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
        m.correlation_panic("k\"p");
        m.correlation_panic("k\"p");
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
