//! Persistent state of the collector, behind one async trait.
//!
//! [`Store`] lists every operation the server, the CLI and the correlator
//! need, in the collector's own types (verdicts typed as the correlation
//! core types them); [`SqlStore`] implements it over `sqlx::Any`, so the
//! same code serves a SQLite file or a PostgreSQL database chosen by URL.
//! Callers pass the current time in, which keeps the store free of clocks.
//!
//! Inside, the modules form layers with no loop: `codec`, `url` and
//! `tables` at the bottom; `sql`, the connection type; the topic modules
//! that hold each table's SQL (`agents`, `observations`, `rounds`,
//! `census`, `timing`, `summaries`, `verdicts`, `leases`, `partitions`,
//! `purge`; `ingest` writes a batch through several of them); and
//! `dispatch` on top, which opens the store and implements [`Store`].

mod agents;
mod bgp;
mod census;
mod codec;
mod dispatch;
mod ingest;
mod leases;
mod migrations;
mod observations;
mod partitions;
mod purge;
mod rounds;
mod sql;
mod summaries;
mod tables;
mod timing;
mod url;
mod verdicts;

use std::future::Future;
use std::ops::RangeInclusive;

use darkwatch_correlate::{Kind, Localization, Scope};
use darkwatch_schema::{BatchAck, BlockObservation, CensusBlock, ReportBatch, TraceObservation};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use bgp::BgpSessions;
pub use census::AgentCoverage;
pub use rounds::Spaces;
pub use sql::SqlStore;
pub use timing::ReportedTiming;
pub use url::{resolve_url, sqlite_file, Backend};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("unsupported database URL {0:?} (use a path, sqlite://PATH or postgres://...)")]
    Url(String),
    #[error("agent {0:?} already exists")]
    AgentExists(String),
    #[error("no agent named {0:?}")]
    NoAgent(String),
    #[error("campaign {0:?} already exists (use --replace to change it)")]
    CampaignExists(String),
    #[error("no campaign named {0:?}")]
    NoCampaign(String),
    #[error("stored {what} is unreadable: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error("{0} is out of range for the database")]
    Range(&'static str),
}

impl StoreError {
    /// True for failures of the database itself (as opposed to a request
    /// that conflicts with stored state): callers map these to 503 / exit 69.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Db(_) | StoreError::Corrupt { .. }
        )
    }
}

/// An agent as listed to operators; the token hash never leaves the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub revoked: bool,
}

/// Result of looking a bearer token up.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    Agent(String),
    Revoked(String),
    Unknown,
}

/// A campaign as the operator defined it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub name: String,
    pub country: Option<String>,
    pub interval_secs: u64,
    pub prefixes: Vec<IpNet>,
    pub control: Vec<IpNet>,
    /// Agents that run it; empty means every agent.
    pub agents: Vec<String>,
    /// Strictly increasing across all campaign changes, so an agent that
    /// remembers a generation notices any change, even remove + re-add.
    pub generation: u64,
    pub created_ms: i64,
}

impl Campaign {
    pub fn assigned_to(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }
}

/// What the operator supplies to create or change a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpec {
    pub name: String,
    pub country: Option<String>,
    pub interval_secs: u64,
    pub prefixes: Vec<IpNet>,
    pub control: Vec<IpNet>,
    pub agents: Vec<String>,
}

/// An observation with the agent that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentObservation {
    pub agent: String,
    #[serde(flatten)]
    pub obs: BlockObservation,
}

/// A traceroute with the agent that took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTrace {
    pub agent: String,
    #[serde(flatten)]
    pub trace: TraceObservation,
}

/// Routers' ICMP errors to an agent's probes (see
/// `darkwatch_schema::ProbeErrors`), with the agent that saw them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentProbeErrors {
    pub agent: String,
    #[serde(flatten)]
    pub errors: darkwatch_schema::ProbeErrors,
}

/// One agent's packed round chunk as stored (`rounds`): the compressed
/// columns of `darkwatch_schema::packed`, indices into block space `space`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRecord {
    pub agent: String,
    pub round: u64,
    pub chunk: u32,
    /// Digest of the block space (a [`StoredSpace`] of the campaign).
    pub space: String,
    pub blocks: u32,
    pub ts_ms: i64,
    pub data: Vec<u8>,
}

/// The prefix list of one campaign generation, named by the digest of its
/// block space.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpace {
    pub digest: String,
    pub prefixes: Vec<IpNet>,
}

/// An outage verdict as stored. Its identity is its `id`: correlation
/// passes match recomputed verdicts to stored rows (`crate::reconcile`) and
/// update them in place, so the start round may move as late reports
/// arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Assigned by the store; 0 for a verdict not stored yet.
    #[serde(default)]
    pub id: i64,
    pub scope: Scope,
    /// What the scope names: a country code, a prefix, a block.
    pub target: String,
    pub kind: Kind,
    pub campaign: String,
    pub start_round: u64,
    pub end_round: Option<u64>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub blocks_affected: u64,
    pub blocks_total: u64,
    pub prefixes: Vec<IpNet>,
    pub vantage_points: Vec<String>,
    /// Where the paths toward the scope now end, if traceroutes said.
    pub localization: Option<Localization>,
    pub updated_ms: i64,
    /// A `degradation`'s change at its worst ("median RTT 4.1× baseline,
    /// loss 38 % (baseline 2 %)"); `None` for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Which alerts this verdict has given: each at most once in its life.
    #[serde(skip)]
    pub alerted: Alerted,
}

