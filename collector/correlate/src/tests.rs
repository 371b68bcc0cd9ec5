//! Scenario tests on synthetic timelines.
//!
//! `Sim` generates an `Input` from a compact description: VPs, prefixes of
//! equal size, rounds, background loss, and per-round fault functions. Each VP
//! probes like the agent does (one probe per block and round, a second one if
//! the first was lost, so ~1.1 probes at 10% loss) and reports a block down
//! only after 3 consecutive lost probes, uncertain before that. Randomness
//! comes from a seeded xorshift, so every scenario replays exactly.

use std::net::{IpAddr, Ipv4Addr};

use darkwatch_schema::BlockState;
use ipnet::{IpNet, Ipv4Net};

use super::*;

const FIRST: u64 = 1000;

/// Absolute round number of simulation step `t`.
fn r(t: u64) -> u64 {
    FIRST + t
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// What the network does to one VP's probes of one block in one step.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    /// Background loss only.
    Normal,
    /// This loss rate instead of the background one.
    Loss(f64),
    /// Every probe lost.
    Dark,
    /// Bypass the probe model: report this state (2 probes, a reply if up).
    Report(BlockState),
}

#[derive(Debug, Clone, Copy)]
struct At {
    vp: usize,
    prefix: usize,
    /// Index of the block within its prefix.
    block: usize,
    t: u64,
}

type NetFn = Box<dyn Fn(At) -> Net>;
/// A traceroute from `vp` at step `t` toward `prefix`: responding hops and
/// whether it reached the target.
type TraceFn = Box<dyn Fn(usize, u64, usize) -> Option<(Vec<IpAddr>, bool)>>;

struct Sim {
    vps: usize,
    prefixes: usize,
    /// Power of two.
    blocks_per_prefix: usize,
    /// Origin ASes per prefix (missing entries: none).
    asns: Vec<Vec<u32>>,
    steps: u64,
    loss: f64,
    seed: u64,
    controls: bool,
    net: NetFn,
    control_down: Box<dyn Fn(usize, u64) -> bool>,
    /// Steps whose reports never reach the collector.
    missing: Box<dyn Fn(u64) -> bool>,
    traces: TraceFn,
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
        }
    }
}

fn prefix_net(p: usize, bpp: usize) -> IpNet {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (p * bpp * 256) as u32;
    let len = 24 - bpp.trailing_zeros() as u8;
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), len).unwrap())
}

/// The address traced toward in `prefix`.
fn trace_target(p: usize, bpp: usize) -> IpAddr {
    let IpNet::V4(n) = prefix_net(p, bpp) else {
        unreachable!()
    };
    IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 77))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

impl Sim {
    fn input(&self) -> Input {
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
        let mut consec = vec![0u32; self.vps * blocks.len()];
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
                    let c = &mut consec[v * blocks.len() + b];
                    let (probes, replies, state) = match (self.net)(at) {
                        Net::Report(s) => {
                            *c = if s == BlockState::Up { 0 } else { *c + 2 };
                            (2, u32::from(s == BlockState::Up), s)
                        }
                        net => {
                            let p = match net {
                                Net::Loss(p) => p,
                                Net::Dark => 1.0,
                                _ => self.loss,
                            };
                            let (mut probes, mut replies) = (0, 0);
                            // A second probe only if the first was lost.
                            while probes < 2 && replies == 0 {
                                probes += 1;
                                if rng.chance(p) {
                                    *c += 1;
                                } else {
                                    replies += 1;
                                    *c = 0;
                                }
                            }
                            let state = if replies > 0 {
                                BlockState::Up
                            } else if *c >= 3 {
                                BlockState::Down
                            } else {
                                BlockState::Uncertain
                            };
                            (probes, replies, state)
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
                        });
                    }
                }
            }
        }
        input.blocks = blocks;
        input
    }

    fn run(&self) -> Output {
        try_correlate(&self.input(), &Params::default()).unwrap()
    }
}

fn kinds(out: &Output) -> Vec<(Scope, String, Kind)> {
    out.verdicts
        .iter()
        .map(|v| (v.scope, v.target.clone(), v.kind))
        .collect()
}

