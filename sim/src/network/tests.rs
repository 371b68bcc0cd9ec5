//! Each behaviour and event kind, shown in the network's answers.

use super::*;
use crate::events::{Event, PathFailure};
use crate::population::{generate, PopConfig};

fn world(events: Vec<Event>, paths: Vec<PathFailure>, renumbered: Vec<(u32, i64)>) -> World {
    let pop = generate(&PopConfig::for_blocks(5_000), 11);
    let schedule = Schedule {
        events,
        renumbered,
        path_failures: paths,
        bad_spells: vec![vec![false; 100]; 3],
    };
    World::new(pop, schedule, 3, 100, 11)
}

fn ev(kind: Kind, target: Target, start: i64, end: i64) -> Event {
    Event {
        kind,
        target,
        start_ms: start * ROUND_MS,
        end_ms: end * ROUND_MS,
    }
}

/// A dense, always-on block (most probes answered) and its index.
fn dense(w: &World) -> u32 {
    w.pop
        .blocks
        .iter()
        .position(|b| {
            b.hosts.responsive >= 16
                && !b.hosts.diurnal
                && !b.hosts.flaky
                && b.hosts.availability > 0.8
        })
        .expect("a dense block") as u32
}

/// Share of `n` probes of `vp` to block `b` in `round` that got a reply.
fn replies(w: &World, vp: u32, b: u32, round: u64, n: u32) -> f64 {
    let mut lim = ErrorLimiter::default();
    let t = round as i64 * ROUND_MS + 1_000;
    let got = (0..n)
        .filter(|&k| w.probe(vp, b, Some(k % 16), round, k, t, &mut lim) == Answer::Reply)
        .count();
    got as f64 / f64::from(n)
}

#[test]
fn up_block_answers() {
    let w = world(vec![], vec![], vec![]);
    let b = dense(&w);
    assert!(replies(&w, 0, b, 5, 200) > 0.5);
}

#[test]
fn withdrawn_prefix_draws_rate_limited_unreachables() {
    let w0 = world(vec![], vec![], vec![]);
    let b = dense(&w0);
    let p = w0.pop.blocks[b as usize].prefix;
    let w = world(
        vec![ev(
            Kind::Blackout { withdrawn: true },
            Target::Prefix(p),
            2,
            4,
        )],
        vec![],
        vec![],
    );
    let mut lim = ErrorLimiter::default();
    // 20 probes within one second: the burst of five, then silence.
    let t = 3 * ROUND_MS;
    let answers: Vec<Answer> = (0..20)
        .map(|k| w.probe(0, b, Some(0), 3, k, t + i64::from(k), &mut lim))
        .collect();
    let errs = answers
        .iter()
        .filter(|a| matches!(a, Answer::Unreachable(_)))
        .count();
    assert_eq!(errs, 5, "{answers:?}");
    assert!(answers.iter().all(|a| *a != Answer::Reply));
    // Before and after: up.
    assert!(replies(&w, 0, b, 1, 100) > 0.5 && replies(&w, 0, b, 4, 100) > 0.5);
}

#[test]
fn linux_error_bucket_refills_one_a_second() {
    let mut lim = ErrorLimiter::default();
    let sent = (0..100).filter(|&i| lim.allow(0, 0, i * 100)).count();
    // 5 at once, then one a second over 9.9 s.
    assert!((14..=15).contains(&sent), "{sent}");
    // Per source: another VP has its own bucket.
    assert!(lim.allow(1, 0, 9_900));
}

#[test]
fn blackholed_country_is_silent() {
    let w = world(
        vec![ev(
            Kind::Blackout { withdrawn: false },
            Target::Country(0),
            2,
            4,
        )],
        vec![],
        vec![],
    );
    let mut lim = ErrorLimiter::default();
    let c = w.pop.countries[0].blocks.clone();
    for b in c.step_by(50) {
        for k in 0..5 {
            assert_eq!(
                w.probe(0, b, Some(0), 3, k, 3 * ROUND_MS, &mut lim),
                Answer::Lost
            );
        }
    }
}

#[test]
fn partial_outage_darkens_a_share_of_prefixes() {
    let w = world(
        vec![ev(Kind::Partial { share: 0.4 }, Target::Country(0), 2, 4)],
        vec![],
        vec![],
    );
    let ps = w.pop.countries[0].prefixes.clone();
    let n = ps.len();
    let dark = ps
        .filter(|&p| w.path(p, 3 * ROUND_MS).dark.is_some())
        .count();
    let share = dark as f64 / n as f64;
    assert!((0.3..0.5).contains(&share), "{share} of {n}");
}