/// The alert events a verdict has given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alerted {
    pub open: bool,
    pub close: bool,
}

/// A vantage point judged unhealthy (its own network, not the target's).
/// Identified by its `id`, like a [`Verdict`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpFault {
    #[serde(default)]
    pub id: i64,
    pub agent: String,
    pub campaign: String,
    pub start_round: u64,
    pub end_round: Option<u64>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// Why the VP was judged faulty, as the correlation said.
    pub reason: String,
    pub updated_ms: i64,
}

/// One VP's (or, with `vp` empty, the consensus's) totals of one scope in
/// one round: the per-round summaries the correlation pass stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSummary {
    pub campaign: String,
    pub scope: Scope,
    pub target: String,
    pub round: u64,
    /// The agent, or `""` for the consensus of the healthy VPs.
    pub vp: String,
    pub blocks_judged: u64,
    pub blocks_up: u64,
    pub probes: u64,
    pub replies: u64,
}

/// A scope that has summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryKey {
    pub campaign: String,
    pub scope: Scope,
    pub target: String,
}

/// A round of a campaign with stored summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRound {
    pub round: u64,
    /// The campaign's round length when the summaries were written.
    pub interval_secs: u64,
    /// Digest of the input the summaries were computed from
    /// (`darkwatch_correlate::round_digests`, as stored: two's complement).
    pub digest: i64,
    pub updated_ms: i64,
}

/// Row counts for metrics and status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreCounts {
    pub agents: u64,
    pub agents_revoked: u64,
    /// Agents seen at or after the `seen_since_ms` given to `counts`.
    pub agents_seen: u64,
    pub campaigns: u64,
    pub batches: u64,
    pub observations: u64,
    pub traces: u64,
    pub verdicts: u64,
    /// Verdicts without an end.
    pub verdicts_open: u64,
}

