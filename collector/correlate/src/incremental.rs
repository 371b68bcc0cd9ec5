//! Incremental correlation: the same verdicts, summaries and timeline as
//! [`crate::correlate`] over a window of rounds, at a cost per update in
//! proportion to the rounds that changed rather than to the window.
//!
//! # The split
//!
//! The batch pipeline has two kinds of steps:
//!
//! - **Per-round, per-block** (the costly part, blocks × VPs a round): the
//!   grid of one round, its consensus (state of each block from the healthy
//!   VPs), its flap and loss marks, and the per-prefix totals (`Agg`) that
//!   every later step reads. [`Incremental`] keeps, per round, the raw cells
//!   of that round ([`RoundRaw`]) and this stage's result ([`Product`]).
//! - **Per-window, per-scope** (cheap: rounds × VPs or rounds × scopes):
//!   VP health (from each VP's round totals), verdict hysteresis, partial
//!   baselines, instability, localization, fault runs, the timeline and the
//!   summaries' consensus totals. These are recomputed from the cached
//!   products on every [`Incremental::output`], with the batch code itself.
//!
//! # Why the split is exact
//!
//! A round's product depends on three things only:
//! 1. that round's observations (cells and losses);
//! 2. which VPs are healthy in that round (a window-stage result, recomputed
//!    each time and compared with the row the product was computed with);
//! 3. its *flaps*: a healthy VP's judged state of a block differs from that
//!    VP's previous judged state in a healthy round of the window. Everything
//!    else of the product is a function of (1) and (2), and the flaps are
//!    kept in the product, so a product is valid iff (1), (2) and its flap
//!    set are unchanged.
//!
//! The flaps of round `r` depend on the "last judged state" of every (VP,
//! block) before `r` in the window. [`Incremental::output`] walks the window
//! and recomputes exactly the products whose inputs changed:
//! - from the earliest round whose data or health row changed to the latest
//!   one ("full mode"), it carries the complete last-state array and
//!   recomputes each round whose flaps (or data, or health) differ;
//! - after that, the new and the old last states can differ only at the
//!   (VP, block) positions not judged since ("D-mode"): each later round is
//!   checked at those positions only (its stored flaps elsewhere are still
//!   right), and the set shrinks as they are judged again, usually to
//!   nothing within one round; then the walk stops.
//! - the window's start sliding forward (`set_window`) empties the last
//!   states at the new first round: the same D-mode check from there.
//! - new rounds after the last walked round continue from the last-state
//!   array kept at that round ([`Incremental`]'s tail), patched at the
//!   positions still in D.
//!
//! The window stage then runs the batch code on the per-prefix totals, so
//! verdicts, summaries and timeline are those of `correlate` over the same
//! rounds; `tests::incremental` checks this on random timelines with late,
//! missing and replaced rounds, VP faults, flapping and traces.
//!
//! What it costs: an update with a new last round and the window sliding by
//! one recomputes about two rounds (blocks × VPs each) plus the window stage
//! (rounds × (VPs + scopes)). A late round recomputes the rounds from it to
//! the point where the last states agree again (usually the next round),
//! plus a backward scan to rebuild the last states it starts from. Memory:
//! the window's cells, packed (two bits per VP, block and round, plus the
//! loss cells that are not "one probe, answered": a byte each, their
//! blocks listed or, past one in 32, a bitset), and per-round products
//! (per prefix, not per block).

use std::collections::{BTreeMap, HashMap};

use darkwatch_schema::BlockState;

use crate::consensus::{Agg, Consensus};
use crate::grid::{add_loss, code, VpRound, VpRounds, DOWN, NONE, STATE, UNCERTAIN, UP};
use crate::health::{self, Health};
use crate::scopes::{prefix_blocks, Scopes};
use crate::summaries::{self, Layout};
use crate::verdicts::{self, Evidence};
use crate::{
    localize, timeline, ControlObs, CorrelateError, Input, Obs, Output, Params, PrefixInfo,
    ProbeErrorObs, Summaries, TraceObs, VpId,
};

/// One VP's cells and losses of one round (as in the batch grid), packed:
/// two bits of state per block, and the loss cells that differ from what
/// the state implies (one probe answered for an up block, nothing
/// otherwise) as exceptions. About a quarter of a byte per block for a
/// typical round, instead of two.
#[derive(Debug, Clone)]
struct Row {
    len: usize,
    states: Vec<u8>,
    /// Blocks whose loss cell is not the usual one, ascending.
    odd: OddBlocks,
    /// Their loss cells, in the same order.
    odd_loss: Vec<u8>,
}

/// Which blocks of a row have an unusual loss cell: a list when few do,
/// a bitset when more than one in 32 do (a typical round retries a
/// block's probe now and then: a list of 4 bytes per such block would
/// then cost more than the cells).
#[derive(Debug, Clone)]
enum OddBlocks {
    List(Vec<u32>),
    Bits(Vec<u64>),
}

/// The loss cell a block of this state usually has: one probe, answered,
/// for an up block; none for the others (down reports add no loss).
fn usual_loss(state: u8) -> u8 {
    if state == UP {
        0x10
    } else {
        0
    }
}

impl Row {
    fn pack(cells: &[u8], loss: &[u8]) -> Row {
        let mut states = vec![0u8; cells.len().div_ceil(4)];
        let mut list = Vec::new();
        let mut odd_loss = Vec::new();
        for (b, (&c, &l)) in cells.iter().zip(loss).enumerate() {
            let s = c & STATE;
            states[b / 4] |= s << ((b % 4) * 2);
            if l != usual_loss(s) {
                list.push(b as u32);
                odd_loss.push(l);
            }
        }
        let odd = if list.len() > cells.len() / 32 {
            let mut bits = vec![0u64; cells.len().div_ceil(64)];
            for &b in &list {
                bits[b as usize / 64] |= 1 << (b % 64);
            }
            OddBlocks::Bits(bits)
        } else {
            list.shrink_to_fit();
            OddBlocks::List(list)
        };
        odd_loss.shrink_to_fit();
        Row {
            len: cells.len(),
            states,
            odd,
            odd_loss,
        }
    }

