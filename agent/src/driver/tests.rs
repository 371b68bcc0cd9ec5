//! Whole rounds driven with plain values: no tokio, no files, no clock
//! object. A test plays the daemon: it answers each probe job from a
//! made-up network (the blocks' own belief machines, run to the end), each
//! trace at once, hands over a sweep's findings when asked, and moves its
//! `now` only where the driver says to wait (and, if asked, by a fixed cost
//! per job).

use std::net::IpAddr;

use darkwatch_schema::{round_of, BlockState};

use super::*;
use crate::round::{block_seed, BlockRng};
use crate::schedule::{slice_of, slice_start_ms, span_ms};

/// A round boundary for 60-s rounds.
const T0: i64 = 1_800_000_000_000;
/// timeout 500 ms × 4 probes.
const WORST_MS: u64 = 2_000;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn block(i: u8) -> IpNet {
    net(&format!("198.18.{i}.0/24"))
}

fn hosts(i: u8) -> Vec<IpAddr> {
    (1..=20).map(|h| IpAddr::from([198, 18, i, h])).collect()
}

fn campaign() -> CampaignAssignment {
    CampaignAssignment {
        name: "kp".into(),
        country: None,
        interval_secs: 60,
        prefixes: vec![net("198.18.0.0/20")],
        control: vec![],
        generation: 1,
        census: Default::default(),
        census_tag: None,
    }
}

fn policy() -> Policy {
    Policy {
        exclude: vec![],
        allow: vec![net("198.18.0.0/15")],
        max_targets: 1 << 20,
        rediscover_rounds: 10,
        rediscovery: Default::default(),
        traces_per_round: 1,
        min_campaign_probes: 1,
    }
}

fn setup(slices: u32) -> Setup {
    Setup {
        slices,
        finish_sweep: false,
        worst_block_ms: WORST_MS,
        wire: Wire::Plain,
        report_errors: false,
        phase: PHASE,
        report_schedule: false,
    }
}

/// The phase of the VP most tests drive (any but 0, so that tests see it).
const PHASE: u32 = 1;

/// The state of a campaign swept in an earlier round, tracking `blocks`:
/// no sweep is due.
fn tracked(c: &CampaignAssignment, p: &Policy, blocks: &[u8]) -> CampaignState {
    let mut st = CampaignState {
        generation: c.generation,
        prefixes: c.prefixes.clone(),
        control: c.control.clone(),
        discovered_round: Some(round_of(T0, 60) - 1),
        policy: Some(p.fingerprint()),
        ..CampaignState::default()
    };
    for &i in blocks {
        st.trackers
            .insert(block(i), BlockTracker::from_discovery(block(i), hosts(i)));
    }
    st.trackers.settle();
    st
}

/// The round of `T0`, started at `started_ms`.
fn start(started_ms: i64, sweeping: bool) -> RoundStart {
    RoundStart {
        round: round_of(T0, 60),
        started_ms,
        sweeping,
    }
}

fn ids() -> Box<dyn FnMut() -> String + Send> {
    let mut n = 0;
    Box::new(move || {
        n += 1;
        format!("{n:016x}")
    })
}

/// A made-up network: which addresses answer, and the router whose errors
/// answer for the others (if any).
struct Net {
    up: fn(IpAddr) -> bool,
    border: Option<IpAddr>,
}

fn always(_: IpAddr) -> bool {
    true
}

const ALL_UP: Net = Net {
    up: always,
    border: None,
};

/// Runs each tracker of `job` as the prober would, against `n`.
fn answer(job: &ProbeJob, n: &Net) -> Probed {
    let mut p = Probed::default();
    for (pos, t) in job.trackers.iter().enumerate() {
        let mut t = t.clone();
        let mut rng = BlockRng::new(block_seed(job.seed, &t.block));
        t.start_round_min(4, job.min_probes, &mut rng);
        let mut errors = 0;
        while let Some(a) = t.next_target() {
            match ((n.up)(a), n.border) {
                (true, _) => t.on_reply(),
                (false, Some(from)) => {
                    errors += 1;
                    t.on_error(from);
                }
                (false, None) => t.on_loss(),
            }
        }
        if let (Some(from), true) = (n.border, errors > 0) {
            p.errors.push(BlockErrors {
                block: t.block,
                from,
                errors,
            });
        }
        p.outcomes.push((pos as u32, t.finish_round()));
    }
    p
}

