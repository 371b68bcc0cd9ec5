//! Per-round totals of every scope, for the consensus and for each VP: the
//! signal researchers plot (share of blocks up per round) and the read
//! model the collector stores, so that no request has to recorrelate.
//!
//! The consensus totals are the `scopes` aggregates already computed for
//! the verdicts; per-VP totals are counted per round as the engine takes
//! the round's reports (each VP's own judgement, faulty or not, as the
//! timeline shows it). Probes and replies come from the observations: every
//! report of every VP, in any state, so that the consensus counts are the
//! sum of the per-VP ones.
//!
//! Scopes are the verdict scopes (top, each origin AS, each prefix) plus the
//! ASes that announce every watched prefix: `scopes` leaves those out of the
//! verdicts (they would repeat the top scope's), but a researcher asking for
//! AS131279 expects its line. Per-VP prefix totals are computed only up to
//! [`crate::Params::summary_vp_prefixes`] prefixes: beyond that they cost
//! rounds × VPs × prefixes, more than the cells themselves for /24 prefixes.
//!
//! [`round_digests`] fingerprints each round's input, so that a caller that
//! stores summaries can tell which rounds changed since it last stored them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scopes::Scopes;
use crate::{Input, Params, PrefixInfo, Scope, VpId};

/// What one VP (or the consensus) saw of one scope in one round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Blocks judged up or down (the consensus: by the healthy VPs).
    pub blocks_judged: u32,
    /// Of those, blocks up.
    pub blocks_up: u32,
    /// Echo requests sent to the scope's blocks (the consensus: by all VPs).
    pub probes: u64,
    /// Echo replies received.
    pub replies: u64,
}

impl Totals {
    /// Share of judged blocks up, `None` when no block was judged.
    pub fn share_up(&self) -> Option<f64> {
        (self.blocks_judged > 0).then(|| f64::from(self.blocks_up) / f64::from(self.blocks_judged))
    }

    /// True if anything was reported (judged blocks or probes).
    pub fn has_data(&self) -> bool {
        self.blocks_judged > 0 || self.probes > 0
    }
}

/// A scope with summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryScope {
    pub scope: Scope,
    /// Country code, campaign name, `AS64500` or prefix.
    pub target: String,
}

/// Per-round totals of every scope over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summaries {
    pub first_round: u64,
    pub rounds: usize,
    /// Top scope first, then ASes (by number), then prefixes (input order).
    pub scopes: Vec<SummaryScope>,
    /// The leading scopes that have per-VP totals: all of them, or all but
    /// the prefixes when there are more than `summary_vp_prefixes`.
    pub per_vp_scopes: usize,
    pub vps: usize,
    /// `[round * scopes + scope]`.
    pub(crate) consensus: Vec<Totals>,
    /// `[(round * vps + vp) * per_vp_scopes + scope]`.
    pub(crate) per_vp: Vec<Totals>,
    /// Reply times of the scopes with per-VP totals, every VP pooled:
    /// `[round * per_vp_scopes + scope]`, (median, p95) as `schema::rtt`
    /// codes (0: none). Empty when no round had times.
    #[serde(default)]
    pub(crate) rtt: Vec<(u8, u8)>,
}

impl Summaries {
    /// Round number of round index `r`.
    pub fn round_number(&self, r: usize) -> u64 {
        self.first_round + r as u64
    }

    /// Index of `round`, if inside the window.
    pub fn round_index(&self, round: u64) -> Option<usize> {
        let r = round.checked_sub(self.first_round)?;
        (r < self.rounds as u64).then_some(r as usize)
    }

    /// Consensus totals of scope `s` in round index `r`.
    pub fn consensus(&self, r: usize, s: usize) -> Totals {
        self.consensus[r * self.scopes.len() + s]
    }

    /// Loss and reply times of scope `s` in round index `r` (all VPs):
    /// what `latency::degradations` reads. Times only for scopes with
    /// per-VP totals.
    pub fn latency(&self, r: usize, s: usize) -> crate::latency::RoundLatency {
        let t = self.consensus(r, s);
        let (median, p95) = (s < self.per_vp_scopes)
            .then(|| self.rtt.get(r * self.per_vp_scopes + s).copied())
            .flatten()
            .unwrap_or_default();
        crate::latency::RoundLatency {
            probes: t.probes,
            replies: t.replies,
            blocks_judged: t.blocks_judged,
            blocks_up: t.blocks_up,
            rtt_median_ms: darkwatch_schema::rtt::ms(median),
            rtt_p95_ms: darkwatch_schema::rtt::ms(p95),
        }
    }

