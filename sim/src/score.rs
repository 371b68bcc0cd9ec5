//! Verdicts against the ground truth.
//!
//! Truth is per round: a prefix is dark in round `r` if an event makes it
//! unreachable from everywhere at the round's midpoint; an AS's or a
//! country's dark share is the share of its blocks in dark prefixes. Then:
//! - a **blackout** verdict is right if its scope was at least half dark in
//!   one of its rounds; a **partial** verdict if at least 5 % was; an
//!   **instability** verdict if a flapping or heavy-loss event touched its
//!   scope's prefixes during it;
//! - a truth **blackout** (a run of rounds with ≥ 90 % of the scope dark,
//!   not from flapping) is found if a blackout verdict of its scope or of
//!   an enclosing one (which the engine reports instead) overlaps it;
//!   the goals count runs of ≥ 1 round for countries and ASes, ≥ 2 for
//!   prefixes;
//! - a **flapping** event is handled if an instability verdict covering its
//!   prefix overlaps it and at most one blackout of that prefix does (not a
//!   train of them);
//! - **onset and end error**: for each blackout event found, the verdict's
//!   first round's start (and its first good round's start) less the
//!   event's start (end), in seconds;
//! - false country blackouts per country-month, false prefix blackouts
//!   (block outages) per block-day, and of those the ones on prefixes with
//!   a diurnal or renumbered block; probes per block, VP and hour.

use std::collections::{BTreeMap, HashMap};

use darkwatch_correlate::{Kind as VKind, Scope, Verdict};
use ipnet::IpNet;

use crate::events::{prefixes_of, Kind, Target, ROUND_MS};
use crate::network::World;
use crate::run::{vp_name, RunResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Country(u32),
    As(u32),
    Prefix(u32),
}

/// Per round of one scope: share dark, and whether flapping made some of it.
#[derive(Debug, Clone, Default)]
struct Series {
    dark: Vec<f32>,
    flap: Vec<bool>,
}

/// Precision of one verdict kind at one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub total: usize,
    pub right: usize,
}

impl Tally {
    pub fn ratio(&self) -> Option<f64> {
        (self.total > 0).then(|| self.right as f64 / self.total as f64)
    }
}

/// Median and 95th percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Spread {
        n: v.len(),
        median: at(0.5),
        p95: at(0.95),
    }
}

/// Everything the scorer measures.
#[derive(Debug, Clone, Default)]
pub struct Score {
    /// Precision by verdict kind and scope.
    pub precision: BTreeMap<(String, String), Tally>,
    /// Recall of truth blackouts by scope (country, asn: ≥ 1 round;
    /// prefix: ≥ 2 rounds).
    pub recall: BTreeMap<String, Tally>,
    /// Partial outage and degradation events found (partial or blackout
    /// verdict of the target overlapping).
    pub partial_recall: Tally,
    pub degradation_recall: Tally,
    /// Heavy loss events with an instability verdict touching the target.
    pub heavy_loss_recall: Tally,
    /// Flapping events given an instability verdict and no blackout train.
    pub flapping_handled: Tally,
    /// Flapping events with an instability verdict at all.
    pub flapping_instability: Tally,
    /// Countries (with data from the VP) that judged the isolated VP faulty.
    pub isolated_vp_flagged: Tally,
    pub onset_error_s: Spread,
    pub end_error_s: Spread,
    pub false_country_blackouts: usize,
    pub country_months: f64,
    /// False prefix-scope blackouts, counted in blocks.
    pub false_block_outages: usize,
    pub block_days: f64,
    /// False prefix blackouts on prefixes with a diurnal block, or a
    /// renumbered one.
    pub false_diurnal: usize,
    pub false_renumbered: usize,
    /// False prefix instability verdicts by the first trait of their
    /// prefix that may explain them: a VP's path failure or a bursty loss
    /// spell during the verdict, a diurnal, flaky or sparse (≤ 3
    /// addresses) block, or none of these.
    pub false_instability_causes: BTreeMap<String, usize>,
    pub probes_per_block_hour: f64,
    pub cpu_per_round_s: f64,
}

