//! Alerts: verdict open and close events for the receivers operators run.
//!
//! Two receivers, either or both (`[alerts]`, [`AlertsConfig`]):
//! - a generic webhook, getting a versioned JSON body signed with
//!   HMAC-SHA256 when a secret is set;
//! - Alertmanager (`/api/v2/alerts`), getting alerts in the format
//!   Prometheus sends, so that it routes, groups and silences them; open
//!   verdicts are re-sent so they stay firing.
//!
//! The correlation loop hands events to [`Alerts::send`], which never
//! blocks: each receiver has a bounded queue and its own task, retrying
//! with backoff, so a dead webhook does not hold Alertmanager's alerts
//! back. Each delivery's outcome is logged and counted in
//! [`DeliveryStats`], which `/metrics` exports. Wire formats are built
//! without I/O in `payload`; `docs/alerts.md` documents them. Each
//! receiver's task names the verdict's target when it builds the payload
//! (from the shared [`Names`]), so re-sends read from the store are named
//! too and a reloaded AS names file is used from the next alert on.

mod payload;
mod send;
mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::clock::{SharedClock, SystemClock};
use crate::names::Names;
use crate::store::Verdict;
use crate::views::label;

pub use payload::{am_alert, signature, webhook_body, AmAlert, SIGNATURE_HEADER, WEBHOOK_VERSION};
pub use send::{Backoff, Post, VerdictSource};
pub use settings::{is_http, AlertsConfig};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `open` or `close`.
    pub event: &'static str,
    pub verdict: Verdict,
}

impl AlertEvent {
    pub fn open(v: &Verdict) -> Self {
        AlertEvent {
            event: "open",
            verdict: v.clone(),
        }
    }

    pub fn close(v: &Verdict) -> Self {
        AlertEvent {
            event: "close",
            verdict: v.clone(),
        }
    }

    pub fn summary(&self) -> String {
        self.summary_named(None)
    }

    /// [`AlertEvent::summary`] with the target's `name` after it.
    pub fn summary_named(&self, name: Option<&str>) -> String {
        let v = &self.verdict;
        format!(
            "{} {} {} {} ({}/{} blocks)",
            self.event,
            label(&v.kind),
            label(&v.scope),
            target_text(&v.target, name),
            v.blocks_affected,
            v.blocks_total
        )
    }
}

/// A target as summaries show it: `AS131279 "Star Joint Venture"`.
fn target_text(target: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{target} \"{n}\""),
        None => target.to_string(),
    }
}

/// A kind of alert receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    Webhook,
    Alertmanager,
}

impl Receiver {
    pub const ALL: [Receiver; 2] = [Receiver::Webhook, Receiver::Alertmanager];

    /// The `receiver` label and log field.
    pub fn name(self) -> &'static str {
        match self {
            Receiver::Webhook => "webhook",
            Receiver::Alertmanager => "alertmanager",
        }
    }
}

/// Deliveries (an event or a re-send, after its retries) by receiver and
/// outcome, since start.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    delivered: [AtomicU64; 2],
    failed: [AtomicU64; 2],
}

