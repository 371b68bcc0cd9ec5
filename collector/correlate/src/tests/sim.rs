//! The simulator behind the scenario tests.
//!
//! `Sim` generates an `Input` from a compact description: VPs, prefixes of
//! equal size, rounds, background loss, and per-round fault functions. Each
//! VP probes like the agent does (`agent/src/belief.rs`, one Trinocular
//! tracker per block): a block's round stops at the first reply, or once
//! `max_probes` probes went unanswered; each loss lowers the belief `B` by
//! the availability `A` (`B' = (1-A)B / ((1-A)B + 1-B)`), and the state is
//! read from `B` at the end of the round (up at 0.9, down at 0.1). `A` is the
//! share of probes answered while the block was up (an EWMA), so under heavy
//! loss a silent round weighs less. An up block costs one probe a round at
//! low loss and `1 / (1 - loss)` on average, a dark one the whole budget.
//! Randomness comes from a seeded xorshift, so every scenario replays
//! exactly.

use std::net::{IpAddr, Ipv4Addr};

use darkwatch_schema::BlockState;
use ipnet::{IpNet, Ipv4Net};

use crate::*;

pub(super) const FIRST: u64 = 1000;

/// Absolute round number of simulation step `t`.
pub(super) fn r(t: u64) -> u64 {
    FIRST + t
}

pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(super) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// What the network does to one VP's probes of one block in one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Net {
    /// Background loss only.
    Normal,
    /// This loss rate instead of the background one.
    Loss(f64),
    /// Every probe lost.
    Dark,
    /// Bypass the probe model: report this state (up: one probe answered;
    /// otherwise the whole budget unanswered).
    Report(BlockState),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) vp: usize,
    pub(super) prefix: usize,
    /// Index of the block within its prefix.
    pub(super) block: usize,
    pub(super) t: u64,
}

pub(super) type NetFn = Box<dyn Fn(At) -> Net>;
/// A traceroute from `vp` at step `t` toward `prefix`: responding hops and
/// whether it reached the target.
pub(super) type TraceFn = Box<dyn Fn(usize, u64, usize) -> Option<(Vec<IpAddr>, bool)>>;

pub(super) struct Sim {
    pub(super) vps: usize,
    pub(super) prefixes: usize,
    /// Power of two.
    pub(super) blocks_per_prefix: usize,
    /// Origin ASes per prefix (missing entries: none).
    pub(super) asns: Vec<Vec<u32>>,
    pub(super) steps: u64,
    pub(super) loss: f64,
    pub(super) seed: u64,
    pub(super) controls: bool,
    pub(super) net: NetFn,
    pub(super) control_down: Box<dyn Fn(usize, u64) -> bool>,
    /// Steps whose reports never reach the collector.
    pub(super) missing: Box<dyn Fn(u64) -> bool>,
    pub(super) traces: TraceFn,
    /// The agents' `probe.max_probes`.
    pub(super) max_probes: u32,
    /// The agents' `probe.min_campaign_probes`: probes a round sends at
    /// least over the whole country (per VP), spread over its blocks; an up
    /// block keeps being probed past its first reply up to its share.
    pub(super) min_campaign_probes: u32,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            vps: 3,
            prefixes: 4,
            blocks_per_prefix: 8,
            asns: vec![],
            steps: 40,
            loss: 0.01,
            seed: 1,
            controls: true,
            net: Box::new(|_| Net::Normal),
            control_down: Box::new(|_, _| false),
            missing: Box::new(|_| false),
            traces: Box::new(|_, _, _| None),
            max_probes: 15,
            min_campaign_probes: MIN_CAMPAIGN_PROBES,
        }
    }
}

/// The agents' default `probe.min_campaign_probes`.
pub(super) const MIN_CAMPAIGN_PROBES: u32 = 16;

pub(super) fn prefix_net(p: usize, bpp: usize) -> IpNet {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (p * bpp * 256) as u32;
    let len = 24 - bpp.trailing_zeros() as u8;
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), len).unwrap())
}

/// The address traced toward in `prefix`.
pub(super) fn trace_target(p: usize, bpp: usize) -> IpAddr {
    let IpNet::V4(n) = prefix_net(p, bpp) else {
        unreachable!()
    };
    IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 77))
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One VP's belief about one block, as the agent keeps it (see the module
/// docs and `agent/src/belief.rs`).
#[derive(Debug, Clone, Copy)]
struct Tracker {
    belief: f64,
    availability: f64,
}

impl Default for Tracker {
    fn default() -> Self {
        // A block found by discovery: up, as available as one sweep shows.
        Tracker {
            belief: 0.99,
            availability: 0.95,
        }
    }
}

