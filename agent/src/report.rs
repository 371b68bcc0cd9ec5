//! Talking to the collector: pulling assignments and posting spooled batches.
//!
//! `drain` sends the spool oldest first and deletes a batch only after the
//! collector acknowledged it. Errors are sorted into "try again later"
//! (network, 5xx, 401, 408, 429: nothing is wrong with the batch) and
//! "refused" (other 4xx: the batch itself is bad and is set aside, so that one
//! poisoned batch cannot block the rest forever). One refusal is acted on
//! instead: a packed round whose block space the collector does not know
//! (the campaign changed after the round was packed) is unpacked and resent
//! as plain observations ([`plain_batches`]), so nothing is lost.

use std::time::Duration;

use darkwatch_schema::packed::ERROR_UNKNOWN_BLOCK_SPACE;
use darkwatch_schema::{
    ApiError, Assignments, BatchAck, BlockSpace, ReportBatch, API_VERSION, MAX_ITEMS_PER_BATCH,
};

use crate::spool::{Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("collector unreachable: {0}")]
    Network(String),
    #[error("collector answered {status}: {message}")]
    Retry { status: u16, message: String },
    #[error("collector refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        /// `ApiError::code`, when the collector gave one.
        code: Option<String>,
    },
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
    /// Packed batches replaced by plain ones (unknown block space).
    pub unpacked: usize,
    pub remaining: usize,
}

/// The same data as `batch`, with its packed rounds unpacked into plain
/// observations, in batches within the item limit. Ids derive from the
/// batch's own, so converting twice (a crash between spooling the new
/// batches and removing the old) gives the same batches, which the
/// collector stores once. `space` finds a block space by digest.
pub fn plain_batches(
    batch: &ReportBatch,
    space: impl Fn(&str) -> Option<BlockSpace>,
) -> Result<Vec<ReportBatch>, String> {
    let mut observations = Vec::new();
    for p in &batch.packed {
        let s =
            space(&p.space).ok_or_else(|| format!("block space {} is not known here", p.space))?;
        observations.extend(p.to_observations(&s).map_err(|e| e.to_string())?);
    }
    let stem = &batch.batch_id[..batch.batch_id.len().min(56)];
    let mut first = ReportBatch {
        packed: Vec::new(),
        ..batch.clone()
    };
    let mut out = Vec::new();
    let mut rest = observations.into_iter().peekable();
    loop {
        let room = MAX_ITEMS_PER_BATCH.saturating_sub(
            first.observations.len()
                + first.traces.len()
                + first.coverage.len()
                + first.rounds.len()
                + first
                    .probe_errors
                    .iter()
                    .map(|p| 1 + p.blocks.len())
                    .sum::<usize>()
                + first
                    .census
                    .iter()
                    .map(|c| c.blocks.len() * 2)
                    .sum::<usize>(),
        );
        first.observations.extend(rest.by_ref().take(room));
        first.batch_id = format!("{stem}{:08x}", out.len());
        out.push(first);
        if rest.peek().is_none() {
            return Ok(out);
        }
        // Later pieces carry observations only; each takes its id from the
        // stem at the top of the loop.
        first = ReportBatch::new(batch.batch_id.clone(), batch.created_ms);
    }
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
        let (message, code) = match serde_json::from_str::<ApiError>(&text) {
            Ok(e) => (e.error, e.code),
            Err(_) => (text, None),
        };
        let status = status.as_u16();
        if (500..600).contains(&status) || matches!(status, 401 | 403 | 408 | 429) {
            Err(ReportError::Retry { status, message })
        } else {
            Err(ReportError::Refused {
                status,
                message,
                code,
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
        // Unpacked rounds were spooled anew: send them in the same call.
        loop {
            let unpacked = d.unpacked;
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
                    Err(ReportError::Refused {
                        code: Some(code), ..
                    }) if code == ERROR_UNKNOWN_BLOCK_SPACE && !batch.packed.is_empty() => {
                        match plain_batches(&batch, |digest| spool.space(digest)) {
                            Ok(plain) => {
                                tracing::warn!(batch = %batch.batch_id, batches = plain.len(), "the collector does not know this round's block list (the campaign changed); resending it as plain observations");
                                if let Err(e) = spool.replace(entry, &plain) {
                                    return (d, Some(e.into()));
                                }
                                d.unpacked += 1;
                            }
                            Err(why) => {
                                tracing::error!(batch = %batch.batch_id, why, "cannot unpack a refused packed round; kept in rejected/");
                                if let Err(e) = spool.reject(entry) {
                                    return (d, Some(e.into()));
                                }
                                d.rejected += 1;
                            }
                        }
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
            if d.unpacked == unpacked {
                return (d, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::packed::{pack_chunks, PackedBlock};
    use darkwatch_schema::BlockState;

    #[test]
    fn packed_rounds_unpack_into_bounded_plain_batches_with_stable_ids() {
        let prefixes = vec!["10.0.0.0/7".parse().unwrap()];
        let space = BlockSpace::new(&prefixes);
        let n = MAX_ITEMS_PER_BATCH as u64 + 10;
        let blocks = (0..n)
            .map(|index| PackedBlock {
                index,
                state: BlockState::Up,
                probes: 1,
                replies: 1,
                belief: 255,
                availability: 255,
            })
            .collect();
        let batch = ReportBatch {
            packed: pack_chunks("kp", 1, &space, 1_800_000_000_000, blocks, 1 << 20).unwrap(),
            ..ReportBatch::new("ab".repeat(32), 1_800_000_000_000)
        };
        let known = |d: &str| (d == space.digest()).then(|| space.clone());
        let out = plain_batches(&batch, known).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out.iter().map(|b| b.observations.len() as u64).sum::<u64>(),
            n
        );
        for b in &out {
            assert!(b.packed.is_empty());
            b.validate(1_800_000_000_000).unwrap();
        }
        // The same conversion twice gives the same ids (resending is harmless).
        let again = plain_batches(&batch, known).unwrap();
        let ids = |v: &[ReportBatch]| v.iter().map(|b| b.batch_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&out), ids(&again));
        assert_ne!(out[0].batch_id, out[1].batch_id);
        assert!(plain_batches(&batch, |_| None).is_err());
    }
}
