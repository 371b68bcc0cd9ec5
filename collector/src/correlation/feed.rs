//! The feed of stored rounds into the engine: one campaign's
//! [`core::Incremental`] with the tables that map what the store holds
//! (block networks, packed records' space indices, agent names) to the
//! engine's ids. Rounds are decoded record by record straight into the
//! engine, never into a list of observations, so a round of a million
//! blocks costs no per-observation allocation. Pure: no I/O, no time.

use std::collections::{BTreeMap, HashMap};

use darkwatch_correlate as core;
use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::rtt::Rtt;
use ipnet::IpNet;

use super::edges::StoredRounds;
use crate::routing::Routing;
use crate::store::{Campaign, Spaces, StoreError};

/// The top scope of a campaign: its country, or the campaign itself.
pub fn top_target(c: &Campaign) -> (String, bool) {
    match &c.country {
        Some(cc) => (cc.clone(), true),
        None => (c.name.clone(), false),
    }
}

/// What identifies the campaign's static input (name, generation,
/// prefixes, country, interval): a change starts over from the store.
pub(super) fn campaign_key(c: &Campaign) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{}",
        c.name, c.generation, c.country, c.prefixes, c.interval_secs
    )
}

/// Table entry of a block-space index not looked up yet.
const UNSEEN: u32 = u32::MAX - 1;
/// Table entry of a block-space index outside the campaign's prefixes.
const OUTSIDE: u32 = u32::MAX;

/// One campaign's incremental correlation state, kept between passes.
pub struct CampaignEngine {
    /// [`campaign_key`] of the campaign the state was built for.
    pub(super) key: String,
    pub(super) engine: core::Incremental,
    /// Engine block id of each block seen.
    block_ids: HashMap<IpNet, u32>,
    /// The engine's prefixes (routed, or the campaign's) and the one each
    /// block counts in.
    routing: Routing,
    /// The campaign's block spaces (packed rounds' indices), read once and
    /// again when a record names one not read yet.
    pub(super) spaces: Spaces,
    /// Per block space: engine block id of each index ([`UNSEEN`] until
    /// the index first occurs, [`OUTSIDE`] for a block of no prefix of
    /// the campaign's).
    tables: HashMap<String, Vec<u32>>,
    /// Per loaded round, the source's fingerprint of its raw rows
    /// (`RoundSource::round_fingerprints`) when it was loaded.
    pub(super) versions: BTreeMap<u64, u64>,
}

impl CampaignEngine {
    /// A fresh engine for `campaign`: its top scope and its prefixes, the
    /// routed prefixes of its blocks with their origin ASes when there is a
    /// `pfx2as` table (see `crate::routing`).
    pub fn new(
        campaign: &Campaign,
        params: &core::Params,
        pfx2as: Option<&Pfx2As>,
    ) -> Result<Self, core::CorrelateError> {
        let routing = Routing::new(&campaign.prefixes, pfx2as);
        let (target, is_country) = top_target(campaign);
        let statics = core::Input {
            target,
            is_country,
            prefixes: routing.prefixes().to_vec(),
            ..core::Input::default()
        };
        Ok(CampaignEngine {
            key: campaign_key(campaign),
            engine: core::Incremental::new(&statics, params)?,
            block_ids: HashMap::new(),
            routing,
            spaces: Spaces::default(),
            tables: HashMap::new(),
            versions: BTreeMap::new(),
        })
    }

    /// The prefixes verdicts are made for and the one each block counts
    /// in (the routed prefixes: `Routing::routed_prefixes`).
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// The engine: its window, output, VPs and round digests.
    pub fn engine_mut(&mut self) -> &mut core::Incremental {
        &mut self.engine
    }

    /// The block spaces that packed records decode against.
    pub fn set_spaces(&mut self, spaces: Spaces) {
        self.spaces = spaces;
    }

