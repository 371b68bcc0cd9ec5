//! The campaign planner: every decision the daemon takes about one campaign
//! in one round, as pure functions over the collector's assignment, the state
//! persisted between rounds and the agent's local policy (sans-IO, in the
//! style of ntpd-rs). [`plan`] accepts or refuses the round and says what to
//! sweep; [`merge_found`] folds a sweep into the trackers; [`trace_targets`]
//! rotates traceroutes over the prefixes; [`record`] (in `batches`) turns
//! the round's outcomes into report batches, with the campaign's coverage
//! and the census the sweep found. What happens between `plan` and
//! `record` (slices, discovery findings, outcomes) is sequenced by
//! `driver::RoundDriver`, also without I/O; the daemon carries out what it
//! asks for (sweeping, probing, tracing, files, the clock).
//!
//! The census that comes with an assignment (known-responsive addresses per
//! block, from hitlists and other agents) seeds the trackers, so blocks are
//! judged from the first round: the first sweep skips the blocks it covers.
//! Later rediscoveries sweep only where there is something to learn
//! (`rediscovery`: stale or changed blocks fully, a sample of the other
//! blocks' unknown addresses). IPv6 prefixes too wide to sweep are watched
//! through census addresses only.
//!
//! Whatever the collector assigns, [`Policy`] applies the agent's own limits
//! first: `max_targets`, the local exclusion list, and the reserved ranges
//! unless the operator allowed them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use darkwatch_schema::{CampaignAssignment, CensusSet, Coverage, SkipReason, Skipped};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::belief::BlockTracker;
use crate::rediscovery::Rediscovery;
use crate::targets::{AddrFilter, TargetSet, TargetSpec, MAX_SKIP_EXAMPLES};
use crate::tracked::Trackers;

mod batches;

#[cfg(test)]
use batches::{items, pack};
pub use batches::{packed_blocks, probe_errors, record, RoundResults, Wire, COVERAGE_EVERY_ROUNDS};

/// Longest round interval the agent accepts from a collector (a week).
pub const MAX_INTERVAL_SECS: u64 = 7 * 24 * 3600;

/// Why a campaign pulled from the collector is refused outright, if it is:
/// a bad name (it becomes a file name) or an absurd interval. The daemon
/// asks once per assignment and tick (`daemon::Agent::due`), before a
/// round is scheduled: [`plan`] and everything after it only ever see
/// accepted campaigns.
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
    /// Rounds between discovery sweeps (0: sweep only when the campaign
    /// changes). After the first, a sweep (a rediscovery) covers only what
    /// `rediscovery` selects.
    pub rediscover_rounds: u64,
    /// What a rediscovery sweeps.
    pub rediscovery: Rediscovery,
    pub traces_per_round: usize,
    /// `probe.min_campaign_probes` (see [`min_probes_per_block`]).
    pub min_campaign_probes: u32,
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

    /// Changes whenever the limits on what may be probed change (the hash
    /// need not be stable across builds: a mismatch only costs a re-check).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.exclude, &self.allow, self.max_targets).hash(&mut h);
        h.finish()
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

/// What the agent keeps between rounds for one campaign.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CampaignState {
    pub generation: u64,
    pub prefixes: Vec<IpNet>,
    pub control: Vec<IpNet>,
    /// By block, addressed by index during a round (see `tracked`).
    pub trackers: Trackers,
    pub control_trackers: Trackers,
    /// Round in which the last discovery sweep started.
    pub discovered_round: Option<u64>,
    /// A sweep was started and has not finished yet (it runs beside the
    /// rounds; after a restart it starts over, keeping what it had found).
    pub discovery_pending: bool,
    /// A sweep is running in this process (not persisted).
    #[serde(skip)]
    pub discovering: bool,
    /// The responsive sets changed since they were last saved (not persisted:
    /// `state` rewrites its file of sets only then).
    #[serde(skip)]
    pub sets_changed: bool,
    /// Id of the sets file these trackers were last saved to (0: none).
    #[serde(skip)]
    pub sets_id: u64,
    /// Last round whose batch was spooled.
    pub last_round: Option<u64>,
    /// Rotates traceroutes over the campaign's prefixes.
    pub trace_cursor: usize,
    /// What was skipped of the prefixes (logged again only when it changes).
    pub skipped: Vec<Skipped>,
    /// The coverage last reported, and in which round.
    pub coverage_sent: Option<(u64, Coverage)>,
    /// [`Policy::fingerprint`] of the policy the trackers were last pruned with.
    pub policy: Option<u64>,
    /// Blocks whose state changed since the last rediscovery was planned,
    /// sorted (not persisted: a restart sweeps anew anyway).
    #[serde(skip)]
    pub state_changed: Vec<IpNet>,
    /// Blocks the running rediscovery only samples, sorted (not persisted):
    /// their findings add to their census rather than replace it (see
    /// `driver::RoundDriver::discovered`).
    #[serde(skip)]
    pub sampled_blocks: Vec<IpNet>,
    /// The census last accepted and seeded, by (tag, generation, policy
    /// fingerprint), and what was accepted (not persisted: after a restart
    /// it is accepted again once).
    #[serde(skip)]
    pub census_seeded: Option<((String, u64, u64), Accepted)>,
}

