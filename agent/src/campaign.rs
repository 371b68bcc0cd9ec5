//! The campaign planner: every decision the daemon takes about one campaign
//! in one round, as pure functions over the collector's assignment, the state
//! persisted between rounds and the agent's local policy (sans-IO, in the
//! style of ntpd-rs). [`plan`] accepts or refuses the round and says what to
//! sweep; [`merge_found`] folds a sweep into the trackers; [`trace_targets`]
//! rotates traceroutes over the prefixes; [`record`] turns the round's
//! outcomes into report batches, with the campaign's coverage and the
//! census the sweep found. The daemon does the I/O in between (sweeping,
//! probing, tracing, files, the clock).
//!
//! The census that comes with an assignment (known-responsive addresses per
//! block, from hitlists and other agents) seeds the trackers, so blocks are
//! judged from the first round: the first sweep skips the blocks it covers,
//! later rediscoveries sweep everything to refresh. IPv6 prefixes too wide to
//! sweep are watched through census addresses only.
//!
//! Whatever the collector assigns, [`Policy`] applies the agent's own limits
//! first: `max_targets`, the local exclusion list, and the reserved ranges
//! unless the operator allowed them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use darkwatch_schema::packed::{pack_chunks, BlockSpace, PackedBlock};
use darkwatch_schema::{
    block_of, BlockObservation, CampaignAssignment, CampaignCensus, CensusBlock, Coverage,
    ProbeErrors, ReportBatch, RoundInfo, SkipReason, Skipped, TraceObservation,
    MAX_BLOCKS_PER_PROBE_ERRORS, MAX_ITEMS_PER_BATCH,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::belief::{BlockErrors, BlockTracker, RoundOutcome};
use crate::targets::{AddrFilter, TargetSet, TargetSpec, MAX_SKIP_EXAMPLES};
use crate::trace::TraceResult;
use crate::tracked::Trackers;

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

/// Rounds between two reports of an unchanged coverage.
pub const COVERAGE_EVERY_ROUNDS: u64 = 10;

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
    let census = accept_census(
        c,
        &filter,
        &set,
        policy.max_targets.saturating_sub(targeted),
        &mut skipped,
    );
    if changed || skipped != st.skipped {
        log_skips(&c.name, false, &skipped);
    }
    let coverage = Coverage {
        campaign: c.name.clone(),
        generation: c.generation,
        blocks_tracked: 0,
        addresses_targeted: targeted
            .saturating_add(census.values().map(|v| v.len() as u64).sum::<u64>())
            .saturating_sub(census_in(&census, &set)),
        skipped: skipped.clone(),
    };
    st.skipped = skipped;
    st.sets_changed |= seed(&mut st.trackers, &census);
    // Blocks the census covers are judged from it; the first sweep skips
    // them, later rediscoveries refresh them.
    let first = changed || st.discovered_round.is_none();
    let set = if first && !census.is_empty() {
        set.without(&census.keys().copied().collect::<Vec<_>>())
    } else {
        set
    };
    let rediscover = policy.rediscover_rounds > 0
        && st
            .discovered_round
            .is_some_and(|d| round >= d + policy.rediscover_rounds);
    // A sweep in progress is not started again unless the campaign changed.
    let due = rediscover || st.discovered_round.is_none() || st.discovery_pending;
    let sweep = (changed || (due && !st.discovering)).then(|| {
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

/// The census addresses this agent accepts, per block: inside the
/// campaign's prefixes and the local policy, and within `max_targets`
/// (addresses outside the sweep set take from `budget`). The rest is added
/// to `skipped`: a compromised collector cannot widen probing through it.
fn accept_census(
    c: &CampaignAssignment,
    filter: &AddrFilter,
    set: &TargetSet,
    mut budget: u64,
    skipped: &mut Vec<Skipped>,
) -> BTreeMap<IpNet, Vec<IpAddr>> {
    let mut out: BTreeMap<IpNet, Vec<IpAddr>> = BTreeMap::new();
    let mut addrs: Vec<IpAddr> = c
        .census
        .iter()
        .flat_map(|b| b.addrs.iter().copied())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    for a in addrs {
        let verdict = filter.check(a).and_then(|()| {
            if set.contains(a) {
                Ok(())
            } else if budget > 0 {
                budget -= 1;
                Ok(())
            } else {
                Err(SkipReason::OverMaxTargets)
            }
        });
        match verdict {
            Ok(()) => out.entry(block_of(a)).or_default().push(a),
            Err(reason) => add_skip(skipped, reason, 1, IpNet::from(a)),
        }
    }
    out
}

/// How many census addresses the sweep set already counts.
fn census_in(census: &BTreeMap<IpNet, Vec<IpAddr>>, set: &TargetSet) -> u64 {
    census
        .values()
        .flatten()
        .filter(|a| set.contains(**a))
        .count() as u64
}

/// Seeds `trackers` from accepted census addresses: new blocks start as if a
/// sweep had found them; known blocks learn the addresses they lacked.
/// Returns true if anything was added.
fn seed(trackers: &mut Trackers, census: &BTreeMap<IpNet, Vec<IpAddr>>) -> bool {
    let mut added = false;
    for (block, addrs) in census {
        match trackers.get_mut(block) {
            Some(t) => {
                let new: Vec<IpAddr> = addrs
                    .iter()
                    .filter(|a| !t.responsive.contains(a))
                    .copied()
                    .collect();
                added |= !new.is_empty();
                t.responsive.extend_from_slice(&new);
            }
            None => {
                added = true;
                trackers.insert(*block, BlockTracker::from_discovery(*block, addrs.clone()));
            }
        }
    }
    added
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

/// What the daemon measured in one round of one campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundResults {
    pub outcomes: Vec<RoundOutcome>,
    pub controls: Vec<RoundOutcome>,
    /// The routers' ICMP errors to the blocks' probes (not the controls').
    pub errors: Vec<BlockErrors>,
    pub traces: Vec<TraceResult>,
    /// Responsive addresses per block found by discovery during this round
    /// (reported for the collector's census).
    pub found: BTreeMap<IpNet, Vec<IpAddr>>,
    /// When the round started and ended, whether on time, its blocks and
    /// probes (for the report's `rounds`).
    pub info: Option<RoundInfo>,
    /// The collector accepts the routers' ICMP errors to the round's probes
    /// ([`darkwatch_schema::Assignments::probe_errors`]): they are reported.
    pub report_errors: bool,
}

/// How block observations travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// One JSON object per block (~160 bytes): what every collector
    /// accepts. A large round is split over batches of at most
    /// `MAX_ITEMS_PER_BATCH` items.
    Plain,
    /// Packed rounds (`darkwatch_schema::packed`), chunks of at most
    /// `max_blocks` blocks, one chunk per batch; for collectors whose
    /// assignments advertise it.
    Packed { max_blocks: usize },
}

impl Wire {
    /// Packed if the operator allows it and the collector accepts our version.
    pub fn choose(allowed: bool, collector: Option<u8>, max_blocks: usize) -> Wire {
        if allowed && collector == Some(darkwatch_schema::packed::PACKED_VERSION) {
            Wire::Packed { max_blocks }
        } else {
            Wire::Plain
        }
    }
}

/// Builds the round's report batches (stamped `ts`, ids from `new_id`) and
/// marks the round done in `st`. A block that never answered cannot be
/// judged: nothing is reported for it. Every batch stays within the wire's
/// limits, however many blocks the round judged.
pub fn record(
    c: &CampaignAssignment,
    st: &mut CampaignState,
    plan: &RoundPlan,
    results: RoundResults,
    ts: i64,
    wire: Wire,
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
    let probe_errors = if results.report_errors {
        probe_errors(&c.name, round, ts, &results.errors)
    } else {
        Vec::new()
    };
    let judged = results.outcomes.iter().filter(|o| o.probes > 0);
    // Packed: blocks of the campaign's space as indices; anything outside
    // it (none in practice) still goes plain, so nothing is dropped.
    let (packed, plain_blocks): (Vec<_>, Vec<_>) = match wire {
        Wire::Plain => (Vec::new(), judged.collect()),
        Wire::Packed { max_blocks } => {
            let space = BlockSpace::new(&c.prefixes);
            let (blocks, outside) = packed_blocks(&space, judged);
            match pack_chunks(&c.name, round, &space, ts, blocks, max_blocks) {
                Ok(chunks) => (chunks, outside),
                Err(e) => {
                    tracing::error!(campaign = %c.name, error = %e, "cannot pack the round; sending it plain");
                    let judged = results.outcomes.iter().filter(|o| o.probes > 0);
                    (Vec::new(), judged.collect())
                }
            }
        }
    };
    let observations: Vec<BlockObservation> = plain_blocks
        .into_iter()
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
    // Collectors that predate packed rounds refuse the `rounds` field.
    let rounds = match wire {
        Wire::Packed { .. } => results.info.into_iter().collect(),
        Wire::Plain => Vec::new(),
    };
    let mut chunks = packed.into_iter();
    let first = ReportBatch {
        traces,
        coverage,
        packed: chunks.next().into_iter().collect(),
        rounds,
        ..ReportBatch::new(new_id(), ts)
    };
    let empty = |new_id: &mut dyn FnMut() -> String| ReportBatch::new(new_id(), ts);
    let mut batches = vec![first];
    for chunk in chunks {
        batches.push(ReportBatch {
            packed: vec![chunk],
            ..empty(new_id)
        });
    }
    // Plain observations fill the batches up to the item limit, then more.
    let mut rest = observations.into_iter().peekable();
    let mut i = 0;
    while rest.peek().is_some() {
        if i == batches.len() {
            batches.push(empty(new_id));
        }
        let room = MAX_ITEMS_PER_BATCH.saturating_sub(items(&batches[i]));
        batches[i].observations.extend(rest.by_ref().take(room));
        i += 1;
    }
    // Then the routers' errors, each record where it fits.
    for p in probe_errors {
        let need = 1 + p.blocks.len();
        let i = match batches
            .iter()
            .position(|b| items(b) + need <= MAX_ITEMS_PER_BATCH)
        {
            Some(i) => i,
            None => {
                batches.push(empty(new_id));
                batches.len() - 1
            }
        };
        batches[i].probe_errors.push(p);
    }
    let census: Vec<CensusBlock> = results
        .found
        .into_iter()
        .filter(|(_, addrs)| !addrs.is_empty())
        .map(|(block, addrs)| CensusBlock { block, addrs })
        .collect();
    pack(batches, &c.name, census, MAX_ITEMS_PER_BATCH, new_id)
}

/// The routers whose ICMP errors answered the round's probes, each with
/// the blocks it answered for (in records of at most
/// [`MAX_BLOCKS_PER_PROBE_ERRORS`] blocks) and its error count.
pub fn probe_errors(
    campaign: &str,
    round: u64,
    ts: i64,
    errors: &[BlockErrors],
) -> Vec<ProbeErrors> {
    let mut by_router: BTreeMap<IpAddr, Vec<(IpNet, u32)>> = BTreeMap::new();
    for e in errors {
        by_router
            .entry(e.from)
            .or_default()
            .push((e.block, e.errors.max(1)));
    }
    let mut out = Vec::new();
    for (from, mut blocks) in by_router {
        blocks.sort_unstable();
        blocks.dedup_by_key(|b| b.0);
        for chunk in blocks.chunks(MAX_BLOCKS_PER_PROBE_ERRORS) {
            out.push(ProbeErrors {
                campaign: campaign.to_string(),
                round,
                from,
                blocks: chunk.iter().map(|b| b.0).collect(),
                errors: chunk.iter().fold(0u32, |n, b| n.saturating_add(b.1)),
                ts_ms: ts,
            });
        }
    }
    out
}

/// The outcomes as packed blocks of `space` (one index lookup each), and
/// those whose block lies outside it.
pub fn packed_blocks<'a>(
    space: &BlockSpace,
    outcomes: impl IntoIterator<Item = &'a RoundOutcome>,
) -> (Vec<PackedBlock>, Vec<&'a RoundOutcome>) {
    let mut outside = Vec::new();
    let blocks = outcomes
        .into_iter()
        .filter_map(|o| match space.index_of(&o.block) {
            Some(index) => Some(PackedBlock {
                index,
                state: o.state,
                probes: o.probes,
                replies: o.replies,
                belief: PackedBlock::quantize(o.belief),
                availability: PackedBlock::quantize(o.availability),
            }),
            None => {
                outside.push(o);
                None
            }
        })
        .collect();
    (blocks, outside)
}

/// Items of a batch as the collector counts them against `MAX_ITEMS_PER_BATCH`.
fn items(b: &ReportBatch) -> usize {
    b.observations.len()
        + b.packed.len()
        + b.rounds.len()
        + b.traces.len()
        + b.coverage.len()
        + b.probe_errors
            .iter()
            .map(|p| 1 + p.blocks.len())
            .sum::<usize>()
        + b.census
            .iter()
            .flat_map(|c| &c.blocks)
            .map(|b| 1 + b.addrs.len())
            .sum::<usize>()
}

/// Adds `census` to the last of `batches`, and to more batches as needed,
/// so that no batch holds more than `limit` items (a block counts one plus
/// its addresses; a block too large for one batch is split).
fn pack(
    mut batches: Vec<ReportBatch>,
    campaign: &str,
    census: Vec<CensusBlock>,
    limit: usize,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<ReportBatch> {
    let chunk = limit.saturating_sub(1).max(1);
    let pieces = census.into_iter().flat_map(|b| {
        b.addrs
            .chunks(chunk)
            .map(|a| CensusBlock {
                block: b.block,
                addrs: a.to_vec(),
            })
            .collect::<Vec<_>>()
    });
    let created_ms = batches.first().map_or(0, |b| b.created_ms);
    for piece in pieces {
        let mut last = batches.last_mut().expect("record makes at least one batch");
        if items(last) + 1 + piece.addrs.len() > limit {
            batches.push(ReportBatch::new(new_id(), created_ms));
            last = batches.last_mut().expect("just pushed");
        }
        match last.census.last_mut() {
            Some(cc) => cc.blocks.push(piece),
            None => last.census.push(CampaignCensus {
                campaign: campaign.to_string(),
                blocks: vec![piece],
            }),
        }
    }
    batches
}

#[cfg(test)]
mod tests;
