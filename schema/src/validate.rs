//! Checks of a [`ReportBatch`] that serde cannot make: ids, sizes, ranges,
//! timestamps against the receiver's clock. One copy serves both sides: the
//! agent checks before spooling, the collector on ingest, so a batch the
//! agent accepts is a batch the collector accepts.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{
    packed, valid_name, ReportBatch, BLOCK_LEN_V4, BLOCK_LEN_V6, MAX_BLOCKS_PER_PROBE_ERRORS,
    MAX_CLOCK_SKEW_MS, MAX_ITEMS_PER_BATCH, MIN_TIMESTAMP_MS,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("batch_id must be 8 to 64 hex characters, got {0:?}")]
    BatchId(String),
    #[error("batch has {0} items, more than the limit of {MAX_ITEMS_PER_BATCH}")]
    TooLarge(usize),
    #[error("{what} timestamp {ts_ms} is outside the accepted range (2000-01-01 .. now + 10 min)")]
    Timestamp { what: &'static str, ts_ms: i64 },
    #[error("campaign name {0:?} is invalid (1..=64 chars of A-Z a-z 0-9 . _ -)")]
    CampaignName(String),
    #[error("observation for {block}: {why}")]
    Observation { block: IpNet, why: String },
    #[error("trace to {target}: {why}")]
    Trace { target: IpAddr, why: String },
    #[error("packed round {round} of campaign {campaign}: {why}")]
    Packed {
        campaign: String,
        round: u64,
        why: String,
    },
    #[error("probe errors from {from} in round {round}: {why}")]
    ProbeErrors {
        from: IpAddr,
        round: u64,
        why: String,
    },
    #[error("round {round} of campaign {campaign} does not match timestamp {ts_ms} (round should be about {expected})")]
    Round {
        campaign: String,
        round: u64,
        ts_ms: i64,
        expected: u64,
    },
}

fn check_ts(what: &'static str, ts_ms: i64, now_ms: i64) -> Result<(), SchemaError> {
    if ts_ms < MIN_TIMESTAMP_MS || ts_ms > now_ms + MAX_CLOCK_SKEW_MS {
        return Err(SchemaError::Timestamp { what, ts_ms });
    }
    Ok(())
}

impl ReportBatch {
    /// Checks a batch for things serde cannot: ids, sizes, ranges, timestamps
    /// relative to `now_ms`. Round numbers are checked against timestamps by
    /// the collector, which knows the campaign intervals.
    pub fn validate(&self, now_ms: i64) -> Result<(), SchemaError> {
        let n = self.observations.len()
            + self.packed.len()
            + self.rounds.len()
            + self.traces.len()
            + self.coverage.len()
            + self
                .probe_errors
                .iter()
                .map(|p| 1 + p.blocks.len())
                .sum::<usize>()
            + self
                .census
                .iter()
                .flat_map(|c| &c.blocks)
                .map(|b| 1 + b.addrs.len())
                .sum::<usize>();
        if n > MAX_ITEMS_PER_BATCH {
            return Err(SchemaError::TooLarge(n));
        }
        self.validate_contents(now_ms)
    }

