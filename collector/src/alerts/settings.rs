//! `[alerts]` of `collector.toml`: the receivers and how deliveries go.
//!
//! Defined here rather than in `config` (which re-exports it) because
//! `config` depends on `correlation`, which depends on `alerts`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[alerts]`: where verdict open/close events go. At least one of
/// `webhook` and `alertmanager`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Generic webhook: the versioned JSON payload of `docs/alerts.md`.
    #[serde(default)]
    pub webhook: Option<String>,
    /// HMAC-SHA256 key signing webhook bodies (`X-Darkwatch-Signature`).
    #[serde(default)]
    pub secret: Option<String>,
    /// The same key read from a file (trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Alertmanager's base URL (`/api/v2/alerts` is appended).
    #[serde(default)]
    pub alertmanager: Option<String>,
    /// This collector's URL as operators reach it, for links to verdicts.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Seconds between re-sends of the open verdicts to Alertmanager.
    #[serde(default = "default_resend")]
    pub resend_secs: f64,
    /// Delivery attempts per event before giving up (with backoff).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

fn default_resend() -> f64 {
    60.0
}

impl AlertsConfig {
    /// Only a webhook, as `Alerts::webhook` takes it.
    pub fn webhook(url: String, max_attempts: u32) -> Self {
        AlertsConfig {
            webhook: Some(url),
            secret: None,
            secret_file: None,
            alertmanager: None,
            external_url: None,
            resend_secs: default_resend(),
            max_attempts,
        }
    }

    /// Checks what can be checked without I/O; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.webhook.is_none() && self.alertmanager.is_none() {
            return Err("give webhook, alertmanager or both".into());
        }
        for (key, url) in [
            ("alertmanager", &self.alertmanager),
            ("external_url", &self.external_url),
        ] {
            if let Some(u) = url {
                if !is_http(u) {
                    return Err(format!("{key} must be an http(s) URL, got {u:?}"));
                }
            }
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            return Err("give secret or secret_file, not both".into());
        }
        if self.webhook.is_none() && (self.secret.is_some() || self.secret_file.is_some()) {
            return Err("secret signs the webhook: it needs webhook".into());
        }
        if matches!(&self.secret, Some(s) if s.is_empty()) {
            return Err("secret must not be empty".into());
        }
        // Alertmanager must hear from us well within the hold we give each
        // firing alert (4 re-sends), and not be flooded.
        if !self.resend_secs.is_finite() || !(1.0..=3600.0).contains(&self.resend_secs) {
            return Err(format!(
                "resend_secs must be 1 to 3600, got {}",
                self.resend_secs
            ));
        }
        Ok(())
    }
}

pub fn is_http(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}
