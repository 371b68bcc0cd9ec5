//! Runs darkwatch's real code over the simulated network: per VP and
//! block, the agent's own [`BlockTracker`] (Trinocular belief, probe
//! budget, minimum probes per campaign, probe order) probes the
//! [`World`]; each round's judgements go, per country, into the
//! collector's real correlation engine ([`Incremental`], fed one VP row at
//! a time as the collector feeds decoded packed rounds), and the engine's
//! verdicts come out at the end. Only the network and the clock are
//! simulated.
//!
//! What is not the agent's full path: the round driver (`driver.rs`) with
//! its sweeps, reports and spool is not run; its block logic (tracker,
//! `min_probes_per_block`, `slice_of` phases) is called directly, since a
//! million trackers × 10 VPs × 1,008 rounds through the driver's actions
//! and report batches would spend its time building batches, not judging
//! blocks. Discovery is perfect: each tracker starts with its block's true
//! ever-responsive addresses and never rediscovers (so renumbered blocks
//! stay tracked, as they do between the agent's census sweeps).
//!
//! VP failures: a dead VP reports nothing; an isolated one reports every
//! block and its controls down; a VP whose clock runs `k` rounds ahead
//! reports its round `r` as `r + k` (the collector holds a round from the
//! future until it begins), skipping `k` rounds when the clock jumps and
//! `k` rounds when it is set right.

use std::time::Instant;

use darkwatch_agent::belief::{BlockTracker, DEFAULT_MAX_PROBES};
use darkwatch_agent::campaign::min_probes_per_block;
use darkwatch_agent::round::BlockRng;
use darkwatch_agent::schedule::{slice_of, slice_start_ms, span_ms, SLICES};
use darkwatch_correlate::{BlockInfo, Incremental, Input, Output, Params, PrefixInfo};
use darkwatch_schema::BlockState;

use crate::events::{Kind, ROUND_MS};
use crate::network::{Answer, ErrorLimiter, World};
use crate::rng::hash;

/// The agent's default: 1 s per probe, 15 probes, the longest a block takes.
const PROBE_MS: i64 = 1_000;
/// The agent's default minimum of probes per campaign and round.
const MIN_CAMPAIGN_PROBES: u32 = 16;

/// What a run produced and what it cost.
pub struct RunResult {
    /// Per country (same order as the population's), the engine's output.
    pub outputs: Vec<Output>,
    /// Probes sent by all VPs.
    pub probes: u64,
    /// Blocks judged (VP × block × round).
    pub judgements: u64,
    /// CPU seconds of the whole run (process CPU time; wall time where
    /// `/proc` is not there).
    pub cpu_s: f64,
    /// Wall seconds in the agents' block logic and the network, and in the
    /// correlation engine.
    pub wall_probe_s: f64,
    pub wall_engine_s: f64,
}

/// The true round VP `vp` measures when it reports round `r`, or `None`
/// when it reports nothing for `r` (see the module docs).
pub fn vp_round(world: &World, vp: u32, r: u64) -> Option<u64> {
    let t = r as i64 * ROUND_MS;
    if world
        .vp_event(vp, t, |k| matches!(k, Kind::VpDead))
        .is_some()
    {
        return None;
    }
    for e in &world.schedule.events {
        if let (Kind::VpClockAhead { rounds: k }, true) =
            (e.kind, e.target == crate::events::Target::Vp(vp))
        {
            let (s, end, k) = (
                (e.start_ms / ROUND_MS) as u64,
                (e.end_ms / ROUND_MS) as u64,
                u64::from(k),
            );
            if r >= s + k && r - k < end {
                return Some(r - k);
            }
            if s <= r && r < end + k {
                return None;
            }
        }
    }
    Some(r)
}

/// The VP names the engine sees.
pub fn vp_name(v: u32) -> String {
    format!("vp{v:02}")
}

/// This process's CPU seconds (user + system), from `/proc/self/stat`.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's closing parenthesis: utime is the 12th.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One country's engine and the order its blocks are probed in.
struct CountryEngine {
    engine: Incremental,
    /// Global block indices in probing order (by slice), with each one's
    /// offset from the round's start.
    order: Vec<(u32, i64)>,
    /// Global index of the country's first block (engine block ids are
    /// relative to it).
    first_block: u32,
    min_probes: u32,
}