fn traced(targets: &[IpAddr]) -> Vec<TraceResult> {
    targets
        .iter()
        .map(|&target| TraceResult {
            target,
            hops: Vec::new(),
            reached: true,
            last_responding: Some(target),
        })
        .collect()
}

/// What the driver asked for, and when.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Discover(i64),
    Sweep,
    FinishSweep,
    Probe { at: i64, blocks: Vec<IpNet> },
    Trace { at: i64, targets: Vec<IpAddr> },
    Wait(Option<i64>),
}

/// Plays the daemon to the round's end from `now`: jobs finish in the
/// order they left, one per wait, each taking `job_ms`; a sweep's findings
/// come from `found` (given the time). Returns the steps and the report.
fn drive(
    d: &mut RoundDriver,
    mut now: i64,
    n: &Net,
    job_ms: i64,
    found: &mut dyn FnMut(i64) -> Progress,
) -> (Vec<Step>, Option<RoundReport>) {
    let (mut steps, mut report, mut inflight) = (Vec::new(), None, VecDeque::new());
    for _ in 0..10_000 {
        match d.poll(now) {
            Action::Discover => {
                steps.push(Step::Discover(now));
                d.discovered(found(now));
            }
            Action::Sweep(_) => steps.push(Step::Sweep),
            Action::FinishSweep => steps.push(Step::FinishSweep),
            Action::Probe(job) => {
                let blocks = job.trackers.iter().map(|t| t.block).collect();
                steps.push(Step::Probe { at: now, blocks });
                inflight.push_back((job.id, JobResult::Probed(answer(&job, n))));
            }
            Action::Trace(job) => {
                steps.push(Step::Trace {
                    at: now,
                    targets: job.targets.clone(),
                });
                inflight.push_back((job.id, JobResult::Traced(traced(&job.targets))));
            }
            Action::Wait { until } => {
                steps.push(Step::Wait(until));
                match (inflight.pop_front(), until) {
                    (Some((id, r)), _) => {
                        now += job_ms;
                        d.complete(id, r);
                    }
                    (None, Some(t)) => {
                        assert!(t > now, "waits for a time past");
                        now = t;
                    }
                    (None, None) => panic!("waits for nothing: {steps:?}"),
                }
            }
            Action::Report(r) => {
                assert!(report.is_none(), "reported twice");
                report = Some(*r);
            }
            Action::Done => return (steps, report),
        }
    }
    panic!("the round never ends: {steps:?}");
}

fn nothing_found(_: i64) -> Progress {
    Progress::default()
}

/// When slice `k` of 60-s rounds in `slices` starts.
fn slice_at(k: u32, slices: u32) -> i64 {
    T0 + slice_start_ms(k, slices, span_ms(60_000, WORST_MS)) as i64
}

fn probed(steps: &[Step]) -> Vec<(i64, IpNet)> {
    let mut v: Vec<(i64, IpNet)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Probe { at, blocks } => Some(blocks.iter().map(move |b| (*at, *b))),
            _ => None,
        })
        .flatten()
        .collect();
    v.sort_by_key(|(_, b)| *b);
    v
}

