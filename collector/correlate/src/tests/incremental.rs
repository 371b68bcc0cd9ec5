//! The engine updated in place against a fresh one (`correlate`, the
//! oracle: every round of the window fed at once): on random timelines
//! (outages, VP faults, flapping, loss, uncertain reports, traces, routers'
//! errors to probes, missing
//! rounds and VPs), delivered out of order (late rounds after later ones
//! were judged, a round delivered in parts, a round withdrawn) while the
//! window slides, the engine's output after every update equals
//! `correlate` over the same window, whether rounds are given as lists
//! (`update_round`) or one report at a time in random order with blocks
//! learnt mid-round (`Incremental::round`, as the collector feeds them:
//! one by one, or a VP's reports at once with `observe_all`).

use std::collections::BTreeMap;

use darkwatch_schema::BlockState;

use super::sim::{prefix_net, trace_target, Rng};
use crate::*;

/// One round's reports, with VP ids into the timeline's VP names.
#[derive(Clone, Default)]
struct RoundData {
    obs: Vec<Obs>,
    control: Vec<ControlObs>,
    traces: Vec<TraceObs>,
    probe_errors: Vec<ProbeErrorObs>,
}

struct Timeline {
    campaign: Input,
    vps: Vec<String>,
    rounds: BTreeMap<u64, RoundData>,
}

fn pick(rng: &mut Rng, n: u64) -> u64 {
    rng.next() % n.max(1)
}

