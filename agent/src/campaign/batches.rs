//! The round's report: [`record`] turns what one round measured
//! ([`RoundResults`]) into the batches the collector takes, within the
//! wire's limits, with the campaign's coverage and the census the sweep
//! found. Apart from the planner because it answers a different question
//! (what goes on the wire, in how many batches), and is the one part of a
//! round whose size grows with the campaign: it is tested on its own with
//! rounds of many thousands of blocks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use darkwatch_schema::packed::{pack_chunks_as, BlockSpace, PackedBlock};
use darkwatch_schema::{
    BlockObservation, CampaignAssignment, CampaignCensus, CensusBlock, Coverage, ProbeErrors,
    ReportBatch, RoundInfo, TraceObservation, MAX_BLOCKS_PER_PROBE_ERRORS, MAX_ITEMS_PER_BATCH,
};
use ipnet::IpNet;

use super::{CampaignState, RoundPlan};
use crate::belief::{BlockErrors, RoundOutcome};
use crate::trace::TraceResult;

/// Rounds between two reports of an unchanged coverage.
pub const COVERAGE_EVERY_ROUNDS: u64 = 10;
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
    /// `max_blocks` blocks, one chunk per batch, in column layout `version`;
    /// for collectors whose assignments advertise it.
    Packed { max_blocks: usize, version: u8 },
}

impl Wire {
    /// Packed if the operator allows it and the collector accepts a
    /// version we write: the newer of ours and the collector's (a
    /// collector of version 1 gets rounds without reply times).
    pub fn choose(allowed: bool, collector: Option<u8>, max_blocks: usize) -> Wire {
        use darkwatch_schema::packed::{PACKED_VERSION, PACKED_VERSION_MIN};
        match collector {
            Some(v) if allowed && v >= PACKED_VERSION_MIN => Wire::Packed {
                max_blocks,
                version: v.min(PACKED_VERSION),
            },
            _ => Wire::Plain,
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
        rtt_min_ms: o.rtt.min_ms(),
        rtt_median_ms: o.rtt.median_ms(),
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
        Wire::Packed {
            max_blocks,
            version,
        } => {
            let space = BlockSpace::new(&c.prefixes);
            let (blocks, outside) = packed_blocks(&space, judged);
            match pack_chunks_as(version, &c.name, round, &space, ts, blocks, max_blocks) {
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
                rtt: o.rtt,
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
pub(super) fn items(b: &ReportBatch) -> usize {
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
pub(super) fn pack(
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
