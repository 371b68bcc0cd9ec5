//! Correlation of observations into outage verdicts (sans-IO core).
//!
//! This crate decides and never communicates: the collector feeds the
//! observations of each round to an [`Incremental`] engine as they arrive,
//! asks it for the window's [`Output`], and stores what comes back. There is
//! no clock here: time is the round number, so every test can replay a
//! synthetic timeline exactly.
//!
//! There is one engine. [`correlate`] (a window given as one [`Input`]) is a
//! fresh engine fed every round of the input: the oracle the engine's
//! incremental updates are tested against, and a convenience for tests.
//!
//! Pipeline (each step a module; each reads only the steps before it):
//! 0. `cells`: a report as a byte (state and loss cells), merged per VP,
//!    block and round by the engine's round input (`incremental::input`)
//!    and packed per round (`incremental::row`).
//! 1. `health`: per vantage point (VP) and round, is the VP itself healthy?
//!    A VP that suddenly loses most of its blocks while the other VPs do not,
//!    or whose control targets all fail, is faulty for that round and is left
//!    out of every target verdict.
//! 2. `consensus`: per block and round, one state from the healthy VPs: up if
//!    any healthy VP saw it up, down if at least `quorum` healthy VPs saw it
//!    down and none saw it up, otherwise unknown. The quorum is capped at the
//!    healthy VPs that reported the block at all (uncertain reports included).
//!    One round at a time: the engine recomputes only the rounds whose data,
//!    health or flaps changed (`incremental::walk`).
//! 3. `scopes`: per scope (country/campaign, origin AS, prefix), per-round
//!    totals: blocks judged and down, flapping blocks, probe losses.
//! 4. `verdicts`: the totals turned into `blackout` / `partial` /
//!    `instability` verdicts with hysteresis (`runs`, `instability`), and
//!    the summaries' loss and reply times into `degradation` (`latency`);
//!    `localize` then places blackouts and partial outages with the
//!    traceroutes of the VPs that saw them; `timeline` summarizes each round,
//!    and `summaries` gives per-round totals of every scope for the consensus
//!    and each VP (what the collector stores for its views).
//!
//! A round without any data (collector downtime) is neither good nor bad: it
//! neither opens, closes nor splits a verdict.

use std::net::IpAddr;

use darkwatch_schema::BlockState;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use incremental::Incremental;
pub use scopes::UNROUTED;
pub use summaries::{round_digests, Summaries, SummaryScope, Totals};

/// Index into [`Input::vps`].
pub type VpId = u32;
/// Index into [`Input::blocks`].
pub type BlockId = u32;

/// A watched prefix, as given by a campaign (or a delegated-stats file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixInfo {
    pub net: IpNet,
    /// Origin ASes from a prefix-to-AS file (none without one). A
    /// multi-origin prefix lists each origin and counts in each AS scope.
    /// When some prefixes have origins, those without one are unrouted
    /// space and make the [`Scope::Unrouted`] group.
    pub asns: Vec<u32>,
}

/// A block (IPv4 /24 or IPv6 /48) and the watched prefix that holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub net: IpNet,
    /// Index into [`Input::prefixes`].
    pub prefix: u32,
}

/// One VP's judgement of one block in one round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Obs {
    pub vp: VpId,
    pub block: BlockId,
    pub round: u64,
    pub state: BlockState,
    pub probes: u32,
    pub replies: u32,
}

/// One VP's judgement of one of its control targets in one round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlObs {
    pub vp: VpId,
    pub round: u64,
    pub state: BlockState,
}

/// A traceroute, reduced to what localization needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceObs {
    pub vp: VpId,
    pub round: u64,
    pub target: IpAddr,
    /// Addresses that answered, in TTL order (silent hops left out).
    pub responding: Vec<IpAddr>,
    pub reached: bool,
    /// True if the last address in `responding` answered with an ICMP
    /// destination unreachable (no route, host unreachable, filtered): that
    /// router said the path ends there, which a time-exceeded answer does
    /// not. With `reached`, the route went away while the trace ran (its
    /// first probes got an echo, later ones the unreachable, which cut the
    /// hops there). Older inputs lack it (false).
    #[serde(default)]
    pub unreachable: bool,
}

/// The ICMP errors (unreachable, time exceeded) that one router sent in
/// answer to one VP's probes in one round: the path to those blocks ended
/// at `from`, the same evidence as a traceroute's last hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeErrorObs {
    pub vp: VpId,
    pub round: u64,
    pub from: IpAddr,
    /// The blocks whose probes it answered.
    pub blocks: Vec<IpNet>,
}