    /// State of block `b` (`NONE` for a block added after the row).
    fn state(&self, b: usize) -> u8 {
        if b >= self.len {
            NONE
        } else {
            (self.states[b / 4] >> ((b % 4) * 2)) & STATE
        }
    }

    fn cells(&self) -> Vec<u8> {
        let mut cells = Vec::with_capacity(self.len);
        for &byte in &self.states {
            for k in 0..4 {
                cells.push((byte >> (k * 2)) & STATE);
            }
        }
        cells.truncate(self.len);
        cells
    }

    /// Cells and loss cells, unpacked.
    fn unpack(&self) -> (Vec<u8>, Vec<u8>) {
        let cells = self.cells();
        let mut loss: Vec<u8> = cells.iter().map(|&s| usual_loss(s)).collect();
        let mut values = self.odd_loss.iter();
        match &self.odd {
            OddBlocks::List(list) => {
                for (&b, &l) in list.iter().zip(values) {
                    loss[b as usize] = l;
                }
            }
            OddBlocks::Bits(bits) => {
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        let b = w * 64 + word.trailing_zeros() as usize;
                        word &= word - 1;
                        loss[b] = *values.next().expect("one loss cell per odd block");
                    }
                }
            }
        }
        (cells, loss)
    }
}

/// What one round's reports are, independent of any other round. Vectors
/// indexed by VP use the engine's internal VP ids (first seen, first
/// numbered) and may be shorter than the current number of VPs.
#[derive(Debug, Clone, Default)]
struct RoundRaw {
    rows: Vec<Option<Row>>,
    vp_rounds: Vec<VpRound>,
    /// VPs with any observation, control observation or trace.
    present: Vec<bool>,
    traces: Vec<TraceObs>,
    /// Routers' ICMP errors to the round's probes (localization only).
    probe_errors: Vec<ProbeErrorObs>,
    /// Per-VP summary totals, `[vp * per_vp_scopes + scope]`.
    per_vp: Vec<summaries::Totals>,
    /// Per prefix: probes and replies of every VP.
    prefix_probes: Vec<(u64, u64)>,
    skipped: usize,
    /// Sum of the observations' digest shares (`None`: no observation).
    digest_sum: Option<u64>,
}

impl RoundRaw {
    fn row(&self, v: usize) -> Option<&Row> {
        self.rows.get(v).and_then(Option::as_ref)
    }

    fn vp_round(&self, v: usize) -> VpRound {
        self.vp_rounds.get(v).copied().unwrap_or_default()
    }

    fn present(&self, v: usize) -> bool {
        self.present.get(v).copied().unwrap_or(false)
    }
}

/// The per-round stage's result for one round (see the module docs).
#[derive(Debug, Clone, PartialEq)]
struct Product {
    /// Healthy VPs it was computed with (internal ids).
    healthy: Vec<bool>,
    /// Per internal VP: blocks it saw flap (sorted).
    flaps: Vec<Vec<u32>>,
    /// Per prefix.
    aggs: Vec<Agg>,
    /// Blocks with a consensus (up or down), as a bitset.
    judged: Vec<u64>,
    /// Per internal VP: prefixes where it saw a block down (sorted).
    down: Vec<Vec<u32>>,
    /// Per internal healthy VP: (prefix, blocks it marked flapping or lossy).
    marks: Vec<Vec<(u32, u32)>>,
}

#[derive(Debug, Clone)]
struct Slot {
    raw: RoundRaw,
    /// Data replaced since the product was computed.
    dirty: bool,
    product: Option<Product>,
}

/// Incremental correlation of one campaign (see the module docs).
pub struct Incremental {
    params: Params,
    target: String,
    is_country: bool,
    prefixes: Vec<PrefixInfo>,
    nb: usize,
    block_prefix: Vec<u32>,
    prefix_blocks: Vec<Vec<u32>>,
    layout: Layout,
    digest_header: u64,
    block_hash: Vec<u64>,
    vp_names: Vec<String>,
    vp_hash: Vec<u64>,
    vp_index: HashMap<String, u32>,
    slots: BTreeMap<u64, Slot>,
    first: u64,
    last: u64,
    /// The window's first round at the last walk.
    walked_first: Option<u64>,
    /// The last walked round, the number of blocks then, and the last
    /// judged state of every (VP, block) after it, `[vp * blocks + block]`.
    tail: Option<(u64, usize, Vec<u8>)>,
    /// Rounds whose product was (re)computed by the last `output`.
    recomputed: usize,
}

/// Grows `v` to `n` entries of `fill` (rows of later-seen VPs).
fn at_least<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

impl Incremental {
    /// An engine for the campaign described by `campaign`'s target,
    /// prefixes and blocks (its observations, VPs and window are ignored).
    pub fn new(campaign: &Input, params: &Params) -> Result<Incremental, CorrelateError> {
        params.validate()?;
        for (i, b) in campaign.blocks.iter().enumerate() {
            if b.prefix as usize >= campaign.prefixes.len() {
                return Err(CorrelateError::BlockPrefix {
                    block: i,
                    prefix: b.prefix,
                    count: campaign.prefixes.len(),
                });
            }
        }
        let np = campaign.prefixes.len();
        let prefix_blocks = prefix_blocks(np, &campaign.blocks);
        // The layout depends on the scopes' definitions, not their data.
        let empty = Consensus {
            prefix_aggs: vec![],
            prefix_judged_blocks: vec![0; np],
        };
        let scopes = Scopes::from_parts(
            &campaign.target,
            campaign.is_country,
            &campaign.prefixes,
            vec![],
            0,
            empty,
        );
        let layout = summaries::layout(&campaign.prefixes, &scopes, params);
        Ok(Incremental {
            params: params.clone(),
            target: campaign.target.clone(),
            is_country: campaign.is_country,
            prefixes: campaign.prefixes.clone(),
            nb: campaign.blocks.len(),
            block_prefix: campaign.blocks.iter().map(|b| b.prefix).collect(),
            prefix_blocks,
            layout,
            digest_header: summaries::digest_header(campaign, params),
            block_hash: campaign
                .blocks
                .iter()
                .map(|b| summaries::net_hash(&b.net))
                .collect(),
            vp_names: vec![],
            vp_hash: vec![],
            vp_index: HashMap::new(),
            slots: BTreeMap::new(),
            first: 0,
            last: 0,
            walked_first: None,
            tail: None,
            recomputed: 0,
        })
    }