/// A random campaign and its reports over `steps` rounds from round 100.
fn timeline(rng: &mut Rng, steps: u64) -> Timeline {
    let np = 1 + pick(rng, 4) as usize;
    let bpp = [1usize, 2, 4][pick(rng, 3) as usize];
    let nv = 1 + pick(rng, 4) as usize;
    let prefixes: Vec<PrefixInfo> = (0..np)
        .map(|p| PrefixInfo {
            net: prefix_net(p, bpp),
            asns: match pick(rng, 4) {
                0 => vec![],
                1 => vec![64500],
                2 => vec![64500 + p as u32 % 2],
                _ => vec![64501, 64502],
            },
        })
        .collect();
    let mut blocks = Vec::new();
    for (p, info) in prefixes.iter().enumerate() {
        for (i, net) in info.net.subnets(24).unwrap().enumerate() {
            if i < bpp {
                blocks.push(BlockInfo {
                    net,
                    prefix: p as u32,
                });
            }
        }
    }
    let vps: Vec<String> = (0..nv).map(|v| format!("vp{v}")).collect();
    // Events: prefix outages, VP faults, flapping blocks, lossy stretches.
    let span = |rng: &mut Rng| {
        let s = 100 + pick(rng, steps);
        (s, s + 1 + pick(rng, 8))
    };
    let outages: Vec<(usize, (u64, u64))> = (0..pick(rng, 4))
        .map(|_| (pick(rng, np as u64 + 1) as usize, span(rng)))
        .collect();
    let faults: Vec<(usize, (u64, u64), bool)> = (0..pick(rng, 3))
        .map(|_| (pick(rng, nv as u64) as usize, span(rng), rng.chance(0.5)))
        .collect();
    let flappy: Vec<(usize, (u64, u64))> = (0..pick(rng, 3))
        .map(|_| (pick(rng, blocks.len() as u64) as usize, span(rng)))
        .collect();
    let lossy: Vec<(usize, (u64, u64))> = (0..pick(rng, 3))
        .map(|_| (pick(rng, np as u64) as usize, span(rng)))
        .collect();
    let within = |(a, b): (u64, u64), r: u64| a <= r && r < b;
    let mut rounds = BTreeMap::new();
    for r in 100..100 + steps {
        if rng.chance(0.08) {
            continue; // collector down: nobody's reports
        }
        let mut d = RoundData::default();
        for v in 0..nv {
            if rng.chance(0.08) {
                continue; // this VP missed the round
            }
            let fault = faults.iter().find(|f| f.0 == v && within(f.1, r));
            for (b, info) in blocks.iter().enumerate() {
                if rng.chance(0.03) {
                    continue;
                }
                let p = info.prefix as usize;
                let dark = outages
                    .iter()
                    .any(|&(q, s)| (q == p || q == np) && within(s, r))
                    || fault.is_some_and(|f| !f.2)
                    || flappy
                        .iter()
                        .any(|&(x, s)| x == b && within(s, r) && r % 2 == 0);
                let lossy_now = lossy.iter().any(|&(q, s)| q == p && within(s, r));
                let (state, probes, replies) = if dark {
                    (BlockState::Down, 15, 0)
                } else if rng.chance(0.04) {
                    (BlockState::Uncertain, 15, 0)
                } else if lossy_now {
                    let lost = pick(rng, 5) as u32;
                    (BlockState::Up, lost + 1, 1)
                } else {
                    (BlockState::Up, 1 + u32::from(rng.chance(0.05)), 1)
                };
                d.obs.push(Obs {
                    vp: v as u32,
                    block: b as u32,
                    round: r,
                    state,
                    probes,
                    replies,
                });
                if rng.chance(0.02) {
                    // A duplicate report (a re-sent batch).
                    d.obs.push(*d.obs.last().unwrap());
                }
            }
            if rng.chance(0.5) {
                let down = fault.is_some_and(|f| f.2);
                d.control.push(ControlObs {
                    vp: v as u32,
                    round: r,
                    state: if down {
                        BlockState::Down
                    } else {
                        BlockState::Up
                    },
                });
            }
            for p in 0..np {
                if rng.chance(0.3) {
                    let dark = outages
                        .iter()
                        .any(|&(q, s)| (q == p || q == np) && within(s, r));
                    let mut hops = vec![
                        format!("192.0.2.{}", v + 1).parse().unwrap(),
                        "203.0.113.1".parse().unwrap(),
                    ];
                    if rng.chance(0.5) {
                        hops.push("203.0.113.9".parse().unwrap());
                    }
                    if !dark {
                        hops.push(trace_target(p, bpp));
                    }
                    if dark && rng.chance(0.5) {
                        // The border (or the hop past it) answered probes.
                        d.probe_errors.push(ProbeErrorObs {
                            vp: v as u32,
                            round: r,
                            from: hops[1 + pick(rng, hops.len() as u64 - 1) as usize],
                            blocks: vec![prefix_net(p, bpp)],
                        });
                    }
                    d.traces.push(TraceObs {
                        vp: v as u32,
                        round: r,
                        target: trace_target(p, bpp),
                        responding: hops,
                        reached: !dark,
                        unreachable: dark && r % 3 == 0,
                    });
                }
            }
        }
        if rng.chance(0.02) {
            // An observation of a block the campaign does not hold.
            d.obs.push(Obs {
                vp: 0,
                block: blocks.len() as u32 + 3,
                round: r,
                state: BlockState::Up,
                probes: 1,
                replies: 1,
            });
        }
        rounds.insert(r, d);
    }
    Timeline {
        campaign: Input {
            target: if rng.chance(0.5) {
                "KP".into()
            } else {
                "camp".into()
            },
            is_country: rng.chance(0.5),
            prefixes,
            blocks,
            ..Input::default()
        },
        vps,
        rounds,
    }
}

fn random_params(rng: &mut Rng) -> Params {
    Params {
        quorum: 1 + pick(rng, 2) as usize,
        open_after: 1 + pick(rng, 2) as u32,
        close_after: 1 + pick(rng, 2) as u32,
        baseline_rounds: 2 + pick(rng, 6) as u32,
        instability_window: 3 + pick(rng, 4) as u32,
        instability_min_rounds: 1 + pick(rng, 3) as u32,
        instability_likelihood_ratio: [10.0, 10_000.0][pick(rng, 2) as usize],
        instability_min_flaps: 1 + pick(rng, 3) as u32,
        summary_vp_prefixes: [0, 1024][pick(rng, 2) as usize],
        ..Params::default()
    }
}

