//! The correlation loop's two narrow edges: what it reads
//! ([`RoundSource`]) and what it writes ([`VerdictSink`]). The loop, the
//! [`super::Correlator`], retention and sharing see only these, so they run
//! the same over the SQL store (`super::sql`, every [`crate::store::Store`])
//! and over the in-memory one (`super::memory`) their unit tests use.
//!
//! Method names differ from the `Store` trait's so that a type implementing
//! both never makes a call ambiguous.

use std::future::Future;
use std::ops::RangeInclusive;

use darkwatch_correlate as core;

use crate::store::{
    AgentObservation, AgentProbeErrors, AgentTrace, Campaign, RoundRecord, StoreError, StoredSpace,
    Verdict, VpFault,
};

/// What the store holds of some rounds of a campaign, as read: the raw
/// reports that the feed (`super::feed`) hands to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredRounds {
    /// Plain observations stored as rows (agents that do not pack).
    pub rows: Vec<AgentObservation>,
    /// Packed rounds, decoded by the feed straight into the engine.
    pub records: Vec<RoundRecord>,
    pub control: Vec<AgentObservation>,
    pub traces: Vec<AgentTrace>,
    pub probe_errors: Vec<AgentProbeErrors>,
}

/// The per-round scope summaries of one pass, for the sink to store
/// (`crate::signals` reads them back).
#[derive(Debug, Clone)]
pub struct SummaryWrite<'a> {
    pub campaign: &'a Campaign,
    /// The pass's window.
    pub window: RangeInclusive<u64>,
    /// The engine's VP names (index = VP id).
    pub vps: &'a [String],
    /// Per round of the window, a digest of its input (0: no data).
    pub digests: &'a [u64],
    pub out: &'a core::Output,
    pub now_ms: i64,
}

/// What the correlation loop reads.
pub trait RoundSource: Send + Sync {
    /// Every campaign defined.
    fn read_campaigns(&self) -> impl Future<Output = Result<Vec<Campaign>, StoreError>> + Send;
    /// `(round, agent)` for every agent that reported a round in `rounds`.
    fn reporting_agents(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;
    /// Per round with reports in `rounds`, a fingerprint that changes
    /// whenever reports are added to it or purged from it.
    fn round_fingerprints(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<(u64, u64)>, StoreError>> + Send;
    /// Everything stored of `campaign` in `rounds`.
    fn stored_rounds(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<StoredRounds, StoreError>> + Send;
    /// The block spaces (prefix lists by digest) of every generation of
    /// `campaign`: how packed records decode.
    fn campaign_spaces(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<StoredSpace>, StoreError>> + Send;
    /// The verdicts stored for `campaign` (what a pass reconciles with).
    fn stored_verdicts(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<Verdict>, StoreError>> + Send;
    /// The VP faults stored for `campaign`.
    fn stored_vp_faults(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<VpFault>, StoreError>> + Send;
}

/// What the correlation loop writes, and the leases it shares campaigns by.
pub trait VerdictSink: Send + Sync {
    /// Inserts verdicts with id 0, updates the others; returns the ids in
    /// order.
    fn write_verdicts(
        &self,
        vs: &[Verdict],
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// Writes VP faults as [`VerdictSink::write_verdicts`] does.
    fn write_vp_faults(
        &self,
        fs: &[VpFault],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores the pass's per-round summaries where they changed; returns
    /// how many rounds it wrote.
    fn write_summaries(
        &self,
        s: SummaryWrite<'_>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Deletes up to `limit` raw rows of each kind of `campaign` before
    /// `before_round`; returns how many went.
    fn purge_raw_rounds(
        &self,
        campaign: &str,
        before_round: u64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Takes or renews lease `name` for `holder` until `now_ms + ttl_ms`:
    /// false if another holder has it unexpired.
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Hands lease `name` back if `holder` has it.
    fn hand_back_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Holders of unexpired leases whose names start with `prefix`.
    fn lease_holders(
        &self,
        prefix: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}