    /// VP `v`'s totals of scope `s` in round index `r`; `None` for a scope
    /// without per-VP totals.
    pub fn vp(&self, r: usize, v: VpId, s: usize) -> Option<Totals> {
        (s < self.per_vp_scopes)
            .then(|| self.per_vp[(r * self.vps + v as usize) * self.per_vp_scopes + s])
    }
}

/// Where a summary scope's consensus totals come from: a verdict scope,
/// or the top scope (an AS that announces every watched prefix).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Def(usize),
    Top,
}

/// The summary scopes of a campaign: they depend on its prefixes and
/// origins only, never on the observations.
pub(crate) struct Layout {
    pub list: Vec<(SummaryScope, Source)>,
    /// Which summary scopes each prefix counts in (for per-VP totals).
    pub of_prefix: Vec<Vec<usize>>,
    pub per_vp_scopes: usize,
}

pub(crate) fn layout(prefixes: &[PrefixInfo], scopes: &Scopes, params: &Params) -> Layout {
    let np = prefixes.len();
    let mut list: Vec<(SummaryScope, Source)> = Vec::new();
    let def = |s: usize| SummaryScope {
        scope: scopes.defs[s].scope,
        target: scopes.defs[s].target.clone(),
    };
    list.push((def(0), Source::Def(0)));
    let mut asns: BTreeMap<u32, Source> = BTreeMap::new();
    for (s, d) in scopes.defs.iter().enumerate() {
        if d.scope == Scope::Asn {
            if let Some(n) = d.target.strip_prefix("AS").and_then(|n| n.parse().ok()) {
                asns.insert(n, Source::Def(s));
            }
        }
    }
    for &n in &scopes.covering_asns {
        asns.insert(n, Source::Top);
    }
    let mut of_prefix: Vec<Vec<usize>> = vec![vec![0]; np];
    for (n, src) in asns {
        let idx = list.len();
        for (p, info) in prefixes.iter().enumerate() {
            if info.asns.contains(&n) && !of_prefix[p].contains(&idx) {
                of_prefix[p].push(idx);
            }
        }
        list.push((
            SummaryScope {
                scope: Scope::Asn,
                target: format!("AS{n}"),
            },
            src,
        ));
    }
    // The unrouted group, after the ASes.
    for (s, d) in scopes.defs.iter().enumerate() {
        if d.scope == Scope::Unrouted {
            let idx = list.len();
            for &p in &d.prefixes {
                of_prefix[p as usize].push(idx);
            }
            list.push((def(s), Source::Def(s)));
        }
    }
    let first_prefix = list.len();
    for (s, d) in scopes.defs.iter().enumerate() {
        if d.scope == Scope::Prefix {
            list.push((def(s), Source::Def(s)));
        }
    }
    let ns = list.len();
    let per_vp_scopes = if np <= params.summary_vp_prefixes as usize {
        for (p, v) in of_prefix.iter_mut().enumerate() {
            v.push(first_prefix + p);
        }
        ns
    } else {
        first_prefix
    };
    Layout {
        list,
        of_prefix,
        per_vp_scopes,
    }
}

/// The consensus totals `[round * scopes + scope]` of every summary scope:
/// blocks from the scopes' series, probes and replies from each round's
/// per-prefix sums (`prefix_probes(r)[prefix]`).
pub(crate) fn consensus_totals<'a>(
    layout: &Layout,
    scopes: &Scopes,
    nr: usize,
    prefix_probes: impl Fn(usize) -> &'a [(u64, u64)],
) -> Vec<Totals> {
    let ns = layout.list.len();
    let mut consensus = vec![Totals::default(); nr * ns];
    for (s, (_, src)) in layout.list.iter().enumerate() {
        let (series, prefixes) = match *src {
            Source::Def(d) => (scopes.series(d), &scopes.defs[d].prefixes),
            Source::Top => (scopes.series(0), &scopes.defs[0].prefixes),
        };
        for r in 0..nr {
            let a = series[r];
            let pp = prefix_probes(r);
            let t = &mut consensus[r * ns + s];
            t.blocks_judged = a.judged;
            t.blocks_up = a.judged - a.down;
            for &p in prefixes {
                let (probes, replies) = pp.get(p as usize).copied().unwrap_or_default();
                t.probes += probes;
                t.replies += replies;
            }
        }
    }
    consensus
}