impl Tracker {
    /// One round: probes (each `answered()` says whether it got a reply)
    /// until the first reply or `max_probes` losses. Returns probes, replies
    /// and the state reported.
    fn round(
        &mut self,
        max_probes: u32,
        min_probes: u32,
        mut answered: impl FnMut() -> bool,
    ) -> (u32, u32, BlockState) {
        self.belief = self.belief.clamp(0.01, 0.99);
        let mut outcomes = Vec::new();
        let mut replied = false;
        // Until the first reply, or the budget unanswered; an answered
        // block goes on to its share of the campaign's minimum.
        while (outcomes.len() as u32) < if replied { min_probes } else { max_probes } {
            let ok = answered();
            outcomes.push(ok);
            if ok {
                self.belief = 0.99;
                replied = true;
            } else if !replied {
                let lost = (1.0 - self.availability) * self.belief;
                self.belief = lost / (lost + 1.0 - self.belief);
            }
        }
        self.belief = self.belief.clamp(0.01, 0.99);
        let state = self.state();
        if state == BlockState::Up {
            for &ok in &outcomes {
                let x = if ok { 1.0 } else { 0.0 };
                self.availability = (0.95 * self.availability + 0.05 * x).clamp(0.1, 0.95);
            }
        }
        let replies = outcomes.iter().filter(|&&ok| ok).count() as u32;
        (outcomes.len() as u32, replies, state)
    }

    /// A round whose outcome is imposed: up (one probe answered) or not (the
    /// whole budget unanswered, the belief at its floor).
    fn report(&mut self, s: BlockState, max_probes: u32) -> (u32, u32, BlockState) {
        if s == BlockState::Up {
            self.belief = 0.99;
            (1, 1, s)
        } else {
            self.belief = 0.01;
            (max_probes, 0, s)
        }
    }

    fn state(&self) -> BlockState {
        if self.belief >= 0.9 {
            BlockState::Up
        } else if self.belief <= 0.1 {
            BlockState::Down
        } else {
            BlockState::Uncertain
        }
    }
}

impl Sim {
    pub(super) fn input(&self) -> Input {
        let bpp = self.blocks_per_prefix;
        let prefixes: Vec<PrefixInfo> = (0..self.prefixes)
            .map(|p| PrefixInfo {
                net: prefix_net(p, bpp),
                asns: self.asns.get(p).cloned().unwrap_or_default(),
            })
            .collect();
        let mut blocks = Vec::new();
        for p in 0..self.prefixes {
            let IpNet::V4(n) = prefix_net(p, bpp) else {
                unreachable!()
            };
            for i in 0..bpp {
                let a = Ipv4Addr::from(u32::from(n.network()) + (i * 256) as u32);
                blocks.push(BlockInfo {
                    net: IpNet::V4(Ipv4Net::new(a, 24).unwrap()),
                    prefix: p as u32,
                });
            }
        }
        let mut input = Input {
            target: "KP".into(),
            is_country: true,
            vps: (0..self.vps).map(|v| format!("vp{v}")).collect(),
            prefixes,
            first_round: FIRST,
            last_round: FIRST + self.steps - 1,
            ..Input::default()
        };
        let mut rng = Rng::new(self.seed);
        let mut trackers = vec![Tracker::default(); self.vps * blocks.len()];
        let min_probes = self
            .min_campaign_probes
            .div_ceil(blocks.len().max(1) as u32)
            .max(1);
        for t in 0..self.steps {
            // The agents keep probing while the collector is down: simulate,
            // then drop the reports.
            let keep = !(self.missing)(t);
            for v in 0..self.vps {
                if self.controls && keep {
                    for _ in 0..2 {
                        let state = if (self.control_down)(v, t) {
                            BlockState::Down
                        } else {
                            BlockState::Up
                        };
                        input.control.push(ControlObs {
                            vp: v as u32,
                            round: r(t),
                            state,
                        });
                    }
                }
                for (b, info) in blocks.iter().enumerate() {
                    let at = At {
                        vp: v,
                        prefix: info.prefix as usize,
                        block: b % bpp,
                        t,
                    };
                    let tracker = &mut trackers[v * blocks.len() + b];
                    let (probes, replies, state) = match (self.net)(at) {
                        Net::Report(s) => tracker.report(s, self.max_probes),
                        net => {
                            let p = match net {
                                Net::Loss(p) => p,
                                Net::Dark => 1.0,
                                _ => self.loss,
                            };
                            tracker.round(self.max_probes, min_probes, || !rng.chance(p))
                        }
                    };
                    if keep {
                        input.obs.push(Obs {
                            vp: v as u32,
                            block: b as u32,
                            round: r(t),
                            state,
                            probes,
                            replies,
                        });
                    }
                }
                for p in 0..self.prefixes {
                    if let (true, Some((responding, reached))) = (keep, (self.traces)(v, t, p)) {
                        input.traces.push(TraceObs {
                            vp: v as u32,
                            round: r(t),
                            target: trace_target(p, bpp),
                            responding,
                            reached,
                            unreachable: false,
                        });
                    }
                }
            }
        }
        input.blocks = blocks;
        input
    }

    pub(super) fn run(&self) -> Output {
        try_correlate(&self.input(), &Params::default()).unwrap()
    }
}

pub(super) fn kinds(out: &Output) -> Vec<(Scope, String, Kind)> {
    out.verdicts
        .iter()
        .map(|v| (v.scope, v.target.clone(), v.kind))
        .collect()
}

pub(super) fn vps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A network where `dark(at)` probes are all lost and the rest see only
/// background loss.
pub(super) fn dark_when(dark: impl Fn(At) -> bool + 'static) -> NetFn {
    Box::new(move |a| if dark(a) { Net::Dark } else { Net::Normal })
}

/// The verdicts of one kind of scope, in output order.
pub(super) fn in_scope(out: &Output, scope: Scope) -> Vec<&Verdict> {
    out.verdicts.iter().filter(|v| v.scope == scope).collect()
}