fn engines(world: &World, params: &Params) -> Vec<CountryEngine> {
    let pop = &world.pop;
    let span = span_ms(ROUND_MS as u64, DEFAULT_MAX_PROBES as u64 * PROBE_MS as u64);
    pop.countries
        .iter()
        .map(|c| {
            let prefixes = c
                .prefixes
                .clone()
                .map(|p| PrefixInfo {
                    net: pop.prefixes[p as usize].net,
                    asns: vec![pop.ases[pop.prefixes[p as usize].origin as usize].asn],
                })
                .collect();
            let blocks = c
                .blocks
                .clone()
                .map(|b| BlockInfo {
                    net: pop.blocks[b as usize].net,
                    prefix: pop.blocks[b as usize].prefix - c.prefixes.start,
                })
                .collect();
            let input = Input {
                target: c.code.clone(),
                is_country: true,
                prefixes,
                blocks,
                ..Input::default()
            };
            let mut engine = Incremental::new(&input, params).expect("valid campaign");
            engine
                .set_window(0, world.rounds.saturating_sub(1))
                .expect("a window");
            let mut order: Vec<(u32, i64)> = c
                .blocks
                .clone()
                .map(|b| {
                    // Every simulated VP at phase 0: one probing order for
                    // all. Staggered phases only pay off once the collector
                    // times onsets from them (not yet wired).
                    let k = slice_of(&pop.blocks[b as usize].net, SLICES, 0);
                    (b, slice_start_ms(k, SLICES, span) as i64)
                })
                .collect();
            order.sort_by_key(|&(b, t)| (t, b));
            CountryEngine {
                engine,
                order,
                first_block: c.blocks.start,
                min_probes: min_probes_per_block(MIN_CAMPAIGN_PROBES, c.blocks.len()),
            }
        })
        .collect()
}

/// One VP's round of one block: the tracker's own loop over the network.
fn probe_block(
    world: &World,
    t: &mut BlockTracker,
    (vp, b, round): (u32, u32, u64),
    start_ms: i64,
    min_probes: u32,
    limiter: &mut ErrorLimiter,
) -> (BlockState, u32, u32) {
    let block = &world.pop.blocks[b as usize];
    let mut rng = BlockRng::new(hash(&[world.seed, 8, u64::from(vp), u64::from(b), round]));
    t.start_round_min(DEFAULT_MAX_PROBES, min_probes, &mut rng);
    let mut k = 0u32;
    while let Some(addr) = t.next_target() {
        let at = start_ms + i64::from(k) * PROBE_MS;
        match world.probe(vp, b, block.host_of(addr), round, k, at, limiter) {
            Answer::Reply => t.on_reply(),
            Answer::Lost => t.on_loss(),
            Answer::Unreachable(from) => t.on_error(from),
        }
        k += 1;
    }
    let o = t.finish_round();
    (o.state, o.probes, o.replies)
}

