//! The wire format between darkwatch agents and the collector.
//!
//! Everything an agent sends (`ReportBatch`) and everything it pulls
//! (`Assignments`) is defined here, so that both sides agree by construction.
//! The types are plain data: no I/O, no clocks. `validate` methods (in
//! `validate`) hold the checks that both the collector (on ingest) and the
//! agent (before spooling) apply, so a batch the agent accepts is a batch
//! the collector accepts.
//!
//! Time on the wire is Unix milliseconds (`i64`). Rounds are numbered by
//! `round = start_ms / 1000 / interval_secs`: every agent of a campaign counts
//! the same rounds, which is what lets the collector line VPs up.
//!
//! [`inputs`] holds the parsers of the published files both sides read
//! (RIR delegated stats, CAIDA pfx2as, address lists), with the only file
//! reading of this crate.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub mod census;
pub mod exitcode;
pub mod inputs;
#[cfg(feature = "logging")]
pub mod logging;
pub mod packed;
pub mod phase;
pub mod rtt;
mod validate;

pub use census::CensusSet;
pub use packed::{BlockSpace, PackedBlock, PackedRound};
pub use validate::SchemaError;

/// Version prefix of every HTTP path (`/v1/...`).
pub const API_VERSION: &str = "v1";

/// Largest batch an agent may send (observations + traces).
pub const MAX_ITEMS_PER_BATCH: usize = 100_000;

/// How far in the future an agent clock may be before a report is refused.
pub const MAX_CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;

/// Oldest acceptable timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000;

/// State of a block at the end of a round, as judged by one vantage point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockState {
    Up,
    Down,
    Uncertain,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Up => "up",
            BlockState::Down => "down",
            BlockState::Uncertain => "uncertain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(BlockState::Up),
            "down" => Some(BlockState::Down),
            "uncertain" => Some(BlockState::Uncertain),
            _ => None,
        }
    }
}

/// One vantage point's judgement of one block (an IPv4 /24 or IPv6 /64) in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockObservation {
    /// Campaign the block belongs to.
    pub campaign: String,
    /// Round number (see crate docs).
    pub round: u64,
    /// The block, e.g. `198.18.3.0/24`.
    pub block: IpNet,
    pub state: BlockState,
    /// Echo requests sent to the block this round.
    pub probes: u32,
    /// Echo replies received this round.
    pub replies: u32,
    /// Belief that the block is up, in [0, 1], after this round.
    pub belief: f64,
    /// Estimated share of the block's known-responsive addresses that answer.
    pub availability: f64,
    /// True for control targets: addresses outside the watched space that
    /// should always answer, used to judge the vantage point's own health.
    #[serde(default)]
    pub control: bool,
    /// Fastest and median round-trip time of the replies, in milliseconds
    /// (absent without replies, and from older agents). Carried quantized
    /// to 5 % steps ([`rtt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_min_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_median_ms: Option<f64>,
    /// When the round's probing of this block ended.
    pub ts_ms: i64,
}

/// One traceroute hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hop {
    pub ttl: u8,
    /// Address that answered at this TTL, `None` if nothing did.
    pub addr: Option<IpAddr>,
    pub rtt_ms: Option<f64>,
    /// ICMP destination-unreachable code, when this hop answered with one
    /// (0 net, 1 host, 2 protocol, 13 administratively prohibited, ...): the
    /// path ends here, so no higher TTL is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<u8>,
}

/// A traceroute taken by a vantage point during a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceObservation {
    pub campaign: String,
    pub round: u64,
    pub target: IpAddr,
    pub hops: Vec<Hop>,
    /// True only if an echo reply came back from the target itself.
    pub reached: bool,
    /// The farthest hop that answered (may be the target).
    pub last_responding: Option<IpAddr>,
    pub ts_ms: i64,
}

impl TraceObservation {
    /// The farthest answering hop, derived from `hops`.
    pub fn derive_last_responding(hops: &[Hop]) -> Option<IpAddr> {
        hops.iter().rev().find_map(|h| h.addr)
    }
}

