//! Wiring between the store and the pure correlation core
//! (`darkwatch-correlate`): load a window of rounds of one campaign, run
//! `correlate`, and write the verdicts back, noticing which ones opened and
//! closed so that alerts can be sent.
//!
//! Verdicts are recomputed from stored observations on every pass, so late
//! reports (an agent's spool draining after a collector outage) refine them,
//! and a restarted collector reaches the same verdicts. Which recomputed
//! verdict continues which stored one, and which alerts that gives, is
//! decided by the pure `crate::reconcile`.
//!
//! The loop ([`run`]) does not reload the window: a [`Correlator`] keeps, per
//! campaign this collector holds, a [`core::Incremental`] engine fed with
//! only the rounds whose stored raw rows changed since the last pass
//! ([`Store::round_versions`]: raw rows are only ever added, so a changed
//! count is a changed round), and the engine's output equals `correlate`
//! over the window. [`pass`] is the same pass from scratch (tests, checks).
//! Changed rounds are decoded record by record straight into the engine
//! (`feed_round`), never into a list of observations.
//!
//! A pass that fails or panics stops neither the loop nor the other
//! campaigns ([`correlate_campaigns`]): it is logged, a panic is counted in
//! `darkwatch_correlation_panics_total`, and the campaign's state is
//! rebuilt from the store at its next pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use darkwatch_correlate as core;
use darkwatch_schema::round_of;
use ipnet::IpNet;
use serde::Deserialize;

use crate::alerts::{AlertEvent, Alerts};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::reconcile::{reconcile, EventKind, Window};
use crate::store::{
    AgentObservation, AgentProbeErrors, AgentTrace, Campaign, RoundRecord, Spaces, Store,
    StoreError, Verdict,
};
use darkwatch_schema::inputs::{self, pfx2as::Pfx2As};
use futures::FutureExt;

/// Prefix of the per-campaign correlation leases (`correlator:CAMPAIGN`).
pub const LEASE: &str = "correlator";

/// Settings of the correlation loop (`[correlation]` in collector.toml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationSettings {
    /// Thresholds of the verdict logic.
    pub params: core::Params,
    /// Rounds looked at per pass (older verdicts are kept as stored).
    pub window_rounds: u64,
    /// Seconds between correlation passes.
    pub every_secs: f64,
    /// Optional CAIDA prefix-to-AS file, to group prefixes by origin AS.
    pub pfx2as: Option<std::path::PathBuf>,
    /// Seconds the correlator lease lasts without renewal: how long a dead
    /// correlator blocks the others (default: 3 × `every_secs`, at least 3 s).
    pub lease_ttl_secs: Option<f64>,
}

impl Default for CorrelationSettings {
    fn default() -> Self {
        CorrelationSettings {
            params: core::Params::default(),
            window_rounds: 288,
            every_secs: 10.0,
            pfx2as: None,
            lease_ttl_secs: None,
        }
    }
}

impl CorrelationSettings {
    /// Lifetime of the correlator lease in milliseconds: the configured
    /// `lease_ttl_secs`, or three passes (at least 3 s) so that one slow pass
    /// does not hand the lease over.
    pub fn lease_ttl_ms(&self) -> i64 {
        match self.lease_ttl_secs {
            Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0) as i64,
            _ => ((self.every_secs.max(0.1) * 3000.0) as i64).max(3000),
        }
    }
}

/// Round `r` is complete (every agent had time to report it) once half an
/// interval has passed after round `r + 1` started.
pub fn last_complete_round(now_ms: i64, interval_secs: u64) -> Option<u64> {
    let i = interval_secs.max(1) as i64 * 1000;
    let t = now_ms - i - i / 2;
    (t >= 0).then(|| round_of(t, interval_secs))
}

/// The last round a pass may correlate: the last complete round by the
/// clock, or a later one (the round just ended, or the one in progress) once
/// every agent that reported the round before it has reported it too. An
/// agent sends a whole round in one batch, so waiting out the deadline only
/// matters for a late agent; not waiting saves most of a round of verdict
/// latency. `reported` is `(round, agent)` for rounds up to `current`.
pub fn last_round_to_correlate(
    by_time: Option<u64>,
    current: u64,
    reported: &[(u64, String)],
) -> Option<u64> {
    let agents = |r: u64| {
        reported
            .iter()
            .filter(|(x, _)| *x == r)
            .map(|(_, a)| a.as_str())
            .collect::<BTreeSet<_>>()
    };
    for r in (current.saturating_sub(1)..=current).rev() {
        if r == 0 || by_time.is_some_and(|t| r <= t) {
            break;
        }
        let (now, before) = (agents(r), agents(r - 1));
        if !before.is_empty() && before.is_subset(&now) {
            return Some(r);
        }
    }
    by_time
}

/// The top scope of a campaign: its country, or the campaign itself.
pub fn top_target(c: &Campaign) -> (String, bool) {
    match &c.country {
        Some(cc) => (cc.clone(), true),
        None => (c.name.clone(), false),
    }
}