/// Everything one correlation pass looks at: one watched scope (a country,
/// or a campaign without a country) over a window of rounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Name of the top scope: a country code, or a campaign name.
    pub target: String,
    /// True if `target` is a country code, false if it is a campaign name.
    pub is_country: bool,
    pub vps: Vec<String>,
    pub prefixes: Vec<PrefixInfo>,
    pub blocks: Vec<BlockInfo>,
    /// First and last round to judge (inclusive). Rounds after `last_round`
    /// are not complete yet and are ignored.
    pub first_round: u64,
    pub last_round: u64,
    pub obs: Vec<Obs>,
    pub control: Vec<ControlObs>,
    pub traces: Vec<TraceObs>,
    /// Routers' ICMP errors to the VPs' probes (localization evidence).
    #[serde(default)]
    pub probe_errors: Vec<ProbeErrorObs>,
}

/// Tunables. Defaults are what darkwatch ships; see each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Healthy VPs that must see a block down (and none up) for it to count
    /// as down. Capped at the number of healthy VPs reporting that round.
    pub quorum: usize,
    /// Consecutive bad rounds before a verdict opens (hysteresis: a single
    /// lost round never makes a verdict).
    pub open_after: u32,
    /// Consecutive good rounds before a verdict closes.
    pub close_after: u32,
    /// Share of a scope's judged blocks down that makes a `blackout`.
    pub blackout_share: f64,
    /// Increase of the down share over the scope's baseline that makes a
    /// `partial` outage.
    pub partial_share: f64,
    /// Rounds before a verdict used as its baseline.
    pub baseline_rounds: u32,
    /// Window (rounds) over which instability is measured.
    pub instability_window: u32,
    /// Unstable rounds within the window that open an `instability` verdict.
    pub instability_min_rounds: u32,
    /// A round is unstable if it lies in a stretch of recent rounds (at most
    /// `instability_window`) whose pooled losses are better explained by a
    /// path that loses this share of probes to blocks believed up (round
    /// trip)... 0.5 is what 30 % loss each way does (51 %).
    pub instability_loss: f64,
    /// ...than by this background loss, which is not instability, with a
    /// likelihood ratio of at least `instability_likelihood_ratio` (a
    /// sequential test: the stretch grows for as long as the loss lasts).
    /// With 0.5 and 0.2 the two explanations break even at about 34 %
    /// pooled loss; 10 % loss each way (19 % round trip) stays below.
    pub instability_background_loss: f64,
    /// Evidence the loss test needs: background loss reaches it in fewer
    /// than one test in this many. Higher means fewer false alarms under
    /// heavy background loss and slower detection: with 10 000, 30 % loss
    /// each way is found within 4 rounds in about 80 % of cases for a
    /// country of four /24s seen by two VPs, and 10 % each way gave no
    /// verdict in 600 simulated runs of 40 rounds.
    pub instability_likelihood_ratio: f64,
    /// ...or at least this share of blocks changed state (any VP) since the
    /// previous round.
    pub instability_flap_share: f64,
    /// The loss criterion needs at least this many probes to blocks
    /// believed up in the pooled stretch. The agent sends one probe per
    /// block and VP a round to an up block at low loss, `1 / (1 - loss)` on
    /// average under loss (it stops at the first reply): one lossy block
    /// seen by two VPs sends about four a round at 50 % loss. The
    /// likelihood ratio needs at least eight lost probes anyway, so this
    /// only matters when raised.
    pub instability_min_probes: u32,
    /// The flap criterion needs at least this many state changes over the
    /// window: one block that went down and came back once (two changes) is
    /// not instability unless it keeps doing it.
    pub instability_min_flaps: u32,
    /// A VP whose share of up blocks falls by at least this much from its own
    /// baseline, while the other VPs' does not, is faulty for that round.
    pub vp_fault_drop: f64,
    /// Per-VP summaries of prefix scopes are computed only for inputs of at
    /// most this many prefixes: rounds x VPs x prefixes of them would
    /// outweigh everything else for a country of /24 prefixes. Country/
    /// campaign and AS scopes always have per-VP summaries.
    pub summary_vp_prefixes: u32,
    /// When a scope's loss or latency makes a `degradation`.
    pub degradation: latency::DegradationParams,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            quorum: 2,
            open_after: 2,
            close_after: 2,
            blackout_share: 0.9,
            partial_share: 0.1,
            baseline_rounds: 12,
            instability_window: 6,
            instability_min_rounds: 3,
            instability_loss: 0.5,
            instability_background_loss: 0.2,
            instability_likelihood_ratio: 10_000.0,
            instability_flap_share: 0.2,
            instability_min_probes: 8,
            instability_min_flaps: 3,
            vp_fault_drop: 0.5,
            summary_vp_prefixes: 1024,
            degradation: latency::DegradationParams::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Country,
    Campaign,
    Asn,
    /// The prefixes no route covers, when the others are routed (target
    /// `unrouted`): grouped like an AS's, so their outage has a scope.
    Unrouted,
    Prefix,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Blackout,
    Partial,
    Instability,
    /// Loss or latency far above the scope's own baseline while its blocks
    /// stay up: throttling, not darkness (`latency`).
    Degradation,
}

