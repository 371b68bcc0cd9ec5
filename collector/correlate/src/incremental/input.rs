//! Stage 0: one round's reports, given one by one, merged into cells.
//!
//! A [`RoundInput`] collects every VP's reports of one round (in any order,
//! with blocks learnt mid-round), merges duplicates into cells (the one
//! merge, [`crate::cells::merge`]), counts what the per-VP summaries and
//! digests need, and on [`RoundInput::finish`] hands the engine a
//! [`RoundRaw`]: what the round is, independent of any other round.

use darkwatch_schema::BlockState;

use super::row::Row;
use super::{at_least, Incremental};
use crate::cells::{add_loss, code, merge, VpRound, DOWN, NONE, STATE, UNCERTAIN, UP};
use crate::summaries;
use crate::{ControlObs, CorrelateError, ProbeErrorObs, TraceObs};

/// What one round's reports are, independent of any other round. Vectors
/// indexed by VP use the engine's internal VP ids (first seen, first
/// numbered) and may be shorter than the current number of VPs.
#[derive(Debug, Clone, Default)]
pub(super) struct RoundRaw {
    pub rows: Vec<Option<Row>>,
    pub vp_rounds: Vec<VpRound>,
    /// VPs with any observation, control observation or trace.
    pub present: Vec<bool>,
    pub traces: Vec<TraceObs>,
    /// Routers' ICMP errors to the round's probes (localization only).
    pub probe_errors: Vec<ProbeErrorObs>,
    /// Per-VP summary totals, `[vp * per_vp_scopes + scope]`.
    pub per_vp: Vec<summaries::Totals>,
    /// Per prefix: probes and replies of every VP.
    pub prefix_probes: Vec<(u64, u64)>,
    /// Per summary scope with per-VP totals: the median and 95th
    /// percentile of its blocks' median reply times, every VP's reports
    /// pooled (`schema::rtt` codes, 0: none). Empty without times.
    pub scope_rtt: Vec<(u8, u8)>,
    pub skipped: usize,
    /// Sum of the observations' digest shares (`None`: no observation).
    pub digest_sum: Option<u64>,
}

impl RoundRaw {
    pub fn row(&self, v: usize) -> Option<&Row> {
        self.rows.get(v).and_then(Option::as_ref)
    }

    pub fn vp_round(&self, v: usize) -> VpRound {
        self.vp_rounds.get(v).copied().unwrap_or_default()
    }

    pub fn present(&self, v: usize) -> bool {
        self.present.get(v).copied().unwrap_or(false)
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
    /// Per summary scope with per-VP totals: how many blocks' median reply
    /// time had each code (allocated on the first time given).
    rtt: Vec<[u32; 256]>,
    /// Sum of the observations' digest shares.
    sum: Option<u64>,
}

impl<'a> RoundInput<'a> {
    pub(super) fn start(engine: &'a mut Incremental, round: u64) -> RoundInput<'a> {
        let np = engine.prefixes.len();
        RoundInput {
            engine,
            round,
            raw: RoundRaw {
                prefix_probes: vec![(0, 0); np],
                ..RoundRaw::default()
            },
            dense: Vec::new(),
            vp_prefix: Vec::new(),
            rtt: Vec::new(),
            sum: None,
        }
    }

    /// A VP's report of `block` had replies with this median reply time (a
    /// `schema::rtt` code; 0 and unknown blocks are ignored). Latency
    /// signals only: verdicts and digests do not read it.
    pub fn rtt(&mut self, block: u32, code: u8) {
        let e = &*self.engine;
        let Some(&p) = e.block_prefix.get(block as usize) else {
            return;
        };
        if code == 0 {
            return;
        }
        if self.rtt.is_empty() {
            self.rtt = vec![[0; 256]; e.layout.per_vp_scopes];
        }
        for &s in &e.layout.of_prefix[p as usize] {
            if let Some(h) = self.rtt.get_mut(s) {
                h[usize::from(code)] += 1;
            }
        }
    }

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
            rtt,
            sum,
        } = self;
        let np = engine.prefixes.len();
        let pvs = engine.layout.per_vp_scopes;
        raw.digest_sum = sum;
        raw.scope_rtt = rtt
            .iter()
            .map(|h| (quantile(h, 0.5), quantile(h, 0.95)))
            .collect();
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

/// The code at quantile `q` of a histogram of codes (0 when empty), by the
/// same nearest-rank rule as `latency::RoundLatency::new`.
fn quantile(h: &[u32; 256], q: f64) -> u8 {
    let n: u64 = h.iter().map(|&c| u64::from(c)).sum();
    if n == 0 {
        return 0;
    }
    let rank = (q * (n - 1) as f64).round() as u64;
    let mut seen = 0u64;
    for (code, &c) in h.iter().enumerate() {
        seen += u64::from(c);
        if seen > rank {
            return code as u8;
        }
    }
    0
}