/// Loads the correlation input of `campaign` for rounds up to `last_round`.
pub async fn load_input<S: Store>(
    store: &S,
    campaign: &Campaign,
    last_round: u64,
    window_rounds: u64,
    pfx2as: Option<&Pfx2As>,
) -> Result<core::Input, StoreError> {
    let first_round = last_round.saturating_sub(window_rounds.max(1) - 1);
    let rounds = first_round..=last_round;
    let raw = Raw::load(store, &campaign.name, rounds).await?;
    let spaces = if raw.records.is_empty() {
        Spaces::default()
    } else {
        Spaces::new(&store.block_spaces(&campaign.name).await?)
    };
    build_input(campaign, first_round..=last_round, &raw, &spaces, pfx2as)
}

/// What the store holds of a campaign's window, as read.
#[derive(Debug, Default)]
pub struct Raw {
    /// Plain observations stored as rows (agents that do not pack).
    pub rows: Vec<AgentObservation>,
    /// Packed rounds, decoded here straight into the core's input.
    pub records: Vec<RoundRecord>,
    pub control: Vec<AgentObservation>,
    pub traces: Vec<AgentTrace>,
    pub probe_errors: Vec<AgentProbeErrors>,
}

impl Raw {
    /// Everything `store` holds of `campaign` in `rounds`.
    pub async fn load<S: Store>(
        store: &S,
        campaign: &str,
        rounds: std::ops::RangeInclusive<u64>,
    ) -> Result<Self, StoreError> {
        Ok(Raw {
            rows: store.row_observations(campaign, rounds.clone()).await?,
            records: store.round_records(campaign, rounds.clone()).await?,
            control: store.control_observations(campaign, rounds.clone()).await?,
            traces: store.traces(campaign, rounds.clone()).await?,
            probe_errors: store.probe_errors(campaign, rounds).await?,
        })
    }
}

/// The correlation input of `campaign` over `rounds` from what the store
/// read (pure). Packed records are decoded column-wise and their space
/// indices mapped to block ids through one table per block space, so a
/// round of a million blocks costs no per-block row or allocation.
pub fn build_input(
    campaign: &Campaign,
    rounds: std::ops::RangeInclusive<u64>,
    raw: &Raw,
    spaces: &Spaces,
    pfx2as: Option<&Pfx2As>,
) -> Result<core::Input, StoreError> {
    let (first_round, last_round) = (*rounds.start(), *rounds.end());
    let vps: Vec<String> = raw
        .rows
        .iter()
        .map(|o| &o.agent)
        .chain(raw.records.iter().map(|r| &r.agent))
        .chain(raw.control.iter().map(|o| &o.agent))
        .chain(raw.traces.iter().map(|t| &t.agent))
        .chain(raw.probe_errors.iter().map(|p| &p.agent))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let vp_id = |name: &str| {
        vps.binary_search_by(|v| v.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    };

    let mut prefixes: Vec<IpNet> = campaign.prefixes.clone();
    prefixes.sort();
    prefixes.dedup();
    // Longest prefix that holds the block (campaign prefixes may nest): look
    // the block's covering networks up, longest first.
    let by_net: HashMap<IpNet, u32> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.trunc(), i as u32))
        .collect();
    let prefix_of = |b: &IpNet| {
        (0..=b.prefix_len()).rev().find_map(|len| {
            by_net
                .get(&IpNet::new(b.addr(), len).ok()?.trunc())
                .copied()
        })
    };

    // Decode every record once; note which indices of which space occur.
    let mut decoded = Vec::with_capacity(raw.records.len());
    let mut seen: HashMap<&str, Vec<bool>> = HashMap::new();
    for rec in &raw.records {
        let (space, blocks) = spaces.unpack(rec)?;
        let marks = seen
            .entry(rec.space.as_str())
            .or_insert_with(|| vec![false; space.len() as usize]);
        for b in &blocks {
            marks[b.index as usize] = true;
        }
        decoded.push((rec, space, blocks));
    }
    let mut block_nets: Vec<IpNet> = raw.rows.iter().map(|o| o.obs.block).collect();
    for (digest, marks) in &seen {
        if let Some(space) = spaces.get(digest) {
            block_nets.extend(
                marks
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m)
                    .filter_map(|(i, _)| space.block_at(i as u64)),
            );
        }
    }
    block_nets.sort_unstable();
    block_nets.dedup();
    let mut blocks = Vec::new();
    let mut block_index = HashMap::new();
    for b in block_nets {
        if let Some(p) = prefix_of(&b) {
            block_index.insert(b, blocks.len() as u32);
            blocks.push(core::BlockInfo { net: b, prefix: p });
        }
    }
    let mut obs: Vec<core::Obs> = raw
        .rows
        .iter()
        .filter_map(|AgentObservation { agent, obs: o }| {
            Some(core::Obs {
                vp: vp_id(agent)?,
                block: *block_index.get(&o.block)?,
                round: o.round,
                state: o.state,
                probes: o.probes,
                replies: o.replies,
            })
        })
        .collect();
    // Space index -> block id, one table per space.
    let mut ids: HashMap<&str, Vec<u32>> = HashMap::new();
    for (rec, space, packed) in &decoded {
        let Some(vp) = vp_id(&rec.agent) else {
            continue;
        };
        let table = ids.entry(rec.space.as_str()).or_insert_with(|| {
            (0..space.len())
                .map(|i| {
                    space
                        .block_at(i)
                        .and_then(|b| block_index.get(&b).copied())
                        .unwrap_or(u32::MAX)
                })
                .collect()
        });
        obs.extend(packed.iter().filter_map(|b| {
            let block = table[b.index as usize];
            (block != u32::MAX).then_some(core::Obs {
                vp,
                block,
                round: rec.round,
                state: b.state,
                probes: b.probes,
                replies: b.replies,
            })
        }));
    }
    let control = raw
        .control
        .iter()
        .filter_map(|o| {
            Some(core::ControlObs {
                vp: vp_id(&o.agent)?,
                round: o.obs.round,
                state: o.obs.state,
            })
        })
        .collect();
    let traces = raw
        .traces
        .iter()
        .filter_map(|t| Some(trace_obs(vp_id(&t.agent)?, &t.trace)))
        .collect();
    let probe_errors = raw
        .probe_errors
        .iter()
        .filter_map(|p| {
            Some(core::ProbeErrorObs {
                vp: vp_id(&p.agent)?,
                round: p.errors.round,
                from: p.errors.from,
                blocks: p.errors.blocks.clone(),
            })
        })
        .collect();
    let (target, is_country) = top_target(campaign);
    Ok(core::Input {
        target,
        is_country,
        vps,
        prefixes: prefixes
            .iter()
            .map(|p| core::PrefixInfo {
                net: *p,
                asns: pfx2as.map(|m| m.origins(p).to_vec()).unwrap_or_default(),
            })
            .collect(),
        blocks,
        first_round,
        last_round,
        obs,
        control,
        traces,
        probe_errors,
    })
}