#[test]
fn a_round_with_every_block_up_probes_each_in_its_slice_and_reports_them() {
    let (c, p) = (campaign(), policy());
    let mut st = tracked(&c, &p, &[0, 1, 2, 3, 4, 5, 6, 7]);
    let round = round_of(T0, 60);
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), setup(6), ids());
    let (steps, report) = drive(&mut d, T0, &ALL_UP, 0, &mut nothing_found);
    drop(d);
    // Each block once, at its slice's start.
    let seen = probed(&steps);
    assert_eq!(seen.len(), 8, "{steps:?}");
    for (i, (at, b)) in seen.iter().enumerate() {
        assert_eq!(*b, block(i as u8));
        assert_eq!(*at, slice_at(slice_of(b, 6, PHASE), 6), "{b}");
    }
    // Waits only for slices to come and for the first slice's trace.
    assert!(steps.iter().all(|s| match s {
        Step::Wait(Some(t)) => (1..6).any(|k| *t == slice_at(k, 6)),
        Step::Wait(None) | Step::Probe { .. } | Step::Trace { .. } => true,
        _ => false,
    }));
    // The trace goes first, and alone.
    let first = steps.iter().position(|s| matches!(s, Step::Trace { .. }));
    assert_eq!(first, Some(0), "{steps:?}");
    assert_eq!(steps[1], Step::Wait(None));
    let r = report.expect("a report");
    assert_eq!(r.batches.len(), 1);
    let b = &r.batches[0];
    b.validate(T0).expect("a batch the collector accepts");
    assert_eq!(b.batch_id, "0000000000000001");
    assert_eq!(b.observations.len(), 8);
    assert!(b
        .observations
        .iter()
        .all(|o| o.state == BlockState::Up && o.round == round && o.ts_ms == T0 && !o.control));
    assert_eq!(b.traces.len(), 1);
    assert_eq!(b.coverage.len(), 1);
    assert_eq!((r.info.blocks, r.info.probes, r.up), (8, 8, 8));
    assert!(r.info.on_time && !r.stats.late);
    assert_eq!((r.stats.probes, r.stats.replies), (8, 8));
    // The round is done: the trackers learnt from it.
    assert_eq!(st.last_round, Some(round));
    assert!(st.trackers.values().all(|t| t.state() == BlockState::Up));
    let mut again = RoundDriver::new(&c, &mut st, &p, start(T0, false), setup(6), ids());
    assert!(matches!(again.poll(T0 + 1), Action::Done));
}

#[test]
fn blocks_a_sweep_finds_mid_round_join_it_and_go_to_the_census() {
    let (c, p) = (campaign(), policy());
    // A sweep started in the last round still runs; one block is known.
    let mut st = tracked(&c, &p, &[0]);
    st.discovery_pending = true;
    let slices = 10;
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, true), setup(slices), ids());
    // Blocks 1..=8 turn up with slice 5; the sweep ends with slice 8.
    let mut found = |now: i64| Progress {
        targets: if now == slice_at(5, slices) {
            (1..=8).map(|i| (block(i), hosts(i))).collect()
        } else {
            BTreeMap::new()
        },
        control: BTreeMap::new(),
        done: now >= slice_at(8, slices),
    };
    let (steps, report) = drive(&mut d, T0, &ALL_UP, 0, &mut found);
    drop(d);
    // Asked before planning, then before every slice until the sweep ended.
    let asked: Vec<i64> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Discover(at) => Some(*at),
            _ => None,
        })
        .collect();
    let mut want = vec![T0];
    want.extend((0..=8).map(|k| slice_at(k, slices)));
    assert_eq!(asked, want);
    assert!(
        !steps.contains(&Step::Sweep),
        "a running sweep is not restarted"
    );
    // Each found block is probed in this round: in its own slice, or in
    // the one it joined if its own had passed.
    let seen = probed(&steps);
    assert_eq!(seen.len(), 9, "{steps:?}");
    for (at, b) in &seen[1..] {
        let own = slice_of(b, slices, PHASE).max(5);
        assert_eq!(*at, slice_at(own, slices), "{b}");
    }
    // The traceroute waits for the middle slice, with the first findings.
    let trace = steps
        .iter()
        .find_map(|s| match s {
            Step::Trace { at, .. } => Some(*at),
            _ => None,
        })
        .expect("a trace");
    assert_eq!(trace, slice_at(slices / 2, slices));
    let r = report.expect("a report");
    let census: Vec<IpNet> = r.batches[0].census[0]
        .blocks
        .iter()
        .map(|b| b.block)
        .collect();
    assert_eq!(census, (1..=8).map(block).collect::<Vec<_>>());
    assert_eq!(r.info.blocks, 9);
    assert!(!st.discovery_pending && !st.discovering);
    assert_eq!(st.trackers.len(), 9);
}

