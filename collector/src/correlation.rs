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

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use darkwatch_correlate as core;
use darkwatch_schema::round_of;
use ipnet::IpNet;
use serde::Deserialize;

use crate::alerts::{AlertEvent, Alerts};
use crate::clock::SharedClock;
use crate::reconcile::{reconcile, EventKind, Window};
use crate::store::{
    AgentObservation, AgentProbeErrors, AgentTrace, Campaign, RoundRecord, Spaces, Store,
    StoreError, Verdict,
};
use darkwatch_schema::inputs::{self, pfx2as::Pfx2As};

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
        .filter_map(|t| {
            Some(core::TraceObs {
                vp: vp_id(&t.agent)?,
                round: t.trace.round,
                target: t.trace.target,
                responding: t
                    .trace
                    .hops
                    .iter()
                    .filter_map(|h| h.addr)
                    .collect::<Vec<IpAddr>>(),
                reached: t.trace.reached,
                unreachable: t
                    .trace
                    .hops
                    .iter()
                    .rev()
                    .find(|h| h.addr.is_some())
                    .is_some_and(|h| h.unreachable.is_some()),
            })
        })
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
        // Contiguous runs of changed rounds, read a few rounds at a time.
        let mut spaces: Option<Spaces> = None;
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
            if !raw.records.is_empty() && spaces.is_none() {
                spaces = Some(Spaces::new(&store.block_spaces(&campaign.name).await?));
            }
            let empty = Spaces::default();
            let input = build_input(
                campaign,
                rounds.clone(),
                &raw,
                spaces.as_ref().unwrap_or(&empty),
                pfx2as,
            )?;
            feed(st, &input, start, end);
            for r in rounds {
                match now.get(&r) {
                    Some(&v) => st.versions.insert(r, v),
                    None => st.versions.remove(&r),
                };
            }
            stats.rounds_loaded += (end - start + 1) as usize;
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

/// Hands rounds `start..=end` of `input` (built from the store for those
/// rounds) to the engine, each round whole (a round without reports now is
/// withdrawn).
fn feed(st: &mut CampaignState, input: &core::Input, start: u64, end: u64) {
    let ids: Vec<u32> = input
        .blocks
        .iter()
        .map(|b| match st.block_ids.get(&b.net) {
            Some(&id) => id,
            None => {
                let id = st
                    .engine
                    .add_block(b.net, b.prefix)
                    .expect("build_input gives blocks of known prefixes");
                st.block_ids.insert(b.net, id);
                id
            }
        })
        .collect();
    let n = (end - start + 1) as usize;
    let mut obs: Vec<Vec<core::Obs>> = vec![Vec::new(); n];
    for o in &input.obs {
        if let Some(r) = o.round.checked_sub(start).filter(|&r| r < n as u64) {
            obs[r as usize].push(core::Obs {
                block: ids[o.block as usize],
                ..*o
            });
        }
    }
    let mut control: Vec<Vec<core::ControlObs>> = vec![Vec::new(); n];
    for c in &input.control {
        if let Some(r) = c.round.checked_sub(start).filter(|&r| r < n as u64) {
            control[r as usize].push(*c);
        }
    }
    let mut traces: Vec<Vec<core::TraceObs>> = vec![Vec::new(); n];
    for t in &input.traces {
        if let Some(r) = t.round.checked_sub(start).filter(|&r| r < n as u64) {
            traces[r as usize].push(t.clone());
        }
    }
    let mut errors: Vec<Vec<core::ProbeErrorObs>> = vec![Vec::new(); n];
    for e in &input.probe_errors {
        if let Some(r) = e.round.checked_sub(start).filter(|&r| r < n as u64) {
            errors[r as usize].push(e.clone());
        }
    }
    for (i, (((o, c), t), e)) in obs
        .iter()
        .zip(&control)
        .zip(&traces)
        .zip(&errors)
        .enumerate()
    {
        st.engine
            .update_round(start + i as u64, &input.vps, o, c, t, e);
    }
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
                for c in &mine {
                    match correlator
                        .pass(
                            store.as_ref(),
                            c,
                            &settings,
                            pfx2as.as_ref(),
                            clock.now_ms(),
                        )
                        .await
                    {
                        Ok((_, events, stats)) => {
                            if stats.rounds_loaded > 0 {
                                tracing::debug!(campaign = %c.name, loaded = stats.rounds_loaded, recomputed = stats.rounds_recomputed, rebuilt = stats.rebuilt, "incremental pass");
                            }
                            for e in events {
                                tracing::info!(event = %e.summary(), "verdict");
                                alerts.send(e);
                            }
                        }
                        Err(e) => {
                            // Start this campaign over from the store: the
                            // pass may have stopped between loading rounds.
                            correlator.states.remove(&c.name);
                            tracing::error!(campaign = %c.name, error = %e, "correlation pass failed")
                        }
                    }
                }
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