    /// [`Self::validate`] without the size check: what a collector
    /// applies again once it has unpacked the packed rounds into plain
    /// observations (which may then exceed the wire's item limit).
    pub fn validate_contents(&self, now_ms: i64) -> Result<(), SchemaError> {
        let id_ok = (8..=64).contains(&self.batch_id.len())
            && self.batch_id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok {
            return Err(SchemaError::BatchId(self.batch_id.clone()));
        }
        check_ts("batch", self.created_ms, now_ms)?;
        for o in &self.observations {
            if !valid_name(&o.campaign) {
                return Err(SchemaError::CampaignName(o.campaign.clone()));
            }
            check_ts("observation", o.ts_ms, now_ms)?;
            let bad = |why: &str| SchemaError::Observation {
                block: o.block,
                why: why.to_string(),
            };
            if o.replies > o.probes {
                return Err(bad("more replies than probes"));
            }
            if !(0.0..=1.0).contains(&o.belief) || !(0.0..=1.0).contains(&o.availability) {
                return Err(bad("belief and availability must lie in [0, 1]"));
            }
            let times = [o.rtt_min_ms, o.rtt_median_ms];
            if times
                .iter()
                .flatten()
                .any(|t| !(0.0..=600_000.0).contains(t))
            {
                return Err(bad("rtt out of range"));
            }
            if o.replies == 0 && times.iter().any(Option::is_some) {
                return Err(bad("rtt without a reply"));
            }
            let block_len_ok = match o.block {
                IpNet::V4(n) => n.prefix_len() == 24 || (o.control && n.prefix_len() >= 8),
                IpNet::V6(n) => {
                    n.prefix_len() == BLOCK_LEN_V6 || (o.control && n.prefix_len() >= 32)
                }
            };
            if !block_len_ok {
                return Err(bad("a block must be an IPv4 /24 or an IPv6 /48"));
            }
            if o.block.trunc() != o.block {
                return Err(bad("block has host bits set"));
            }
        }
        for p in &self.packed {
            if !valid_name(&p.campaign) {
                return Err(SchemaError::CampaignName(p.campaign.clone()));
            }
            check_ts("packed round", p.ts_ms, now_ms)?;
            let bad = |why: String| SchemaError::Packed {
                campaign: p.campaign.clone(),
                round: p.round,
                why,
            };
            if p.blocks as usize > packed::MAX_BLOCKS_PER_PACKED {
                return Err(bad(format!(
                    "{} blocks, more than {}",
                    p.blocks,
                    packed::MAX_BLOCKS_PER_PACKED
                )));
            }
            if p.chunks == 0 || p.chunk >= p.chunks {
                return Err(bad(format!("chunk {} of {}", p.chunk, p.chunks)));
            }
            if p.space.len() != 16 || !p.space.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("space must be 16 hex digits".into()));
            }
        }
        for r in &self.rounds {
            if !valid_name(&r.campaign) {
                return Err(SchemaError::CampaignName(r.campaign.clone()));
            }
            check_ts("round start", r.started_ms, now_ms)?;
            check_ts("round end", r.ended_ms, now_ms)?;
        }
        for p in &self.probe_errors {
            if !valid_name(&p.campaign) {
                return Err(SchemaError::CampaignName(p.campaign.clone()));
            }
            check_ts("probe errors", p.ts_ms, now_ms)?;
            let bad = |why: &str| SchemaError::ProbeErrors {
                from: p.from,
                round: p.round,
                why: why.to_string(),
            };
            if p.blocks.is_empty() || p.blocks.len() > MAX_BLOCKS_PER_PROBE_ERRORS {
                return Err(bad("names no blocks, or too many"));
            }
            if (p.errors as usize) < p.blocks.len() {
                return Err(bad("fewer errors than blocks"));
            }
            if p.blocks.iter().any(|b| {
                b.trunc() != *b
                    || b.prefix_len()
                        != match b {
                            IpNet::V4(_) => BLOCK_LEN_V4,
                            IpNet::V6(_) => BLOCK_LEN_V6,
                        }
            }) {
                return Err(bad("a block must be an IPv4 /24 or an IPv6 /48"));
            }
        }
        for t in &self.traces {
            if !valid_name(&t.campaign) {
                return Err(SchemaError::CampaignName(t.campaign.clone()));
            }
            check_ts("trace", t.ts_ms, now_ms)?;
            if t.hops.len() > 255 {
                return Err(SchemaError::Trace {
                    target: t.target,
                    why: "more than 255 hops".into(),
                });
            }
            if t.hops
                .iter()
                .any(|h| h.rtt_ms.is_some_and(|r| !(0.0..=600_000.0).contains(&r)))
            {
                return Err(SchemaError::Trace {
                    target: t.target,
                    why: "rtt out of range".into(),
                });
            }
        }
        Ok(())
    }
}