/// Writes one pass's verdicts and VP faults as [`reconcile`] decides, and
/// returns the alert events (after the write, so an event always names a
/// stored verdict).
pub async fn apply<S: Store>(
    store: &S,
    campaign: &Campaign,
    input: &core::Input,
    out: &core::Output,
    now_ms: i64,
) -> Result<Vec<AlertEvent>, StoreError> {
    let window = Window {
        first_round: input.first_round,
        last_round: input.last_round,
    };
    apply_window(store, campaign, window, out, now_ms).await
}

/// [`apply`] for the output of a pass over `window`.
pub async fn apply_window<S: Store>(
    store: &S,
    campaign: &Campaign,
    window: Window,
    out: &core::Output,
    now_ms: i64,
) -> Result<Vec<AlertEvent>, StoreError> {
    let stored = store.list_verdicts(Some(&campaign.name), None).await?;
    let faults = store.list_vp_faults(Some(&campaign.name), None).await?;
    let (changes, events) = reconcile(campaign, &stored, &faults, out, window, now_ms);
    let ids = store.save_verdicts(&changes.verdicts).await?;
    store.save_vp_faults(&changes.faults).await?;
    Ok(events
        .iter()
        .map(|e| {
            let verdict = Verdict {
                id: ids[e.change],
                ..changes.verdicts[e.change].clone()
            };
            match e.kind {
                EventKind::Open => AlertEvent::open(&verdict),
                EventKind::Close => AlertEvent::close(&verdict),
            }
        })
        .collect())
}

/// The last round a pass over `campaign` judges now, if any.
async fn last_round_now<S: Store>(
    store: &S,
    campaign: &Campaign,
    now_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let by_time = last_complete_round(now_ms, campaign.interval_secs);
    let current = round_of(now_ms, campaign.interval_secs);
    let reported = store
        .round_agents(&campaign.name, current.saturating_sub(2)..=current)
        .await?;
    Ok(last_round_to_correlate(by_time, current, &reported))
}

/// One correlation pass over one campaign, from scratch: load the whole
/// window, correlate, store. The collector's loop runs [`Correlator::pass`]
/// instead, which gives the same verdicts at the cost of the new reports.
pub async fn pass<S: Store>(
    store: &S,
    campaign: &Campaign,
    settings: &CorrelationSettings,
    pfx2as: Option<&Pfx2As>,
    now_ms: i64,
) -> Result<(core::Output, Vec<AlertEvent>), StoreError> {
    let Some(last) = last_round_now(store, campaign, now_ms).await? else {
        return Ok((core::Output::default(), Vec::new()));
    };
    let input = load_input(store, campaign, last, settings.window_rounds, pfx2as).await?;
    let out = match core::try_correlate(&input, &settings.params) {
        Ok(out) => out,
        Err(e) => {
            tracing::error!(campaign = %campaign.name, error = %e, "cannot correlate");
            return Ok((core::Output::default(), Vec::new()));
        }
    };
    let events = apply(store, campaign, &input, &out, now_ms).await?;
    crate::signals::store_summaries(store, campaign, &input, &out, &settings.params, now_ms)
        .await?;
    Ok((out, events))
}

/// Rounds loaded per query when a pass reloads rounds: bounds the memory of
/// a restarted collector's first pass (one full load, a few rounds at a
/// time) and of a long backfill.
pub const LOAD_ROUNDS: u64 = 4;

