//! The scopes verdicts are made for: the top scope (country or campaign),
//! each origin AS, the unrouted group (prefixes without an origin when
//! others have one: space no route covers, counted rather than dropped),
//! each prefix, with their per-round totals. A prefix with
//! several origins (MOAS, AS sets) is in the scope of each of them: its
//! outage is an outage of every network that announces it.
//!
//! Every total is a sum over prefixes, so the consensus pass aggregates per
//! prefix once and the wider scopes add those up.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::consensus::{Agg, Consensus};
use crate::{PrefixInfo, Scope};

pub(crate) struct ScopeDef {
    pub scope: Scope,
    pub target: String,
    /// Indices into `Input::prefixes`, sorted.
    pub prefixes: Vec<u32>,
    /// Enclosing scopes (indices into `Scopes::defs`): a prefix's ASes and
    /// the top scope, an AS's top scope.
    pub ancestors: Vec<usize>,
    /// Per-round totals, `None` for a prefix scope (read from the consensus).
    series: Option<Vec<Agg>>,
    pub judged_blocks: usize,
}

pub(crate) struct Scopes {
    pub defs: Vec<ScopeDef>,
    rounds: usize,
    prefix_aggs: Vec<Agg>,
    pub prefix_nets: Vec<IpNet>,
    /// ASes that announce every watched prefix: no verdict scope of their
    /// own (it would be the top scope's), but summaries list them.
    pub covering_asns: Vec<u32>,
}

/// The target of the [`Scope::Unrouted`] group.
pub const UNROUTED: &str = "unrouted";

/// Adds a group of prefixes (an AS, the unrouted group) as the enclosing
/// scope of each of them.
fn add_group(
    asn_scopes: &mut [Vec<usize>],
    defs: &mut Vec<ScopeDef>,
    prefixes: &[u32],
    def: impl FnOnce() -> ScopeDef,
) {
    for &p in prefixes {
        asn_scopes[p as usize].push(defs.len());
    }
    defs.push(def());
}

impl Scopes {
    /// The scopes of a campaign (its top scope and its prefixes) with the consensus series of a window of `nr` rounds.
    pub fn from_parts(
        target: &str,
        is_country: bool,
        prefixes: &[PrefixInfo],
        nr: usize,
        cons: Consensus,
    ) -> Scopes {
        let np = prefixes.len();
        let sum = |prefixes: &[u32]| {
            let mut s = vec![Agg::default(); nr];
            for &p in prefixes {
                for (r, a) in s.iter_mut().enumerate() {
                    *a += cons.prefix_aggs[p as usize * nr + r];
                }
            }
            s
        };
        let judged = |prefixes: &[u32]| {
            prefixes
                .iter()
                .map(|&p| cons.prefix_judged_blocks[p as usize] as usize)
                .sum()
        };
        let all: Vec<u32> = (0..np as u32).collect();
        let mut defs = vec![ScopeDef {
            scope: if is_country {
                Scope::Country
            } else {
                Scope::Campaign
            },
            target: target.to_string(),
            series: Some(sum(&all)),
            judged_blocks: judged(&all),
            prefixes: all,
            ancestors: vec![],
        }];
        let mut by_asn: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (p, info) in prefixes.iter().enumerate() {
            for &asn in &info.asns {
                let v = by_asn.entry(asn).or_default();
                // Pushed in prefix order, so a repeated origin is the last.
                if v.last() != Some(&(p as u32)) {
                    v.push(p as u32);
                }
            }
        }
        let mut asn_scopes: Vec<Vec<usize>> = vec![Vec::new(); np];
        let mut covering_asns = Vec::new();
        // Unrouted space is a group only beside routed space (without a
        // prefix-to-AS file no prefix has an origin).
        let unrouted: Vec<u32> = (0..np as u32)
            .filter(|&p| prefixes[p as usize].asns.is_empty())
            .collect();
        if !unrouted.is_empty() && unrouted.len() < np {
            add_group(&mut asn_scopes, &mut defs, &unrouted, || ScopeDef {
                scope: Scope::Unrouted,
                target: UNROUTED.to_string(),
                series: Some(sum(&unrouted)),
                judged_blocks: judged(&unrouted),
                prefixes: unrouted.clone(),
                ancestors: vec![0],
            });
        }
        for (asn, prefixes) in by_asn {
            // An AS holding the whole watched space would only repeat the
            // top scope's verdicts.
            if prefixes.len() == np {
                covering_asns.push(asn);
                continue;
            }
            add_group(&mut asn_scopes, &mut defs, &prefixes, || ScopeDef {
                scope: Scope::Asn,
                target: format!("AS{asn}"),
                series: Some(sum(&prefixes)),
                judged_blocks: judged(&prefixes),
                prefixes: prefixes.clone(),
                ancestors: vec![0],
            });
        }
        for (p, info) in prefixes.iter().enumerate() {
            let mut ancestors = vec![0];
            ancestors.extend(&asn_scopes[p]);
            defs.push(ScopeDef {
                scope: Scope::Prefix,
                target: info.net.to_string(),
                prefixes: vec![p as u32],
                ancestors,
                series: None,
                judged_blocks: cons.prefix_judged_blocks[p] as usize,
            });
        }
        Scopes {
            defs,
            rounds: nr,
            prefix_aggs: cons.prefix_aggs,
            prefix_nets: prefixes.iter().map(|p| p.net).collect(),
            covering_asns,
        }
    }

    /// Per-round totals of scope `s`.
    pub fn series(&self, s: usize) -> &[Agg] {
        let d = &self.defs[s];
        match &d.series {
            Some(v) => v,
            None => self.prefix_series(d.prefixes[0] as usize),
        }
    }

    /// Rounds of the window (the last is the input's `last_round`).
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    pub fn prefix_series(&self, p: usize) -> &[Agg] {
        &self.prefix_aggs[p * self.rounds..(p + 1) * self.rounds]
    }
}