/// What an agent posts to `POST /v1/reports`. Re-sending the same
/// `batch_id` is harmless: the collector stores a batch at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    /// Unique per batch, chosen by the agent (hex, 8..=64 chars).
    pub batch_id: String,
    /// When the agent created the batch.
    pub created_ms: i64,
    #[serde(default)]
    pub observations: Vec<BlockObservation>,
    #[serde(default)]
    pub traces: Vec<TraceObservation>,
    /// What the agent watches of each campaign it runs, and what it skipped
    /// and why. Sent with the first batch after a change, and then now and
    /// then, so the collector's `status` shows when an agent watches less
    /// than it was asked to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<Coverage>,
    /// Responsive addresses the agent found by discovery, per block, for the
    /// collector's census (handed to other agents with their assignments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub census: Vec<CampaignCensus>,
    /// Block observations packed per campaign and round (see [`packed`]):
    /// how large rounds travel. Sent only to a collector whose assignments
    /// advertise [`Assignments::packed`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packed: Vec<PackedRound>,
    /// When each round reported in this batch ran, and whether it finished
    /// within its interval. Sent only to a collector that advertises
    /// [`Assignments::packed`] (older ones refuse unknown fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundInfo>,
    /// The routers whose ICMP errors (unreachable, time exceeded) answered
    /// a round's probes: where the paths to those blocks ended, the same
    /// evidence as a traceroute's last hop. Sent only to a collector that
    /// advertises [`Assignments::probe_errors`] (older ones refuse unknown
    /// fields); plain and packed batches alike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_errors: Vec<ProbeErrors>,
}

/// The ICMP errors one router sent in answer to one round's probes of one
/// campaign (one agent's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeErrors {
    pub campaign: String,
    pub round: u64,
    /// The router that sent them.
    pub from: IpAddr,
    /// The blocks whose probes it answered (ascending, no duplicates).
    pub blocks: Vec<IpNet>,
    /// ICMP errors received from it in the round, over all those blocks.
    pub errors: u32,
    pub ts_ms: i64,
}

/// Most blocks one [`ProbeErrors`] may name.
pub const MAX_BLOCKS_PER_PROBE_ERRORS: usize = 10_000;

/// How one agent's round of one campaign went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundInfo {
    pub campaign: String,
    pub round: u64,
    /// When probing started and ended (Unix ms).
    pub started_ms: i64,
    pub ended_ms: i64,
    /// True if the round's probing ended before the next round began.
    pub on_time: bool,
    /// Blocks judged in the round.
    pub blocks: u64,
    /// Echo requests sent in the round.
    pub probes: u64,
}

/// Known-responsive addresses of one block (an IPv4 /24 or an IPv6 /48).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensusBlock {
    pub block: IpNet,
    pub addrs: Vec<IpAddr>,
}

/// An agent's discovery results for one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignCensus {
    pub campaign: String,
    pub blocks: Vec<CensusBlock>,
}

/// Why an agent does not probe part of what a campaign assigns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// IANA special-purpose space that the agent's `allow` list does not carve back.
    Reserved,
    /// The agent's local exclusion list.
    Excluded,
    /// IPv6 space too large to sweep; only known (census or hitlist) addresses in it are probed.
    Ipv6TooLarge,
    /// Beyond the agent's `max_targets` cap.
    OverMaxTargets,
    /// A census address the collector handed out outside the campaign's prefixes.
    OutsideCampaign,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Reserved => "reserved",
            SkipReason::Excluded => "excluded",
            SkipReason::Ipv6TooLarge => "ipv6_too_large",
            SkipReason::OverMaxTargets => "over_max_targets",
            SkipReason::OutsideCampaign => "outside_campaign",
        }
    }
}

/// Space of one reason that an agent skipped, summed over prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub reason: SkipReason,
    /// Addresses skipped (saturates at u64::MAX for huge IPv6 space).
    pub addresses: u64,
    /// A few of the skipped prefixes, for the operator (at most 16).
    #[serde(default)]
    pub examples: Vec<IpNet>,
}

/// What an agent watches of one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    pub campaign: String,
    /// The campaign generation this coverage was computed for.
    pub generation: u64,
    /// Blocks with known-responsive addresses, judged every round.
    pub blocks_tracked: u64,
    /// Addresses the agent is willing to sweep or probe.
    pub addresses_targeted: u64,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

/// The collector's answer to a stored batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchAck {
    pub batch_id: String,
    /// True if the batch had been stored before (nothing new was written).
    pub duplicate: bool,
    pub observations_stored: u64,
    pub traces_stored: u64,
    /// Observations the batch carried (plain and packed blocks) that were
    /// not stored, and why: never silent. Absent when every one was
    /// stored, and in a duplicate's answer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observations_not_stored: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_stored_reason: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `code` of the collector's 409 answer to a round that has not begun by