#[test]
fn the_first_trace_leaves_alone_a_later_one_beside_the_probes() {
    let (c, p) = (campaign(), policy());
    // Nothing in flight at the first slice: the trace goes alone and the
    // probes wait for it.
    let mut st = tracked(&c, &p, &[0, 1, 2, 3]);
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), setup(1), ids());
    let Action::Trace(t) = d.poll(T0) else {
        panic!("the trace first")
    };
    for _ in 0..3 {
        assert!(matches!(d.poll(T0 + 500), Action::Wait { until: None }));
    }
    d.complete(t.id, JobResult::Traced(traced(&t.targets)));
    assert!(matches!(d.poll(T0 + 900), Action::Probe(j) if j.trackers.len() == 4));
    drop(d);

    // While a sweep runs, the trace goes with the middle slice; a slice
    // still in flight does not hold it or the probes after it.
    let slices = 2;
    let early = (0..=255u8)
        .find(|&i| slice_of(&block(i), slices, PHASE) == 0)
        .unwrap();
    let late = (0..=255u8)
        .find(|&i| slice_of(&block(i), slices, PHASE) == 1)
        .unwrap();
    let mut st = tracked(&c, &p, &[early, late]);
    st.discovery_pending = true;
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, true), setup(slices), ids());
    assert!(matches!(d.poll(T0), Action::Discover));
    d.discovered(Progress::default());
    assert!(matches!(d.poll(T0), Action::Discover));
    d.discovered(Progress::default());
    let Action::Probe(first) = d.poll(T0) else {
        panic!("slice 0")
    };
    assert_eq!(first.trackers[0].block, block(early));
    let middle = slice_at(1, slices);
    assert!(matches!(d.poll(T0 + 10), Action::Wait { until: Some(t) } if t == middle));
    assert!(matches!(d.poll(middle), Action::Discover));
    d.discovered(Progress::default());
    assert!(matches!(d.poll(middle), Action::Trace(_)));
    assert!(matches!(d.poll(middle), Action::Probe(j) if j.trackers[0].block == block(late)));
    assert_eq!(d.in_flight(), 3);
}

#[test]
fn a_round_started_late_takes_the_slices_due_at_once_and_is_not_on_time() {
    let (c, p) = (campaign(), policy());
    let mut st = tracked(&c, &p, &[0, 1, 2, 3, 4, 5, 6, 7]);
    let round = round_of(T0, 60);
    // Started 45 s into the round (a restart, a busy agent): slices 0..=3
    // of 4 (every 13 s) are due.
    let started = T0 + 45_000;
    let mut d = RoundDriver::new(&c, &mut st, &p, start(started, false), setup(4), ids());
    // Each job takes 8 s: the round runs into the next one.
    let (steps, report) = drive(&mut d, started, &ALL_UP, 8_000, &mut nothing_found);
    drop(d);
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Wait(Some(_)))),
        "waited for a slice already due: {steps:?}"
    );
    assert_eq!(probed(&steps).len(), 8);
    let r = report.expect("a report");
    assert_eq!((r.info.started_ms, r.info.round), (started, round));
    assert!(r.info.ended_ms > T0 + 60_000, "{:?}", r.info);
    assert!(!r.info.on_time && r.stats.late);
    assert_eq!(r.stats.finished_ms, r.info.ended_ms);
    // Stamped with the round's start as this agent saw it.
    assert!(r.batches[0].observations.iter().all(|o| o.ts_ms == started));
}

#[test]
fn a_round_cut_short_leaves_the_state_as_it_was() {
    let (c, p) = (campaign(), policy());
    let mut st = tracked(&c, &p, &[0, 1, 2, 3]);
    let before: Vec<f64> = st.trackers.values().map(|t| t.belief).collect();
    let round = round_of(T0, 60);
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), setup(1), ids());
    let Action::Trace(t) = d.poll(T0) else {
        panic!("the trace first")
    };
    d.complete(t.id, JobResult::Traced(traced(&t.targets)));
    let Action::Probe(job) = d.poll(T0) else {
        panic!("the slice")
    };
    d.complete(job.id, JobResult::Probed(answer(&job, &ALL_UP)));
    // The daemon stops before the round is reported.
    drop(d);
    assert_eq!(st.last_round, None, "not done: run again after a restart");
    let after: Vec<f64> = st.trackers.values().map(|t| t.belief).collect();
    assert_eq!(
        before, after,
        "outcomes are applied only at the round's end"
    );
    // And a round done already is not run again.
    st.last_round = Some(round);
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), setup(1), ids());
    assert!(matches!(d.poll(T0), Action::Done));
    assert!(matches!(d.poll(T0), Action::Done));
}