/// The batch input of what has been delivered, over `first..=last`, with
/// the VPs that have data there (as the collector builds it).
fn batch_input(t: &Timeline, delivered: &BTreeMap<u64, RoundData>, first: u64, last: u64) -> Input {
    let mut input = Input {
        first_round: first,
        last_round: last,
        ..t.campaign.clone()
    };
    let mut used = vec![false; t.vps.len()];
    for d in delivered.range(first..=last).map(|x| x.1) {
        for v in d
            .obs
            .iter()
            .map(|o| o.vp)
            .chain(d.control.iter().map(|c| c.vp))
            .chain(d.traces.iter().map(|x| x.vp))
        {
            used[v as usize] = true;
        }
    }
    let ids: Vec<Option<u32>> = {
        let mut n = 0;
        used.iter()
            .map(|&u| {
                u.then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect()
    };
    input.vps = (0..t.vps.len())
        .filter(|&v| used[v])
        .map(|v| t.vps[v].clone())
        .collect();
    for d in delivered.range(first..=last).map(|x| x.1) {
        let id = |v: u32| ids[v as usize].unwrap();
        input
            .obs
            .extend(d.obs.iter().map(|o| Obs { vp: id(o.vp), ..*o }));
        input
            .control
            .extend(d.control.iter().map(|c| ControlObs { vp: id(c.vp), ..*c }));
        input.traces.extend(d.traces.iter().map(|x| TraceObs {
            vp: id(x.vp),
            ..x.clone()
        }));
        input
            .probe_errors
            .extend(d.probe_errors.iter().map(|e| ProbeErrorObs {
                vp: id(e.vp),
                ..e.clone()
            }));
    }
    input
}

/// Part of a round: only the VPs in `keep`.
fn part(d: &RoundData, keep: impl Fn(u32) -> bool) -> RoundData {
    RoundData {
        obs: d.obs.iter().filter(|o| keep(o.vp)).copied().collect(),
        control: d.control.iter().filter(|c| keep(c.vp)).copied().collect(),
        traces: d.traces.iter().filter(|x| keep(x.vp)).cloned().collect(),
        probe_errors: d
            .probe_errors
            .iter()
            .filter(|e| keep(e.vp))
            .cloned()
            .collect(),
    }
}

fn run_case(seed: u64) {
    let mut rng = Rng::new(seed);
    let steps = 10 + pick(&mut rng, 30);
    let t = timeline(&mut rng, steps);
    let params = random_params(&mut rng);
    let window = 3 + pick(&mut rng, 20);
    // Delivery order: mostly in order; some rounds held back (late), some
    // delivered first in part and completed later, a few withdrawn.
    let mut events: Vec<(u64, u64, RoundData)> = Vec::new(); // (time, round, data)
    for (&r, d) in &t.rounds {
        let mut at = r;
        if rng.chance(0.15) {
            at += 1 + pick(&mut rng, 6);
        }
        if t.vps.len() > 1 && rng.chance(0.15) {
            let cut = pick(&mut rng, t.vps.len() as u64) as u32;
            events.push((r, r, part(d, |v| v != cut)));
            at = at.max(r + 1 + pick(&mut rng, 4));
        }
        events.push((at, r, d.clone()));
        if rng.chance(0.03) {
            events.push((at + 1, r, RoundData::default()));
        }
    }
    events.sort_by_key(|e| e.0);
    // Half the engines learn their blocks as they appear, in random order.
    let dynamic = rng.chance(0.5);
    let campaign = Input {
        blocks: if dynamic {
            vec![]
        } else {
            t.campaign.blocks.clone()
        },
        ..t.campaign.clone()
    };
    let mut engine = Incremental::new(&campaign, &params).unwrap();
    let mut ids: Vec<Option<u32>> = (0..t.campaign.blocks.len() as u32)
        .map(|b| (!dynamic).then_some(b))
        .collect();
    let mut delivered: BTreeMap<u64, RoundData> = BTreeMap::new();
    let mut now = 0u64;
    let mut recomputed = 0;
    for (i, (at, round, data)) in events.iter().enumerate() {
        now = now.max(*at);
        let first = now.saturating_sub(window - 1).max(100);
        engine.set_window(first, now).unwrap();
        delivered = delivered.split_off(&first);
        if *round >= first {
            if data.obs.is_empty()
                && data.control.is_empty()
                && data.traces.is_empty()
                && data.probe_errors.is_empty()
            {
                delivered.remove(round);
            } else {
                delivered.insert(*round, data.clone());
            }
        }
        if rng.chance(0.5) {
            // One by one through a RoundInput, in random order, the VPs
            // numbered as they come and new blocks added mid-round (as
            // the collector feeds decoded records).
            let mut order: Vec<usize> = (0..data.obs.len()).collect();
            rng.shuffle(&mut order);
            let by_vp = rng.chance(0.5);
            let mut input = engine.round(*round);
            let mut rows: BTreeMap<u32, Vec<(u32, BlockState, u32, u32)>> = BTreeMap::new();
            for i in order {
                let o = data.obs[i];
                let v = input.vp(&t.vps[o.vp as usize]);
                let block = match ids.get_mut(o.block as usize) {
                    Some(Some(id)) => *id,
                    Some(id) => {
                        let info = &t.campaign.blocks[o.block as usize];
                        *id.insert(input.add_block(info.net, info.prefix).unwrap())
                    }
                    None => u32::MAX,
                };
                if by_vp {
                    rows.entry(v)
                        .or_default()
                        .push((block, o.state, o.probes, o.replies));
                } else {
                    input.observe(v, block, o.state, o.probes, o.replies);
                }
            }
            // Or each VP's observations at once (as the collector gives a
            // decoded chunk).
            for (v, row) in rows {
                input.observe_all(v, row);
            }
            for c in &data.control {
                let v = input.vp(&t.vps[c.vp as usize]);
                input.control(v, c.state);
            }
            for x in &data.traces {
                let v = input.vp(&t.vps[x.vp as usize]);
                input.trace(v, x);
            }
            for e in &data.probe_errors {
                let v = input.vp(&t.vps[e.vp as usize]);
                input.probe_error(v, e);
            }
            input.finish();
        } else {
            let mut new: Vec<u32> = data
                .obs
                .iter()
                .map(|o| o.block)
                .filter(|&b| ids.get(b as usize).is_some_and(Option::is_none))
                .collect();
            new.sort_unstable();
            new.dedup();
            rng.shuffle(&mut new);
            for b in new {
                let info = &t.campaign.blocks[b as usize];
                ids[b as usize] = Some(engine.add_block(info.net, info.prefix).unwrap());
            }
            let obs: Vec<Obs> = data
                .obs
                .iter()
                .map(|o| Obs {
                    block: ids
                        .get(o.block as usize)
                        .copied()
                        .flatten()
                        .unwrap_or(u32::MAX),
                    ..*o
                })
                .collect();
            engine.update_round(
                *round,
                &t.vps,
                &obs,
                &data.control,
                &data.traces,
                &data.probe_errors,
            );
        }
        // Judge after most updates, not all: several updates per pass.
        if rng.chance(0.3) && i + 1 < events.len() {
            continue;
        }
        let input = batch_input(&t, &delivered, first, now);
        let want = correlate(&input, &params);
        let got = engine.output();
        recomputed += engine.recomputed();
        assert_eq!(engine.vps(), input.vps, "seed {seed}, step {i}");
        assert_eq!(
            engine.round_digests(),
            round_digests(&input, &params),
            "seed {seed}, step {i}"
        );
        if got != want {
            assert_eq!(got.verdicts, want.verdicts, "seed {seed}, step {i}");
            assert_eq!(got.vp_faults, want.vp_faults, "seed {seed}, step {i}");
            assert_eq!(got.timeline, want.timeline, "seed {seed}, step {i}");
            assert_eq!(got.summaries, want.summaries, "seed {seed}, step {i}");
            assert_eq!(got, want, "seed {seed}, step {i}");
        }
    }
    // Not a full recomputation at every step (the point of it all).
    assert!(
        recomputed <= events.len() * (window as usize + 2),
        "seed {seed}: {recomputed} rounds recomputed"
    );
}

#[test]
fn incremental_output_equals_batch_after_every_update() {
    let cases: u64 = std::env::var("DARKWATCH_INCREMENTAL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 1..=cases {
        run_case(seed);
    }
}

/// Appending one round to a long window recomputes about two rounds (the
/// new one and the one the window slid onto), not the window.
#[test]
fn a_new_round_recomputes_a_bounded_number_of_rounds() {
    let mut rng = Rng::new(7);
    let t = loop {
        let t = timeline(&mut rng, 60);
        if t.vps.len() >= 2 {
            break t;
        }
    };
    let params = Params::default();
    let mut engine = Incremental::new(&t.campaign, &params).unwrap();
    let window = 40;
    let mut worst = 0;
    for (&r, d) in &t.rounds {
        engine
            .set_window(r.saturating_sub(window - 1).max(100), r)
            .unwrap();
        engine.update_round(r, &t.vps, &d.obs, &d.control, &d.traces, &d.probe_errors);
        engine.output();
        if r > 100 + window {
            worst = worst.max(engine.recomputed());
        }
    }
    assert!(worst <= 3, "{worst} rounds recomputed for one new round");
    // A late round re-judges a few rounds, not the window.
    let (&late, d) = t.rounds.range(..140).next_back().unwrap();
    let mut d = d.clone();
    for o in &mut d.obs {
        o.state = BlockState::Down;
    }
    engine.update_round(late, &t.vps, &d.obs, &d.control, &d.traces, &d.probe_errors);
    engine.output();
    assert!(
        engine.recomputed() < 15,
        "{} rounds recomputed for one late round",
        engine.recomputed()
    );
}

/// A campaign's first rounds may hold no block at all (its agents' first
/// sweep is under way, so rounds report control targets only): the engine
/// judges them, then learns the blocks as they come, and still agrees with
/// `correlate`.
#[test]
fn rounds_before_any_block_is_known_then_blocks_join() {
    let mut rng = Rng::new(11);
    let t = timeline(&mut rng, 12);
    let params = Params::default();
    let campaign = Input {
        blocks: vec![],
        ..t.campaign.clone()
    };
    let mut engine = Incremental::new(&campaign, &params).unwrap();
    let mut ids: Vec<Option<u32>> = vec![None; t.campaign.blocks.len()];
    let mut delivered: BTreeMap<u64, RoundData> = BTreeMap::new();
    let empty = RoundData {
        control: vec![ControlObs {
            vp: 0,
            round: 100,
            state: BlockState::Up,
        }],
        ..RoundData::default()
    };
    for (&r, d) in std::iter::once((&100, &empty)).chain(t.rounds.range(101..)) {
        engine.set_window(100, r).unwrap();
        delivered.insert(r, d.clone());
        let mut obs = d.obs.clone();
        for o in &mut obs {
            let Some(id) = ids.get_mut(o.block as usize) else {
                o.block = u32::MAX;
                continue;
            };
            let info = &t.campaign.blocks[o.block as usize];
            o.block = *id.get_or_insert_with(|| engine.add_block(info.net, info.prefix).unwrap());
        }
        engine.update_round(r, &t.vps, &obs, &d.control, &d.traces, &d.probe_errors);
        let want = correlate(&batch_input(&t, &delivered, 100, r), &params);
        assert_eq!(engine.output(), want, "round {r}");
    }
}