/// Why no round is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRound {
    /// This round (or a later one) was already done.
    Done,
}

/// What the daemon does for one campaign in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundPlan {
    pub round: u64,
    /// Seed of the round's probe order (the same on every run of the round).
    pub seed: u64,
    /// Discovery sweep to start (beside the rounds), if one is due.
    pub sweep: Option<Sweep>,
    /// What the agent watches of the campaign (`blocks_tracked` is filled
    /// in by [`record`], after the round).
    pub coverage: Coverage,
    /// Probes each block that answers gets at least this round
    /// ([`min_probes_per_block`]).
    pub min_probes: u32,
}

/// A block's share of a campaign's minimum of probes per round: the
/// minimum spread over the tracked blocks, rounded up, at least one (a block
/// stops at its first reply). A country of one /24 watched with the default
/// 16 gets 16 probes per VP and round, four /24s 4 each, 16 or more /24s
/// one: the instability test pools them (see `docs/verdicts.md`).
pub fn min_probes_per_block(min_campaign_probes: u32, blocks: usize) -> u32 {
    let blocks = u32::try_from(blocks.max(1)).unwrap_or(u32::MAX);
    min_campaign_probes.div_ceil(blocks).max(1)
}

/// The space a discovery sweep covers (`None`: nothing to sweep, because the
/// policy allows nothing or the census covers every block).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sweep {
    pub targets: Option<TargetSet>,
    pub control: Option<TargetSet>,
}