#[test]
fn the_report_carries_judged_blocks_controls_and_the_routers_errors() {
    let (mut c, p) = (campaign(), policy());
    c.control = vec![net("198.18.200.0/24")];
    let mut st = tracked(&c, &p, &[1, 2]);
    st.control_trackers.insert(
        block(200),
        BlockTracker::from_discovery(block(200), hosts(200)),
    );
    let round = round_of(T0, 60);
    // 198.18.2.0/24 went dark behind a border that says so.
    let n = Net {
        up: |a| !matches!(a, IpAddr::V4(v) if v.octets()[2] == 2),
        border: Some("203.0.113.9".parse().unwrap()),
    };
    let s = Setup {
        report_errors: true,
        ..setup(3)
    };
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), s, ids());
    let (steps, report) = drive(&mut d, T0, &n, 10, &mut nothing_found);
    drop(d);
    // The controls go with the first slice, after the trace.
    let controls = steps
        .iter()
        .position(|s| matches!(s, Step::Probe { blocks, .. } if blocks == &[block(200)]))
        .expect("the controls probed");
    assert!(matches!(steps[0], Step::Trace { at: T0, .. }));
    assert_eq!(steps[1], Step::Wait(None));
    assert_eq!(controls, 2, "{steps:?}");
    let r = report.expect("a report");
    let b = &r.batches[0];
    let state = |blk: IpNet, control: bool| {
        b.observations
            .iter()
            .find(|o| o.block == blk && o.control == control)
            .map(|o| o.state)
    };
    assert_eq!(state(block(1), false), Some(BlockState::Up));
    assert_ne!(state(block(2), false), Some(BlockState::Up));
    assert_eq!(state(block(200), true), Some(BlockState::Up));
    assert_eq!(b.probe_errors.len(), 1, "{:?}", b.probe_errors);
    let e = &b.probe_errors[0];
    assert_eq!((e.blocks.as_slice(), e.round), (&[block(2)][..], round));
    assert_eq!(r.up, 1);
    // The controls' trackers learnt at once.
    assert_eq!(st.control_trackers[&block(200)].state(), BlockState::Up);
}

#[test]
fn once_a_first_round_sweeps_to_the_end_then_probes_all_it_found() {
    let (c, p) = (campaign(), policy());
    let mut st = CampaignState::default();
    let round = round_of(T0, 60);
    let s = Setup {
        finish_sweep: true,
        ..setup(1)
    };
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), s, ids());
    let mut found = |_| Progress {
        targets: (3..6).map(|i| (block(i), hosts(i))).collect(),
        control: BTreeMap::new(),
        done: true,
    };
    let (steps, report) = drive(&mut d, T0, &ALL_UP, 0, &mut found);
    drop(d);
    assert_eq!(
        steps[..3],
        [Step::Sweep, Step::FinishSweep, Step::Discover(T0)]
    );
    let seen: Vec<IpNet> = probed(&steps).into_iter().map(|(_, b)| b).collect();
    assert_eq!(seen, (3..6).map(block).collect::<Vec<_>>());
    let r = report.expect("a report");
    assert_eq!(r.batches[0].observations.len(), 3);
    assert_eq!(st.discovered_round, Some(round));
    assert!(!st.discovery_pending);
}

/// When each of `blocks` is probed in one round by a VP at `phase` of `slices`.
fn probed_at_phase(blocks: &[u8], slices: u32, phase: u32) -> Vec<(i64, IpNet)> {
    let (c, p) = (campaign(), policy());
    let mut st = tracked(&c, &p, blocks);
    let s = Setup {
        phase,
        ..setup(slices)
    };
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), s, ids());
    let (steps, _) = drive(&mut d, T0, &ALL_UP, 0, &mut nothing_found);
    probed(&steps)
}

