//! Process counters and their Prometheus text rendering.
//!
//! Counters live in memory (they reset on restart, as Prometheus expects);
//! gauges about stored data come from the store at scrape time and are
//! passed to [`Metrics::render`], which is pure.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::store::StoreCounts;

#[derive(Debug, Default)]
pub struct Metrics {
    reports: AtomicU64,
    duplicates: AtomicU64,
    observations: AtomicU64,
    traces: AtomicU64,
    probes: AtomicU64,
    replies: AtomicU64,
    rejected: Mutex<BTreeMap<u16, u64>>,
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
            gauge(
                "darkwatch_verdicts_open",
                "Outage verdicts still open (no end yet).",
                c.verdicts_open,
            );
        }
        out
    }
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
        assert!(text.contains("darkwatch_verdicts_open 2\n"));

        let down = m.render(None);
        assert!(down.contains("darkwatch_store_up 0\n"));
        assert!(!down.contains("darkwatch_agents_known"));
    }
}