    /// The window `output` judges: rounds `first..=last`. Data of rounds
    /// before `first` is dropped; rounds after `last` are kept, not judged.
    pub fn set_window(&mut self, first: u64, last: u64) -> Result<(), CorrelateError> {
        if first > last {
            return Err(CorrelateError::InvertedWindow { first, last });
        }
        if self.tail.as_ref().is_some_and(|t| t.0 > last) {
            // The window went back: start over.
            self.reset();
        }
        self.slots = self.slots.split_off(&first);
        self.first = first;
        self.last = last;
        Ok(())
    }

    /// The window set last.
    pub fn window(&self) -> (u64, u64) {
        (self.first, self.last)
    }

    /// Rounds holding data (any round, judged or not).
    pub fn rounds_held(&self) -> usize {
        self.slots.len()
    }

    /// Rounds whose per-round stage the last `output` recomputed.
    pub fn recomputed(&self) -> usize {
        self.recomputed
    }

    fn reset(&mut self) {
        for s in self.slots.values_mut() {
            s.product = None;
        }
        self.tail = None;
        self.walked_first = None;
    }

    /// Adds a block of prefix `prefix` (an index into the campaign's
    /// prefixes) and returns its id, for observations that name it. Blocks
    /// may be added at any time (the ids need not follow any order): rounds
    /// stored before hold no report of it.
    pub fn add_block(&mut self, net: ipnet::IpNet, prefix: u32) -> Result<u32, CorrelateError> {
        if prefix as usize >= self.prefixes.len() {
            return Err(CorrelateError::BlockPrefix {
                block: self.nb,
                prefix,
                count: self.prefixes.len(),
            });
        }
        let id = self.nb as u32;
        self.nb += 1;
        self.block_prefix.push(prefix);
        self.prefix_blocks[prefix as usize].push(id);
        self.block_hash.push(summaries::net_hash(&net));
        Ok(id)
    }

    /// Blocks known (their ids are `0..blocks()`).
    pub fn blocks(&self) -> usize {
        self.nb
    }