fn vps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn full_blackout_gives_one_country_verdict() {
    let sim = Sim {
        net: Box::new(|a| {
            if (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(out.verdicts.len(), 1, "{:#?}", out.verdicts);
    let v = &out.verdicts[0];
    assert_eq!(
        (v.scope, v.target.as_str(), v.kind),
        (Scope::Country, "KP", Kind::Blackout)
    );
    // Step 10 is only uncertain (2 lost probes); the first down round is 11.
    assert_eq!(v.start_round, r(11));
    assert_eq!(v.end_round, Some(r(20)));
    assert_eq!((v.blocks_affected, v.blocks_total), (32, 32));
    assert_eq!(v.prefixes.len(), 4);
    assert_eq!(v.vantage_points, vps(&["vp0", "vp1", "vp2"]));
    // Controls were fine: every VP losing everything is the country, not them.
    assert!(out.vp_faults.is_empty(), "{:#?}", out.vp_faults);
    assert_eq!(out.timeline.len(), 40);
    assert_eq!(out.timeline[15].overall, Some(0.0));
    assert!(out.timeline[5].overall.unwrap() > 0.99);
    assert_eq!(out.timeline[15].per_vp, vec![Some(0.0); 3]);
}

#[test]
fn ongoing_blackout_has_no_end() {
    let sim = Sim {
        net: Box::new(|a| if a.t >= 30 { Net::Dark } else { Net::Normal }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
    assert_eq!(out.verdicts[0].start_round, r(31));
    assert_eq!(out.verdicts[0].end_round, None);
}

#[test]
fn campaign_scope_when_not_a_country() {
    let sim = Sim {
        net: Box::new(|a| {
            if (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let mut input = sim.input();
    input.is_country = false;
    input.target = "lab".into();
    let out = correlate(&input, &Params::default());
    assert_eq!(
        kinds(&out),
        vec![(Scope::Campaign, "lab".into(), Kind::Blackout)]
    );
}

#[test]
fn blackout_whose_onset_and_repair_straddle_a_round_is_one_country_verdict() {
    // Prefixes 0 and 1 are seen down a round before 2 and 3 (the fault
    // landed while that round was being probed) and come back a round later.
    let sim = Sim {
        net: Box::new(|a| {
            let (from, to) = if a.prefix < 2 { (10, 21) } else { (12, 20) };
            if (from..to).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)],
        "{:#?}",
        out.verdicts
    );
    let v = &out.verdicts[0];
    // Prefixes 0 and 1 are down from step 11 (a first dark step is only
    // uncertain), 2 and 3 from 13; 2 and 3 are back at 20, 0 and 1 at 21.
    assert_eq!((v.start_round, v.end_round), (r(11), Some(r(21))));
    // Nor does a pass that sees only the first blackout-level round (the
    // blackout not yet past its hysteresis) report the onset as a partial.
    let sim = Sim {
        steps: 13,
        net: Box::new(|a| {
            let from = if a.prefix < 2 { 10 } else { 12 };
            if a.t >= from {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(
        out.verdicts.iter().all(|v| v.kind != Kind::Partial),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn one_dark_prefix_is_a_partial_and_a_prefix_blackout() {
    let sim = Sim {
        net: Box::new(|a| {
            if a.prefix == 2 && (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8);
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Prefix, p2.to_string(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    for v in &out.verdicts {
        assert_eq!((v.start_round, v.end_round), (r(11), Some(r(20))));
        assert_eq!(v.prefixes, vec![p2]);
        assert_eq!(v.blocks_affected, 8);
        assert_eq!(v.vantage_points, vps(&["vp0", "vp1", "vp2"]));
    }
    assert_eq!(out.verdicts[0].blocks_total, 32);
    assert_eq!(out.verdicts[1].blocks_total, 8);
}

#[test]
fn dark_as_explains_its_prefixes() {
    let sim = Sim {
        asns: vec![vec![64500], vec![64500], vec![64501], vec![64501]],
        net: Box::new(|a| {
            if a.prefix >= 2 && (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Asn, "AS64501".into(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(
        out.verdicts[0].prefixes,
        vec![prefix_net(2, 8), prefix_net(3, 8)]
    );
    assert_eq!(out.verdicts[0].blocks_affected, 16);
}

#[test]
fn moas_prefix_going_dark_counts_in_each_origin_as() {
    // Prefix 2 is announced by both AS64500 and AS64501.
    let sim = Sim {
        asns: vec![vec![64500], vec![64501], vec![64500, 64501], vec![64502]],
        net: Box::new(|a| {
            if a.prefix == 2 && (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8);
    let as_verdicts: Vec<(String, Kind, Vec<IpNet>)> = out
        .verdicts
        .iter()
        .filter(|v| v.scope == Scope::Asn)
        .map(|v| (v.target.clone(), v.kind, v.prefixes.clone()))
        .collect();
    assert_eq!(
        as_verdicts,
        vec![
            ("AS64500".into(), Kind::Partial, vec![p2]),
            ("AS64501".into(), Kind::Partial, vec![p2]),
        ],
        "{:#?}",
        out.verdicts
    );
    // The prefix's own blackout is not explained away by either AS.
    assert!(
        kinds(&out).contains(&(Scope::Prefix, p2.to_string(), Kind::Blackout)),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn moas_prefix_is_explained_by_an_origin_that_goes_dark_whole() {
    // AS64501 holds prefixes 1 and 2; prefix 2 is also AS64500's.
    let sim = Sim {
        asns: vec![vec![64500], vec![64501], vec![64500, 64501], vec![64502]],
        net: Box::new(|a| {
            if (1..=2).contains(&a.prefix) && (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Asn, "AS64500".into(), Kind::Partial),
            (Scope::Asn, "AS64501".into(), Kind::Blackout),
        ],
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn isolated_vp_is_a_fault_not_an_outage() {
    for controls in [true, false] {
        let sim = Sim {
            controls,
            net: Box::new(|a| {
                if a.vp == 1 && (10..20).contains(&a.t) {
                    Net::Dark
                } else {
                    Net::Normal
                }
            }),
            control_down: Box::new(|v, t| v == 1 && (10..20).contains(&t)),
            ..Sim::default()
        };
        let out = sim.run();
        assert!(
            out.verdicts.is_empty(),
            "controls {controls}: {:#?}",
            out.verdicts
        );
        assert_eq!(out.vp_faults.len(), 1, "{:#?}", out.vp_faults);
        let f = &out.vp_faults[0];
        assert_eq!((f.vp.as_str(), f.end_round), ("vp1", Some(r(20))));
        if controls {
            // Controls fail at once, before the blocks even look down.
            assert_eq!(f.start_round, r(10));
            assert_eq!(f.reason, "control targets unreachable");
        } else {
            assert_eq!(f.start_round, r(11));
            assert_eq!(f.reason, "lost 32 of 32 blocks while other VPs did not");
        }
        // The timeline still shows the VP's own view.
        assert_eq!(out.timeline[15].per_vp[1], Some(0.0));
        assert!(out.timeline[15].overall.unwrap() > 0.99);
    }
}

#[test]
fn isolated_vp_does_not_hide_a_later_blackout() {
    let sim = Sim {
        steps: 50,
        controls: false,
        net: Box::new(|a| {
            let isolated = a.vp == 0 && (10..40).contains(&a.t);
            if isolated || (25..35).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)],
        "{:#?}",
        out.verdicts
    );
    let v = &out.verdicts[0];
    assert_eq!((v.start_round, v.end_round), (r(26), Some(r(35))));
    assert_eq!(v.vantage_points, vps(&["vp1", "vp2"]));
    assert_eq!(out.vp_faults.len(), 1, "{:#?}", out.vp_faults);
    assert_eq!(
        (
            out.vp_faults[0].vp.as_str(),
            out.vp_faults[0].start_round,
            out.vp_faults[0].end_round
        ),
        ("vp0", r(11), Some(r(40)))
    );
}

#[test]
fn ten_percent_random_loss_gives_nothing() {
    // Large prefixes and many tiny ones (where a few lost probes are a big
    // share).
    for (vp_count, prefixes, bpp) in (1..=3).flat_map(|v| [(v, 4, 16), (v, 24, 2), (v, 32, 1)]) {
        for seed in 1..=10 {
            let sim = Sim {
                vps: vp_count,
                prefixes,
                blocks_per_prefix: bpp,
                steps: 60,
                loss: 0.1,
                seed: seed * 7919 + vp_count as u64,
                ..Sim::default()
            };
            let input = sim.input();
            // The generator really is lossy (else this test proves nothing).
            let (p, a) = input
                .obs
                .iter()
                .fold((0, 0), |(p, a), o| (p + o.probes, a + o.replies));
            let loss = 1.0 - f64::from(a) / f64::from(p);
            assert!((0.08..0.12).contains(&loss), "simulated loss {loss}");
            let out = correlate(&input, &Params::default());
            assert!(
                out.verdicts.is_empty(),
                "{vp_count} VPs, {bpp}-block prefixes, seed {seed}: {:#?}",
                out.verdicts
            );
            assert!(
                out.vp_faults.is_empty(),
                "{vp_count} VPs, seed {seed}: {:#?}",
                out.vp_faults
            );
        }
    }
}

#[test]
fn flapping_is_instability_not_an_outage() {
    // Half of the country goes down and up every other round.
    let sim = Sim {
        net: Box::new(|a| {
            if a.prefix < 2 && (20..32).contains(&a.t) && a.t % 2 == 1 {
                Net::Report(BlockState::Down)
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(
        out.verdicts.iter().all(|v| v.kind == Kind::Instability),
        "{:#?}",
        out.verdicts
    );
    let top: Vec<&Verdict> = out
        .verdicts
        .iter()
        .filter(|v| v.scope == Scope::Country)
        .collect();
    assert_eq!(top.len(), 1, "{:#?}", out.verdicts);
    assert_eq!((top[0].start_round, top[0].end_round), (r(21), Some(r(33))));
    assert_eq!(top[0].prefixes, vec![prefix_net(0, 8), prefix_net(1, 8)]);
    // The 16 flapping blocks, plus maybe one with background loss.
    assert!((16..=18).contains(&top[0].blocks_affected), "{:#?}", top[0]);
    assert_eq!(top[0].vantage_points, vps(&["vp0", "vp1", "vp2"]));
}

#[test]
fn loss_burst_is_instability_not_an_outage() {
    let sim = Sim {
        blocks_per_prefix: 16,
        net: Box::new(|a| {
            if (20..30).contains(&a.t) {
                Net::Loss(0.45)
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(
        out.verdicts.iter().all(|v| v.kind == Kind::Instability),
        "{:#?}",
        out.verdicts
    );
    let top: Vec<&Verdict> = out
        .verdicts
        .iter()
        .filter(|v| v.scope == Scope::Country)
        .collect();
    assert_eq!(top.len(), 1, "{:#?}", out.verdicts);
    assert!(
        (r(20)..=r(22)).contains(&top[0].start_round),
        "{:#?}",
        top[0]
    );
    assert!(
        top[0]
            .end_round
            .is_some_and(|e| (r(29)..=r(32)).contains(&e)),
        "{:#?}",
        top[0]
    );
    assert!(out.vp_faults.is_empty());
}

#[test]
fn single_lost_round_gives_nothing() {
    let sim = Sim {
        net: Box::new(|a| {
            if a.t == 15 {
                Net::Report(BlockState::Down)
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let out = correlate(&input, &Params::default());
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    assert!(out.vp_faults.is_empty());
    // The round really was lost: without hysteresis it would be a blackout.
    let eager = Params {
        open_after: 1,
        ..Params::default()
    };
    let out = correlate(&input, &eager);
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
}

#[test]
fn collector_downtime_is_no_data_not_an_outage() {
    let gap = |t: u64| (20..26).contains(&t);
    let sim = Sim {
        missing: Box::new(gap),
        ..Sim::default()
    };
    let out = sim.run();
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    assert!(out.vp_faults.is_empty());
    assert_eq!(out.timeline[22].overall, None);
    assert_eq!(out.timeline[22].per_vp, vec![None; 3]);

    // A blackout spanning the gap stays one verdict.
    let sim = Sim {
        missing: Box::new(gap),
        net: Box::new(|a| {
            if (15..35).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(
        (out.verdicts[0].start_round, out.verdicts[0].end_round),
        (r(16), Some(r(35)))
    );
}

#[test]
fn single_vp_without_controls_is_believed() {
    let sim = Sim {
        vps: 1,
        controls: false,
        net: Box::new(|a| {
            if (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![(Scope::Country, "KP".into(), Kind::Blackout)]
    );
    assert_eq!(
        (out.verdicts[0].start_round, out.verdicts[0].end_round),
        (r(11), Some(r(20)))
    );
    assert!(out.vp_faults.is_empty());
}

#[test]
fn quorum_with_two_vps() {
    let run = |vp1: Net, params: &Params| {
        let sim = Sim {
            vps: 2,
            net: Box::new(move |a| {
                if a.prefix == 0 && (10..20).contains(&a.t) {
                    if a.vp == 0 {
                        Net::Report(BlockState::Down)
                    } else {
                        vp1
                    }
                } else {
                    Net::Normal
                }
            }),
            ..Sim::default()
        };
        correlate(&sim.input(), params)
    };
    let p0 = prefix_net(0, 8).to_string();
    let one = Params {
        quorum: 1,
        ..Params::default()
    };
    // Down to one VP, uncertain to the other: quorum 2 is not met.
    let out = run(Net::Report(BlockState::Uncertain), &Params::default());
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    // ...quorum 1 is.
    let out = run(Net::Report(BlockState::Uncertain), &one);
    assert!(
        kinds(&out).contains(&(Scope::Prefix, p0.clone(), Kind::Blackout)),
        "{:#?}",
        out.verdicts
    );
    // Up to the other VP: up wins, whatever the quorum.
    let out = run(Net::Normal, &one);
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
    // Down to both.
    let out = run(Net::Report(BlockState::Down), &Params::default());
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Partial),
            (Scope::Prefix, p0, Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    assert_eq!(out.verdicts[1].vantage_points, vps(&["vp0", "vp1"]));
}

/// Prefix 2 dark for steps 10..20, traced every step by every VP through
/// `path(vp)` (the target is added and reached when not dark).
fn traced(path: fn(usize) -> Vec<IpAddr>) -> Output {
    let sim = Sim {
        net: Box::new(|a| {
            if a.prefix == 2 && (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        traces: Box::new(move |v, t, p| {
            (p == 2).then(|| {
                let mut hops = path(v);
                let reached = !(10..20).contains(&t);
                if reached {
                    hops.push(trace_target(2, 8));
                }
                (hops, reached)
            })
        }),
        ..Sim::default()
    };
    sim.run()
}

#[test]
fn localization_at_an_upstream_border() {
    let out = traced(|v| {
        vec![
            ip(&format!("192.0.2.{}", v + 1)),
            ip(&format!("198.51.100.{}", v + 1)),
            ip("203.0.113.1"),
        ]
    });
    assert_eq!(out.verdicts.len(), 2, "{:#?}", out.verdicts);
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("203.0.113.1")));
        assert!(!l.inside_target);
        assert_eq!(l.vantage_points, vps(&["vp0", "vp1", "vp2"]));
        // Every failing trace of every VP during the verdict is combined,
        // and all of them end at the border.
        assert_eq!(l.traces, 3 * dark_rounds(v));
        assert_eq!(l.agreeing, l.traces);
    }
}

/// Rounds of verdict `v` during which prefix 2 was dark (see [`traced`]).
fn dark_rounds(v: &Verdict) -> usize {
    (v.start_round.max(r(10))..v.end_round.unwrap_or(u64::MAX).min(r(20))).count()
}

#[test]
fn localization_inside_the_target_space() {
    let out = traced(|v| {
        vec![
            ip(&format!("192.0.2.{}", v + 1)),
            ip("203.0.113.1"),
            ip("198.18.16.1"),
        ]
    });
    assert_eq!(out.verdicts.len(), 2, "{:#?}", out.verdicts);
    for v in &out.verdicts {
        let l = v.localization.as_ref().expect("localized");
        assert_eq!(l.last_hop, Some(ip("198.18.16.1")));
        assert!(l.inside_target);
    }
}

#[test]
fn localization_without_a_common_hop_takes_the_most_common_end() {
    let out = traced(|v| match v {
        2 => vec![ip("192.0.2.3"), ip("203.0.113.9")],
        _ => vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.1")],
    });
    let l = out.verdicts[0].localization.as_ref().expect("localized");
    assert_eq!(l.last_hop, Some(ip("203.0.113.1")));
    let dark = dark_rounds(&out.verdicts[0]);
    assert_eq!((l.traces, l.agreeing), (3 * dark, 2 * dark));
}

#[test]
fn no_traces_no_localization() {
    let sim = Sim {
        net: Box::new(|a| {
            if (10..20).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    assert_eq!(sim.run().verdicts[0].localization, None);
}

#[test]
fn output_does_not_depend_on_input_order() {
    let sim = Sim {
        steps: 50,
        loss: 0.05,
        net: Box::new(|a| {
            let isolated = a.vp == 0 && (5..15).contains(&a.t);
            let dark = (25..35).contains(&a.t) || (a.prefix == 1 && (40..46).contains(&a.t));
            if isolated || dark {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        traces: Box::new(|v, _, _| {
            Some((
                vec![ip(&format!("192.0.2.{}", v + 1)), ip("203.0.113.1")],
                false,
            ))
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let reference = correlate(&input, &Params::default());
    assert!(reference.verdicts.len() >= 2, "{:#?}", reference.verdicts);
    assert!(!reference.vp_faults.is_empty());
    let mut rng = Rng::new(99);
    for _ in 0..5 {
        let mut shuffled = input.clone();
        rng.shuffle(&mut shuffled.obs);
        rng.shuffle(&mut shuffled.control);
        rng.shuffle(&mut shuffled.traces);
        assert_eq!(correlate(&shuffled, &Params::default()), reference);
    }
}

#[test]
fn bad_input_is_an_error_or_skipped() {
    let mut input = Sim::default().input();
    input.first_round = input.last_round + 1;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::InvertedWindow { .. })
    ));
    assert_eq!(correlate(&input, &Params::default()), Output::default());

    let mut input = Sim::default().input();
    input.last_round = u64::MAX;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::TooLarge { .. })
    ));

    let mut input = Sim::default().input();
    input.blocks[3].prefix = 99;
    assert!(matches!(
        try_correlate(&input, &Params::default()),
        Err(CorrelateError::BlockPrefix { .. })
    ));

    let input = Sim::default().input();
    let bad = Params {
        blackout_share: f64::NAN,
        ..Params::default()
    };
    assert!(matches!(
        try_correlate(&input, &bad),
        Err(CorrelateError::Param {
            name: "blackout_share",
            ..
        })
    ));
    let bad = Params {
        instability_min_rounds: 9,
        ..Params::default()
    };
    assert!(try_correlate(&input, &bad).is_err());

    let mut input = Sim::default().input();
    let mut o = input.obs[0];
    o.vp = 7;
    input.obs.push(o);
    o.vp = 0;
    o.round = input.last_round + 1;
    input.obs.push(o);
    let out = try_correlate(&input, &Params::default()).unwrap();
    assert_eq!(out.skipped_observations, 2);
    assert!(out.verdicts.is_empty());
}

#[test]
fn params_deserialize_with_defaults_and_refuse_unknown_fields() {
    let p: Params = serde_json::from_str(r#"{"quorum": 3}"#).unwrap();
    assert_eq!(
        p,
        Params {
            quorum: 3,
            ..Params::default()
        }
    );
    assert!(serde_json::from_str::<Params>(r#"{"quorom": 3}"#).is_err());
}

#[test]
fn back_to_back_blackouts_are_not_instability() {
    // Four transitions within a few rounds: unstable rounds if the onsets and
    // ends of the blackouts were not recognized as such.
    let sim = Sim {
        net: Box::new(|a| {
            if (10..13).contains(&a.t) || (16..19).contains(&a.t) {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    assert_eq!(
        kinds(&out),
        vec![
            (Scope::Country, "KP".into(), Kind::Blackout),
            (Scope::Country, "KP".into(), Kind::Blackout)
        ],
        "{:#?}",
        out.verdicts
    );
    let spans: Vec<_> = out
        .verdicts
        .iter()
        .map(|v| (v.start_round, v.end_round))
        .collect();
    assert_eq!(spans, vec![(r(11), Some(r(13))), (r(17), Some(r(19)))]);
}

#[test]
fn partial_is_measured_against_the_baseline() {
    // Two blocks of prefix 0 never answer anyone (6% of the country); two
    // blocks of prefix 1 go dark later: 12% down, but only 6% more than usual.
    let sim = Sim {
        net: Box::new(|a| {
            let always = a.prefix == 0 && a.block < 2;
            let later = a.prefix == 1 && a.block < 2 && (20..30).contains(&a.t);
            if always || later {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let input = sim.input();
    let out = correlate(&input, &Params::default());
    assert!(
        out.verdicts.iter().all(|v| v.scope == Scope::Prefix),
        "{:#?}",
        out.verdicts
    );
    // Prefix 1 has no such baseline: a quarter of it went dark.
    let p1 = out
        .verdicts
        .iter()
        .find(|v| v.target == prefix_net(1, 8).to_string())
        .expect("prefix 1 partial");
    assert_eq!(
        (p1.kind, p1.start_round, p1.end_round, p1.blocks_affected),
        (Kind::Partial, r(21), Some(r(30)), 2)
    );
    // Without a baseline the country would have a partial outage.
    let no_baseline = Params {
        baseline_rounds: 0,
        ..Params::default()
    };
    let out = correlate(&input, &no_baseline);
    assert!(
        kinds(&out).contains(&(Scope::Country, "KP".into(), Kind::Partial)),
        "{:#?}",
        out.verdicts
    );
}

#[test]
fn back_to_back_partials_are_not_instability() {
    // Each onset and end flips a quarter of the country's blocks: four
    // such rounds within six would be instability if they were not the
    // partial outages' own transitions.
    let sim = Sim {
        net: Box::new(|a| {
            let dark = (10..13).contains(&a.t) || (15..18).contains(&a.t);
            if a.prefix == 2 && dark {
                Net::Dark
            } else {
                Net::Normal
            }
        }),
        ..Sim::default()
    };
    let out = sim.run();
    let p2 = prefix_net(2, 8).to_string();
    let got: Vec<_> = out
        .verdicts
        .iter()
        .map(|v| (v.scope, v.kind, v.start_round, v.end_round))
        .collect();
    assert_eq!(
        got,
        vec![
            (Scope::Country, Kind::Partial, r(11), Some(r(13))),
            (Scope::Prefix, Kind::Blackout, r(11), Some(r(13))),
            (Scope::Country, Kind::Partial, r(16), Some(r(18))),
            (Scope::Prefix, Kind::Blackout, r(16), Some(r(18))),
        ],
        "{:#?}",
        out.verdicts
    );
    assert!(out
        .verdicts
        .iter()
        .filter(|v| v.scope == Scope::Prefix)
        .all(|v| v.target == p2));
}

/// A country of four /24s (North Korea's size) seen by two VPs.
fn four_blocks(net: NetFn, seed: u64) -> Sim {
    Sim {
        vps: 2,
        prefixes: 4,
        blocks_per_prefix: 1,
        steps: 40,
        seed,
        net,
        ..Sim::default()
    }
}

#[test]
fn one_flapping_block_of_four_is_instability() {
    for seed in 1..=5 {
        // Both VPs see prefix 1 down every other round for 20 rounds.
        let out = four_blocks(
            Box::new(|a| {
                if a.prefix == 1 && (10..30).contains(&a.t) && a.t % 2 == 1 {
                    Net::Report(BlockState::Down)
                } else {
                    Net::Normal
                }
            }),
            seed,
        )
        .run();
        assert!(
            out.verdicts.iter().all(|v| v.kind == Kind::Instability),
            "seed {seed}: {:#?}",
            out.verdicts
        );
        let flapping = prefix_net(1, 1);
        let v = out
            .verdicts
            .iter()
            .find(|v| v.scope == Scope::Prefix && v.target == flapping.to_string())
            .unwrap_or_else(|| panic!("seed {seed}: no prefix instability: {:#?}", out.verdicts));
        assert!(v.start_round >= r(10) && v.start_round <= r(16), "{v:#?}");
        assert!(v.end_round.is_some_and(|e| e >= r(29)), "{v:#?}");
        assert!(
            out.verdicts.iter().any(|v| v.scope == Scope::Country),
            "the country is unstable too: {:#?}",
            out.verdicts
        );
    }
}

#[test]
fn heavy_loss_on_a_four_block_country_is_instability_not_blackout() {
    for seed in 1..=5 {
        // 30 % loss on every path for ten rounds. (Two VPs send a dozen
        // probes a round to four blocks: shorter bursts are too little
        // evidence to tell from background loss.)
        let out = four_blocks(
            Box::new(|a| {
                if (10..20).contains(&a.t) {
                    Net::Loss(0.3)
                } else {
                    Net::Normal
                }
            }),
            seed,
        )
        .run();
        assert!(
            out.verdicts
                .iter()
                .any(|v| v.scope == Scope::Country && v.kind == Kind::Instability),
            "seed {seed}: {:#?}",
            out.verdicts
        );
        assert!(
            !out.verdicts
                .iter()
                .any(|v| v.kind == Kind::Blackout && v.scope == Scope::Country),
            "seed {seed}: {:#?}",
            out.verdicts
        );
    }
}

#[test]
fn a_single_lost_round_of_one_block_is_not_instability() {
    let out = four_blocks(
        Box::new(|a| {
            if a.prefix == 2 && a.t == 12 {
                Net::Report(BlockState::Down)
            } else {
                Net::Normal
            }
        }),
        3,
    )
    .run();
    assert!(out.verdicts.is_empty(), "{:#?}", out.verdicts);
}