#[test]
fn two_vps_probe_the_same_block_at_their_own_phases() {
    let blocks = [0, 1, 2, 3, 4, 5, 6, 7];
    let a = probed_at_phase(&blocks, 60, 0);
    let b = probed_at_phase(&blocks, 60, 30);
    assert_eq!(a.len(), 8);
    for ((ta, ba), (tb, bb)) in a.iter().zip(&b) {
        assert_eq!(ba, bb);
        // Half a round of slices apart (either way round the round).
        let (ka, kb) = (slice_of(ba, 60, 0), slice_of(bb, 60, 30));
        assert_eq!((ka + 30) % 60, kb, "{ba}");
        assert_eq!(*ta, slice_at(ka, 60));
        assert_eq!(*tb, slice_at(kb, 60));
        assert_ne!(ta, tb, "{ba}: the same instant");
    }
}

#[test]
fn n_vps_at_their_slots_spread_a_blocks_probes_over_the_round() {
    use darkwatch_schema::phase::PhaseSlot;
    let n = 10;
    let blocks = [3, 9];
    let mut times: Vec<Vec<i64>> = vec![Vec::new(); blocks.len()];
    for rank in 0..n {
        let phase = PhaseSlot { rank, of: n }.phase(60);
        for (i, (at, _)) in probed_at_phase(&blocks, 60, phase).into_iter().enumerate() {
            times[i].push(at);
        }
    }
    let span = span_ms(60_000, WORST_MS) as i64;
    for t in &mut times {
        t.sort_unstable();
        t.dedup();
        assert_eq!(t.len(), n as usize, "{t:?}");
        // Consecutive samples a tenth of the span apart, wrapping round.
        let gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == span / 10), "{gaps:?}");
    }
}

#[test]
fn packed_rounds_carry_the_rounds_schedule_to_a_collector_that_takes_it() {
    let (c, p) = (campaign(), policy());
    let round = |report_schedule| {
        let mut st = tracked(&c, &p, &[0, 1, 2]);
        let s = Setup {
            wire: Wire::Packed {
                max_blocks: 1 << 10,
                version: darkwatch_schema::packed::PACKED_VERSION,
            },
            phase: 7,
            report_schedule,
            ..setup(60)
        };
        let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, false), s, ids());
        let (steps, report) = drive(&mut d, T0, &ALL_UP, 0, &mut nothing_found);
        let packed: Vec<_> = report
            .expect("a report")
            .batches
            .into_iter()
            .flat_map(|b| b.packed)
            .collect();
        assert!(!packed.is_empty());
        (steps, packed)
    };
    let (_, old) = round(false);
    assert!(
        old.iter().all(|p| p.schedule.is_none()),
        "an older collector"
    );
    let (steps, packed) = round(true);
    let sch = packed[0].schedule.expect("a schedule");
    assert_eq!((sch.slices, sch.phase), (60, 7));
    // The collector's reckoning of each block's slice is when it went out.
    for (at, b) in probed(&steps) {
        assert_eq!(sch.slice_start_ms_of(&b), at, "{b}");
    }
}

#[test]
fn a_sampled_block_adds_to_its_census_and_reports_it_only_with_news() {
    let (c, p) = (campaign(), policy());
    let mut st = tracked(&c, &p, &[0, 1, 2]);
    // A rediscovery runs that swept block 0 fully and only sampled 1 and 2.
    st.discovery_pending = true;
    st.sampled_blocks = vec![block(1), block(2)];
    let mut d = RoundDriver::new(&c, &mut st, &p, start(T0, true), setup(1), ids());
    let mut found = |_: i64| Progress {
        targets: BTreeMap::from([
            // Fully swept: what answered is the block's census.
            (block(0), vec![IpAddr::from([198, 18, 0, 1])]),
            // Sampled, one address new: the census is the union.
            (block(1), vec![IpAddr::from([198, 18, 1, 200])]),
            // Sampled, nothing new: nothing to report.
            (block(2), vec![IpAddr::from([198, 18, 2, 1])]),
        ]),
        control: BTreeMap::new(),
        done: true,
    };
    let (_, report) = drive(&mut d, T0, &ALL_UP, 0, &mut found);
    drop(d);
    let r = report.expect("a report");
    let census: Vec<(IpNet, usize)> = r.batches[0].census[0]
        .blocks
        .iter()
        .map(|b| (b.block, b.addrs.len()))
        .collect();
    assert_eq!(census, [(block(0), 1), (block(1), 21)]);
    assert_eq!(st.trackers[&block(1)].responsive.len(), 21);
}