    fn vp_id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.vp_index.get(name) {
            return i;
        }
        let i = self.vp_names.len() as u32;
        self.vp_names.push(name.to_string());
        self.vp_hash.push(summaries::name_hash(name));
        self.vp_index.insert(name.to_string(), i);
        i
    }

    /// Replaces everything known of `round` with these reports (every VP's:
    /// a late agent's round is passed with the others' of that round).
    /// `vps` names the VPs that `obs`, `control`, `traces` and
    /// `probe_errors` refer to;
    /// observations of another round, unknown VPs or unknown blocks are
    /// skipped and counted, as `correlate` does. A round before the window
    /// is ignored. The same as giving them one by one to [`Incremental::round`].
    pub fn update_round(
        &mut self,
        round: u64,
        vps: &[String],
        obs: &[Obs],
        control: &[ControlObs],
        traces: &[TraceObs],
        probe_errors: &[ProbeErrorObs],
    ) {
        if round < self.first {
            return;
        }
        let mut input = self.round(round);
        let ids: Vec<u32> = vps.iter().map(|n| input.vp(n)).collect();
        for o in obs {
            match ids.get(o.vp as usize) {
                Some(&v) if o.round == round => {
                    input.observe(v, o.block, o.state, o.probes, o.replies)
                }
                _ => input.skip(),
            }
        }
        for c in control {
            match ids.get(c.vp as usize) {
                Some(&v) if c.round == round => input.control(v, c.state),
                _ => input.skip(),
            }
        }
        for t in traces {
            if let Some(&v) = ids.get(t.vp as usize).filter(|_| t.round == round) {
                input.trace(v, t);
            }
        }
        // As in `correlate`, probe errors are localization evidence only:
        // they neither make a VP present nor enter the round's digest.
        for e in probe_errors {
            if let Some(&v) = ids.get(e.vp as usize).filter(|_| e.round == round) {
                input.probe_error(v, e);
            }
        }
        input.finish();
    }

    /// Starts replacing everything known of `round` (every VP's reports of
    /// it): give them to the [`RoundInput`] one by one, in any order, then
    /// [`RoundInput::finish`]. What [`Incremental::update_round`] does with
    /// lists, without building them: a caller that decodes stored rounds
    /// feeds each block straight in. Dropping the input unfinished changes
    /// nothing; a round before the window is ignored.
    pub fn round(&mut self, round: u64) -> RoundInput<'_> {
        let np = self.prefixes.len();
        RoundInput {
            engine: self,
            round,
            raw: RoundRaw {
                prefix_probes: vec![(0, 0); np],
                ..RoundRaw::default()
            },
            dense: Vec::new(),
            vp_prefix: Vec::new(),
            sum: None,
        }
    }

    /// Stores a round built by a [`RoundInput`].
    fn put_round(&mut self, round: u64, raw: RoundRaw) {
        if round < self.first {
            return;
        }
        let has_any = raw.present.iter().any(|&p| p) || raw.skipped > 0;
        let walked = self.tail.as_ref().is_some_and(|t| round <= t.0);
        if !has_any {
            if self.slots.remove(&round).is_some() && walked {
                // The last states after it change everywhere: start over.
                self.reset();
            }
            return;
        }
        self.slots.insert(
            round,
            Slot {
                raw,
                dirty: true,
                product: None,
            },
        );
    }

    /// Per round of the window, the fingerprint [`crate::round_digests`]
    /// gives for the same observations.
    pub fn round_digests(&self) -> Vec<u64> {
        (self.first..=self.last)
            .map(|r| {
                summaries::finish_digest(
                    self.digest_header,
                    self.slots.get(&r).and_then(|s| s.raw.digest_sum),
                )
            })
            .collect()
    }

    /// Names of the VPs with data in the window, sorted: the VPs of the
    /// output (as `Input::vps` for `correlate`).
    pub fn vps(&self) -> Vec<String> {
        let (_, names) = self.window_vps();
        names
    }

    /// Internal ids of the window's VPs in output order, and their names.
    fn window_vps(&self) -> (Vec<usize>, Vec<String>) {
        let nvi = self.vp_names.len();
        let mut present = vec![false; nvi];
        for s in self.slots.range(self.first..=self.last).map(|x| x.1) {
            for (v, p) in present.iter_mut().enumerate() {
                *p |= s.raw.present(v);
            }
        }
        let mut ids: Vec<usize> = (0..nvi).filter(|&v| present[v]).collect();
        ids.sort_by(|&a, &b| self.vp_names[a].cmp(&self.vp_names[b]));
        let names = ids.iter().map(|&v| self.vp_names[v].clone()).collect();
        (ids, names)
    }

    /// Verdicts, faults, timeline and summaries of the window, identical to
    /// `correlate` over the window's observations.
    pub fn output(&mut self) -> Output {
        let (first, last) = (self.first, self.last);
        let nr = (last - first + 1) as usize;
        let (out_ids, names) = self.window_vps();
        let nvo = out_ids.len();
        let nvi = self.vp_names.len();
        let mut vp_rounds = vec![VpRound::default(); nr * nvo];
        for (&round, s) in self.slots.range(first..=last) {
            let r = (round - first) as usize;
            for (o, &v) in out_ids.iter().enumerate() {
                vp_rounds[r * nvo + o] = s.raw.vp_round(v);
            }
        }
        let view = VpRounds {
            rounds: nr,
            vps: nvo,
            first_round: first,
            data: &vp_rounds,
        };
        let health = health::assess(view, &self.params);
        let healthy_int = |round: u64| -> Vec<bool> {
            let r = (round - first) as usize;
            let mut h = vec![false; nvi];
            for (o, &v) in out_ids.iter().enumerate() {
                h[v] = health.healthy(r, o);
            }
            h
        };
        self.walk(&healthy_int);

        // The window stage: the batch steps over the cached products.
        let np = self.prefixes.len();
        let mut products: Vec<Option<&Product>> = vec![None; nr];
        let mut prefix_aggs = vec![Agg::default(); np * nr];
        let mut ever = vec![0u64; self.nb.div_ceil(64)];
        let mut traces = Vec::new();
        let mut probe_errors = Vec::new();
        let mut skipped = 0;
        let mut out_of_int = vec![u32::MAX; nvi];
        for (o, &v) in out_ids.iter().enumerate() {
            out_of_int[v] = o as u32;
        }
        for (&round, s) in self.slots.range(first..=last) {
            let r = (round - first) as usize;
            let p = s.product.as_ref().expect("walked");
            products[r] = Some(p);
            for (q, a) in p.aggs.iter().enumerate() {
                prefix_aggs[q * nr + r] = *a;
            }
            for (e, j) in ever.iter_mut().zip(&p.judged) {
                *e |= j;
            }
            skipped += s.raw.skipped;
            traces.extend(s.raw.traces.iter().map(|t| TraceObs {
                vp: out_of_int[t.vp as usize],
                ..t.clone()
            }));
            probe_errors.extend(s.raw.probe_errors.iter().map(|e| ProbeErrorObs {
                vp: out_of_int[e.vp as usize],
                ..e.clone()
            }));
        }
        let mut prefix_judged_blocks = vec![0u32; np];
        for (b, &p) in self.block_prefix.iter().enumerate() {
            if ever[b / 64] >> (b % 64) & 1 != 0 {
                prefix_judged_blocks[p as usize] += 1;
            }
        }
        let scopes = Scopes::from_parts(
            &self.target,
            self.is_country,
            &self.prefixes,
            self.prefix_blocks.clone(),
            nr,
            Consensus {
                prefix_aggs,
                prefix_judged_blocks,
            },
        );
        let evidence = Cached {
            first_round: first,
            products: &products,
            out_ids: &out_ids,
            np,
        };
        let mut detected = verdicts::detect(&names, &evidence, &health, &scopes, &self.params);
        for d in &mut detected {
            d.verdict.localization =
                localize::localize(&names, &traces, &probe_errors, last, d, &scopes);
        }
        let empty: &[(u64, u64)] = &[];
        let raws: Vec<Option<&RoundRaw>> = (first..=last)
            .map(|r| self.slots.get(&r).map(|s| &s.raw))
            .collect();
        let consensus = summaries::consensus_totals(&self.layout, &scopes, nr, |r| {
            raws[r].map_or(empty, |x| &x.prefix_probes[..])
        });
        let pvs = self.layout.per_vp_scopes;
        let mut per_vp = vec![summaries::Totals::default(); nr * nvo * pvs];
        for (r, raw) in raws.iter().enumerate() {
            let Some(raw) = raw else { continue };
            for (o, &v) in out_ids.iter().enumerate() {
                if let Some(t) = raw.per_vp.get(v * pvs..(v + 1) * pvs) {
                    per_vp[(r * nvo + o) * pvs..(r * nvo + o + 1) * pvs].copy_from_slice(t);
                }
            }
        }
        let summaries = Summaries {
            first_round: first,
            rounds: nr,
            scopes: self.layout.list.iter().map(|(s, _)| s.clone()).collect(),
            per_vp_scopes: pvs,
            vps: nvo,
            consensus,
            per_vp,
        };
        Output {
            verdicts: detected.into_iter().map(|d| d.verdict).collect(),
            vp_faults: health::fault_runs(&names, view, &health),
            timeline: timeline::build(view, &scopes),
            skipped_observations: skipped,
            summaries,
        }
    }

    /// Brings every product of the window up to date (see the module docs).
    fn walk(&mut self, healthy_of: &dyn Fn(u64) -> Vec<bool>) {
        let (first, last, nb) = (self.first, self.last, self.nb);
        let nvi = self.vp_names.len();
        let mut recomputed = 0;
        let rounds: Vec<u64> = self.slots.range(first..=last).map(|x| *x.0).collect();
        let health: HashMap<u64, Vec<bool>> = rounds.iter().map(|&r| (r, healthy_of(r))).collect();
        if let Some((_, at, t)) = self.tail.as_mut() {
            if *at != nb {
                // Blocks were added: the same states, laid out anew.
                let mut grown = vec![NONE; nvi * nb];
                // None known before (a campaign's first rounds may come
                // before its agents found any block): nothing to carry.
                if *at > 0 {
                    for (v, old) in t.chunks(*at).enumerate().take(nvi) {
                        grown[v * nb..v * nb + old.len()].copy_from_slice(old);
                    }
                }
                *t = grown;
                *at = nb;
            }
        }
        let tail_round = self.tail.as_ref().map(|t| t.0);
        let changed = |s: &Slot, h: &[bool]| {
            s.dirty
                || s.product
                    .as_ref()
                    .is_none_or(|p| !same_health(&p.healthy, h))
        };
        // Rounds walked before (up to the tail) and which of them changed.
        let old: Vec<u64> = match tail_round {
            Some(t) => rounds.iter().copied().filter(|&r| r <= t).collect(),
            None => vec![],
        };
        let changed_old: Vec<u64> = old
            .iter()
            .copied()
            .filter(|r| changed(&self.slots[r], &health[r]))
            .collect();
        let slide = self.walked_first != Some(first);
        let mut cur = vec![NONE; nvi * nb];
        if tail_round.is_some() {
            let mut i = 0;
            if let (Some(&s), Some(&e)) = (changed_old.first(), changed_old.last()) {
                // Full mode from the window start (slid) or the first change.
                let start = if slide {
                    first
                } else {
                    self.last_states_before(s, &health, &mut cur);
                    s
                };
                while i < old.len() && old[i] < start {
                    i += 1;
                }
                while i < old.len() && old[i] <= e {
                    let r = old[i];
                    let h = &health[&r];
                    let slot = &self.slots[&r];
                    let flaps = full_flaps(&slot.raw, h, &mut cur, nb);
                    let stale =
                        changed(slot, h) || slot.product.as_ref().is_none_or(|p| p.flaps != flaps);
                    if stale {
                        let p = self.compute(r, h, flaps);
                        self.slots.get_mut(&r).expect("round").product = Some(p);
                        recomputed += 1;
                    }
                    i += 1;
                }
            } else if !slide {
                // Nothing changed among the walked rounds: the tail stands.
                i = old.len();
            }
            // D-mode over the rest of the walked rounds.
            let words = nb.div_ceil(64);
            let mut d: Vec<Vec<u64>> = vec![full_bits(nb, words); nvi];
            let mut d_count = vec![nb; nvi];
            if i == old.len() && changed_old.is_empty() && !slide {
                d_count.fill(0);
            }
            while i < old.len() && d_count.iter().any(|&c| c > 0) {
                let r = old[i];
                let h = &health[&r];
                let slot = &self.slots[&r];
                let product = slot.product.as_ref().expect("walked");
                let mut new_flaps: Option<Vec<Vec<u32>>> = None;
                for v in 0..nvi {
                    if d_count[v] == 0 || !h.get(v).copied().unwrap_or(false) {
                        continue;
                    }
                    let Some(row) = slot.raw.row(v) else { continue };
                    let mut qualified = Vec::new();
                    let mut flapped = Vec::new();
                    for (w, word) in d[v].iter_mut().enumerate() {
                        let mut bits = *word;
                        while bits != 0 {
                            let b = w * 64 + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            let s = cell(row, b);
                            if s == UP || s == DOWN {
                                let p = v * nb + b;
                                if cur[p] != NONE && cur[p] != s {
                                    flapped.push(b as u32);
                                }
                                cur[p] = s;
                                qualified.push(b as u32);
                                *word &= !(1u64 << (b % 64));
                            }
                        }
                    }
                    d_count[v] -= qualified.len();
                    if qualified.is_empty() {
                        continue;
                    }
                    let old_v = product.flaps.get(v).map(Vec::as_slice).unwrap_or(&[]);
                    let mut merged: Vec<u32> = old_v
                        .iter()
                        .copied()
                        .filter(|b| qualified.binary_search(b).is_err())
                        .chain(flapped)
                        .collect();
                    merged.sort_unstable();
                    if merged != old_v {
                        let nf = new_flaps.get_or_insert_with(|| {
                            let mut f = product.flaps.clone();
                            at_least(&mut f, nvi, Vec::new());
                            f
                        });
                        nf[v] = merged;
                    }
                }
                if let Some(flaps) = new_flaps {
                    let p = self.compute(r, h, flaps);
                    self.slots.get_mut(&r).expect("round").product = Some(p);
                    recomputed += 1;
                }
                i += 1;
            }
            // The new tail: the old one, except where D still holds.
            let (_, _, tail) = self.tail.as_mut().expect("tail");
            at_least(tail, nvi * nb, NONE);
            for v in 0..nvi {
                if d_count[v] == 0 {
                    continue;
                }
                for (w, &word) in d[v].iter().enumerate() {
                    let mut bits = word;
                    while bits != 0 {
                        let b = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        tail[v * nb + b] = cur[v * nb + b];
                    }
                }
            }
            if old.is_empty() {
                // Nothing walked is left in the window: no last states.
                tail.fill(NONE);
            }
            cur = std::mem::take(tail);
        }
        // New rounds: full mode from the tail.
        let mut tail_round = self.tail.as_ref().map(|t| t.0);
        for &r in &rounds {
            if tail_round.is_some_and(|t| r <= t) {
                continue;
            }
            let h = &health[&r];
            let flaps = full_flaps(&self.slots[&r].raw, h, &mut cur, nb);
            let p = self.compute(r, h, flaps);
            self.slots.get_mut(&r).expect("round").product = Some(p);
            recomputed += 1;
            tail_round = Some(r);
        }
        for &r in &rounds {
            self.slots.get_mut(&r).expect("round").dirty = false;
        }
        self.tail = tail_round.map(|t| (t, nb, cur));
        self.walked_first = Some(first);
        self.recomputed = recomputed;
    }

    /// The last judged state of every (VP, block) before round `round` in
    /// the window (healthy rounds only), scanning back from it.
    fn last_states_before(&self, round: u64, health: &HashMap<u64, Vec<bool>>, cur: &mut [u8]) {
        let (nb, nvi) = (self.nb, self.vp_names.len());
        let words = nb.div_ceil(64);
        let mut open: Vec<Vec<u64>> = vec![full_bits(nb, words); nvi];
        let mut left = vec![nb; nvi];
        cur.fill(NONE);
        for (r, slot) in self.slots.range(self.first..round).rev() {
            if left.iter().all(|&l| l == 0) {
                break;
            }
            let h = &health[r];
            for v in 0..nvi {
                if left[v] == 0 || !h.get(v).copied().unwrap_or(false) {
                    continue;
                }
                let Some(row) = slot.raw.row(v) else { continue };
                for (w, word) in open[v].iter_mut().enumerate() {
                    let mut bits = *word;
                    while bits != 0 {
                        let b = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let s = cell(row, b);
                        if s == UP || s == DOWN {
                            cur[v * nb + b] = s;
                            *word &= !(1u64 << (b % 64));
                            left[v] -= 1;
                        }
                    }
                }
            }
        }
    }

    /// The per-round stage of round `round` (consensus, marks, per-prefix
    /// totals), as `consensus::compute` does it for one round.
    fn compute(&self, round: u64, healthy: &[bool], flaps: Vec<Vec<u32>>) -> Product {
        let raw = &self.slots[&round].raw;
        let (nb, np) = (self.nb, self.prefixes.len());
        let nvi = self.vp_names.len();
        let quorum = self.params.quorum.max(1) as u32;
        let is_healthy = |v: usize| healthy.get(v).copied().unwrap_or(false);
        let rows: Vec<Option<(Vec<u8>, Vec<u8>)>> =
            (0..nvi).map(|v| raw.row(v).map(Row::unpack)).collect();
        let (mut ups, mut downs, mut reps) = (vec![0u32; nb], vec![0u32; nb], vec![0u32; nb]);
        for (v, row) in rows.iter().enumerate() {
            if !is_healthy(v) {
                continue;
            }
            let Some((cells, _)) = row else { continue };
            for (b, &c) in cells.iter().enumerate() {
                let s = c & STATE;
                ups[b] += u32::from(s == UP);
                downs[b] += u32::from(s == DOWN);
                reps[b] += u32::from(s != NONE);
            }
        }
        let mut flap_any = vec![false; nb];
        for (v, f) in flaps.iter().enumerate() {
            if is_healthy(v) {
                for &b in f {
                    flap_any[b as usize] = true;
                }
            }
        }
        let state: Vec<u8> = (0..nb)
            .map(|b| {
                if ups[b] > 0 {
                    UP
                } else if downs[b] > 0 && downs[b] >= quorum.min(reps[b]) {
                    DOWN
                } else if reps[b] > 0 {
                    UNCERTAIN
                } else {
                    NONE
                }
            })
            .collect();
        let mut aggs = vec![Agg::default(); np];
        let (mut acc_p, mut acc_l) = (vec![0u32; nb], vec![0u32; nb]);
        let mut lossy_any = vec![false; nb];
        let mut marks = vec![Vec::new(); nvi];
        let mut down = vec![Vec::new(); nvi];
        let mut count = vec![0u32; np];
        let mut touched: Vec<u32> = Vec::new();
        for v in 0..nvi {
            let Some((cells, loss)) = &rows[v] else {
                continue;
            };
            // Prefixes with a block this VP saw down (health aside).
            for (b, &c) in cells.iter().enumerate() {
                if c & STATE == DOWN {
                    let p = self.block_prefix[b];
                    if count[p as usize] == 0 {
                        touched.push(p);
                    }
                    count[p as usize] = 1;
                }
            }
            touched.sort_unstable();
            for &p in &touched {
                count[p as usize] = 0;
            }
            down[v] = std::mem::take(&mut touched);
            if !is_healthy(v) {
                continue;
            }
            let vflaps = flaps.get(v).map(Vec::as_slice).unwrap_or(&[]);
            let mut fi = 0;
            for b in 0..cells.len() {
                let c = cells[b];
                let counts = (u8::from(state[b] == UP && c & STATE != DOWN) * 0xff) & loss[b];
                let lost = counts & 15;
                acc_p[b] += u32::from(counts >> 4);
                acc_l[b] += u32::from(lost);
                let flap = fi < vflaps.len() && vflaps[fi] as usize == b;
                if flap {
                    fi += 1;
                }
                if lost > 0 {
                    lossy_any[b] = true;
                }
                if flap || lost > 0 {
                    let p = self.block_prefix[b];
                    if count[p as usize] == 0 {
                        touched.push(p);
                    }
                    count[p as usize] += 1;
                }
            }
            touched.sort_unstable();
            marks[v] = touched
                .iter()
                .map(|&p| (p, std::mem::take(&mut count[p as usize])))
                .collect();
            touched.clear();
        }
        let mut judged = vec![0u64; nb.div_ceil(64)];
        for b in 0..nb {
            let a = &mut aggs[self.block_prefix[b] as usize];
            if acc_p[b] > 0 {
                a.probes_up += u64::from(acc_p[b]);
                a.unanswered_up += u64::from(acc_l[b]);
            }
            let s = state[b];
            if s == UP || s == DOWN {
                a.judged += 1;
                judged[b / 64] |= 1 << (b % 64);
            }
            if s == DOWN {
                a.down += 1;
            }
            if flap_any[b] {
                a.flapped += 1;
            }
            if flap_any[b] || lossy_any[b] {
                a.unstable += 1;
            }
        }
        Product {
            healthy: healthy.to_vec(),
            flaps,
            aggs,
            judged,
            down,
            marks,
        }
    }
}