/// Where the paths toward a dark scope now end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Localization {
    /// The farthest hop that the VPs' paths consistently reach, common to
    /// all of them where they share one.
    pub last_hop: Option<IpAddr>,
    /// True if `last_hop` lies inside the scope's own address space, false if
    /// it is upstream of it.
    pub inside_target: bool,
    /// VPs whose traces were used.
    pub vantage_points: Vec<String>,
    /// Failing traces combined (every VP, every round of the verdict).
    pub traces: usize,
    /// Of those, the traces whose last answering hop is `last_hop`. The rest
    /// ended earlier (a router's ICMP errors rate-limited or dropped) or
    /// elsewhere.
    #[serde(default)]
    pub agreeing: usize,
    /// Routers' ICMP errors to the VPs' probes combined: one per VP, round
    /// and router (every VP, every round of the verdict).
    #[serde(default)]
    pub probe_errors: usize,
    /// Of those, the ones sent by `last_hop`.
    #[serde(default)]
    pub probe_errors_agreeing: usize,
    /// Working traces (that reached their targets, during the verdict or in
    /// the few rounds before it) of the same VPs that go on from the hop
    /// where the failing ones stop to `last_hop`. Not zero only when
    /// `last_hop` was named from them: the failing traces' last hop
    /// forwarded (it answered time-exceeded, not unreachable) and the
    /// router past it, where the working paths go next, answered nothing.
    #[serde(default)]
    pub working_paths: usize,
}

impl Localization {
    /// Pieces of evidence combined: failing traces and routers' errors to
    /// probes.
    pub fn evidence(&self) -> usize {
        self.traces + self.probe_errors
    }

    /// Of those, the pieces that name `last_hop` as where the path ends.
    pub fn evidence_agreeing(&self) -> usize {
        self.agreeing + self.probe_errors_agreeing
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub scope: Scope,
    /// Country code, campaign name, `AS64500`, prefix or block.
    pub target: String,
    pub kind: Kind,
    pub start_round: u64,
    /// First good round after the verdict; `None` while ongoing.
    pub end_round: Option<u64>,
    /// Most blocks down at once during the verdict.
    pub blocks_affected: usize,
    pub blocks_total: usize,
    /// Prefixes (of the scope) that had blocks down.
    pub prefixes: Vec<IpNet>,
    /// Healthy VPs that saw it.
    pub vantage_points: Vec<String>,
    pub localization: Option<Localization>,
    /// How far a `degradation` departs from its baseline at its worst, e.g.
    /// "median RTT 4.1× baseline, loss 38 % (baseline 2 %)"; `None` for
    /// the other kinds (and absent from their JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// A VP judged faulty over a run of rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpFault {
    pub vp: String,
    pub start_round: u64,
    /// `None` while ongoing.
    pub end_round: Option<u64>,
    pub reason: String,
}

/// One row of the timeline: share of judged blocks up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub round: u64,
    /// Consensus share of blocks up (None if no block was judged).
    pub overall: Option<f64>,
    /// Per VP (same order as `Input::vps`): share of its judged blocks up.
    pub per_vp: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub verdicts: Vec<Verdict>,
    pub vp_faults: Vec<VpFault>,
    pub timeline: Vec<TimelineRow>,
    /// Observations (block and control) left out because their VP or
    /// block is unknown or their round lies outside the window.
    #[serde(default)]
    pub skipped_observations: usize,
    /// Per round, per scope totals for the consensus and each VP.
    #[serde(default)]
    pub summaries: Summaries,
}