/// The first trait of prefix `p` that may explain a false instability
/// verdict over rounds `span` (see [`Score::false_instability_causes`]).
fn instability_cause(w: &World, p: u32, span: (usize, usize)) -> &'static str {
    let pop = &w.pop;
    let (a, b) = (span.0 as i64 * ROUND_MS, span.1 as i64 * ROUND_MS);
    let blocks = || {
        pop.prefixes[p as usize]
            .blocks
            .clone()
            .map(|i| &pop.blocks[i as usize])
    };
    if w.schedule
        .path_failures
        .iter()
        .any(|f| f.prefix == p && f.start_ms < b && a < f.end_ms)
    {
        "path failure"
    } else if w.schedule.bad_spells.iter().any(|v| {
        v[span.0.min(v.len())..span.1.min(v.len())]
            .iter()
            .any(|&x| x)
    }) {
        "bursty loss spell"
    } else if blocks().any(|b| b.hosts.diurnal) {
        "diurnal block"
    } else if blocks().any(|b| b.hosts.flaky) {
        "flaky block"
    } else if blocks().any(|b| b.hosts.responsive <= 3) {
        "sparse block"
    } else {
        "none of these"
    }
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Country => "country",
        Scope::Campaign => "campaign",
        Scope::Asn => "asn",
        Scope::Prefix => "prefix",
        Scope::Block => "block",
        Scope::Unrouted => "unrouted",
    }
}

fn kind_name(k: VKind) -> &'static str {
    match k {
        VKind::Blackout => "blackout",
        VKind::Partial => "partial",
        VKind::Instability => "instability",
        VKind::Degradation => "degradation",
    }
}

struct Truth<'a> {
    w: &'a World,
    series: HashMap<Key, Series>,
    by_net: HashMap<IpNet, u32>,
}