/// One round's reports given one by one ([`Incremental::round`]). VP ids
/// are those [`RoundInput::vp`] gives; block ids those of the engine
/// ([`Incremental::add_block`], or the campaign's blocks in order).
pub struct RoundInput<'a> {
    engine: &'a mut Incremental,
    round: u64,
    raw: RoundRaw,
    /// Per VP: its cells and loss cells, unpacked while the round is built.
    dense: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    /// Per VP: probes and replies per prefix.
    vp_prefix: Vec<Vec<(u64, u64)>>,
    /// Sum of the observations' digest shares.
    sum: Option<u64>,
}

impl RoundInput<'_> {
    /// The id of VP `name` in this round (and in the engine from now on).
    pub fn vp(&mut self, name: &str) -> u32 {
        let v = self.engine.vp_id(name);
        let nvi = self.engine.vp_names.len();
        let pvs = self.engine.layout.per_vp_scopes;
        let raw = &mut self.raw;
        at_least(&mut raw.rows, nvi, None);
        at_least(&mut raw.vp_rounds, nvi, VpRound::default());
        at_least(&mut raw.present, nvi, false);
        at_least(&mut raw.per_vp, nvi * pvs, summaries::Totals::default());
        at_least(&mut self.dense, nvi, None);
        at_least(&mut self.vp_prefix, nvi, Vec::new());
        v
    }

    /// VP `vp` saw `block` in this state after these probes and replies.
    /// A block the engine does not know is skipped (and counted), as
    /// `correlate` does, but the VP still reported the round.
    pub fn observe(&mut self, vp: u32, block: u32, state: BlockState, probes: u32, replies: u32) {
        self.observe_all(vp, [(block, state, probes, replies)]);
    }

    /// [`RoundInput::observe`] for many observations of one VP, given as
    /// `(block, state, probes, replies)`: the VP's row is looked up once.
    pub fn observe_all(
        &mut self,
        vp: u32,
        observations: impl IntoIterator<Item = (u32, BlockState, u32, u32)>,
    ) {
        let v = vp as usize;
        assert!(
            v < self.raw.present.len(),
            "VP {vp} not from RoundInput::vp"
        );
        let e = &*self.engine;
        let nb = e.nb;
        let vp_hash = e.vp_hash[v];
        let dense = &mut self.dense[v];
        let per_prefix = &mut self.vp_prefix[v];
        let (mut any, mut valid, mut skipped, mut sum) = (false, false, 0, 0u64);
        for (block, state, probes, replies) in observations {
            any = true;
            let b = block as usize;
            if b >= nb {
                skipped += 1;
                continue;
            }
            valid = true;
            let (cells, loss) = dense.get_or_insert_with(|| (vec![NONE; nb], vec![0; nb]));
            if b >= cells.len() {
                // A block added while the round was built.
                cells.resize(nb, NONE);
                loss.resize(nb, 0);
            }
            cells[b] = merge(cells[b], code(state));
            if state != BlockState::Down {
                loss[b] = add_loss(loss[b], probes, probes.saturating_sub(replies));
            }
            if per_prefix.is_empty() {
                per_prefix.resize(e.prefixes.len(), (0, 0));
            }
            let t = &mut per_prefix[e.block_prefix[b] as usize];
            t.0 += u64::from(probes);
            t.1 += u64::from(replies);
            sum = sum.wrapping_add(summaries::obs_digest_of(
                vp_hash,
                e.block_hash[b],
                state,
                probes,
                replies,
            ));
        }
        if any {
            self.raw.present[v] = true;
        }
        self.raw.skipped += skipped;
        if valid {
            self.sum = Some(self.sum.unwrap_or(0).wrapping_add(sum));
        }
    }

    /// Adds a block to the engine ([`Incremental::add_block`]) while the
    /// round is built: observations may name it at once.
    pub fn add_block(&mut self, net: ipnet::IpNet, prefix: u32) -> Result<u32, CorrelateError> {
        self.engine.add_block(net, prefix)
    }

    /// An observation that cannot be used (unknown VP, another round):
    /// counted as skipped, as `correlate` does.
    pub fn skip(&mut self) {
        self.raw.skipped += 1;
    }

    /// VP `vp`'s control target was in this state.
    pub fn control(&mut self, vp: u32, state: BlockState) {
        let v = vp as usize;
        assert!(
            v < self.raw.present.len(),
            "VP {vp} not from RoundInput::vp"
        );
        self.raw.present[v] = true;
        let vr = &mut self.raw.vp_rounds[v];
        match state {
            BlockState::Up => vr.ctl_up += 1,
            BlockState::Down => vr.ctl_down += 1,
            BlockState::Uncertain => vr.ctl_uncertain += 1,
        }
        let c = ControlObs {
            vp,
            round: self.round,
            state,
        };
        let h = summaries::control_digest(self.engine.vp_hash[v], &c);
        self.sum = Some(self.sum.unwrap_or(0).wrapping_add(h));
    }

    /// A trace of VP `vp` (its `vp` and `round` fields are ignored).
    pub fn trace(&mut self, vp: u32, trace: &TraceObs) {
        assert!(
            (vp as usize) < self.raw.present.len(),
            "VP {vp} not from RoundInput::vp"
        );
        self.raw.present[vp as usize] = true;
        self.raw.traces.push(TraceObs {
            vp,
            round: self.round,
            ..trace.clone()
        });
    }

    /// Routers' errors to VP `vp`'s probes (localization evidence only: the
    /// VP is not made present by them).
    pub fn probe_error(&mut self, vp: u32, errors: &ProbeErrorObs) {
        assert!(
            (vp as usize) < self.raw.present.len(),
            "VP {vp} not from RoundInput::vp"
        );
        self.raw.probe_errors.push(ProbeErrorObs {
            vp,
            round: self.round,
            ..errors.clone()
        });
    }

    /// Replaces the engine's round with what was given (nothing: the round
    /// is withdrawn).
    pub fn finish(self) {
        let RoundInput {
            engine,
            round,
            mut raw,
            mut dense,
            vp_prefix,
            sum,
        } = self;
        let np = engine.prefixes.len();
        let pvs = engine.layout.per_vp_scopes;
        raw.digest_sum = sum;
        for (v, per_prefix) in vp_prefix.iter().enumerate() {
            for (p, &(probes, replies)) in per_prefix.iter().enumerate() {
                if probes == 0 && replies == 0 {
                    continue;
                }
                raw.prefix_probes[p].0 += probes;
                raw.prefix_probes[p].1 += replies;
                for &s in &engine.layout.of_prefix[p] {
                    let t = &mut raw.per_vp[v * pvs + s];
                    t.probes += probes;
                    t.replies += replies;
                }
            }
        }
        // Counts after merging, and each VP's judged blocks per scope.
        let mut judged = vec![(0u32, 0u32); np];
        for (v, row) in dense.iter_mut().enumerate() {
            let Some((cells, loss)) = row.take() else {
                continue;
            };
            let vr = &mut raw.vp_rounds[v];
            judged.fill((0, 0));
            for (b, &c) in cells.iter().enumerate() {
                match c & STATE {
                    UP => vr.up += 1,
                    DOWN => vr.down += 1,
                    UNCERTAIN => vr.uncertain += 1,
                    _ => continue,
                }
                let s = c & STATE;
                if s == UP || s == DOWN {
                    let j = &mut judged[engine.block_prefix[b] as usize];
                    j.0 += 1;
                    j.1 += u32::from(s == UP);
                }
            }
            for (p, &(n, up)) in judged.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                for &s in &engine.layout.of_prefix[p] {
                    raw.per_vp[v * pvs + s].blocks_judged += n;
                    raw.per_vp[v * pvs + s].blocks_up += up;
                }
            }
            raw.rows[v] = Some(Row::pack(&cells, &loss));
        }
        engine.put_round(round, raw);
    }
}