/// One campaign's incremental correlation state, kept between passes.
pub struct CampaignState {
    /// What identifies the campaign's static input (name, generation,
    /// prefixes, country): a change starts over from the store.
    key: String,
    engine: core::Incremental,
    /// Engine block id of each block seen.
    block_ids: HashMap<IpNet, u32>,
    /// The campaign's prefixes (truncated) -> their index in the engine.
    prefix_index: HashMap<IpNet, u32>,
    /// The campaign's block spaces (packed rounds' indices), read once and
    /// again when a record names one not read yet.
    spaces: Spaces,
    /// Per block space: engine block id of each index ([`UNSEEN`] until
    /// the index first occurs, [`OUTSIDE`] for a block of no prefix of
    /// the campaign's).
    tables: HashMap<String, Vec<u32>>,
    /// Per loaded round, the store's fingerprint of its raw rows
    /// ([`Store::round_versions`]) when it was loaded.
    versions: std::collections::BTreeMap<u64, u64>,
}

/// What one incremental pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Rounds read from the store (new, late or changed).
    pub rounds_loaded: usize,
    /// Rounds whose per-round stage was recomputed.
    pub rounds_recomputed: usize,
    /// True if the campaign's state was (re)built from scratch.
    pub rebuilt: bool,
}

/// The correlation state of the campaigns this collector holds: each pass
/// reads only the rounds whose stored reports changed since the last one
/// (new rounds, a late agent's spool, a purge) and re-judges with
/// [`core::Incremental`], whose output equals `correlate` over the window.
/// A collector that gains a campaign (a lease taken over, or a restart)
/// builds its state with one full load; one that loses it drops the state.
#[derive(Default)]
pub struct Correlator {
    states: HashMap<String, CampaignState>,
    /// Test hook ([`Correlator::panic_once`]).
    panic_once: BTreeSet<String>,
}

fn campaign_key(c: &Campaign) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{}",
        c.name, c.generation, c.country, c.prefixes, c.interval_secs
    )
}

impl Correlator {
    /// Drops the state of every campaign not in `held` (leases handed back
    /// or lost: another collector may change them meanwhile).
    pub fn retain(&mut self, held: &BTreeSet<String>) {
        self.states.retain(|name, _| held.contains(name));
    }

    /// Test hook: the next pass over `campaign` panics once, after it fed
    /// the changed rounds to the engine and before it judges (as a bug in
    /// the correlation core would).
    #[doc(hidden)]
    pub fn panic_once(&mut self, campaign: &str) {
        self.panic_once.insert(campaign.to_string());
    }

    /// Campaigns with a state.
    pub fn campaigns(&self) -> Vec<String> {
        let mut v: Vec<String> = self.states.keys().cloned().collect();
        v.sort();
        v
    }

    /// One incremental pass over `campaign`: the same verdicts, faults and
    /// summaries as [`pass`], reading only the rounds that changed.
    pub async fn pass<S: Store>(
        &mut self,
        store: &S,
        campaign: &Campaign,
        settings: &CorrelationSettings,
        pfx2as: Option<&Pfx2As>,
        now_ms: i64,
    ) -> Result<(core::Output, Vec<AlertEvent>, PassStats), StoreError> {
        let mut stats = PassStats::default();
        let Some(last) = last_round_now(store, campaign, now_ms).await? else {
            return Ok((core::Output::default(), Vec::new(), stats));
        };
        let first = last.saturating_sub(settings.window_rounds.max(1) - 1);
        let key = campaign_key(campaign);
        if self.states.get(&campaign.name).is_none_or(|s| s.key != key) {
            self.states.remove(&campaign.name);
            let mut prefixes: Vec<IpNet> = campaign.prefixes.clone();
            prefixes.sort();
            prefixes.dedup();
            let (target, is_country) = top_target(campaign);
            let statics = core::Input {
                target,
                is_country,
                prefixes: prefixes
                    .iter()
                    .map(|p| core::PrefixInfo {
                        net: *p,
                        asns: pfx2as.map(|m| m.origins(p).to_vec()).unwrap_or_default(),
                    })
                    .collect(),
                ..core::Input::default()
            };
            let engine = match core::Incremental::new(&statics, &settings.params) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(campaign = %campaign.name, error = %e, "cannot correlate");
                    return Ok((core::Output::default(), Vec::new(), stats));
                }
            };
            stats.rebuilt = true;
            self.states.insert(
                campaign.name.clone(),
                CampaignState {
                    key,
                    engine,
                    block_ids: HashMap::new(),
                    prefix_index: prefixes
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (p.trunc(), i as u32))
                        .collect(),
                    spaces: Spaces::default(),
                    tables: HashMap::new(),
                    versions: Default::default(),
                },
            );
        }
        let st = self.states.get_mut(&campaign.name).expect("state");
        if let Err(e) = st.engine.set_window(first, last) {
            tracing::error!(campaign = %campaign.name, error = %e, "cannot correlate");
            return Ok((core::Output::default(), Vec::new(), stats));
        }
        let now: std::collections::BTreeMap<u64, u64> = store
            .round_versions(&campaign.name, first..=last)
            .await?
            .into_iter()
            .collect();
        st.versions = st.versions.split_off(&first);
        let mut changed: Vec<u64> = now
            .iter()
            .filter(|(r, v)| st.versions.get(r) != Some(v))
            .map(|(r, _)| *r)
            .chain(st.versions.keys().filter(|r| !now.contains_key(r)).copied())
            .filter(|&r| r <= last)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        // Contiguous runs of changed rounds, read a few rounds at a time
        // and decoded round by round straight into the engine.
        let mut i = 0;
        while i < changed.len() {
            let start = changed[i];
            let mut end = start;
            while i + 1 < changed.len()
                && changed[i + 1] == end + 1
                && end - start + 1 < LOAD_ROUNDS
            {
                i += 1;
                end = changed[i];
            }
            i += 1;
            let rounds = start..=end;
            let raw = Raw::load(store, &campaign.name, rounds.clone()).await?;
            if raw
                .records
                .iter()
                .any(|r| st.spaces.get(&r.space).is_none())
            {
                st.spaces = Spaces::new(&store.block_spaces(&campaign.name).await?);
            }
            for r in rounds {
                feed_round(st, &raw, r)?;
                match now.get(&r) {
                    Some(&v) => st.versions.insert(r, v),
                    None => st.versions.remove(&r),
                };
            }
            stats.rounds_loaded += (end - start + 1) as usize;
        }
        if self.panic_once.remove(&campaign.name) {
            panic!("test hook: correlation of {} panics", campaign.name);
        }
        let out = st.engine.output();
        stats.rounds_recomputed = st.engine.recomputed();
        let window = Window {
            first_round: first,
            last_round: last,
        };
        let events = apply_window(store, campaign, window, &out, now_ms).await?;
        crate::signals::store_summary_rounds(
            store,
            campaign,
            first..=last,
            &st.engine.vps(),
            &st.engine.round_digests(),
            &out,
            now_ms,
            crate::signals::MAX_ROWS_PER_PASS,
        )
        .await?;
        Ok((out, events, stats))
    }
}