#[test]
fn flapping_follows_its_period() {
    let w = world(
        vec![ev(Kind::Flapping { period: 3 }, Target::Prefix(7), 10, 34)],
        vec![],
        vec![],
    );
    let dark: Vec<bool> = (10..22)
        .map(|r| w.path(7, r * ROUND_MS + 1).dark.is_some())
        .collect();
    let want = [
        true, true, true, false, false, false, true, true, true, false, false, false,
    ];
    assert_eq!(dark, want);
}

#[test]
fn degradation_darkens_more_prefixes_over_time() {
    let w0 = world(vec![], vec![], vec![]);
    let a = (0..w0.pop.ases.len())
        .max_by_key(|&a| w0.pop.ases[a].prefixes.len())
        .unwrap() as u32;
    let w = world(
        vec![ev(Kind::Degradation, Target::As(a), 10, 50)],
        vec![],
        vec![],
    );
    let dark = |r: i64| {
        w.pop.ases[a as usize]
            .prefixes
            .iter()
            .filter(|&&p| w.path(p, r * ROUND_MS).dark.is_some())
            .count()
    };
    assert!(
        dark(12) < dark(30) && dark(30) < dark(49),
        "{} {} {}",
        dark(12),
        dark(30),
        dark(49)
    );
    assert_eq!(dark(50), 0);
}

#[test]
fn heavy_loss_throttles() {
    let w0 = world(vec![], vec![], vec![]);
    let b = dense(&w0);
    let p = w0.pop.blocks[b as usize].prefix;
    let w = world(
        vec![ev(Kind::HeavyLoss { loss: 0.6 }, Target::Prefix(p), 2, 4)],
        vec![],
        vec![],
    );
    let (before, during) = (replies(&w, 0, b, 1, 2_000), replies(&w, 0, b, 3, 2_000));
    assert!((during / before - 0.4).abs() < 0.06, "{before} {during}");
}

#[test]
fn isolated_vp_loses_everything_others_do_not() {
    let w0 = world(vec![], vec![], vec![]);
    let b = dense(&w0);
    let w = world(
        vec![ev(Kind::VpIsolated, Target::Vp(1), 2, 4)],
        vec![],
        vec![],
    );
    assert_eq!(replies(&w, 1, b, 3, 100), 0.0);
    assert!(replies(&w, 0, b, 3, 100) > 0.5);
}

#[test]
fn path_failure_hits_one_vp_only() {
    let w0 = world(vec![], vec![], vec![]);
    let b = dense(&w0);
    let p = w0.pop.blocks[b as usize].prefix;
    let f = PathFailure {
        vp: 2,
        prefix: p,
        start_ms: 2 * ROUND_MS,
        end_ms: 4 * ROUND_MS,
    };
    let w = world(vec![], vec![f], vec![]);
    assert_eq!(replies(&w, 2, b, 3, 100), 0.0);
    assert!(replies(&w, 0, b, 3, 100) > 0.5 && replies(&w, 2, b, 5, 100) > 0.5);
    assert!(w.path(p, 3 * ROUND_MS).dark.is_none(), "not an outage");
}

#[test]
fn renumbered_block_goes_quiet_for_good() {
    let w0 = world(vec![], vec![], vec![]);
    let b = dense(&w0);
    let w = world(vec![], vec![], vec![(b, 10 * ROUND_MS)]);
    assert!(replies(&w, 0, b, 9, 100) > 0.5);
    assert_eq!(replies(&w, 0, b, 10, 100), 0.0);
    assert_eq!(replies(&w, 0, b, 90, 100), 0.0);
    assert_eq!(w.renumbered_at(b), Some(10 * ROUND_MS));
}

#[test]
fn random_and_bursty_loss() {
    let mut w = world(vec![], vec![], vec![]);
    let b = dense(&w);
    let calm = replies(&w, 0, b, 3, 4_000);
    w.schedule.bad_spells[0][3] = true;
    let spell = replies(&w, 0, b, 3, 4_000);
    assert!(
        (spell / calm - (1.0 - SPELL_LOSS)).abs() < 0.05,
        "{calm} {spell}"
    );
    // Random loss alone: a host that always answers still loses about 1 %.
    let always = crate::hosts::Hosts {
        responsive: 1,
        availability: 1.0,
        diurnal: false,
        flaky: false,
    };
    w.pop.blocks[b as usize].hosts = always;
    let t = 5 * ROUND_MS;
    let off = w.pop.countries
        [w.pop.prefixes[w.pop.blocks[b as usize].prefix as usize].country as usize]
        .utc_offset_h;
    let chance = crate::hosts::answer_chance(w.seed, b, &always, 0, 5, t, off);
    let mut lim = ErrorLimiter::default();
    let lost = (0..20_000)
        .filter(|&k| w.probe(0, b, Some(0), 5, k, t, &mut lim) == Answer::Lost)
        .count();
    let want = 1.0 - (1.0 - RANDOM_LOSS) * chance;
    assert!(
        (lost as f64 / 20_000.0 - want).abs() < 0.006,
        "{lost} vs {want}"
    );
}
