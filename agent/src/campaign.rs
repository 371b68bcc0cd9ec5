//! The campaign planner: every decision the daemon takes about one campaign
//! in one round, as pure functions over the collector's assignment, the state
//! persisted between rounds and the agent's local policy (sans-IO, in the
//! style of ntpd-rs). [`plan`] accepts or refuses the round and says what to
//! sweep; [`merge_found`] folds a sweep into the trackers; [`trace_targets`]
//! rotates traceroutes over the prefixes; [`record`] turns the round's
//! outcomes into report batches. The daemon does the I/O in between
//! (sweeping, probing, tracing, files, the clock).
//!
//! Whatever the collector assigns, [`Policy`] applies the agent's own limits
//! first: `max_targets`, the local exclusion list, and the reserved ranges
//! unless the operator allowed them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use darkwatch_schema::{
    BlockObservation, CampaignAssignment, Coverage, ReportBatch, Skipped, TraceObservation,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::belief::{BlockTracker, RoundOutcome};
use crate::targets::{AddrFilter, TargetSet, TargetSpec};
use crate::trace::TraceResult;

/// Longest round interval the agent accepts from a collector (a week).
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;

/// Why a campaign pulled from the collector is refused outright, if it is:
/// a bad name (it becomes a file name) or an absurd interval.
pub fn campaign_acceptable(c: &CampaignAssignment) -> Result<(), &'static str> {
    if !darkwatch_schema::valid_name(&c.name) {
        return Err("invalid campaign name");
    }
    if c.interval_secs == 0 || c.interval_secs > MAX_INTERVAL_SECS {
        return Err("round interval outside 1 s .. 7 days");
    }
    Ok(())
}

/// The agent's own limits and habits, applied to whatever the collector assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub exclude: Vec<IpNet>,
    pub allow: Vec<IpNet>,
    pub max_targets: u64,
    /// Rounds between discovery sweeps (0: sweep only when the campaign changes).
    pub rediscover_rounds: u64,
    pub traces_per_round: usize,
}

impl Policy {
    fn spec(&self, include: Vec<IpNet>) -> TargetSpec {
        TargetSpec {
            include,
            exclude: self.exclude.clone(),
            allow: self.allow.clone(),
            exclude_reserved: true,
            max_targets: self.max_targets,
        }
    }

    /// The part of `prefixes` this agent is willing to sweep, and what it
    /// skipped and why. `None` for no prefixes.
    pub fn targets(&self, prefixes: &[IpNet]) -> Option<(TargetSet, Vec<Skipped>)> {
        TargetSet::build(&self.spec(prefixes.to_vec())).ok()
    }

    /// Which addresses of `prefixes` this agent may probe, one by one.
    pub fn filter(&self, prefixes: &[IpNet]) -> AddrFilter {
        self.spec(prefixes.to_vec()).filter()
    }
}

/// Logs one line per reason something was skipped.
fn log_skips(campaign: &str, control: bool, skipped: &[Skipped]) {
    for s in skipped {
        tracing::warn!(
            campaign,
            control,
            reason = s.reason.as_str(),
            addresses = s.addresses,
            examples = ?s.examples,
            "skipping part of the campaign's space"
        );
    }
}

/// Rounds between two reports of an unchanged coverage.
pub const COVERAGE_EVERY_ROUNDS: u64 = 10;

/// What the agent keeps between rounds for one campaign.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignState {
    pub generation: u64,
    pub prefixes: Vec<IpNet>,
    pub control: Vec<IpNet>,
    pub trackers: BTreeMap<IpNet, BlockTracker>,
    pub control_trackers: BTreeMap<IpNet, BlockTracker>,
    /// Round of the last discovery sweep.
    pub discovered_round: Option<u64>,
    /// Last round whose batch was spooled.
    pub last_round: Option<u64>,
    /// Rotates traceroutes over the campaign's prefixes.
    pub trace_cursor: usize,
    /// What was skipped of the prefixes (logged again only when it changes).
    pub skipped: Vec<Skipped>,
    /// The coverage last reported, and in which round.
    pub coverage_sent: Option<(u64, Coverage)>,
}

/// Why no round is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRound {
    /// The campaign itself is refused (see [`campaign_acceptable`]).
    Invalid(&'static str),
    /// This round (or a later one) was already done.
    Done,
}

/// What the daemon does for one campaign in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundPlan {
    pub round: u64,
    /// Seed of the round's probe order (the same on every run of the round).
    pub seed: u64,
    /// Discovery sweep to run before probing, if one is due.
    pub sweep: Option<Sweep>,
    /// What the agent watches of the campaign (`blocks_tracked` is filled
    /// in by [`record`], after the round).
    pub coverage: Coverage,
}

