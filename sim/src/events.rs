//! What happens during the simulated week: the ground truth the verdicts
//! are scored against, and the benign changes that must not become
//! verdicts.
//!
//! Ground-truth events (each on a target that no other event touches at the
//! same time, with two rounds to spare, so that truth is unambiguous):
//! - blackouts of a country, an AS or a prefix, 1 round to 3 days
//!   (log-uniform), either withdrawn (the border answers "net
//!   unreachable", rate-limited) or blackholed (silence);
//! - partial outages: a random 20–60 % of a country's or AS's prefixes;
//! - flapping: a prefix down for `period` rounds, up for `period`, with
//!   periods 1–8, for 3–6 cycles;
//! - slow degradation: an AS's prefixes go dark one by one, at random
//!   times spread over 12–72 rounds, until the event ends;
//! - heavy loss (throttling): 30–70 % of the probes to a country or AS
//!   lost, 6–72 rounds;
//! - VP failures: one VP dead, one isolated (every probe and control
//!   lost), one with its clock a round ahead.
//!
//! Benign changes: renumbering (a block's hosts leave for another block
//! and never come back; Ebb and Flow, PAM 2024, finds about 41,000 such
//! false outages a quarter over IODA's ~4–5M blocks, about 0.07 % of blocks
//! a week; the simulator uses 0.1 %), per-VP path failures (one VP loses a
//! prefix the others still reach, 1–36 rounds; Baltra et al. find partial
//! reachability more common than outages: here twice as many as prefix
//! blackouts), and bursty VP loss (a Gilbert–Elliott chain per VP: 2 % of
//! rounds start a bad spell that continues with 0.7, losing 20 % of
//! probes) on top of 1 % random loss per probe.

use crate::population::Population;
use crate::rng::{hash, unit, Seq};

/// Length of a round (10 minutes).
pub const ROUND_MS: i64 = 600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Country(u32),
    As(u32),
    Prefix(u32),
    Vp(u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `withdrawn`: the route is gone and the border says so (rate
    /// limited); otherwise packets vanish.
    Blackout {
        withdrawn: bool,
    },
    Partial {
        share: f64,
    },
    Flapping {
        period: u32,
    },
    Degradation,
    HeavyLoss {
        loss: f64,
    },
    VpDead,
    VpIsolated,
    VpClockAhead {
        rounds: u32,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Blackout { .. } => "blackout",
            Kind::Partial { .. } => "partial",
            Kind::Flapping { .. } => "flapping",
            Kind::Degradation => "degradation",
            Kind::HeavyLoss { .. } => "heavy loss",
            Kind::VpDead => "VP dead",
            Kind::VpIsolated => "VP isolated",
            Kind::VpClockAhead { .. } => "VP clock ahead",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub target: Target,
    /// Simulated time (ms from the first round's start), end exclusive.
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Event {
    pub fn active(&self, t_ms: i64) -> bool {
        self.start_ms <= t_ms && t_ms < self.end_ms
    }
}

/// One VP loses one prefix that the others still reach.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFailure {
    pub vp: u32,
    pub prefix: u32,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    pub events: Vec<Event>,
    /// Block index and when its hosts left.
    pub renumbered: Vec<(u32, i64)>,
    pub path_failures: Vec<PathFailure>,
    /// Per VP and round: in a bad (lossy) spell.
    pub bad_spells: Vec<Vec<bool>>,
}

/// Loss of a VP's probes in a bad spell, and of every probe.
pub const SPELL_LOSS: f64 = 0.2;
pub const RANDOM_LOSS: f64 = 0.01;

/// Which country a target lies in (`None` for a VP).
pub fn country_of(pop: &Population, t: Target) -> Option<u32> {
    match t {
        Target::Country(c) => Some(c),
        Target::As(a) => Some(pop.ases[a as usize].country),
        Target::Prefix(p) => Some(pop.prefixes[p as usize].country),
        Target::Vp(_) => None,
    }
}

/// The prefixes of a target.
pub fn prefixes_of(pop: &Population, t: Target) -> Vec<u32> {
    match t {
        Target::Country(c) => pop.countries[c as usize].prefixes.clone().collect(),
        Target::As(a) => pop.ases[a as usize].prefixes.clone(),
        Target::Prefix(p) => vec![p],
        Target::Vp(_) => vec![],
    }
}

struct Planner<'a> {
    pop: &'a Population,
    seq: Seq,
    rounds: u64,
    /// Per country, busy intervals in rounds.
    busy: Vec<Vec<(u64, u64)>>,
    events: Vec<Event>,
}

impl Planner<'_> {
    /// Places an event of `dur` rounds on a target drawn by `draw`, in a
    /// country free at that time; gives up after a few tries.
    fn place(&mut self, kind: Kind, dur: u64, mut draw: impl FnMut(&mut Seq) -> Option<Target>) {
        // Leave a day of baseline at the start and room for the end.
        let lo = 24.min(self.rounds / 4);
        let dur = dur.clamp(1, self.rounds.saturating_sub(lo + 4).max(1));
        for _ in 0..50 {
            let Some(target) = draw(&mut self.seq) else {
                continue;
            };
            let start = self
                .seq
                .range(lo, self.rounds.saturating_sub(dur + 2).max(lo + 1));
            let c = country_of(self.pop, target).unwrap_or(0) as usize;
            let (a, b) = (start.saturating_sub(2), start + dur + 2);
            if self.busy[c].iter().any(|&(x, y)| a < y && x < b) {
                continue;
            }
            self.busy[c].push((a, b));
            // Within the round: the event starts and ends at any second.
            let off = self.seq.range(0, ROUND_MS as u64) as i64;
            self.events.push(Event {
                kind,
                target,
                start_ms: start as i64 * ROUND_MS + off,
                end_ms: (start + dur) as i64 * ROUND_MS + off,
            });
            return;
        }
    }
}

