//! Talking to the collector: pulling assignments and posting spooled batches.
//!
//! `drain` sends the spool oldest first and deletes a batch only after the
//! collector acknowledged it. Errors are sorted into "try again later"
//! (network, 5xx, 401, 408, 429: nothing is wrong with the batch) and
//! "refused" (other 4xx: the batch itself is bad and is set aside, so that one
//! poisoned batch cannot block the rest forever).

use std::time::Duration;

use darkwatch_schema::{ApiError, Assignments, BatchAck, ReportBatch, API_VERSION};

use crate::spool::{Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("collector unreachable: {0}")]
    Network(String),
    #[error("collector answered {status}: {message}")]
    Retry { status: u16, message: String },
    #[error("collector refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("collector sent an unreadable answer: {0}")]
    Decode(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl ReportError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ReportError::Refused { .. })
    }
}

/// HTTP client for one collector.
#[derive(Clone)]
pub struct Reporter {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// What one pass over the spool did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub remaining: usize,
}

impl Reporter {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Reporter, ReportError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("darkwatch-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ReportError::Network(e.to_string()))?;
        Ok(Reporter {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{API_VERSION}/{path}", self.base)
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, ReportError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or(text);
        let code = status.as_u16();
        if status.is_server_error() || matches!(code, 401 | 403 | 408 | 429) {
            Err(ReportError::Retry {
                status: code,
                message,
            })
        } else {
            Err(ReportError::Refused {
                status: code,
                message,
            })
        }
    }

    pub async fn assignments(&self) -> Result<Assignments, ReportError> {
        let resp = self
            .http
            .get(self.url("assignments"))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        Self::check(resp)
            .await?
            .json()
            .await
            .map_err(|e| ReportError::Decode(e.to_string()))
    }

    pub async fn send(&self, batch: &ReportBatch) -> Result<BatchAck, ReportError> {
        let resp = self
            .http
            .post(self.url("reports"))
            .bearer_auth(&self.token)
            .json(batch)
            .send()
            .await
            .map_err(|e| ReportError::Network(e.to_string()))?;
        let ack: BatchAck = Self::check(resp)
            .await?
            .json()
            .await
            .map_err(|e| ReportError::Decode(e.to_string()))?;
        if ack.batch_id != batch.batch_id {
            return Err(ReportError::Decode(format!(
                "acknowledged batch {} while sending {}",
                ack.batch_id, batch.batch_id
            )));
        }
        Ok(ack)
    }

    /// Sends every spooled batch, oldest first. Stops at the first retryable
    /// error (the collector is down: no point hammering it) and returns it
    /// with what was done so far.
    pub async fn drain(&self, spool: &Spool) -> (Drained, Option<ReportError>) {
        let mut d = Drained::default();
        let entries = match spool.entries() {
            Ok(e) => e,
            Err(e) => return (d, Some(e.into())),
        };
        let total = entries.len();
        for (i, entry) in entries.iter().enumerate() {
            let batch = match spool.read(entry) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => return (d, Some(e.into())),
            };
            match self.send(&batch).await {
                Ok(ack) => {
                    if let Err(e) = spool.ack(entry) {
                        return (d, Some(e.into()));
                    }
                    d.sent += 1;
                    d.duplicates += usize::from(ack.duplicate);
                }
                Err(e) if e.is_retryable() => {
                    d.remaining = total - i;
                    return (d, Some(e));
                }
                Err(e) => {
                    tracing::error!(batch = %batch.batch_id, error = %e, "collector refused a batch; kept in rejected/");
                    if let Err(e) = spool.reject(entry) {
                        return (d, Some(e.into()));
                    }
                    d.rejected += 1;
                }
            }
        }
        (d, None)
    }
}