/// Accepts or refuses round `round` of `c` and plans it. Follows a change of
/// the campaign in `st` (keeping what was learnt about blocks still assigned)
/// and marks a due sweep as done for this round. `c` passed
/// [`campaign_acceptable`] (the daemon checks once, before scheduling).
pub fn plan(
    c: &CampaignAssignment,
    st: &mut CampaignState,
    round: u64,
    policy: &Policy,
) -> Result<RoundPlan, NoRound> {
    if st.last_round.is_some_and(|r| r >= round) {
        return Err(NoRound::Done);
    }
    let changed =
        st.generation != c.generation || st.prefixes != c.prefixes || st.control != c.control;
    if changed {
        st.sets_changed = true;
        st.trackers
            .retain(|b, _| c.prefixes.iter().any(|p| p.contains(b) || b.contains(p)));
        st.control_trackers
            .retain(|b, _| c.control.iter().any(|p| p.contains(b) || b.contains(p)));
        st.generation = c.generation;
        st.prefixes = c.prefixes.clone();
        st.control = c.control.clone();
    }
    // What was learnt under another policy is probed only if this one allows it.
    let filter = policy.filter(&c.prefixes);
    if changed || st.policy != Some(policy.fingerprint()) {
        st.sets_changed = true;
        prune(&mut st.trackers, &filter);
        prune(&mut st.control_trackers, &policy.filter(&c.control));
        st.policy = Some(policy.fingerprint());
    }
    let (set, mut skipped) = policy.targets(&c.prefixes).unwrap_or_default();
    let targeted = u64::try_from(set.address_count()).unwrap_or(u64::MAX);
    // An unchanged census (same tag, campaign and policy) is accepted and
    // seeded once: the trackers hold it since, and a round need not walk
    // its millions of addresses again.
    let key = c
        .census_tag
        .as_ref()
        .map(|t| (t.clone(), c.generation, policy.fingerprint()));
    let census = match &st.census_seeded {
        Some((k, a)) if !changed && key.as_ref() == Some(k) => Accepted {
            added: false,
            ..a.clone()
        },
        _ => {
            let budget = policy.max_targets.saturating_sub(targeted);
            let a = accept_census(&c.census, &filter, &set, budget, &mut st.trackers);
            st.census_seeded = key.map(|k| (k, a.clone()));
            a
        }
    };
    for m in &census.skipped {
        for (i, e) in m.examples.iter().enumerate() {
            add_skip(
                &mut skipped,
                m.reason,
                if i == 0 { m.addresses } else { 0 },
                *e,
            );
        }
    }
    if changed || skipped != st.skipped {
        log_skips(&c.name, false, &skipped);
    }
    let coverage = Coverage {
        campaign: c.name.clone(),
        generation: c.generation,
        blocks_tracked: 0,
        addresses_targeted: targeted
            .saturating_add(census.addrs)
            .saturating_sub(census.in_set),
        skipped: skipped.clone(),
    };
    st.skipped = skipped;
    st.sets_changed |= census.added;
    // Blocks the census covers are judged from it; the first sweep skips
    // them, later rediscoveries refresh them.
    let first = changed || st.discovered_round.is_none();
    let set = if first && !census.blocks.is_empty() {
        set.without(&census.blocks)
    } else {
        set
    };
    let rediscover = policy.rediscover_rounds > 0
        && st
            .discovered_round
            .is_some_and(|d| round >= d + policy.rediscover_rounds);
    // A sweep in progress is not started again unless the campaign changed.
    let due = rediscover || st.discovered_round.is_none() || st.discovery_pending;
    // The first sweep (again after a change, or after a restart that
    // interrupted one) covers the whole set; a rediscovery only what
    // `Rediscovery` selects.
    let whole = changed || st.discovered_round.is_none() || st.discovery_pending;
    let sweep = (changed || (due && !st.discovering)).then(|| {
        let set = if whole {
            st.sampled_blocks.clear();
            set
        } else {
            let n = round / policy.rediscover_rounds.max(1);
            let sel = policy
                .rediscovery
                .select(&set, &st.trackers, &st.state_changed, n);
            st.sampled_blocks = sel.sampled_blocks;
            sel.targets
        };
        st.state_changed.clear();
        st.discovered_round = Some(round);
        st.discovery_pending = true;
        let control = policy.targets(&c.control).and_then(|(set, skipped)| {
            log_skips(&c.name, true, &skipped);
            (!set.is_empty()).then_some(set)
        });
        Sweep {
            targets: (!set.is_empty()).then_some(set),
            control,
        }
    });
    // The round addresses trackers by index: blocks the census added take
    // their places now.
    st.trackers.settle();
    st.control_trackers.settle();
    Ok(RoundPlan {
        round,
        seed: round ^ 0x5eed,
        sweep,
        coverage,
        min_probes: min_probes_per_block(policy.min_campaign_probes, st.trackers.len()),
    })
}

/// Drops the addresses `filter` refuses from `trackers`, and trackers left empty.
fn prune(trackers: &mut Trackers, filter: &AddrFilter) {
    for t in trackers.values_mut() {
        if t.responsive.iter().any(|a| filter.check(a).is_err()) {
            let kept: Vec<IpAddr> = t
                .responsive
                .iter()
                .filter(|a| filter.check(*a).is_ok())
                .collect();
            t.responsive = kept.into();
        }
    }
    trackers.retain(|_, t| !t.responsive.is_empty());
}

/// Adds `reason` for `n` addresses (with `example`) to `skipped`.
fn add_skip(skipped: &mut Vec<Skipped>, reason: SkipReason, n: u64, example: IpNet) {
    let i = match skipped.iter().position(|s| s.reason == reason) {
        Some(i) => i,
        None => {
            skipped.push(Skipped {
                reason,
                addresses: 0,
                examples: Vec::new(),
            });
            skipped.len() - 1
        }
    };
    let s = &mut skipped[i];
    s.addresses = s.addresses.saturating_add(n);
    if s.examples.len() < MAX_SKIP_EXAMPLES && !s.examples.contains(&example) {
        s.examples.push(example);
    }
}