/// The splitmix64 finalizer: spreads every input bit over the output.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a: a hash that is the same in every process and release, because
/// digests are stored and compared across restarts.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(mut self, b: &[u8]) -> Fnv {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0100_0000_01b3);
        self
    }

    fn num(self, v: u64) -> Fnv {
        self.bytes(&v.to_le_bytes())
    }

    /// A prefix as address bytes and length (no allocation: this runs
    /// once per observation of the window).
    fn net(self, n: &ipnet::IpNet) -> Fnv {
        let h = match n {
            ipnet::IpNet::V4(n) => self.bytes(&n.addr().octets()),
            ipnet::IpNet::V6(n) => self.bytes(&n.addr().octets()),
        };
        h.num(u64::from(n.prefix_len()))
    }
}

/// Per round of the window (`first_round..=last_round`), a fingerprint of
/// everything its summaries depend on in that round: its block and control
/// observations (by VP name, so that a VP joining does not renumber the
/// others), the scope definitions (target, prefixes, origins) and the
/// parameters. 0 for a round without any observation; never 0 otherwise.
///
/// Summaries of round `r` also depend on earlier rounds (VP baselines), so a
/// caller that finds round `r` changed must recompute every round from `r`
/// on; rounds before the earliest change keep the summaries they had.
/// Independent of the order of the observations. Duplicate observations
/// (same VP, block and round) each count, as they do in the probe totals.
pub fn round_digests(input: &Input, params: &Params) -> Vec<u64> {
    let (first, last) = (input.first_round, input.last_round);
    let rounds = if first > last {
        0
    } else {
        (last - first).saturating_add(1).min(1 << 32) as usize
    };
    let header = digest_header(input, params);
    // Each VP's and block's hash once; per observation only a mix of them.
    let vp_hash: Vec<u64> = input.vps.iter().map(|v| name_hash(v)).collect();
    let block_hash: Vec<u64> = input.blocks.iter().map(|b| net_hash(&b.net)).collect();
    // `None`: no observation in the round.
    let mut sums: Vec<Option<u64>> = vec![None; rounds];
    let mut add = |round: u64, h: u64| {
        if let Some(r) = round.checked_sub(first).filter(|&r| r < rounds as u64) {
            let slot = &mut sums[r as usize];
            *slot = Some(slot.unwrap_or(0).wrapping_add(h));
        }
    };
    for o in &input.obs {
        let (Some(vp), Some(b)) = (vp_hash.get(o.vp as usize), block_hash.get(o.block as usize))
        else {
            continue;
        };
        add(o.round, obs_digest(*vp, *b, o));
    }
    for c in &input.control {
        let Some(vp) = vp_hash.get(c.vp as usize) else {
            continue;
        };
        add(c.round, control_digest(*vp, c));
    }
    sums.iter().map(|s| finish_digest(header, *s)).collect()
}

/// What every round's digest of a campaign shares: its top scope, prefixes,
/// origins and the parameters.
pub(crate) fn digest_header(input: &Input, params: &Params) -> u64 {
    let mut header = Fnv::new()
        .bytes(input.target.as_bytes())
        .num(u64::from(input.is_country))
        .bytes(serde_json::to_string(params).unwrap_or_default().as_bytes());
    for p in &input.prefixes {
        header = header.net(&p.net);
        for a in &p.asns {
            header = header.num(u64::from(*a));
        }
    }
    header.0
}

pub(crate) fn name_hash(name: &str) -> u64 {
    Fnv::new().bytes(name.as_bytes()).0
}

pub(crate) fn net_hash(net: &ipnet::IpNet) -> u64 {
    Fnv::new().net(net).0
}

/// One observation's share of its round's digest (summed, so order-free).
pub(crate) fn obs_digest(vp: u64, block: u64, o: &crate::Obs) -> u64 {
    obs_digest_of(vp, block, o.state, o.probes, o.replies)
}

/// [`obs_digest`] from the observation's fields.
#[inline]
pub(crate) fn obs_digest_of(
    vp: u64,
    block: u64,
    state: darkwatch_schema::BlockState,
    probes: u32,
    replies: u32,
) -> u64 {
    let what =
        u64::from(crate::cells::code(state)) | u64::from(probes) << 2 | u64::from(replies) << 33;
    mix(mix(vp ^ mix(block)) ^ what)
}

pub(crate) fn control_digest(vp: u64, c: &crate::ControlObs) -> u64 {
    mix(!vp ^ u64::from(crate::cells::code(c.state)))
}

/// A round's digest from the header and the sum of its observations'
/// shares (`None`: no observation, digest 0).
pub(crate) fn finish_digest(header: u64, sum: Option<u64>) -> u64 {
    sum.map_or(0, |s| Fnv(header).num(s).0.max(1))
}