    /// Hands round `round` of what was read (`raw`, which may hold other
    /// rounds) to the engine, whole (a round without reports now is
    /// withdrawn). Packed records are decoded one chunk at a time and each
    /// block goes straight into the engine's cells through one table per
    /// block space. A record naming a space not in `self.spaces` is
    /// corrupt (the caller reads the spaces first).
    pub fn feed_round(&mut self, raw: &StoredRounds, round: u64) -> Result<(), StoreError> {
        let CampaignEngine {
            engine,
            block_ids,
            routing,
            spaces,
            tables,
            ..
        } = self;
        let mut input = engine.round(round);
        for o in raw.rows.iter().filter(|o| o.obs.round == round) {
            let v = input.vp(&o.agent);
            if let Some(b) = block_id(block_ids, routing, &mut input, &o.obs.block) {
                input.observe(v, b, o.obs.state, o.obs.probes, o.obs.replies);
                let rtt = Rtt::from_ms(o.obs.rtt_min_ms, o.obs.rtt_median_ms);
                input.rtt(b, rtt.median);
            }
        }
        for rec in raw.records.iter().filter(|r| r.round == round) {
            let (space, blocks) = spaces.unpack(rec)?;
            let v = input.vp(&rec.agent);
            let table = tables
                .entry(rec.space.clone())
                .or_insert_with(|| vec![UNSEEN; space.len() as usize]);
            for b in &blocks {
                let slot = &mut table[b.index as usize];
                if *slot == UNSEEN {
                    *slot = space
                        .block_at(b.index)
                        .and_then(|net| block_id(block_ids, routing, &mut input, &net))
                        .unwrap_or(OUTSIDE);
                }
            }
            input.observe_all(
                v,
                blocks.iter().filter_map(|b| {
                    let id = table[b.index as usize];
                    (id != OUTSIDE).then_some((id, b.state, b.probes, b.replies))
                }),
            );
            for b in blocks.iter().filter(|b| !b.rtt.is_none()) {
                let id = table[b.index as usize];
                if id != OUTSIDE {
                    input.rtt(id, b.rtt.median);
                }
            }
        }
        for o in raw.control.iter().filter(|o| o.obs.round == round) {
            let v = input.vp(&o.agent);
            input.control(v, o.obs.state);
        }
        for t in raw.traces.iter().filter(|t| t.trace.round == round) {
            let v = input.vp(&t.agent);
            input.trace(v, &trace_obs(v, &t.trace));
        }
        for p in raw.probe_errors.iter().filter(|p| p.errors.round == round) {
            let v = input.vp(&p.agent);
            input.probe_error(
                v,
                &core::ProbeErrorObs {
                    vp: v,
                    round,
                    from: p.errors.from,
                    blocks: p.errors.blocks.clone(),
                },
            );
        }
        input.finish();
        Ok(())
    }
}

/// The engine id of `block`, added to the engine (through the round being
/// built) at its first sight; `None` for a block outside the campaign's
/// prefixes (left out). Its prefix is the one `routing` gives.
fn block_id(
    block_ids: &mut HashMap<IpNet, u32>,
    routing: &Routing,
    input: &mut core::incremental::RoundInput<'_>,
    block: &IpNet,
) -> Option<u32> {
    if let Some(&id) = block_ids.get(block) {
        return Some(id);
    }
    let prefix = routing.prefix_of(block)?;
    let id = input
        .add_block(*block, prefix)
        .expect("the prefix index holds the engine's prefixes");
    block_ids.insert(*block, id);
    Some(id)
}

/// A stored traceroute as the correlation core reads it. It ends in an
/// ICMP unreachable when its last answering hop said so: that VP's path
/// ends there, as a router's error to a probe says (see `localize`).
fn trace_obs(vp: core::VpId, trace: &darkwatch_schema::TraceObservation) -> core::TraceObs {
    core::TraceObs {
        vp,
        round: trace.round,
        target: trace.target,
        responding: trace.hops.iter().filter_map(|h| h.addr).collect(),
        reached: trace.reached,
        unreachable: trace
            .hops
            .iter()
            .rev()
            .find(|h| h.addr.is_some())
            .is_some_and(|h| h.unreachable.is_some()),
    }
}