/// The space a discovery sweep covers (`None`: nothing the policy allows).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sweep {
    pub targets: Option<TargetSet>,
    pub control: Option<TargetSet>,
}

/// Accepts or refuses round `round` of `c` and plans it. Follows a change of
/// the campaign in `st` (keeping what was learnt about blocks still assigned)
/// and marks a due sweep as done for this round.
pub fn plan(
    c: &CampaignAssignment,
    st: &mut CampaignState,
    round: u64,
    policy: &Policy,
) -> Result<RoundPlan, NoRound> {
    campaign_acceptable(c).map_err(NoRound::Invalid)?;
    if st.last_round.is_some_and(|r| r >= round) {
        return Err(NoRound::Done);
    }
    let changed =
        st.generation != c.generation || st.prefixes != c.prefixes || st.control != c.control;
    if changed {
        st.trackers
            .retain(|b, _| c.prefixes.iter().any(|p| p.contains(b) || b.contains(p)));
        st.control_trackers
            .retain(|b, _| c.control.iter().any(|p| p.contains(b) || b.contains(p)));
        st.generation = c.generation;
        st.prefixes = c.prefixes.clone();
        st.control = c.control.clone();
    }
    let (set, skipped) = policy.targets(&c.prefixes).unwrap_or_default();
    if changed || skipped != st.skipped {
        log_skips(&c.name, false, &skipped);
    }
    let coverage = Coverage {
        campaign: c.name.clone(),
        generation: c.generation,
        blocks_tracked: 0,
        addresses_targeted: u64::try_from(set.address_count()).unwrap_or(u64::MAX),
        skipped: skipped.clone(),
    };
    st.skipped = skipped;
    let rediscover = policy.rediscover_rounds > 0
        && st
            .discovered_round
            .is_some_and(|d| round >= d + policy.rediscover_rounds);
    let sweep = (changed || rediscover || st.discovered_round.is_none()).then(|| {
        st.discovered_round = Some(round);
        let control = policy.targets(&c.control).and_then(|(set, skipped)| {
            log_skips(&c.name, true, &skipped);
            (!set.is_empty()).then_some(set)
        });
        Sweep {
            targets: (!set.is_empty()).then_some(set),
            control,
        }
    });
    Ok(RoundPlan {
        round,
        seed: round ^ 0x5eed,
        sweep,
        coverage,
    })
}

/// Folds a discovery sweep (responsive addresses per block) into `trackers`:
/// known blocks merge it, blocks that answered for the first time get a tracker.
pub fn merge_found(
    trackers: &mut BTreeMap<IpNet, BlockTracker>,
    found: &BTreeMap<IpNet, Vec<IpAddr>>,
) {
    for (block, addrs) in found {
        match trackers.get_mut(block) {
            Some(t) => t.merge_discovery(addrs),
            None if !addrs.is_empty() => {
                trackers.insert(*block, BlockTracker::from_discovery(*block, addrs.clone()));
            }
            None => {}
        }
    }
}

/// Picks this round's traceroute targets: a few prefixes (rotating), one
/// known-responsive address of each, or its first address if none is known;
/// only addresses the policy allows.
pub fn trace_targets(
    c: &CampaignAssignment,
    st: &mut CampaignState,
    round: u64,
    policy: &Policy,
) -> Vec<IpAddr> {
    let n = policy.traces_per_round.min(c.prefixes.len());
    let filter = policy.filter(&c.prefixes);
    let mut targets = Vec::new();
    for i in 0..n {
        let p = c.prefixes[(st.trace_cursor + i) % c.prefixes.len()];
        let known: Vec<IpAddr> = st
            .trackers
            .values()
            .filter(|t| p.contains(&t.block) || t.block.contains(&p))
            .flat_map(|t| t.responsive.iter())
            .filter(|a| p.contains(a))
            .collect();
        let target = if known.is_empty() {
            p.hosts().next().unwrap_or(p.network())
        } else {
            known[(round as usize) % known.len()]
        };
        if filter.check(target).is_ok() {
            targets.push(target);
        }
    }
    if n > 0 {
        st.trace_cursor = (st.trace_cursor + n) % c.prefixes.len();
    }
    targets
}

/// What the daemon measured in one round of one campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundResults {
    pub outcomes: Vec<RoundOutcome>,
    pub controls: Vec<RoundOutcome>,
    pub traces: Vec<TraceResult>,
}