impl<'a> Truth<'a> {
    fn new(w: &'a World) -> Truth<'a> {
        let nr = w.rounds as usize;
        let pop = &w.pop;
        // Dark rounds of every prefix an event touches: 1 dark, 2 flapping.
        let mut prefix_dark: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for e in &w.schedule.events {
            if matches!(e.target, Target::Vp(_)) {
                continue;
            }
            let flap = matches!(e.kind, Kind::Flapping { .. });
            let (a, b) = (
                (e.start_ms / ROUND_MS) as usize,
                (e.end_ms / ROUND_MS) as usize + 1,
            );
            for p in prefixes_of(pop, e.target) {
                for r in a..b.min(nr) {
                    let mid = r as i64 * ROUND_MS + ROUND_MS / 2;
                    if e.active(mid) && w.path(p, mid).dark.is_some() {
                        let v = prefix_dark.entry(p).or_insert_with(|| vec![0; nr]);
                        v[r] |= if flap { 2 } else { 1 };
                    }
                }
            }
        }
        let mut series: HashMap<Key, Series> = HashMap::new();
        let mut dark_blocks: HashMap<Key, (Vec<u32>, Vec<bool>)> = HashMap::new();
        for (&p, rounds) in &prefix_dark {
            let pr = &pop.prefixes[p as usize];
            let n = pr.blocks.len() as u32;
            series.insert(
                Key::Prefix(p),
                Series {
                    dark: rounds
                        .iter()
                        .map(|&f| if f > 0 { 1.0 } else { 0.0 })
                        .collect(),
                    flap: rounds.iter().map(|&f| f & 2 != 0).collect(),
                },
            );
            for k in [Key::As(pr.origin), Key::Country(pr.country)] {
                let (d, fl) = dark_blocks
                    .entry(k)
                    .or_insert_with(|| (vec![0; nr], vec![false; nr]));
                for (r, &f) in rounds.iter().enumerate() {
                    if f > 0 {
                        d[r] += n;
                    }
                    fl[r] |= f & 2 != 0;
                }
            }
        }
        for (k, (d, flap)) in dark_blocks {
            let total = match k {
                Key::As(a) => pop.ases[a as usize]
                    .prefixes
                    .iter()
                    .map(|&p| pop.prefixes[p as usize].blocks.len())
                    .sum::<usize>(),
                Key::Country(c) => pop.countries[c as usize].blocks.len(),
                Key::Prefix(_) => unreachable!("only wider scopes here"),
            } as f32;
            series.insert(
                k,
                Series {
                    dark: d.iter().map(|&x| x as f32 / total).collect(),
                    flap,
                },
            );
        }
        let by_net = pop
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.net, i as u32))
            .collect();
        Truth { w, series, by_net }
    }

    fn key_of(&self, country: u32, v: &Verdict) -> Option<Key> {
        match v.scope {
            Scope::Country | Scope::Campaign => Some(Key::Country(country)),
            Scope::Asn => {
                let asn: u32 = v.target.strip_prefix("AS")?.parse().ok()?;
                Some(Key::As(asn.checked_sub(4_200_000_000)?))
            }
            Scope::Prefix => self
                .by_net
                .get(&v.target.parse().ok()?)
                .map(|&p| Key::Prefix(p)),
            Scope::Block | Scope::Unrouted => None,
        }
    }

    fn prefixes(&self, k: Key) -> Vec<u32> {
        let t = match k {
            Key::Country(c) => Target::Country(c),
            Key::As(a) => Target::As(a),
            Key::Prefix(p) => Target::Prefix(p),
        };
        prefixes_of(&self.w.pop, t)
    }

    /// Highest dark share of `k` over rounds `a..b`.
    fn max_dark(&self, k: Key, a: usize, b: usize) -> f32 {
        self.series.get(&k).map_or(0.0, |s| {
            s.dark[a.min(s.dark.len())..b.min(s.dark.len())]
                .iter()
                .copied()
                .fold(0.0, f32::max)
        })
    }

    /// Runs of rounds (start, end) with ≥ 90 % of `k` dark, not flapping.
    fn blackout_runs(&self, k: Key) -> Vec<(usize, usize)> {
        let Some(s) = self.series.get(&k) else {
            return vec![];
        };
        let mut runs = vec![];
        let mut start = None;
        for r in 0..=s.dark.len() {
            let bad = r < s.dark.len() && s.dark[r] >= 0.9 && !s.flap[r];
            match (bad, start) {
                (true, None) => start = Some(r),
                (false, Some(a)) => {
                    runs.push((a, r));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }
}

fn rounds_of(v: &Verdict, nr: usize) -> (usize, usize) {
    (
        v.start_round as usize,
        v.end_round.map_or(nr, |e| e as usize),
    )
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Scores a run's verdicts against its world's truth.
pub fn score(w: &World, run: &RunResult) -> Score {
    let pop = &w.pop;
    let nr = w.rounds as usize;
    let truth = Truth::new(w);
    let mut s = Score::default();
    // Verdicts by key.
    let mut by_key: HashMap<Key, Vec<&Verdict>> = HashMap::new();
    for (c, out) in run.outputs.iter().enumerate() {
        for v in &out.verdicts {
            if let Some(k) = truth.key_of(c as u32, v) {
                by_key.entry(k).or_default().push(v);
            }
        }
    }
    let inst_events: Vec<_> = w
        .schedule
        .events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Flapping { .. } | Kind::HeavyLoss { .. }))
        .collect();
    for (&k, vs) in &by_key {
        for v in vs {
            let span = rounds_of(v, nr);
            let right = match v.kind {
                VKind::Blackout => truth.max_dark(k, span.0, span.1) >= 0.5,
                VKind::Partial => truth.max_dark(k, span.0, span.1) >= 0.05,
                VKind::Instability => {
                    let mine = truth.prefixes(k);
                    inst_events.iter().any(|e| {
                        let es = (
                            (e.start_ms / ROUND_MS) as usize,
                            (e.end_ms / ROUND_MS) as usize + 1,
                        );
                        overlaps(span, es)
                            && prefixes_of(pop, e.target).iter().any(|p| mine.contains(p))
                    })
                }
                // The simulated Internet models no reply times yet (issue
                // 31, point 4): any degradation is a false one.
                VKind::Degradation => false,
            };
            let t = s
                .precision
                .entry((kind_name(v.kind).into(), scope_name(v.scope).into()))
                .or_default();
            t.total += 1;
            t.right += usize::from(right);
            if let (false, VKind::Instability, Key::Prefix(p)) = (right, v.kind, k) {
                *s.false_instability_causes
                    .entry(instability_cause(w, p, span).into())
                    .or_default() += 1;
            }
            if !right && v.kind == VKind::Blackout {
                match k {
                    Key::Country(_) => s.false_country_blackouts += 1,
                    Key::Prefix(p) => {
                        s.false_block_outages += v.blocks_affected.max(1);
                        let blocks = pop.prefixes[p as usize].blocks.clone();
                        let end_ms = span.1 as i64 * ROUND_MS;
                        if blocks.clone().any(|b| pop.blocks[b as usize].hosts.diurnal) {
                            s.false_diurnal += 1;
                        }
                        if blocks
                            .clone()
                            .any(|b| w.renumbered_at(b).is_some_and(|t| t < end_ms))
                        {
                            s.false_renumbered += 1;
                        }
                    }
                    Key::As(_) => {}
                }
            }
        }
    }
    // Enclosing keys of a key (itself first).
    let chain = |k: Key| -> Vec<Key> {
        match k {
            Key::Prefix(p) => {
                let pr = &pop.prefixes[p as usize];
                vec![k, Key::As(pr.origin), Key::Country(pr.country)]
            }
            Key::As(a) => vec![k, Key::Country(pop.ases[a as usize].country)],
            Key::Country(_) => vec![k],
        }
    };
    let found = |keys: &[Key], kinds: &[VKind], span: (usize, usize)| -> Vec<&Verdict> {
        keys.iter()
            .flat_map(|k| by_key.get(k).into_iter().flatten())
            .filter(|v| kinds.contains(&v.kind) && overlaps(rounds_of(v, nr), span))
            .copied()
            .collect()
    };
    // Blackout recall over truth runs.
    let mut keys: Vec<Key> = truth.series.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let (name, min_len) = match k {
            Key::Country(_) => ("country", 1),
            Key::As(a) => {
                // An AS holding its whole country has no scope of its own.
                let c = &pop.countries[pop.ases[a as usize].country as usize];
                if pop.ases[a as usize].prefixes.len() == c.prefixes.len() {
                    continue;
                }
                ("asn", 1)
            }
            Key::Prefix(_) => ("prefix", 2),
        };
        for run in truth.blackout_runs(k) {
            if run.1 - run.0 < min_len {
                continue;
            }
            let t = s.recall.entry(name.into()).or_default();
            t.total += 1;
            t.right += usize::from(!found(&chain(k), &[VKind::Blackout], run).is_empty());
        }
    }
    // Events.
    let mut onset = vec![];
    let mut end = vec![];
    for e in &w.schedule.events {
        let span = (
            (e.start_ms / ROUND_MS) as usize,
            (e.end_ms / ROUND_MS) as usize + 1,
        );
        let key = match e.target {
            Target::Country(c) => Key::Country(c),
            Target::As(a) => Key::As(a),
            Target::Prefix(p) => Key::Prefix(p),
            Target::Vp(v) => {
                if e.kind == Kind::VpIsolated {
                    let name = vp_name(v);
                    for out in &run.outputs {
                        let hit = out.vp_faults.iter().any(|f| {
                            let fs = (
                                f.start_round as usize,
                                f.end_round.map_or(nr, |x| x as usize),
                            );
                            f.vp == name && overlaps(fs, span)
                        });
                        s.isolated_vp_flagged.total += 1;
                        s.isolated_vp_flagged.right += usize::from(hit);
                    }
                }
                continue;
            }
        };
        let keys = chain(key);
        match e.kind {
            Kind::Blackout { .. } => {
                if let Some(v) = found(&keys, &[VKind::Blackout], span).first() {
                    onset.push((v.start_round as i64 * ROUND_MS - e.start_ms) as f64 / 1000.0);
                    if let Some(x) = v.end_round {
                        end.push((x as i64 * ROUND_MS - e.end_ms) as f64 / 1000.0);
                    }
                }
            }
            Kind::Partial { .. } | Kind::Degradation => {
                let hit = !found(&keys, &[VKind::Partial, VKind::Blackout], span).is_empty();
                let t = if matches!(e.kind, Kind::Degradation) {
                    &mut s.degradation_recall
                } else {
                    &mut s.partial_recall
                };
                t.total += 1;
                t.right += usize::from(hit);
            }
            Kind::HeavyLoss { .. } => {
                s.heavy_loss_recall.total += 1;
                s.heavy_loss_recall.right +=
                    usize::from(!found(&keys, &[VKind::Instability], span).is_empty());
            }
            Kind::Flapping { .. } => {
                let inst = !found(&keys, &[VKind::Instability], span).is_empty();
                let train = found(&keys[..1], &[VKind::Blackout], span).len();
                s.flapping_instability.total += 1;
                s.flapping_instability.right += usize::from(inst);
                s.flapping_handled.total += 1;
                s.flapping_handled.right += usize::from(inst && train <= 1);
            }
            _ => {}
        }
    }
    s.onset_error_s = spread(onset.iter().map(|x| x.abs()).collect());
    s.end_error_s = spread(end.iter().map(|x| x.abs()).collect());
    let months = w.rounds as f64 * ROUND_MS as f64 / (30.0 * 86_400_000.0);
    let days = w.rounds as f64 * ROUND_MS as f64 / 86_400_000.0;
    s.country_months = pop.countries.len() as f64 * months;
    s.block_days = pop.blocks.len() as f64 * days;
    let hours = days * 24.0;
    s.probes_per_block_hour =
        run.probes as f64 / (f64::from(w.vps) * pop.blocks.len() as f64 * hours).max(1.0);
    s.cpu_per_round_s = run.cpu_s / w.rounds.max(1) as f64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_known_values() {
        let s = spread((1..=100).map(f64::from).collect());
        assert_eq!((s.n, s.median, s.p95), (100, 51.0, 95.0));
        assert_eq!(spread(vec![]).n, 0);
    }
}