/// its clock (the agent's clock runs ahead): the batch is kept and sent
/// again once the round has begun.
pub const ERROR_ROUND_AHEAD: &str = "round_ahead";

/// Error body of every non-2xx answer from the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    /// Machine-readable reason, for the errors an agent acts on (e.g.
    /// [`packed::ERROR_UNKNOWN_BLOCK_SPACE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A campaign as an agent sees it (`GET /v1/assignments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignAssignment {
    pub name: String,
    /// ISO 3166 alpha-2 code, if the campaign watches a country.
    pub country: Option<String>,
    /// Seconds between rounds.
    pub interval_secs: u64,
    /// Prefixes to watch.
    pub prefixes: Vec<IpNet>,
    /// Control targets: outside the watched space, expected always up.
    #[serde(default)]
    pub control: Vec<IpNet>,
    /// Bumped by the collector whenever the campaign changes.
    pub generation: u64,
    /// Known-responsive addresses per block (from hitlists and from every
    /// agent's discovery), so an agent judges blocks from its first round
    /// instead of sweeping first. The agent probes only those inside
    /// `prefixes` and its own local policy. A list of [`CensusBlock`]s in
    /// JSON, held compactly ([`CensusSet`]). Empty when the agent asked for
    /// the compact census ([`census::CENSUS_QUERY`]): it then comes from
    /// `GET /v1/census/{name}` and is named by `census_tag`.
    #[serde(
        default,
        with = "census::as_list",
        skip_serializing_if = "CensusSet::is_empty"
    )]
    pub census: CensusSet,
    /// `ETag` of the campaign's census at `GET /v1/census/{name}`: it
    /// changes when the census does. Sent only to agents that asked for
    /// the compact census (older agents refuse unknown fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignments {
    pub agent: String,
    pub campaigns: Vec<CampaignAssignment>,
    /// The packed-round version this collector accepts
    /// ([`packed::PACKED_VERSION`]); absent from collectors that accept
    /// plain observations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<u8>,
    /// True if this collector accepts [`ReportBatch::probe_errors`]; absent
    /// (false) from older ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe_errors: bool,
    /// This agent's phase slot in each campaign, by name
    /// ([`phase::PhaseSlot`]); absent from older collectors (the agent then
    /// takes [`phase::name_phase`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub phases: std::collections::BTreeMap<String, phase::PhaseSlot>,
}

/// Names of agents and campaigns: short, printable, safe in paths and logs.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The round that contains `ts_ms` for a campaign with `interval_secs`.
pub fn round_of(ts_ms: i64, interval_secs: u64) -> u64 {
    let interval_ms = interval_secs.max(1) as i64 * 1000;
    (ts_ms.max(0) / interval_ms) as u64
}

/// Start of `round` in Unix milliseconds.
pub fn round_start_ms(round: u64, interval_secs: u64) -> i64 {
    (round as i64).saturating_mul(interval_secs.max(1) as i64 * 1000)
}

impl ReportBatch {
    /// A batch with nothing in it but its id and time. Callers set what they
    /// send with struct update syntax
    /// (`ReportBatch { observations, ..ReportBatch::new(id, ms) }`) or by
    /// assignment, so a new optional field needs adding only here.
    pub fn new(batch_id: impl Into<String>, created_ms: i64) -> ReportBatch {
        ReportBatch {
            batch_id: batch_id.into(),
            created_ms,
            observations: Vec::new(),
            traces: Vec::new(),
            coverage: Vec::new(),
            census: Vec::new(),
            packed: Vec::new(),
            rounds: Vec::new(),
            probe_errors: Vec::new(),
        }
    }
}

/// Prefix length of an IPv4 block.
pub const BLOCK_LEN_V4: u8 = 24;

/// Prefix length of an IPv6 block. A /48 is the usual end-site assignment
/// (RFC 6177) and the longest prefix commonly accepted in BGP, so it is the
/// unit in which IPv6 space appears and disappears; hitlist addresses are
/// sparse (one or two per /64), and a /48 gathers enough of them to judge.
pub const BLOCK_LEN_V6: u8 = 48;