/// Builds the round's report batches (stamped `ts`, ids from `new_id`) and
/// marks the round done in `st`. A block that never answered cannot be
/// judged: nothing is reported for it.
pub fn record(
    c: &CampaignAssignment,
    st: &mut CampaignState,
    plan: &RoundPlan,
    results: RoundResults,
    ts: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<ReportBatch> {
    let round = plan.round;
    let obs = |o: &RoundOutcome, control: bool| BlockObservation {
        campaign: c.name.clone(),
        round,
        block: o.block,
        state: o.state,
        probes: o.probes,
        replies: o.replies,
        belief: o.belief.clamp(0.0, 1.0),
        availability: o.availability.clamp(0.0, 1.0),
        control,
        ts_ms: ts,
    };
    let observations = results
        .outcomes
        .iter()
        .filter(|o| o.probes > 0)
        .map(|o| obs(o, false))
        .chain(
            results
                .controls
                .iter()
                .filter(|o| o.probes > 0)
                .map(|o| obs(o, true)),
        )
        .collect();
    let traces = results
        .traces
        .into_iter()
        .map(|r| TraceObservation {
            campaign: c.name.clone(),
            round,
            target: r.target,
            hops: r.hops,
            reached: r.reached,
            last_responding: r.last_responding,
            ts_ms: ts,
        })
        .collect();
    let coverage = Coverage {
        blocks_tracked: st.trackers.len() as u64,
        ..plan.coverage.clone()
    };
    let due = match &st.coverage_sent {
        Some((r, sent)) => *sent != coverage || round >= r + COVERAGE_EVERY_ROUNDS,
        None => true,
    };
    let coverage = if due {
        st.coverage_sent = Some((round, coverage.clone()));
        vec![coverage]
    } else {
        Vec::new()
    };
    st.last_round = Some(round);
    vec![ReportBatch {
        batch_id: new_id(),
        created_ms: ts,
        observations,
        traces,
        coverage,
        census: Vec::new(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::{BlockState, SkipReason};

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn campaign(name: &str, interval_secs: u64) -> CampaignAssignment {
        CampaignAssignment {
            name: name.into(),
            country: None,
            interval_secs,
            prefixes: nets(&["198.18.0.0/24"]),
            control: vec![],
            generation: 1,
            census: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy {
            exclude: nets(&["198.18.7.0/24"]),
            allow: nets(&["198.18.0.0/15"]),
            max_targets: 1024,
            rediscover_rounds: 10,
            traces_per_round: 1,
        }
    }

    #[test]
    fn absurd_campaigns_are_refused() {
        assert_eq!(campaign_acceptable(&campaign("kp", 60)), Ok(()));
        assert_eq!(
            campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS)),
            Ok(())
        );
        assert!(campaign_acceptable(&campaign("kp", 0)).is_err());
        assert!(campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS + 1)).is_err());
        assert!(campaign_acceptable(&campaign("kp", u64::MAX)).is_err());
        assert!(campaign_acceptable(&campaign("../etc", 60)).is_err());
        let mut st = CampaignState::default();
        assert!(matches!(
            plan(&campaign("a/b", 60), &mut st, 1, &policy()),
            Err(NoRound::Invalid(_))
        ));
    }

    fn reasons(skipped: &[Skipped]) -> Vec<(SkipReason, u64)> {
        skipped.iter().map(|s| (s.reason, s.addresses)).collect()
    }

    #[test]
    fn local_policy_overrides_the_collector() {
        let policy = policy();
        // The excluded /24 is cut out of what the collector assigned.
        let (set, skipped) = policy.targets(&nets(&["198.18.6.0/23"])).unwrap();
        assert_eq!(set.address_count(), 256);
        assert!(!set.contains("198.18.7.1".parse().unwrap()));
        assert_eq!(reasons(&skipped), [(SkipReason::Excluded, 256)]);
        assert_eq!(skipped[0].examples, nets(&["198.18.7.0/24"]));
        // Reserved ranges not carved back by `allow` are never targets.
        for reserved in ["127.0.0.0/24", "10.1.2.0/24", "224.0.0.0/24", "0.0.0.0/24"] {
            let (set, skipped) = policy.targets(&nets(&[reserved])).unwrap();
            assert!(set.is_empty(), "{reserved} must be refused");
            assert_eq!(reasons(&skipped), [(SkipReason::Reserved, 256)]);
        }
        // More than max_targets: the first max_targets addresses are kept.
        let (set, skipped) = policy.targets(&nets(&["198.19.0.0/16"])).unwrap();
        assert_eq!(set.prefixes(), nets(&["198.19.0.0/22"]));
        assert_eq!(
            reasons(&skipped),
            [(SkipReason::OverMaxTargets, 65536 - 1024)]
        );
        let f = policy.filter(&nets(&["198.18.6.0/23", "2400:1::/32"]));
        assert_eq!(
            f.check("198.18.7.9".parse().unwrap()),
            Err(SkipReason::Excluded)
        );
        assert_eq!(
            f.check("198.18.8.9".parse().unwrap()),
            Err(SkipReason::OutsideCampaign)
        );
        assert_eq!(f.check("198.18.6.9".parse().unwrap()), Ok(()));
        assert_eq!(f.check("2400:1:2::9".parse().unwrap()), Ok(()));
    }

    #[test]
    fn an_ipv6_allocation_does_not_cost_the_ipv4_space() {
        let mut c = campaign("kp", 60);
        c.prefixes = nets(&["198.18.5.0/24", "2400:1::/32"]);
        let mut st = CampaignState::default();
        let p = plan(&c, &mut st, 1, &policy()).unwrap();
        let sweep = p.sweep.unwrap().targets.unwrap();
        assert_eq!(sweep.prefixes(), nets(&["198.18.5.0/24"]));
        assert_eq!(p.coverage.addresses_targeted, 256);
        assert_eq!(p.coverage.skipped[0].reason, SkipReason::Ipv6TooLarge);
        assert_eq!(p.coverage.skipped[0].examples, nets(&["2400:1::/32"]));
    }

    #[test]
    fn coverage_goes_out_on_change_and_every_ten_rounds() {
        let p = policy();
        let mut c = campaign("kp", 60);
        let mut st = CampaignState::default();
        let mut sent = Vec::new();
        for round in 1..=25 {
            if round == 15 {
                c.generation = 2;
            }
            let plan = plan(&c, &mut st, round, &p).unwrap();
            let b = record(&c, &mut st, &plan, RoundResults::default(), 1, &mut || {
                "00ff00ff".into()
            });
            if let Some(cov) = b[0].coverage.first() {
                assert_eq!(cov.generation, c.generation);
                assert_eq!(cov.addresses_targeted, 256);
                sent.push(round);
            }
        }
        assert_eq!(sent, [1, 11, 15, 25]);
    }

    #[test]
    fn sweeps_first_then_only_every_rediscover_rounds_or_on_change() {
        let p = policy();
        let mut c = campaign("kp", 60);
        let mut st = CampaignState::default();
        let first = plan(&c, &mut st, 100, &p).unwrap();
        assert!(first.sweep.as_ref().is_some_and(|s| s.targets.is_some()));
        st.last_round = Some(100);
        assert_eq!(plan(&c, &mut st, 100, &p), Err(NoRound::Done));
        assert!(plan(&c, &mut st, 101, &p).unwrap().sweep.is_none());
        assert!(plan(&c, &mut st, 110, &p).unwrap().sweep.is_some());
        assert!(plan(&c, &mut st, 111, &p).unwrap().sweep.is_none());
        c.generation = 2;
        assert!(plan(&c, &mut st, 112, &p).unwrap().sweep.is_some());
        assert_eq!(st.generation, 2);
    }

    #[test]
    fn records_judged_blocks_and_traces_and_marks_the_round() {
        let c = campaign("kp", 60);
        let mut st = CampaignState::default();
        let plan = plan(&c, &mut st, 7, &policy()).unwrap();
        let outcome = |b: &str, probes| RoundOutcome {
            block: b.parse().unwrap(),
            state: BlockState::Up,
            probes,
            replies: probes.min(1),
            belief: 1.2,
            availability: 0.5,
        };
        let target: IpAddr = "198.18.0.1".parse().unwrap();
        let results = RoundResults {
            outcomes: vec![outcome("198.18.0.0/24", 1), outcome("198.18.1.0/24", 0)],
            controls: vec![outcome("192.0.2.0/24", 2)],
            traces: vec![TraceResult {
                target,
                hops: vec![],
                reached: false,
                last_responding: None,
            }],
        };
        let b = record(&c, &mut st, &plan, results, 42, &mut || "00ff00ff".into());
        assert_eq!(b.len(), 1);
        let o = &b[0].observations;
        assert_eq!(o.len(), 2, "a block without probes is not reported");
        assert_eq!((o[0].round, o[0].ts_ms, o[0].belief), (7, 42, 1.0));
        assert!(!o[0].control && o[1].control);
        assert_eq!(b[0].traces[0].target, target);
        assert_eq!(st.last_round, Some(7));
    }
}
