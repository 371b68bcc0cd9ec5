//! Stages 1 and 3 to 4 over the window: VP health from each VP's round
//! totals, then, from the cached per-round products, the scopes' series,
//! summaries, then verdicts (degradations read the summaries' loss and
//! reply times), localization, fault runs and the timeline.
//!
//! Everything here costs rounds x (VPs + scopes), never blocks: the
//! per-block work is in the products, so this stage runs in full on every
//! [`Incremental::output`].

use super::{Incremental, RoundRaw};
use crate::cells::{VpRound, VpRounds};
use crate::consensus::{Agg, Consensus, Product};
use crate::health::{self, Health};
use crate::latency::RoundLatency;
use crate::scopes::Scopes;
use crate::verdicts::{self, Evidence};
use crate::{localize, summaries, timeline, Output, ProbeErrorObs, Summaries, TraceObs, VpId};

impl Incremental {
    /// [`Incremental::output`]; with `vps`, the output's VPs are those, in
    /// that order (each must have an engine id: [`Incremental::vp_id`]),
    /// instead of the window's VPs with data, sorted; with `evidence`, the
    /// traces and routers' errors localization reads are those (VP ids
    /// into the output's VPs), instead of the window's.
    pub(crate) fn output_for(
        &mut self,
        vps: Option<&[String]>,
        evidence: Option<(&[TraceObs], &[ProbeErrorObs])>,
    ) -> Output {
        let (first, last) = (self.first, self.last);
        let nr = (last - first + 1) as usize;
        let (out_ids, names) = match vps {
            Some(vps) => (
                vps.iter().map(|n| self.vp_index[n] as usize).collect(),
                vps.to_vec(),
            ),
            None => self.window_vps(),
        };
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

        // The window stage over the cached products.
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
        let own_evidence = evidence.is_none();
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
            if !own_evidence {
                continue;
            }
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
            nr,
            Consensus {
                prefix_aggs,
                prefix_judged_blocks,
            },
        );
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
        let mut rtt = Vec::new();
        if raws.iter().flatten().any(|x| !x.scope_rtt.is_empty()) {
            rtt = vec![(0, 0); nr * pvs];
            for (r, raw) in raws.iter().enumerate() {
                let Some(t) = raw.and_then(|x| x.scope_rtt.get(..pvs)) else {
                    continue;
                };
                rtt[r * pvs..(r + 1) * pvs].copy_from_slice(t);
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
            rtt,
        };
        // Verdict scope -> its summary scope, for the degradations' series.
        let mut summary_of = vec![None; scopes.defs.len()];
        for (i, (_, src)) in self.layout.list.iter().enumerate() {
            if let summaries::Source::Def(d) = src {
                summary_of[*d].get_or_insert(i);
            }
        }
        let cached = Cached {
            first_round: first,
            products: &products,
            out_ids: &out_ids,
            np,
            summaries: &summaries,
            summary_of: &summary_of,
        };
        let mut detected = verdicts::detect(&names, &cached, &health, &scopes, &self.params);
        let (traces, probe_errors) = evidence.unwrap_or((&traces, &probe_errors));
        for d in &mut detected {
            d.verdict.localization =
                localize::localize(&names, traces, probe_errors, last, d, &scopes);
        }
        Output {
            verdicts: detected.into_iter().map(|d| d.verdict).collect(),
            vp_faults: health::fault_runs(&names, view, &health),
            timeline: timeline::build(view, &scopes),
            skipped_observations: skipped,
            summaries,
        }
    }
}

/// The verdicts' evidence from cached products instead of cells.
struct Cached<'a> {
    first_round: u64,
    products: &'a [Option<&'a Product>],
    /// Output VP id -> internal id.
    out_ids: &'a [usize],
    np: usize,
    summaries: &'a Summaries,
    /// Verdict scope -> summary scope.
    summary_of: &'a [Option<usize>],
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

    fn latency(&self, health: &Health, s: usize) -> Option<Vec<Option<RoundLatency>>> {
        // Reply times exist only for scopes with per-VP totals, and only
        // from agents that report them: without times, loss alone is what
        // `instability` judges, and no degradation is looked for.
        let i = self.summary_of[s].filter(|&i| i < self.summaries.per_vp_scopes)?;
        if self.summaries.rtt.is_empty() {
            return None;
        }
        Some(
            (0..self.summaries.rounds)
                .map(|r| {
                    let t = self.summaries.consensus(r, i);
                    t.has_data().then(|| {
                        // Loss of the healthy VPs' probes only: an isolated
                        // or faulty VP loses every probe, which says nothing
                        // of the scope (lab scenario s3).
                        let mut l = self.summaries.latency(r, i);
                        (l.probes, l.replies) = (0..self.summaries.vps as VpId)
                            .filter(|&v| health.healthy(r, v as usize))
                            .filter_map(|v| self.summaries.vp(r, v, i))
                            .fold((0, 0), |(p, q), t| (p + t.probes, q + t.replies));
                        l
                    })
                })
                .collect(),
        )
    }

    fn reporting_vps(&self, health: &Health, s: usize, rounds: &[usize]) -> Vec<VpId> {
        let Some(i) = self.summary_of[s] else {
            return Vec::new();
        };
        (0..self.summaries.vps as VpId)
            .filter(|&v| {
                rounds.iter().any(|&r| {
                    health.healthy(r, v as usize)
                        && self.summaries.vp(r, v, i).is_some_and(|t| t.has_data())
                })
            })
            .collect()
    }
}
