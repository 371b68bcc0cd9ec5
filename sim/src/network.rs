//! The simulated network's answer to one probe, as a function of the
//! population, the schedule and the probe's time (plus the routers' ICMP
//! error budgets, [`ErrorLimiter`], the only state). Nothing here sends a
//! packet or reads a clock.
//!
//! A probe from a VP to a host is, in order: lost if the VP is isolated;
//! answered by the border router with "net unreachable" (when its error
//! budget allows, else silence) if the prefix is withdrawn, silent if it
//! is blackholed; lost on the VP's path failures; lost to random, bursty
//! and throttling loss; lost if the block's hosts were renumbered away;
//! otherwise answered with the host's own chance (`hosts`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::events::{Kind, Schedule, Target, RANDOM_LOSS, ROUND_MS, SPELL_LOSS};
use crate::hosts;
use crate::population::Population;
use crate::rng::{hash, unit};

/// What a probe got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Reply,
    Lost,
    /// An ICMP unreachable from this router.
    Unreachable(IpAddr),
}

/// Linux's limit on ICMP errors for a missing route (`ip_error`): one
/// token bucket per source, `error_cost` (1 s) a message, at most
/// `error_burst` (5 s) saved up. Kept per VP and border router.
#[derive(Debug, Default)]
pub struct ErrorLimiter {
    buckets: HashMap<(u32, u32), (i64, i64)>,
}

impl ErrorLimiter {
    pub const COST_MS: i64 = 1_000;
    pub const BURST_MS: i64 = 5_000;

    /// May router `router` answer VP `vp` at `t_ms`? Spends a token if so.
    /// Time that goes backwards refills nothing.
    pub fn allow(&mut self, vp: u32, router: u32, t_ms: i64) -> bool {
        let (tokens, last) = self
            .buckets
            .entry((vp, router))
            .or_insert((Self::BURST_MS, t_ms));
        let now = t_ms.max(*last);
        *tokens = (*tokens + (now - *last)).min(Self::BURST_MS);
        *last = now;
        if *tokens >= Self::COST_MS {
            *tokens -= Self::COST_MS;
            true
        } else {
            false
        }
    }
}

/// The state of a prefix's path at a moment, from the events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathState {
    /// Unreachable from everywhere; `Some(true)` if withdrawn (the border
    /// says so), `Some(false)` if blackholed.
    pub dark: Option<bool>,
    /// Extra loss (throttling) on the way.
    pub loss: f64,
}

/// The population, its schedule and indices to answer probes fast.
pub struct World {
    pub seed: u64,
    pub pop: Population,
    pub schedule: Schedule,
    pub vps: u32,
    pub rounds: u64,
    /// Per prefix, the events (indices) that touch it.
    prefix_events: Vec<Vec<u32>>,
    /// Per prefix, its path failures (indices).
    prefix_paths: Vec<Vec<u32>>,
    /// Per block, when its hosts left (`i64::MAX`: never).
    renumber_at: Vec<i64>,
}

impl World {
    pub fn new(pop: Population, schedule: Schedule, vps: u32, rounds: u64, seed: u64) -> World {
        let mut prefix_events = vec![vec![]; pop.prefixes.len()];
        for (i, e) in schedule.events.iter().enumerate() {
            for p in crate::events::prefixes_of(&pop, e.target) {
                prefix_events[p as usize].push(i as u32);
            }
        }
        let mut prefix_paths = vec![vec![]; pop.prefixes.len()];
        for (i, f) in schedule.path_failures.iter().enumerate() {
            prefix_paths[f.prefix as usize].push(i as u32);
        }
        let mut renumber_at = vec![i64::MAX; pop.blocks.len()];
        for &(b, t) in &schedule.renumbered {
            renumber_at[b as usize] = renumber_at[b as usize].min(t);
        }
        World {
            seed,
            pop,
            schedule,
            vps,
            rounds,
            prefix_events,
            prefix_paths,
            renumber_at,
        }
    }

    /// When block `b`'s hosts were renumbered away, if ever.
    pub fn renumbered_at(&self, b: u32) -> Option<i64> {
        Some(self.renumber_at[b as usize]).filter(|&t| t != i64::MAX)
    }