/// Table entry of a block-space index not looked up yet.
const UNSEEN: u32 = u32::MAX - 1;
/// Table entry of a block-space index outside the campaign's prefixes.
const OUTSIDE: u32 = u32::MAX;

/// The engine id of `block`, added to the engine (through the round being
/// built) at its first sight; `None` for a block of no prefix of the
/// campaign's (left out, as [`build_input`] does). The block's prefix is
/// the longest campaign prefix holding it (campaign prefixes may nest).
fn block_id(
    block_ids: &mut HashMap<IpNet, u32>,
    prefix_index: &HashMap<IpNet, u32>,
    input: &mut core::incremental::RoundInput<'_>,
    block: &IpNet,
) -> Option<u32> {
    if let Some(&id) = block_ids.get(block) {
        return Some(id);
    }
    let prefix = (0..=block.prefix_len()).rev().find_map(|len| {
        prefix_index
            .get(&IpNet::new(block.addr(), len).ok()?.trunc())
            .copied()
    })?;
    let id = input
        .add_block(*block, prefix)
        .expect("the prefix index holds the engine's prefixes");
    block_ids.insert(*block, id);
    Some(id)
}

/// Hands round `round` of what was read (`raw`, which may hold other
/// rounds) to the engine, whole (a round without reports now is
/// withdrawn): the same round [`build_input`] and `update_round` give,
/// without building the input. Packed records are decoded one chunk at a
/// time and each block goes straight into the engine's cells through one
/// table per block space, so a round of a million blocks costs no
/// per-observation list.
fn feed_round(st: &mut CampaignState, raw: &Raw, round: u64) -> Result<(), StoreError> {
    let CampaignState {
        engine,
        block_ids,
        prefix_index,
        spaces,
        tables,
        ..
    } = st;
    let mut input = engine.round(round);
    for o in raw.rows.iter().filter(|o| o.obs.round == round) {
        let v = input.vp(&o.agent);
        if let Some(b) = block_id(block_ids, prefix_index, &mut input, &o.obs.block) {
            input.observe(v, b, o.obs.state, o.obs.probes, o.obs.replies);
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
                    .and_then(|net| block_id(block_ids, prefix_index, &mut input, &net))
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

/// Loads the prefix-to-AS file for `serve`, logging each skipped line (up to
/// [`inputs::MAX_REPORTED_LINES`], then their count) and what was loaded. A
/// file that does not load is logged and ignored: `what` (e.g. "correlating")
/// then goes on without AS grouping.
pub fn load_pfx2as(path: &std::path::Path, what: &str) -> Option<Pfx2As> {
    match Pfx2As::load(path) {
        Ok((m, skipped)) => {
            inputs::report_skipped(&skipped, |msg| tracing::warn!("{msg}"));
            tracing::info!(
                file = %path.display(),
                prefixes = m.len(),
                skipped_lines = skipped.len(),
                "{what} with the prefix-to-AS file"
            );
            Some(m)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot load the prefix-to-AS file; {what} without AS grouping");
            None
        }
    }
}

/// Settings of raw-data retention (`[retention]` in collector.toml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days raw rounds (packed rounds, per-block observations, traces) are
    /// kept. Verdicts, their evidence and VP faults are kept forever.
    pub raw_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { raw_days: 30 }
    }
}

/// Longest retention accepted (100 years: "forever" without overflow).
pub const MAX_RAW_DAYS: u32 = 36_500;

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_RAW_DAYS).contains(&self.raw_days) {
            return Err(format!(
                "raw_days must lie in 1..={MAX_RAW_DAYS}, got {}",
                self.raw_days
            ));
        }
        Ok(())
    }

    /// The first round of a campaign kept at `now_ms`: rounds before it
    /// ended more than `raw_days` ago.
    pub fn first_kept_round(&self, now_ms: i64, interval_secs: u64) -> u64 {
        let keep_ms = i64::from(self.raw_days) * 86_400_000;
        let t = now_ms.saturating_sub(keep_ms);
        if t <= 0 {
            0
        } else {
            round_of(t, interval_secs)
        }
    }
}

