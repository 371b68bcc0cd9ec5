//! Webhook alerts: a POST when a verdict opens and when it closes.
//!
//! Events go through a bounded queue to one sender task, which retries each
//! delivery with exponential backoff (a receiver that is briefly down still
//! gets every event, in order). With no webhook configured, events are only
//! logged.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::store::Verdict;
use crate::views::label;

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
        let v = &self.verdict;
        format!(
            "{} {} {} {} ({}/{} blocks)",
            self.event,
            label(&v.kind),
            label(&v.scope),
            v.target,
            v.blocks_affected,
            v.blocks_total
        )
    }
}

/// Handle to the alert sender. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    tx: Option<mpsc::Sender<AlertEvent>>,
}

impl Alerts {
    /// No webhook: events are dropped (the correlation loop logs them).
    pub fn disabled() -> Self {
        Alerts { tx: None }
    }

    /// Starts the sender task for `url`.
    pub fn webhook(url: String, max_attempts: u32) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(deliver(url, rx, max_attempts));
        Alerts { tx: Some(tx) }
    }

    pub fn send(&self, e: AlertEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(e).is_err() {
                tracing::error!("alert queue full or closed: an alert was dropped");
            }
        }
    }
}

async fn deliver(url: String, mut rx: mpsc::Receiver<AlertEvent>, max_attempts: u32) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; alerts disabled");
            return;
        }
    };
    while let Some(e) = rx.recv().await {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=max_attempts.max(1) {
            match http.post(&url).json(&e).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook refused an alert"),
                Err(err) => tracing::warn!(error = %err, attempt, "webhook unreachable"),
            }
            if attempt == max_attempts.max(1) {
                tracing::error!(alert = %e.summary(), "giving up on an alert after {attempt} attempts");
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}