/// Why a correlation pass could not run. Each is a problem of the input or of
/// the parameters, never of the data's content: bad observations (unknown VP,
/// unknown block, out-of-window round) are skipped and counted instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CorrelateError {
    #[error("window is inverted: first_round {first} > last_round {last}")]
    InvertedWindow { first: u64, last: u64 },
    #[error("window of {rounds} rounds x {vps} VPs x {blocks} blocks is too large (limit {limit} cells)")]
    TooLarge {
        rounds: u64,
        vps: usize,
        blocks: usize,
        limit: u64,
    },
    #[error("block {block} refers to prefix {prefix}, but there are only {count} prefixes")]
    BlockPrefix {
        block: usize,
        prefix: u32,
        count: usize,
    },
    #[error("invalid parameter {name}: {why}")]
    Param {
        name: &'static str,
        why: &'static str,
    },
}

impl Params {
    /// Checks ranges that would make the verdicts meaningless (NaN shares,
    /// zero-length hysteresis).
    pub fn validate(&self) -> Result<(), CorrelateError> {
        let share = |name: &'static str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(CorrelateError::Param {
                    name,
                    why: "must be a number in [0, 1]",
                })
            }
        };
        share("blackout_share", self.blackout_share)?;
        share("partial_share", self.partial_share)?;
        share("instability_loss", self.instability_loss)?;
        share(
            "instability_background_loss",
            self.instability_background_loss,
        )?;
        // The loss test weighs the two rates against each other: both must
        // be possible and the path's loss the worse one.
        if !(0.0 < self.instability_background_loss
            && self.instability_background_loss < self.instability_loss
            && self.instability_loss < 1.0)
        {
            return Err(CorrelateError::Param {
                name: "instability_loss",
                why: "must satisfy 0 < instability_background_loss < instability_loss < 1",
            });
        }
        share("instability_flap_share", self.instability_flap_share)?;
        share("vp_fault_drop", self.vp_fault_drop)?;
        share("degradation.loss_increase", self.degradation.loss_increase)?;
        share("degradation.min_share_up", self.degradation.min_share_up)?;
        let at_least_one = |name: &'static str, v: u64| {
            if v >= 1 {
                Ok(())
            } else {
                Err(CorrelateError::Param {
                    name,
                    why: "must be at least 1",
                })
            }
        };
        if !(self.instability_likelihood_ratio.is_finite()
            && self.instability_likelihood_ratio >= 1.0)
        {
            return Err(CorrelateError::Param {
                name: "instability_likelihood_ratio",
                why: "must be a number of at least 1",
            });
        }
        at_least_one("quorum", self.quorum as u64)?;
        at_least_one("open_after", self.open_after.into())?;
        at_least_one("close_after", self.close_after.into())?;
        at_least_one("instability_window", self.instability_window.into())?;
        at_least_one("instability_min_rounds", self.instability_min_rounds.into())?;
        if self.instability_min_rounds > self.instability_window {
            return Err(CorrelateError::Param {
                name: "instability_min_rounds",
                why: "must not exceed instability_window",
            });
        }
        Ok(())
    }
}

/// Median of a non-empty slice (mean of the two middle values when even).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Runs one correlation pass. Deterministic: the same input gives the same
/// output, whatever the order of `input.obs`.
///
/// Invalid parameters or an impossible window give an empty output; callers
/// that want to know why should use [`try_correlate`].
pub fn correlate(input: &Input, params: &Params) -> Output {
    try_correlate(input, params).unwrap_or_default()
}

/// [`correlate`], with the reason when the pass cannot run.
///
/// A fresh [`Incremental`] engine, fed every round of the window at once:
/// the output's VPs are `input.vps` in their order (with or without data),
/// and localization reads every trace and error of the input. Observations
/// of unknown VPs or blocks or of rounds outside the window are skipped and
/// counted.
pub fn try_correlate(input: &Input, params: &Params) -> Result<Output, CorrelateError> {
    params.validate()?;
    let (first, last) = (input.first_round, input.last_round);
    if first > last {
        return Err(CorrelateError::InvertedWindow { first, last });
    }
    let rounds = (last - first).saturating_add(1);
    let (vps, blocks) = (input.vps.len(), input.blocks.len());
    // Also bound the rounds alone: the per-round arrays exist even without
    // blocks.
    rounds
        .checked_mul(vps.max(1) as u64)
        .and_then(|n| n.checked_mul(blocks.max(1) as u64))
        .filter(|&n| n <= cells::MAX_CELLS)
        .ok_or(CorrelateError::TooLarge {
            rounds,
            vps,
            blocks,
            limit: cells::MAX_CELLS,
        })?;
    whole::correlate(input, params)
}

mod cells;
mod consensus;
mod health;
pub mod incremental;
mod instability;
pub mod latency;
mod localize;
pub mod onset;
mod runs;
mod scopes;
mod summaries;
mod timeline;
mod verdicts;
mod whole;

#[cfg(test)]
mod tests;
