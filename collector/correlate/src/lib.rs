//! Correlation of observations into outage verdicts (sans-IO core).
//!
//! This crate decides and never communicates: the collector loads the
//! observations of a window of rounds from its store, hands them to
//! [`correlate`], and stores what comes back. There is no clock here: time is
//! the round number, so every test can replay a synthetic timeline exactly.
//!
//! Pipeline (each step a module):
//! 1. `health`: per vantage point (VP) and round, is the VP itself healthy?
//!    A VP that suddenly loses most of its blocks while the other VPs do not,
//!    or whose control targets all fail, is faulty for that round and is left
//!    out of every target verdict.
//! 2. `consensus`: per block and round, one state from the healthy VPs: up if
//!    any healthy VP saw it up, down if at least `quorum` healthy VPs saw it
//!    down and none saw it up, otherwise unknown.
//! 3. `verdicts`: per scope (country/campaign, origin AS, prefix), the share of
//!    blocks down per round, turned into `blackout` / `partial` /
//!    `instability` verdicts with hysteresis (`open_after` / `close_after`
//!    rounds), then localized with the traceroutes of the VPs that saw it.

use std::net::IpAddr;

use darkwatch_schema::BlockState;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Index into [`Input::vps`].
pub type VpId = u32;
/// Index into [`Input::blocks`].
pub type BlockId = u32;

/// A watched prefix, as given by a campaign (or a delegated-stats file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixInfo {
    pub net: IpNet,
    /// Origin AS from a prefix-to-AS file, if one was given.
    pub asn: Option<u32>,
}

/// A block (IPv4 /24 or IPv6 /64) and the watched prefix that holds it.
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
    /// A round is unstable if at least this share of probes went unanswered
    /// in blocks believed up...
    pub instability_loss: f64,
    /// ...or at least this share of blocks changed state (any VP) since the
    /// previous round.
    pub instability_flap_share: f64,
    /// A VP whose share of up blocks falls by at least this much from its own
    /// baseline, while the other VPs' does not, is faulty for that round.
    pub vp_fault_drop: f64,
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
            instability_loss: 0.3,
            instability_flap_share: 0.2,
            vp_fault_drop: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Country,
    Campaign,
    Asn,
    Prefix,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Blackout,
    Partial,
    Instability,
}

/// Where the paths toward a dark scope now end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Localization {
    /// The last responding hop common to the VPs' paths.
    pub last_hop: Option<IpAddr>,
    /// True if `last_hop` lies inside the scope's own address space, false if
    /// it is upstream of it.
    pub inside_target: bool,
    /// VPs whose traces were used.
    pub vantage_points: Vec<String>,
    pub traces: usize,
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
}

/// Runs one correlation pass. Deterministic: the same input gives the same
/// output, whatever the order of `input.obs`.
pub fn correlate(input: &Input, params: &Params) -> Output {
    let _ = (input, params);
    Output::default()
}