/// The /24 (IPv4) or /48 (IPv6) block that holds `addr`.
pub fn block_of(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(a) => IpNet::V4(
            ipnet::Ipv4Net::new(a, BLOCK_LEN_V4)
                .expect("24 is a valid length")
                .trunc(),
        ),
        IpAddr::V6(a) => IpNet::V6(
            ipnet::Ipv6Net::new(a, BLOCK_LEN_V6)
                .expect("48 is a valid length")
                .trunc(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn obs() -> BlockObservation {
        BlockObservation {
            campaign: "kp".into(),
            round: round_of(NOW, 60),
            block: "198.18.3.0/24".parse().unwrap(),
            state: BlockState::Up,
            probes: 2,
            replies: 1,
            belief: 0.99,
            availability: 0.8,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: NOW,
        }
    }

    fn batch() -> ReportBatch {
        ReportBatch {
            observations: vec![obs()],
            ..ReportBatch::new("00ff00ff00ff", NOW)
        }
    }

    fn errors() -> ProbeErrors {
        ProbeErrors {
            campaign: "kp".into(),
            round: round_of(NOW, 60),
            from: "203.0.113.244".parse().unwrap(),
            blocks: vec!["198.18.3.0/24".parse().unwrap()],
            errors: 3,
            ts_ms: NOW,
        }
    }

    #[test]
    fn probe_errors_are_optional_on_the_wire_and_checked() {
        // A batch without them serializes as before (an old collector
        // accepts it); one with them round-trips; an old agent's batch
        // (no field) reads as none.
        let b = batch();
        assert!(!serde_json::to_string(&b).unwrap().contains("probe_errors"));
        let old = r#"{"batch_id":"00ff00ff","created_ms":1,"observations":[],"traces":[]}"#;
        assert!(serde_json::from_str::<ReportBatch>(old)
            .unwrap()
            .probe_errors
            .is_empty());
        let mut b = batch();
        b.probe_errors.push(errors());
        b.validate(NOW).unwrap();
        let back: ReportBatch = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        let mut bad = b.clone();
        bad.probe_errors[0].blocks = vec!["198.18.0.0/16".parse().unwrap()];
        assert!(matches!(
            bad.validate(NOW),
            Err(SchemaError::ProbeErrors { .. })
        ));
        let mut bad = b.clone();
        bad.probe_errors[0].errors = 0;
        assert!(bad.validate(NOW).is_err());
        // Collectors advertise them; an old collector's assignments read as
        // not accepting them, and an old agent ignores the field.
        let a: Assignments = serde_json::from_str(r#"{"agent":"a","campaigns":[]}"#).unwrap();
        assert!(!a.probe_errors);
        let json = serde_json::to_string(&Assignments {
            probe_errors: true,
            ..a
        })
        .unwrap();
        assert!(json.contains("\"probe_errors\":true"));
    }

    #[test]
    fn valid_batch_passes_and_round_trips() {
        let b = batch();
        b.validate(NOW).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"state\":\"up\""));
        let back: ReportBatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = batch();
        b.batch_id = "not hex!".into();
        assert!(matches!(b.validate(NOW), Err(SchemaError::BatchId(_))));

        let mut b = batch();
        b.observations[0].replies = 3;
        assert!(matches!(
            b.validate(NOW),
            Err(SchemaError::Observation { .. })
        ));

        let mut b = batch();
        b.observations[0].block = "198.18.0.0/16".parse().unwrap();
        assert!(b.validate(NOW).is_err());

        let mut b = batch();
        b.observations[0].ts_ms = NOW + MAX_CLOCK_SKEW_MS + 1;
        assert!(matches!(
            b.validate(NOW),
            Err(SchemaError::Timestamp { .. })
        ));

        let mut b = batch();
        b.observations[0].campaign = "../etc".into();
        assert!(matches!(b.validate(NOW), Err(SchemaError::CampaignName(_))));
    }

    #[test]
    fn unknown_fields_and_states_are_refused() {
        let bad =
            r#"{"batch_id":"00ff00ff","created_ms":1,"observations":[],"traces":[],"extra":1}"#;
        assert!(serde_json::from_str::<ReportBatch>(bad).is_err());
        assert_eq!(BlockState::parse("sideways"), None);
    }

    #[test]
    fn rounds_align_across_agents() {
        assert_eq!(round_of(119_999, 60), 1);
        assert_eq!(round_of(120_000, 60), 2);
        assert_eq!(round_start_ms(2, 60), 120_000);
        assert_eq!(
            block_of("198.18.3.77".parse().unwrap()).to_string(),
            "198.18.3.0/24"
        );
        assert_eq!(
            block_of("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::/48"
        );
    }
}
