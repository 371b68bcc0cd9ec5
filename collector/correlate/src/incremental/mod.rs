//! The engine: verdicts, summaries and timeline over a window of rounds, at
//! a cost per update in proportion to the rounds that changed rather than
//! to the window. [`crate::correlate`] is this engine, fresh, fed a whole
//! window at once; the equivalence test (`tests::incremental`) checks that
//! updating one in any order gives what a fresh one gives.
//!
//! # The split
//!
//! The pipeline has two kinds of steps:
//!
//! - **Per-round, per-block** (the costly part, blocks × VPs a round): the
//!   cells of one round, its consensus (state of each block from the healthy
//!   VPs), its flap and loss marks, and the per-prefix totals (`Agg`) that
//!   every later step reads. [`Incremental`] keeps, per round, the raw cells
//!   of that round ([`RoundRaw`], built by `input`, packed by `row`) and this
//!   stage's result (`consensus::Product`, brought up to date by `walk`).
//! - **Per-window, per-scope** (cheap: rounds × VPs or rounds × scopes):
//!   VP health (from each VP's round totals), verdict hysteresis, partial
//!   baselines, instability, localization, fault runs, the timeline and the
//!   summaries' consensus totals. `window` recomputes these from the cached
//!   products on every [`Incremental::output`].
//!
//! The files follow the stages: `input` takes a round's reports (stage 0)
//! and `row` packs them; this module holds the rounds and the window; `walk`
//! keeps each round's consensus current (stages 1 to 2); `window` makes the
//! output (stages 1, 3 and 4). None of them imports `walk` or `window`.
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
//! The window stage then runs on the per-prefix totals, so verdicts,
//! summaries and timeline are those of a fresh engine over the same rounds;
//! `tests::incremental` checks this on random timelines with late, missing
//! and replaced rounds, VP faults, flapping and traces.
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

use crate::consensus::{Consensus, Product};
use crate::scopes::Scopes;
use crate::summaries::{self, Layout};
use crate::{
    ControlObs, CorrelateError, Input, Obs, Output, Params, PrefixInfo, ProbeErrorObs, TraceObs,
};

pub use input::RoundInput;
use input::RoundRaw;

mod input;
mod row;
mod walk;
mod window;

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
        // The layout depends on the scopes' definitions, not their data.
        let empty = Consensus {
            prefix_aggs: vec![],
            prefix_judged_blocks: vec![0; np],
        };
        let scopes = Scopes::from_parts(
            &campaign.target,
            campaign.is_country,
            &campaign.prefixes,
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
        self.block_hash.push(summaries::net_hash(&net));
        Ok(id)
    }

    /// Blocks known (their ids are `0..blocks()`).
    pub fn blocks(&self) -> usize {
        self.nb
    }

    pub(crate) fn vp_id(&mut self, name: &str) -> u32 {
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
        RoundInput::start(self, round)
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
        self.output_for(None, None)
    }
}