    /// Prefix `p`'s path at `t_ms` (ground truth: `dark` is an outage).
    pub fn path(&self, p: u32, t_ms: i64) -> PathState {
        let mut s = PathState::default();
        for &i in &self.prefix_events[p as usize] {
            let e = &self.schedule.events[i as usize];
            if !e.active(t_ms) {
                continue;
            }
            let mark = unit(hash(&[self.seed, 5, u64::from(i), u64::from(p)]));
            let dark = match e.kind {
                Kind::Blackout { withdrawn } => Some(withdrawn),
                Kind::Partial { share } => (mark < share).then_some(false),
                Kind::Flapping { period } => {
                    let phase = (t_ms - e.start_ms) / ROUND_MS / i64::from(period);
                    (phase % 2 == 0).then_some(true)
                }
                Kind::Degradation => {
                    let at = e.start_ms + ((e.end_ms - e.start_ms) as f64 * mark) as i64;
                    (t_ms >= at).then_some(false)
                }
                Kind::HeavyLoss { loss } => {
                    s.loss = 1.0 - (1.0 - s.loss) * (1.0 - loss);
                    None
                }
                _ => None,
            };
            s.dark = s.dark.or(dark);
        }
        s
    }

    /// Is VP `vp` affected by an event of this kind at `t_ms`?
    pub fn vp_event(
        &self,
        vp: u32,
        t_ms: i64,
        want: fn(&Kind) -> bool,
    ) -> Option<&crate::events::Event> {
        self.schedule
            .events
            .iter()
            .find(|e| e.target == Target::Vp(vp) && want(&e.kind) && e.active(t_ms))
    }

    /// The border router of AS `a` (inside 198.18.0.0/15, never in a block).
    pub fn border(a: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + (a & 0x1_ffff)))
    }

    /// VP `vp`'s probe number `k` of `round` to host `host` (`None`: an
    /// address that never answers) of block `b`, sent at `t_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn probe(
        &self,
        vp: u32,
        b: u32,
        host: Option<u32>,
        round: u64,
        k: u32,
        t_ms: i64,
        limiter: &mut ErrorLimiter,
    ) -> Answer {
        if self
            .vp_event(vp, t_ms, |k| matches!(k, Kind::VpIsolated))
            .is_some()
        {
            return Answer::Lost;
        }
        let block = &self.pop.blocks[b as usize];
        let p = block.prefix;
        let path = self.path(p, t_ms);
        if let Some(withdrawn) = path.dark {
            let origin = self.pop.prefixes[p as usize].origin;
            return if withdrawn && limiter.allow(vp, origin, t_ms) {
                Answer::Unreachable(Self::border(origin))
            } else {
                Answer::Lost
            };
        }
        let cut = self.prefix_paths[p as usize].iter().any(|&i| {
            let f = &self.schedule.path_failures[i as usize];
            f.vp == vp && f.start_ms <= t_ms && t_ms < f.end_ms
        });
        if cut {
            return Answer::Lost;
        }
        let spell = self
            .schedule
            .bad_spells
            .get(vp as usize)
            .and_then(|v| v.get(round as usize))
            .is_some_and(|&b| b);
        let keep =
            (1.0 - RANDOM_LOSS) * (1.0 - path.loss) * if spell { 1.0 - SPELL_LOSS } else { 1.0 };
        let x = hash(&[
            self.seed,
            6,
            u64::from(vp),
            u64::from(b),
            round,
            u64::from(k),
        ]);
        if unit(x) >= keep || t_ms >= self.renumber_at[b as usize] {
            return Answer::Lost;
        }
        let Some(host) = host else {
            return Answer::Lost;
        };
        let country = &self.pop.countries[self.pop.prefixes[p as usize].country as usize];
        let chance = hosts::answer_chance(
            self.seed,
            b,
            &block.hosts,
            host,
            round,
            t_ms,
            country.utc_offset_h,
        );
        if unit(hash(&[x, 7])) < chance {
            Answer::Reply
        } else {
            Answer::Lost
        }
    }
}

#[cfg(test)]
mod tests;