/// Rows one retention statement deletes per raw table: small enough that
/// the SQLite write lock is held for milliseconds.
pub const PURGE_ROWS: u64 = 1000;
/// Statements per campaign and pass: the rest waits for the next pass.
pub const PURGE_STATEMENTS: u32 = 20;

/// Deletes a campaign's raw rounds older than the retention, in small
/// statements, yielding between them so that ingest is never stalled.
pub async fn purge_old_rounds<S: Store>(
    store: &S,
    campaign: &Campaign,
    retention: &RetentionSettings,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let before = retention.first_kept_round(now_ms, campaign.interval_secs);
    let mut deleted = 0;
    for _ in 0..PURGE_STATEMENTS {
        let n = store.purge_raw(&campaign.name, before, PURGE_ROWS).await?;
        deleted += n;
        if n == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

/// Lease of one campaign's correlation.
pub fn campaign_lease(campaign: &str) -> String {
    format!("{LEASE}:{campaign}")
}

/// Prefix of the leases that say which collectors are running.
pub const MEMBER_LEASE: &str = "member:";

/// How many campaigns each of `members` live collectors correlates: an
/// even share, rounded up so that every campaign has room.
pub fn fair_share(campaigns: usize, members: usize) -> usize {
    campaigns.div_ceil(members.max(1))
}

/// Which campaigns to hand back so that `held` fits `share`: the last ones
/// by name, so that collectors agree without talking.
pub fn surplus(held: &BTreeSet<String>, share: usize) -> Vec<String> {
    held.iter().skip(share).cloned().collect()
}

/// Takes, keeps and hands back per-campaign leases for one pass: this
/// collector renews its membership, keeps the campaigns it holds up to its
/// fair share among live collectors, and takes free (or expired) ones up to
/// that share. A lease is never taken from a live holder, so a campaign
/// moves only when its holder hands it back or dies. Returns the campaigns
/// to correlate in this pass.
pub async fn share_campaigns<S: Store>(
    store: &S,
    holder: &str,
    held: &mut BTreeSet<String>,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Vec<Campaign>, StoreError> {
    store
        .try_lease(&format!("{MEMBER_LEASE}{holder}"), holder, now_ms, ttl_ms)
        .await?;
    let members = store.live_holders(MEMBER_LEASE, now_ms).await?.len();
    let campaigns = store.list_campaigns().await?;
    let names: BTreeSet<&str> = campaigns.iter().map(|c| c.name.as_str()).collect();
    let share = fair_share(campaigns.len(), members);
    let gone: Vec<String> = held
        .iter()
        .filter(|c| !names.contains(c.as_str()))
        .cloned()
        .collect();
    for c in gone.into_iter().chain(surplus(held, share)) {
        store.release_lease(&campaign_lease(&c), holder).await?;
        held.remove(&c);
    }
    for c in held.clone() {
        if !store
            .try_lease(&campaign_lease(&c), holder, now_ms, ttl_ms)
            .await?
        {
            tracing::warn!(campaign = %c, "lost a campaign's correlation lease");
            held.remove(&c);
        }
    }
    for c in &names {
        if held.len() >= share {
            break;
        }
        if !held.contains(*c)
            && store
                .try_lease(&campaign_lease(c), holder, now_ms, ttl_ms)
                .await?
        {
            held.insert(c.to_string());
        }
    }
    Ok(campaigns
        .into_iter()
        .filter(|c| held.contains(&c.name))
        .collect())
}

/// How one campaign's pass in the loop ended ([`correlate_campaigns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOutcome {
    Done(PassStats),
    /// The store (or a stored record) failed: logged, retried next pass.
    Failed,
    /// The pass panicked: caught, logged, counted in
    /// `darkwatch_correlation_panics_total`, retried next pass.
    Panicked,
}

/// One pass of the loop over the campaigns this collector holds, each on
/// its own: a pass that fails or panics (a bug in the correlation core
/// must not stop the loop, nor the other campaigns) is logged at error
/// level, the campaign's state is dropped (the next pass rebuilds it from
/// the store) and the loop goes on. A panic is counted in `metrics`.
#[allow(clippy::too_many_arguments)]
pub async fn correlate_campaigns<S: Store>(
    correlator: &mut Correlator,
    store: &S,
    campaigns: &[Campaign],
    settings: &CorrelationSettings,
    pfx2as: Option<&Pfx2As>,
    alerts: &Alerts,
    metrics: &Metrics,
    clock: &SharedClock,
) -> Vec<PassOutcome> {
    let mut outcomes = Vec::with_capacity(campaigns.len());
    for c in campaigns {
        let pass = correlator.pass(store, c, settings, pfx2as, clock.now_ms());
        let outcome = match std::panic::AssertUnwindSafe(pass).catch_unwind().await {
            Ok(Ok((_, events, stats))) => {
                if stats.rounds_loaded > 0 {
                    tracing::debug!(campaign = %c.name, loaded = stats.rounds_loaded, recomputed = stats.rounds_recomputed, rebuilt = stats.rebuilt, "incremental pass");
                }
                for e in events {
                    tracing::info!(event = %e.summary(), "verdict");
                    alerts.send(e);
                }
                PassOutcome::Done(stats)
            }
            Ok(Err(e)) => {
                // Start this campaign over from the store: the pass may
                // have stopped between loading rounds.
                correlator.states.remove(&c.name);
                tracing::error!(campaign = %c.name, error = %e, "correlation pass failed");
                PassOutcome::Failed
            }
            Err(panic) => {
                correlator.states.remove(&c.name);
                metrics.correlation_panic(&c.name);
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(campaign = %c.name, panic = %why, "correlation pass panicked; the campaign is rebuilt from the store at the next pass");
                PassOutcome::Panicked
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The correlation loop of `serve`: every `every_secs`, run a pass over
/// each campaign this collector holds the lease of (campaigns are shared
/// among the collectors on one database: [`share_campaigns`]), then delete
/// those campaigns' raw rounds past the retention.
pub async fn run<S: Store>(
    store: Arc<S>,
    settings: CorrelationSettings,
    retention: RetentionSettings,
    holder: String,
    alerts: Alerts,
    metrics: Arc<Metrics>,
    clock: SharedClock,
) {
    let pfx2as = settings
        .pfx2as
        .as_deref()
        .and_then(|p| load_pfx2as(p, "correlating"));
    let every = Duration::from_secs_f64(settings.every_secs.max(0.1));
    let ttl_ms = settings.lease_ttl_ms();
    let mut held = BTreeSet::new();
    let mut correlator = Correlator::default();
    loop {
        let was_correlating = !held.is_empty();
        match share_campaigns(store.as_ref(), &holder, &mut held, clock.now_ms(), ttl_ms).await {
            Ok(mine) => {
                correlator.retain(&held);
                if !was_correlating && !mine.is_empty() {
                    tracing::info!(holder = %holder, campaigns = mine.len(), "this collector now runs the correlation");
                } else if was_correlating && mine.is_empty() {
                    tracing::warn!("lost the correlator lease to another collector");
                }
                correlate_campaigns(
                    &mut correlator,
                    store.as_ref(),
                    &mine,
                    &settings,
                    pfx2as.as_ref(),
                    &alerts,
                    &metrics,
                    &clock,
                )
                .await;
                for c in &mine {
                    match purge_old_rounds(store.as_ref(), c, &retention, clock.now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(campaign = %c.name, rows = n, "deleted raw rounds past the retention")
                        }
                        Err(e) => {
                            tracing::error!(campaign = %c.name, error = %e, "retention failed")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot share the campaigns' correlation"),
        }
        tokio::time::sleep(every).await;
    }
}

/// A stored traceroute as the correlation core reads it (the batch pass and
/// the incremental feed alike). It ends in an ICMP unreachable when its last
/// answering hop said so: that VP's path ends there, as a router's error to
/// a probe says (see `localize`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredSpace;
    use darkwatch_schema::{BlockObservation, BlockSpace, BlockState, PackedBlock, PackedRound};

    fn campaign(prefixes: &[&str]) -> Campaign {
        Campaign {
            name: "kp".into(),
            country: Some("KP".into()),
            interval_secs: 60,
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            control: vec![],
            agents: vec![],
            generation: 1,
            created_ms: 0,
        }
    }

    fn record(
        agent: &str,
        round: u64,
        space: &BlockSpace,
        blocks: Vec<PackedBlock>,
    ) -> RoundRecord {
        let p = PackedRound::pack("kp", round, space, 1_000, (0, 1), blocks).unwrap();
        RoundRecord {
            agent: agent.into(),
            round,
            chunk: 0,
            space: p.space.clone(),
            blocks: p.blocks,
            ts_ms: p.ts_ms,
            data: p.compressed().unwrap(),
        }
    }

    /// Packed records decode into the same input as the same observations
    /// stored as rows, across two generations of the campaign's prefixes
    /// and mixed with rows from an agent that does not pack.
    #[test]
    fn packed_records_make_the_same_input_as_rows() {
        let old = campaign(&["198.18.0.0/22", "198.18.16.0/23"]);
        let new = campaign(&["198.18.0.0/22", "198.18.8.0/24", "2001:db8::/47"]);
        let (s_old, s_new) = (
            BlockSpace::new(&old.prefixes),
            BlockSpace::new(&new.prefixes),
        );
        let block = |i: u64, round: u64| PackedBlock {
            index: i,
            state: [BlockState::Up, BlockState::Down, BlockState::Uncertain]
                [((i + round) % 3) as usize],
            probes: (i % 4) as u32 + 1,
            replies: (i % 2) as u32,
            belief: 0,
            availability: 0,
        };
        let mut records = Vec::new();
        let mut rows = Vec::new();
        for round in 10..14u64 {
            let (space, agent) = if round < 12 {
                (&s_old, "a")
            } else {
                (&s_new, "b")
            };
            let blocks: Vec<PackedBlock> = (0..space.len())
                .filter(|i| (i + round) % 4 != 0)
                .map(|i| block(i, round))
                .collect();
            for b in &blocks {
                rows.push(AgentObservation {
                    agent: agent.into(),
                    obs: BlockObservation {
                        campaign: "kp".into(),
                        round,
                        block: space.block_at(b.index).unwrap(),
                        state: b.state,
                        probes: b.probes,
                        replies: b.replies,
                        belief: 0.0,
                        availability: 0.0,
                        control: false,
                        ts_ms: 1_000,
                    },
                });
            }
            records.push(record(agent, round, space, blocks));
        }
        // An old agent's rows, kept as rows on both sides.
        let plain = AgentObservation {
            agent: "c".into(),
            obs: BlockObservation {
                block: "198.18.8.0/24".parse().unwrap(),
                ..rows[0].obs.clone()
            },
        };
        rows.push(plain.clone());
        let spaces = Spaces::new(&[
            StoredSpace {
                digest: s_old.digest(),
                prefixes: old.prefixes.clone(),
            },
            StoredSpace {
                digest: s_new.digest(),
                prefixes: new.prefixes.clone(),
            },
        ]);
        let from_rows = Raw {
            rows,
            ..Raw::default()
        };
        let from_records = Raw {
            rows: vec![plain],
            records,
            ..Raw::default()
        };
        let sorted = |mut i: core::Input| {
            i.obs.sort_by_key(|o| (o.round, o.block, o.vp));
            i
        };
        let a = build_input(&new, 10..=13, &from_rows, &Spaces::default(), None).unwrap();
        let b = build_input(&new, 10..=13, &from_records, &spaces, None).unwrap();
        assert!(a.obs.len() >= 15, "{} observations", a.obs.len());
        assert_eq!(sorted(a.clone()), sorted(b));
        // Blocks outside today's prefixes (198.18.16.0/23 is gone) are left out.
        assert!(a
            .blocks
            .iter()
            .all(|b| new.prefixes.iter().any(|p| p.contains(&b.net))));
        assert_eq!(
            core::correlate(&a, &core::Params::default()),
            core::correlate(&sorted(a.clone()), &core::Params::default())
        );

        // A record naming a space the store does not know is corrupt.
        let unknown = Raw {
            records: vec![record("a", 10, &s_old, vec![block(0, 10)])],
            ..Raw::default()
        };
        assert!(matches!(
            build_input(&new, 10..=13, &unknown, &Spaces::default(), None),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn rounds_end_early_once_every_agent_reported() {
        let rep = |v: &[(u64, &str)]| {
            v.iter()
                .map(|(r, a)| (*r, a.to_string()))
                .collect::<Vec<_>>()
        };
        // Round 10 in progress, 8 complete by the clock.
        let all = rep(&[(8, "a"), (8, "b"), (9, "a"), (9, "b"), (10, "a"), (10, "b")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &all), Some(10));
        // b has not reported round 10 yet: round 9 is the last one both sent.
        let late = rep(&[(8, "a"), (8, "b"), (9, "a"), (9, "b"), (10, "a")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &late), Some(9));
        // Nobody reported 9 or 10 (collector down, agents spooling): wait for the clock.
        assert_eq!(
            last_round_to_correlate(Some(8), 10, &rep(&[(8, "a")])),
            Some(8)
        );
        // A new agent in round 10 does not hold it back; a missing one does.
        let joined = rep(&[(9, "a"), (10, "a"), (10, "c")]);
        assert_eq!(last_round_to_correlate(Some(8), 10, &joined), Some(10));
        assert_eq!(last_round_to_correlate(None, 0, &[]), None);
    }

    #[test]
    fn rounds_complete_after_half_an_interval_more() {
        // interval 10 s: round 5 spans [50 s, 60 s) and is complete at 65 s.
        assert_eq!(last_complete_round(64_999, 10), Some(4));
        assert_eq!(last_complete_round(65_000, 10), Some(5));
        assert_eq!(last_complete_round(1_000, 10), None);
    }

    #[test]
    fn campaigns_are_shared_evenly_and_handed_back_by_name() {
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(1, 2), 1);
        assert_eq!(fair_share(3, 0), 3);
        assert_eq!(fair_share(0, 3), 0);
        let held: BTreeSet<String> = ["d", "a", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(surplus(&held, 1), ["c", "d"]);
        assert!(surplus(&held, 3).is_empty());
    }

    #[test]
    fn retention_keeps_the_rounds_of_the_last_raw_days() {
        let r = RetentionSettings { raw_days: 2 };
        let day = 86_400_000i64;
        // 60 s rounds: two days are 2,880 rounds.
        assert_eq!(r.first_kept_round(10 * day, 60), 8 * 1440);
        assert_eq!(r.first_kept_round(day, 60), 0);
        assert!(r.validate().is_ok());
        assert!(RetentionSettings { raw_days: 0 }.validate().is_err());
        assert_eq!(RetentionSettings::default().raw_days, 30);
    }

    #[test]
    fn lease_ttl_is_configured_or_three_passes() {
        let mut s = CorrelationSettings {
            every_secs: 2.0,
            ..Default::default()
        };
        assert_eq!(s.lease_ttl_ms(), 6000);
        s.every_secs = 0.5;
        assert_eq!(s.lease_ttl_ms(), 3000);
        s.lease_ttl_secs = Some(1.5);
        assert_eq!(s.lease_ttl_ms(), 1500);
    }
}
