//! Correlation in the collector: the pure core (`darkwatch-correlate`)
//! between the stored reports and the stored verdicts, split by job.
//!
//! - [`config`]: the `[correlation]` settings.
//! - [`rounds`]: which rounds a pass may judge now (pure round arithmetic).
//! - [`edges`]: what the loop reads ([`RoundSource`]) and writes
//!   ([`VerdictSink`]); [`sql`] makes every `crate::store::Store` both,
//!   [`memory`] is the in-memory store the unit tests run the loop on.
//! - [`feed`]: stored rounds decoded straight into one campaign's
//!   incremental engine.
//! - [`correlator`]: the [`Correlator`], which re-judges each campaign from
//!   the rounds that changed since its last pass and writes what
//!   `crate::reconcile` decides.
//! - [`sharing`]: campaign leases among the collectors on one database.
//! - [`retention`]: deleting raw rounds past `[retention] raw_days`.
//! - [`replay`]: a stored campaign's verdicts recomputed from its stored
//!   rounds and compared with those stored (`darkwatch-collector replay`).
//! - [`runner`]: the loop of `serve`, which catches failing and panicking
//!   passes; [`stats`] is what it counts, read by `crate::metrics`.
//!
//! Nothing here calls `metrics` or the read side of `signals`: they read
//! what correlation stores and counts. The per-round summaries are laid out
//! by `crate::signals`, which the SQL sink calls to write them.

pub mod config;
pub mod correlator;
pub mod edges;
pub mod feed;
pub mod memory;
pub mod replay;
pub mod retention;
pub mod rounds;
pub mod runner;
pub mod sharing;
pub mod sql;
pub mod stats;

#[cfg(test)]
mod routed_tests;
#[cfg(test)]
mod tests;

pub use config::CorrelationSettings;
pub use correlator::{apply, Correlator, PassStats, LOAD_ROUNDS};
pub use edges::{RoundSource, StoredRounds, SummaryWrite, VerdictSink};
pub use feed::top_target;
pub use retention::{
    purge_old_rounds, RetentionSettings, MAX_RAW_DAYS, PURGE_ROWS, PURGE_STATEMENTS,
};
pub use rounds::{last_complete_round, last_round_to_correlate};
pub use runner::{correlate_campaigns, loop_pass, run, LoopSetup, LoopState, PassOutcome};
pub use sharing::{campaign_lease, fair_share, share_campaigns, surplus, LEASE, MEMBER_LEASE};
pub use stats::CorrelationStats;