/// Runs every VP over every round of `world` and correlates per country.
pub fn run(world: &World, params: &Params) -> RunResult {
    let (wall, cpu0) = (Instant::now(), cpu_seconds());
    let pop = &world.pop;
    let mut trackers: Vec<Vec<BlockTracker>> = (0..world.vps)
        .map(|_| {
            pop.blocks
                .iter()
                .map(|b| {
                    BlockTracker::from_discovery(
                        b.net,
                        (0..b.hosts.responsive).map(|i| b.addr(i)).collect(),
                    )
                })
                .collect()
        })
        .collect();
    let mut engines = engines(world, params);
    let names: Vec<String> = (0..world.vps).map(vp_name).collect();
    let mut limiter = ErrorLimiter::default();
    let (mut probes, mut judgements) = (0u64, 0u64);
    let (mut wall_probe, mut wall_engine) = (0.0, 0.0);
    let mut row = Vec::new();
    for r in 0..world.rounds {
        for ce in &mut engines {
            let mut ri = ce.engine.round(r);
            for v in 0..world.vps {
                let Some(true_round) = vp_round(world, v, r) else {
                    continue;
                };
                let t0 = Instant::now();
                let round_ms = true_round as i64 * ROUND_MS;
                let isolated = world
                    .vp_event(v, round_ms, |k| matches!(k, Kind::VpIsolated))
                    .is_some();
                row.clear();
                for &(b, off) in &ce.order {
                    let t = &mut trackers[v as usize][b as usize];
                    let (state, p, rep) = probe_block(
                        world,
                        t,
                        (v, b, true_round),
                        round_ms + off,
                        ce.min_probes,
                        &mut limiter,
                    );
                    probes += u64::from(p);
                    row.push((b - ce.first_block, state, p, rep));
                }
                judgements += row.len() as u64;
                let t1 = Instant::now();
                let id = ri.vp(&names[v as usize]);
                ri.control(
                    id,
                    if isolated {
                        BlockState::Down
                    } else {
                        BlockState::Up
                    },
                );
                ri.observe_all(id, row.iter().copied());
                wall_probe += (t1 - t0).as_secs_f64();
                wall_engine += t1.elapsed().as_secs_f64();
            }
            let t1 = Instant::now();
            ri.finish();
            wall_engine += t1.elapsed().as_secs_f64();
        }
    }
    let t1 = Instant::now();
    let outputs = engines.iter_mut().map(|ce| ce.engine.output()).collect();
    wall_engine += t1.elapsed().as_secs_f64();
    let cpu_s = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall.elapsed().as_secs_f64(),
    };
    RunResult {
        outputs,
        probes,
        judgements,
        cpu_s,
        wall_probe_s: wall_probe,
        wall_engine_s: wall_engine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Schedule, Target};
    use crate::population::{generate, PopConfig};

    fn world(events: Vec<Event>) -> World {
        let pop = generate(&PopConfig::for_blocks(300), 4);
        let schedule = Schedule {
            events,
            bad_spells: vec![vec![false; 60]; 3],
            ..Schedule::default()
        };
        World::new(pop, schedule, 3, 60, 4)
    }

    fn vp_event(kind: Kind, vp: u32, a: i64, b: i64) -> Event {
        Event {
            kind,
            target: Target::Vp(vp),
            start_ms: a * ROUND_MS,
            end_ms: b * ROUND_MS,
        }
    }

    #[test]
    fn dead_vp_reports_nothing() {
        let w = world(vec![vp_event(Kind::VpDead, 1, 10, 20)]);
        assert_eq!(vp_round(&w, 1, 9), Some(9));
        assert!((10..20).all(|r| vp_round(&w, 1, r).is_none()));
        assert_eq!(vp_round(&w, 1, 20), Some(20));
        assert_eq!(vp_round(&w, 0, 15), Some(15));
    }

    #[test]
    fn vp_with_clock_ahead_reports_the_past_as_now() {
        let w = world(vec![vp_event(Kind::VpClockAhead { rounds: 1 }, 2, 10, 20)]);
        let got: Vec<Option<u64>> = (8..23).map(|r| vp_round(&w, 2, r)).collect();
        // Round 10 is skipped (the clock jumped to 11), 11..=20 carry
        // the network of 10..=19; set right at 20, the VP goes on at 21.
        let mut want: Vec<Option<u64>> = vec![Some(8), Some(9), None];
        want.extend((10..20).map(Some));
        want.extend([Some(21), Some(22)]);
        assert_eq!(got, want);
    }

    #[test]
    fn country_blackout_becomes_a_country_verdict() {
        let w0 = world(vec![]);
        let c = (0..w0.pop.countries.len())
            .max_by_key(|&c| w0.pop.countries[c].blocks.len())
            .unwrap() as u32;
        let blackout = Event {
            kind: Kind::Blackout { withdrawn: true },
            target: Target::Country(c),
            start_ms: 30 * ROUND_MS + 1_000,
            end_ms: 40 * ROUND_MS + 1_000,
        };
        let w = world(vec![blackout]);
        let r = run(&w, &Params::default());
        let code = &w.pop.countries[c as usize].code;
        let v: Vec<_> = r.outputs[c as usize]
            .verdicts
            .iter()
            .filter(|v| {
                v.scope == darkwatch_correlate::Scope::Country
                    && v.kind == darkwatch_correlate::Kind::Blackout
            })
            .collect();
        assert_eq!(v.len(), 1, "{code}: {:?}", r.outputs[c as usize].verdicts);
        assert!((30..=31).contains(&v[0].start_round), "{:?}", v[0]);
        assert!(r.probes > 0 && r.judgements == 3 * 300 * 60);
    }
}