/// Every operation on the collector's persistent state.
///
/// Methods return `impl Future + Send` (rather than `async fn`) so that
/// server handlers generic over the store stay `Send`.
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip to the database, for health checks.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- agents ---
    fn add_agent(
        &self,
        name: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list_agents(&self) -> impl Future<Output = Result<Vec<AgentInfo>, StoreError>> + Send;
    fn revoke_agent(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Gives the agent a new token (hash) and takes its old one away; a
    /// revoked agent is reinstated with the new token.
    fn rotate_agent(
        &self,
        name: &str,
        token_hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes the agent (its stored reports stay, under its name).
    fn remove_agent(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Finds the agent whose token hashes to `token_hash` (constant-time compare).
    fn authenticate(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<AuthOutcome, StoreError>> + Send;
    fn touch_agent(
        &self,
        name: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- campaigns ---
    /// Creates a campaign, or with `replace` changes an existing one; either
    /// way it gets a new generation.
    fn put_campaign(
        &self,
        spec: &CampaignSpec,
        replace: bool,
        now_ms: i64,
    ) -> impl Future<Output = Result<Campaign, StoreError>> + Send;
    fn list_campaigns(&self) -> impl Future<Output = Result<Vec<Campaign>, StoreError>> + Send;
    fn remove_campaign(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn campaigns_for_agent(
        &self,
        agent: &str,
    ) -> impl Future<Output = Result<Vec<Campaign>, StoreError>> + Send;

    // --- reports ---
    /// Stores a batch in one transaction; returns only after commit. A batch
    /// id seen before writes nothing and is acknowledged as a duplicate.
    fn ingest(
        &self,
        agent: &str,
        batch: &ReportBatch,
        now_ms: i64,
    ) -> impl Future<Output = Result<BatchAck, StoreError>> + Send;

    // --- queries for correlation ---
    /// Non-control observations of a campaign in a round range: the rows
    /// of plain reports and the blocks of packed rounds, merged.
    fn observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AgentObservation>, StoreError>> + Send;
    /// Non-control observations stored as rows (plain reports only).
    fn row_observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AgentObservation>, StoreError>> + Send;
    /// Packed round chunks of a campaign in a round range, as stored.
    fn round_records(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<RoundRecord>, StoreError>> + Send;
    /// Every block space (campaign generation) known for a campaign.
    fn block_spaces(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<StoredSpace>, StoreError>> + Send;
    /// Deletes up to `limit` rows of each raw table (packed rounds, per-block
    /// observations, traces, round timing) of `campaign` before round `before_round`;
    /// returns how many went. Verdicts and VP faults are never deleted.
    fn purge_raw(
        &self,
        campaign: &str,
        before_round: u64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// `(round, agent)` for every agent with observations of a campaign in
    /// a round range: which agents have reported which rounds.
    fn round_agents(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;
    /// Per round of a campaign in a round range that holds any report, a
    /// fingerprint of how many raw rows it holds (observation rows, packed
    /// chunks, traces). Raw rows are never updated, only added (and purged
    /// past the retention), so a round whose fingerprint is unchanged holds
    /// the same reports: incremental correlation reloads only the others.
    fn round_versions(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<(u64, u64)>, StoreError>> + Send;
    /// Control-target observations of a campaign in a round range.
    fn control_observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AgentObservation>, StoreError>> + Send;
    fn traces(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AgentTrace>, StoreError>> + Send;
    /// The routers' ICMP errors to agents' probes in a round range.
    fn probe_errors(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<AgentProbeErrors>, StoreError>> + Send;

    // --- verdicts ---
    /// Writes verdicts in one transaction: inserts those with id 0, updates
    /// the others by id. Returns the ids, in order.
    fn save_verdicts(
        &self,
        vs: &[Verdict],
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    /// Verdicts of a campaign (or all), still open or ended at or after `since_ms`.
    fn list_verdicts(
        &self,
        campaign: Option<&str>,
        since_ms: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Verdict>, StoreError>> + Send;
    /// Writes VP faults like [`Store::save_verdicts`].
    fn save_vp_faults(
        &self,
        fs: &[VpFault],
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;
    fn list_vp_faults(
        &self,
        campaign: Option<&str>,
        since_ms: Option<i64>,
    ) -> impl Future<Output = Result<Vec<VpFault>, StoreError>> + Send;

    // --- per-round scope summaries ---
    /// The rounds of a campaign with summaries, in a round range.
    fn summary_rounds(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<SummaryRound>, StoreError>> + Send;
    /// Each campaign's latest round with summaries.
    fn latest_summary_rounds(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, SummaryRound)>, StoreError>> + Send;
    /// Replaces, in one transaction, the rows of `rounds` of a campaign
    /// with `rows`, and the round digests of `digests` (which starts where
    /// `rounds` does and may go further) with `written`: rounds of
    /// `digests` after `rounds` lose their digest, so a later pass rewrites
    /// them, and keep their rows until then.
    fn replace_summaries(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
        digests: RangeInclusive<u64>,
        written: &[SummaryRound],
        rows: &[ScopeSummary],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every row (consensus and VPs) of one scope in a round range, by
    /// round, the consensus first.
    fn scope_summaries(
        &self,
        campaign: &str,
        scope: Scope,
        target: &str,
        rounds: RangeInclusive<u64>,
    ) -> impl Future<Output = Result<Vec<ScopeSummary>, StoreError>> + Send;
    /// The rows of one kind of scope in one round (only the consensus's
    /// with `consensus_only`), at most `limit`, by target.
    fn round_summaries(
        &self,
        campaign: &str,
        round: u64,
        scope: Scope,
        consensus_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ScopeSummary>, StoreError>> + Send;
    /// The scopes with summaries, of one campaign or all: by campaign, then
    /// top scope, ASes by number, prefixes by address.
    fn summary_scopes(
        &self,
        campaign: Option<&str>,
    ) -> impl Future<Output = Result<Vec<SummaryKey>, StoreError>> + Send;

    // --- leases (correlation shared among several collectors) ---
    /// Takes or renews lease `name` for `holder` until `now_ms + ttl_ms`;
    /// false if another holder has it and it has not expired.
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn release_lease(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Holders of the unexpired leases whose names start with `prefix`
    /// (letters, digits, ':' and '-'), sorted.
    fn live_holders(
        &self,
        prefix: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    // --- metrics ---
    fn counts(
        &self,
        seen_since_ms: i64,
    ) -> impl Future<Output = Result<StoreCounts, StoreError>> + Send;

    // --- coverage and census ---
    /// Every agent's latest coverage of every campaign it reported on
    /// (written by `ingest` from `ReportBatch.coverage`).
    fn list_coverage(&self) -> impl Future<Output = Result<Vec<AgentCoverage>, StoreError>> + Send;
    /// The latest known-responsive addresses per block of a campaign
    /// (written by `ingest` from `ReportBatch.census`, and by `put_census`).
    fn census(
        &self,
        campaign: &str,
    ) -> impl Future<Output = Result<Vec<CensusBlock>, StoreError>> + Send;
    /// Replaces the census of each given block of a campaign (blocks with no
    /// address are left as they were).
    fn put_census(
        &self,
        campaign: &str,
        blocks: &[CensusBlock],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets a campaign's census.
    fn clear_census(&self, campaign: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- round timing ---
    /// Every agent's latest round of every campaign it reported rounds of
    /// (written by `ingest` from `ReportBatch.rounds`), with how many of
    /// its rounds started at or after `since_ms` and how many were late.
    fn round_timings(
        &self,
        since_ms: i64,
    ) -> impl Future<Output = Result<Vec<ReportedTiming>, StoreError>> + Send;
}