/// The week's events for `pop`, `vps` VPs and `rounds` rounds.
pub fn generate(pop: &Population, vps: u32, rounds: u64, seed: u64) -> Schedule {
    let mut p = Planner {
        pop,
        seq: Seq::new(seed ^ 0xe7e7),
        rounds,
        busy: vec![vec![]; pop.countries.len()],
        events: vec![],
    };
    let (nc, na, np) = (
        pop.countries.len() as u64,
        pop.ases.len() as u64,
        pop.prefixes.len() as u64,
    );
    let three_days = 432;
    // Scale the counts with the population, with floors for small runs.
    let scale = |n: u64, per: u64, floor: u64| (n / per).max(floor);
    for _ in 0..scale(nc, 10, 4) {
        let withdrawn = p.seq.unit() < 0.5;
        let dur = p.seq.log_range(1, three_days);
        p.place(Kind::Blackout { withdrawn }, dur, |s| {
            Some(Target::Country(s.range(0, nc) as u32))
        });
    }
    for _ in 0..scale(na, 50, 6) {
        let withdrawn = p.seq.unit() < 0.5;
        let dur = p.seq.log_range(1, three_days);
        p.place(Kind::Blackout { withdrawn }, dur, |s| {
            Some(Target::As(s.range(0, na) as u32))
        });
    }
    for _ in 0..scale(np, 300, 10) {
        let withdrawn = p.seq.unit() < 0.5;
        let dur = p.seq.log_range(1, three_days);
        p.place(Kind::Blackout { withdrawn }, dur, |s| {
            Some(Target::Prefix(s.range(0, np) as u32))
        });
    }
    for _ in 0..scale(nc, 10, 4) {
        let share = 0.2 + 0.4 * p.seq.unit();
        let dur = p.seq.log_range(2, 144);
        p.place(Kind::Partial { share }, dur, |s| {
            // Partial outages need several prefixes to take a share of.
            let t = if s.unit() < 0.5 {
                Target::Country(s.range(0, nc) as u32)
            } else {
                Target::As(s.range(0, na) as u32)
            };
            (prefixes_of(pop, t).len() >= 5).then_some(t)
        });
    }
    for i in 0..scale(np, 1_000, 16) {
        let period = 1 + (i % 8) as u32;
        let cycles = p.seq.range(3, 7);
        p.place(
            Kind::Flapping { period },
            2 * u64::from(period) * cycles,
            |s| Some(Target::Prefix(s.range(0, np) as u32)),
        );
    }
    for _ in 0..scale(na, 200, 3) {
        let dur = p.seq.range(12, 73);
        p.place(Kind::Degradation, dur, |s| {
            let t = Target::As(s.range(0, na) as u32);
            (prefixes_of(pop, t).len() >= 4).then_some(t)
        });
    }
    for _ in 0..scale(nc, 20, 4) {
        let loss = 0.3 + 0.4 * p.seq.unit();
        let dur = p.seq.range(6, 73);
        p.place(Kind::HeavyLoss { loss }, dur, |s| {
            Some(if s.unit() < 0.5 {
                Target::Country(s.range(0, nc) as u32)
            } else {
                Target::As(s.range(0, na) as u32)
            })
        });
    }
    let mut events = p.events;
    let mut seq = p.seq;
    // VP failures, one VP each, at separate times (a quorum of two must
    // stay possible).
    if vps >= 3 {
        let third = rounds / 3;
        let kinds = [
            Kind::VpDead,
            Kind::VpIsolated,
            Kind::VpClockAhead { rounds: 1 },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let dur = seq.range(6, 145).min(third.saturating_sub(2).max(1));
            let start = i as u64 * third + seq.range(1, third.saturating_sub(dur).max(2));
            events.push(Event {
                kind,
                target: Target::Vp(i as u32),
                start_ms: start as i64 * ROUND_MS,
                end_ms: (start + dur) as i64 * ROUND_MS,
            });
        }
    }
    let week_ms = rounds as i64 * ROUND_MS;
    let nb = pop.blocks.len() as u64;
    let renumber = ((nb as f64 * 0.001 * rounds as f64 / 1008.0).round() as u64).max(2);
    let renumbered = (0..renumber)
        .map(|_| (seq.range(0, nb) as u32, seq.range(0, week_ms as u64) as i64))
        .collect();
    let n_paths = 2 * scale(np, 300, 10);
    let path_failures = (0..n_paths)
        .map(|_| {
            let start =
                seq.range(0, rounds) as i64 * ROUND_MS + seq.range(0, ROUND_MS as u64) as i64;
            PathFailure {
                vp: seq.range(0, u64::from(vps.max(1))) as u32,
                prefix: seq.range(0, np) as u32,
                start_ms: start,
                end_ms: start + seq.log_range(1, 36) as i64 * ROUND_MS,
            }
        })
        .collect();
    let bad_spells = (0..vps)
        .map(|v| {
            let mut bad = false;
            (0..rounds)
                .map(|r| {
                    let x = unit(hash(&[seed, 3, u64::from(v), r]));
                    bad = if bad { x < 0.7 } else { x < 0.02 };
                    bad
                })
                .collect()
        })
        .collect();
    Schedule {
        events,
        renumbered,
        path_failures,
        bad_spells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::{generate as populate, PopConfig};

    #[test]
    fn every_kind_is_scheduled_within_bounds() {
        let pop = populate(&PopConfig::for_blocks(20_000), 5);
        let s = generate(&pop, 5, 1008, 5);
        for name in [
            "blackout",
            "partial",
            "flapping",
            "degradation",
            "heavy loss",
            "VP dead",
            "VP isolated",
            "VP clock ahead",
        ] {
            assert!(s.events.iter().any(|e| e.kind.name() == name), "{name}");
        }
        for e in &s.events {
            assert!(0 <= e.start_ms && e.start_ms < e.end_ms, "{e:?}");
            assert!(e.end_ms <= 1008 * ROUND_MS + ROUND_MS, "{e:?}");
            if let Kind::Blackout { .. } = e.kind {
                assert!(e.end_ms - e.start_ms <= 432 * ROUND_MS);
            }
        }
        let periods: Vec<u32> = s
            .events
            .iter()
            .filter_map(|e| match e.kind {
                Kind::Flapping { period } => Some(period),
                _ => None,
            })
            .collect();
        assert!((1..=8).all(|p| periods.contains(&p)), "{periods:?}");
        assert!(!s.renumbered.is_empty() && !s.path_failures.is_empty());
    }

    #[test]
    fn events_of_one_country_do_not_overlap() {
        let pop = populate(&PopConfig::for_blocks(20_000), 6);
        let s = generate(&pop, 5, 1008, 6);
        for (i, a) in s.events.iter().enumerate() {
            for b in &s.events[i + 1..] {
                let (ca, cb) = (country_of(&pop, a.target), country_of(&pop, b.target));
                if ca.is_some() && ca == cb {
                    assert!(
                        a.end_ms <= b.start_ms || b.end_ms <= a.start_ms,
                        "{a:?} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn bursty_loss_comes_in_spells() {
        let pop = populate(&PopConfig::for_blocks(1_000), 7);
        let s = generate(&pop, 4, 10_000, 7);
        let bad: usize = s
            .bad_spells
            .iter()
            .map(|v| v.iter().filter(|&&b| b).count())
            .sum();
        let starts: usize = s
            .bad_spells
            .iter()
            .map(|v| v.windows(2).filter(|w| !w[0] && w[1]).count())
            .sum();
        // Spells last 1 / (1 - 0.7) ≈ 3.3 rounds on average.
        let mean = bad as f64 / starts as f64;
        assert!((2.5..4.5).contains(&mean), "{mean}");
    }
}