/// A row's state of block `b` (`NONE` for a block added after the row).
fn cell(row: &Row, b: usize) -> u8 {
    row.state(b)
}

/// Health rows agree (a VP seen later is absent, so unhealthy, before).
fn same_health(a: &[bool], b: &[bool]) -> bool {
    let n = a.len().max(b.len());
    (0..n).all(|v| a.get(v).copied().unwrap_or(false) == b.get(v).copied().unwrap_or(false))
}

fn full_bits(nb: usize, words: usize) -> Vec<u64> {
    let mut bits = vec![u64::MAX; words];
    if nb % 64 != 0 {
        if let Some(l) = bits.last_mut() {
            *l = (1u64 << (nb % 64)) - 1;
        }
    }
    bits
}

/// Every healthy VP's flaps in one round against the last states `cur`,
/// which it then moves past the round.
fn full_flaps(raw: &RoundRaw, healthy: &[bool], cur: &mut [u8], nb: usize) -> Vec<Vec<u32>> {
    let nvi = healthy.len();
    let mut flaps = vec![Vec::new(); nvi];
    for (v, f) in flaps.iter_mut().enumerate() {
        if !healthy[v] {
            continue;
        }
        let Some(row) = raw.row(v) else { continue };
        let last = &mut cur[v * nb..(v + 1) * nb];
        for (b, (&c, l)) in row.cells().iter().zip(last.iter_mut()).enumerate() {
            let s = c & STATE;
            if s == UP || s == DOWN {
                if *l != NONE && *l != s {
                    f.push(b as u32);
                }
                *l = s;
            }
        }
    }
    flaps
}