/// What [`accept_census`] accepted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Accepted {
    /// Blocks with an accepted address, in order.
    blocks: Vec<IpNet>,
    /// Addresses accepted.
    addrs: u64,
    /// Of those, the ones the sweep set already counts.
    in_set: u64,
    /// Trackers learnt something.
    added: bool,
    /// What was refused and why.
    skipped: Vec<Skipped>,
}

/// Accepts census addresses, block by block, and seeds `trackers` with
/// them: new blocks start as if a sweep had found them; known blocks learn
/// the addresses they lacked. Accepted are those inside the campaign's
/// prefixes and the local policy, and within `max_targets` (addresses
/// outside the sweep set take from `budget`, in address order). The rest
/// is in `Accepted::skipped`: a compromised collector cannot widen probing
/// through it. Works over the compact census without expanding it.
fn accept_census(
    census: &CensusSet,
    filter: &AddrFilter,
    set: &TargetSet,
    mut budget: u64,
    trackers: &mut Trackers,
) -> Accepted {
    let mut out = Accepted::default();
    let mut kept: Vec<IpAddr> = Vec::new();
    for b in census.blocks() {
        kept.clear();
        for a in b.addrs() {
            let in_set = set.contains(a);
            let verdict = filter.check(a).and_then(|()| {
                if in_set {
                    Ok(())
                } else if budget > 0 {
                    budget -= 1;
                    Ok(())
                } else {
                    Err(SkipReason::OverMaxTargets)
                }
            });
            match verdict {
                Ok(()) => {
                    out.in_set += u64::from(in_set);
                    kept.push(a);
                }
                Err(reason) => add_skip(&mut out.skipped, reason, 1, IpNet::from(a)),
            }
        }
        if kept.is_empty() {
            continue;
        }
        out.addrs += kept.len() as u64;
        out.blocks.push(b.block);
        match trackers.get_mut(&b.block) {
            Some(t) => {
                let before = t.responsive.len();
                let new: Vec<IpAddr> = kept
                    .iter()
                    .filter(|a| !t.responsive.contains(a))
                    .copied()
                    .collect();
                t.responsive.extend_from_slice(&new);
                out.added |= t.responsive.len() != before;
            }
            None => {
                out.added = true;
                trackers.insert(b.block, BlockTracker::from_discovery(b.block, kept.clone()));
            }
        }
    }
    out
}

/// Folds a discovery sweep (responsive addresses per block) into `trackers`:
/// known blocks merge it, blocks that answered for the first time get a tracker.
pub fn merge_found(trackers: &mut Trackers, found: &BTreeMap<IpNet, Vec<IpAddr>>) {
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
        // A block with known addresses in `p`, then one of its addresses,
        // rotating with the round; counted, not collected (a country-sized
        // prefix holds millions of blocks).
        let blocks = || {
            st.trackers
                .values()
                .filter(|t| p.contains(&t.block) || t.block.contains(&p))
                .filter(|t| t.responsive.iter().any(|a| p.contains(&a)))
        };
        let r = round as usize;
        // Without a known address, a prefix small enough to sweep is traced
        // to its first host; a wider IPv6 prefix is watched only through
        // known addresses, so it is not traced to a guess.
        let target = match blocks().count() {
            0 if p.prefix_len() >= sweepable_len(&p) => p.hosts().next().unwrap_or(p.network()),
            0 => continue,
            n => {
                let Some(t) = blocks().nth(r % n) else {
                    continue;
                };
                let inside: Vec<IpAddr> = t.responsive.iter().filter(|a| p.contains(a)).collect();
                inside[(r / n) % inside.len()]
            }
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

/// Shortest prefix length whose every address may be probed blindly: any
/// IPv4 prefix; IPv6 only down to what a sweep covers.
fn sweepable_len(p: &IpNet) -> u8 {
    match p {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => crate::targets::MIN_IPV6_SWEEP_PREFIX,
    }
}

#[cfg(test)]
mod tests;