impl DeliveryStats {
    fn count(&self, r: Receiver, ok: bool) {
        let c = if ok { &self.delivered } else { &self.failed };
        c[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered(&self, r: Receiver) -> u64 {
        self.delivered[r as usize].load(Ordering::Relaxed)
    }

    pub fn failed(&self, r: Receiver) -> u64 {
        self.failed[r as usize].load(Ordering::Relaxed)
    }

    /// `darkwatch_alert_deliveries_total` samples: every receiver and
    /// outcome, present from the start (`receiver`, `outcome` labels).
    pub fn samples(&self) -> Vec<(Vec<(&'static str, String)>, u64)> {
        Receiver::ALL
            .into_iter()
            .flat_map(|r| {
                [("delivered", self.delivered(r)), ("failed", self.failed(r))].map(|(o, n)| {
                    let labels = vec![
                        ("receiver", r.name().to_string()),
                        ("outcome", o.to_string()),
                    ];
                    (labels, n)
                })
            })
            .collect()
    }
}

/// Handle to the alert senders. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    tx: Vec<(Receiver, mpsc::Sender<AlertEvent>)>,
    stats: Arc<DeliveryStats>,
}

impl Alerts {
    /// No receiver: events are dropped (the correlation loop logs them).
    pub fn disabled() -> Self {
        Alerts {
            tx: Vec::new(),
            stats: Arc::default(),
        }
    }

    /// Starts the sender task for an unsigned webhook at `url`.
    pub fn webhook(url: String, max_attempts: u32) -> Self {
        Self::start(
            &AlertsConfig::webhook(url, max_attempts),
            None,
            SystemClock::shared(),
            None,
            Names::default(),
        )
    }

    /// What `[alerts]` asks for (reading `secret_file`), or
    /// [`Alerts::disabled`] without it; `verdicts` (the store) says what
    /// to re-send to Alertmanager; `names` name the verdicts' targets.
    pub fn from_config(
        cfg: Option<&AlertsConfig>,
        verdicts: Option<Arc<dyn VerdictSource>>,
        names: Names,
    ) -> Result<Self, String> {
        let Some(cfg) = cfg else {
            return Ok(Self::disabled());
        };
        let secret = match (&cfg.secret, &cfg.secret_file) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(p)) => {
                let s = std::fs::read_to_string(p)
                    .map_err(|e| format!("[alerts] secret_file {}: {e}", p.display()))?;
                let s = s.trim_end_matches(['\n', '\r']);
                if s.is_empty() {
                    return Err(format!("[alerts] secret_file {} is empty", p.display()));
                }
                Some(s.as_bytes().to_vec())
            }
            (None, None) => None,
        };
        Ok(Self::start(
            cfg,
            secret,
            SystemClock::shared(),
            verdicts,
            names,
        ))
    }

    /// Starts one task per receiver in `cfg` (inside a Tokio runtime);
    /// `clock` times Alertmanager's `endsAt`; `verdicts` and `names` as in
    /// [`Alerts::from_config`].
    pub fn start(
        cfg: &AlertsConfig,
        secret: Option<Vec<u8>>,
        clock: SharedClock,
        verdicts: Option<Arc<dyn VerdictSource>>,
        names: Names,
    ) -> Self {
        let stats = Arc::new(DeliveryStats::default());
        let http: Arc<dyn Post> = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the alerts' HTTP client; alerts disabled");
                return Alerts { tx: vec![], stats };
            }
        };
        let target = |receiver, url: String| send::Target {
            receiver,
            url,
            max_attempts: cfg.max_attempts,
            backoff: Backoff::default(),
            stats: stats.clone(),
            names: names.clone(),
        };
        let mut tx = Vec::new();
        if let Some(url) = &cfg.webhook {
            let (t, rx) = mpsc::channel(1024);
            tokio::spawn(send::webhook_task(
                http.clone(),
                target(Receiver::Webhook, url.clone()),
                secret,
                cfg.external_url.clone(),
                rx,
            ));
            tx.push((Receiver::Webhook, t));
        }
        if let Some(base) = &cfg.alertmanager {
            let (t, rx) = mpsc::channel(1024);
            let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            tokio::spawn(send::alertmanager_task(
                http,
                target(Receiver::Alertmanager, url),
                Duration::from_secs_f64(cfg.resend_secs.max(0.001)),
                cfg.external_url.clone(),
                clock,
                verdicts,
                rx,
            ));
            tx.push((Receiver::Alertmanager, t));
        }
        Alerts { tx, stats }
    }

    pub fn send(&self, e: AlertEvent) {
        for (r, tx) in &self.tx {
            if tx.try_send(e.clone()).is_err() {
                tracing::error!(receiver = r.name(), alert = %e.summary(), "alert queue full or closed: an alert was dropped");
                self.stats.count(*r, false);
            }
        }
    }

    /// The delivery counters, for `/metrics`.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_counters_render_every_series() {
        let s = Arc::new(DeliveryStats::default());
        s.count(Receiver::Alertmanager, false);
        let m = crate::metrics::Metrics::default();
        m.attach_alerts(s);
        let text = m.render(None);
        let text: String = text
            .lines()
            .filter(|l| l.contains("darkwatch_alert_deliveries_total"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(text.contains(
            "darkwatch_alert_deliveries_total{receiver=\"alertmanager\",outcome=\"failed\"} 1\n"
        ));
        assert!(text.contains(
            "darkwatch_alert_deliveries_total{receiver=\"webhook\",outcome=\"delivered\"} 0\n"
        ));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 4);
    }
}