/// As the grid merges two reports of one VP, block and round.
fn merge(a: u8, b: u8) -> u8 {
    if a == UP || b == UP {
        UP
    } else if a == DOWN || b == DOWN {
        DOWN
    } else if a == UNCERTAIN || b == UNCERTAIN {
        UNCERTAIN
    } else {
        NONE
    }
}

/// The verdicts' evidence from cached products instead of cells.
struct Cached<'a> {
    first_round: u64,
    products: &'a [Option<&'a Product>],
    /// Output VP id -> internal id.
    out_ids: &'a [usize],
    np: usize,
}

impl Cached<'_> {
    fn mask(&self, prefixes: &[u32]) -> Vec<bool> {
        let mut m = vec![false; self.np];
        for &p in prefixes {
            m[p as usize] = true;
        }
        m
    }
}

impl Evidence for Cached<'_> {
    fn rounds(&self) -> usize {
        self.products.len()
    }

    fn first_round(&self) -> u64 {
        self.first_round
    }

    fn down_vps(
        &self,
        health: &Health,
        _scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<VpId> {
        let mask = self.mask(prefixes);
        let n = self.out_ids.len();
        let mut seen = vec![false; n];
        for &r in rounds {
            let Some(p) = self.products[r] else { continue };
            for (o, s) in seen.iter_mut().enumerate() {
                if *s || !health.healthy(r, o) {
                    continue;
                }
                let v = self.out_ids[o];
                *s = p
                    .down
                    .get(v)
                    .is_some_and(|d| d.iter().any(|&q| mask[q as usize]));
            }
        }
        (0..n as VpId).filter(|&v| seen[v as usize]).collect()
    }

    fn unstable_marks(
        &self,
        health: &Health,
        _scopes: &Scopes,
        prefixes: &[u32],
        rounds: &[usize],
    ) -> Vec<u64> {
        let mask = self.mask(prefixes);
        let n = self.out_ids.len();
        let mut marks = vec![0u64; n];
        for &r in rounds {
            let Some(p) = self.products[r] else { continue };
            for (o, m) in marks.iter_mut().enumerate() {
                if !health.healthy(r, o) {
                    continue;
                }
                if let Some(list) = p.marks.get(self.out_ids[o]) {
                    *m += list
                        .iter()
                        .filter(|(q, _)| mask[*q as usize])
                        .map(|&(_, c)| u64::from(c))
                        .sum::<u64>();
                }
            }
        }
        marks
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;

    /// A row unpacks to the cells and loss cells it was packed from,
    /// with few unusual loss cells (kept as a list) and many (a bitset).
    #[test]
    fn rows_unpack_to_what_was_packed() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (len, odd_in) in [(1000usize, 200u64), (1000, 5), (1001, 1000), (3, 2), (0, 1)] {
            let mut cells = Vec::with_capacity(len);
            let mut loss = Vec::with_capacity(len);
            for _ in 0..len {
                let s = [UP, DOWN, UNCERTAIN, NONE][(next() % 4) as usize];
                cells.push(s);
                loss.push(if next() % odd_in == 0 {
                    (next() % 256) as u8
                } else {
                    usual_loss(s)
                });
            }
            let row = Row::pack(&cells, &loss);
            let odd = loss
                .iter()
                .zip(&cells)
                .filter(|(&l, &c)| l != usual_loss(c))
                .count();
            match (&row.odd, odd > len / 32) {
                (OddBlocks::Bits(_), true) | (OddBlocks::List(_), false) => {}
                (o, _) => panic!("{len} blocks, {odd} odd: {o:?}"),
            }
            assert_eq!(row.unpack(), (cells.clone(), loss.clone()), "{len}, {odd}");
            for (b, &c) in cells.iter().enumerate() {
                assert_eq!(row.state(b), c);
            }
            assert_eq!(row.state(len), NONE);
        }
    }
}
