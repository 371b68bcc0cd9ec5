//! The belief state machine, one behaviour at a time.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn block() -> IpNet {
    "198.18.7.0/24".parse().unwrap()
}

fn hosts(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|i| IpAddr::from([198, 18, 7, i])).collect()
}

/// Runs one round where `answers(addr, rng)` decides each probe.
fn round<F: FnMut(IpAddr, &mut StdRng) -> bool>(
    t: &mut BlockTracker,
    rng: &mut StdRng,
    mut answers: F,
) -> RoundOutcome {
    t.start_round(DEFAULT_MAX_PROBES, rng);
    let mut seen = Vec::new();
    while let Some(a) = t.next_target() {
        let known = t.responsive.len();
        let pass = &seen[seen.len() / known * known..];
        assert!(
            !pass.contains(&a),
            "address {a} repeated before every known address was tried"
        );
        seen.push(a);
        if answers(a, rng) {
            t.on_reply()
        } else {
            t.on_loss()
        }
    }
    t.finish_round()
}

#[test]
fn unreachable_from_upstream_settles_down_despite_low_availability() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut t = BlockTracker::from_discovery(block(), hosts(20));
    // Heavy loss has worn the availability down to its floor.
    t.availability = AVAIL_MIN;
    t.start_round(8, &mut rng);
    let mut probes = 0;
    while t.next_target().is_some() {
        probes += 1;
        t.on_unreachable();
    }
    let o = t.finish_round();
    assert_eq!(o.state, BlockState::Down, "{o:?}");
    assert!(probes <= 4, "{probes} probes");
    // The same losses as timeouts cannot conclude down at this `A`.
    let mut t = BlockTracker::from_discovery(block(), hosts(20));
    t.availability = AVAIL_MIN;
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_ne!(o.state, BlockState::Down, "{o:?}");
    // And a reply after unreachables still means up.
    let mut t = BlockTracker::from_discovery(block(), hosts(20));
    t.start_round(8, &mut rng);
    t.next_target();
    t.on_unreachable();
    t.next_target();
    t.on_reply();
    assert_eq!(t.finish_round().state, BlockState::Up);
}

#[test]
fn heavy_random_loss_does_not_make_a_block_down() {
    // 16 responsive hosts behind a path that drops 60 % of packets,
    // probed by a tracker whose availability had settled high.
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = BlockTracker::from_discovery(block(), hosts(16));
    let mut downs = 0;
    let mut probes = 0;
    for _ in 0..1000 {
        let o = round(&mut t, &mut rng, |_, rng| rng.gen_bool(0.4));
        downs += u32::from(o.state == BlockState::Down);
        probes += o.probes;
    }
    // P(15 losses in a row) = 0.6^15 ≈ 5e-4 per round.
    assert!(downs <= 3, "{downs} of 1000 rounds judged down");
    // Stopping at the first reply still keeps the cost low.
    assert!(probes < 1000 * 3, "{probes} probes");
}

#[test]
fn a_sparse_block_cycles_its_addresses_before_concluding_down() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut t = BlockTracker::from_discovery(block(), hosts(3));
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_eq!((o.state, o.probes), (BlockState::Down, DEFAULT_MAX_PROBES));
    // A reply on the second pass over the three addresses means up.
    let mut n = 0;
    let o = round(&mut t, &mut rng, |_, _| {
        n += 1;
        n == 5
    });
    assert_eq!((o.state, o.probes, o.replies), (BlockState::Up, 5, 1));
}

#[test]
fn always_up_block_takes_one_probe_per_round() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut t = BlockTracker::from_discovery(block(), hosts(200));
    for _ in 0..50 {
        let o = round(&mut t, &mut rng, |_, _| true);
        assert_eq!((o.state, o.probes, o.replies), (BlockState::Up, 1, 1));
    }
    assert!(t.availability >= AVAIL_MAX - 1e-9);
}

#[test]
fn dead_block_goes_down_after_the_whole_budget() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut t = BlockTracker::from_discovery(block(), hosts(200));
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_eq!(o.state, BlockState::Down);
    assert_eq!(o.probes, DEFAULT_MAX_PROBES);
    assert_eq!(o.replies, 0);
    // Already believed down: still the whole budget, so that one round's
    // conclusion does not make the next one cheaper to reach by loss.
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_eq!((o.state, o.probes), (BlockState::Down, DEFAULT_MAX_PROBES));
    // And it comes back up at the first reply.
    let o = round(&mut t, &mut rng, |_, _| true);
    assert_eq!((o.state, o.probes), (BlockState::Up, 1));
}

#[test]
fn sparse_blocks_work() {
    let mut rng = StdRng::seed_from_u64(3);
    for n in 1..=3u8 {
        let mut t = BlockTracker::from_discovery(block(), hosts(n));
        let o = round(&mut t, &mut rng, |_, _| true);
        assert_eq!(o.state, BlockState::Up);
        // Its few addresses are probed again until the budget is spent,
        // so a sparse block that falls silent is down in the first round.
        for _ in 0..4 {
            let o = round(&mut t, &mut rng, |_, _| false);
            assert_eq!(
                (o.state, o.probes),
                (BlockState::Down, DEFAULT_MAX_PROBES),
                "n={n}"
            );
        }
    }
    // A block with no known address cannot be probed at all.
    let mut t = BlockTracker::from_discovery(block(), vec![]);
    let o = round(&mut t, &mut rng, |_, _| true);
    assert_eq!((o.probes, o.state), (0, BlockState::Uncertain));
}

#[test]
fn ten_percent_loss_rarely_yields_down() {
    let mut downs = 0;
    let mut total_probes = 0;
    let rounds_per_seed = 500;
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let mut t = BlockTracker::from_discovery(block(), hosts(100));
        for _ in 0..rounds_per_seed {
            let o = round(&mut t, &mut rng, |_, r| r.gen::<f64>() >= 0.1);
            total_probes += o.probes;
            if o.state == BlockState::Down {
                downs += 1;
            }
        }
    }
    let rounds = 20 * rounds_per_seed;
    // Three losses in a row (p = 0.001) are needed for down.
    assert!(
        downs * 1000 <= rounds * 3,
        "{downs} false downs in {rounds} rounds"
    );
    assert!(
        total_probes < rounds * 2,
        "{total_probes} probes in {rounds} rounds"
    );
}

#[test]
fn inconsistent_answers_leave_the_block_uncertain() {
    let mut rng = StdRng::seed_from_u64(4);
    // Only a fifth of the known addresses answer: A converges low, so a
    // round of silence is not enough evidence for down.
    let mut t = BlockTracker::from_discovery(block(), hosts(200));
    let live: Vec<IpAddr> = hosts(40);
    for _ in 0..300 {
        round(&mut t, &mut rng, |a, _| live.contains(&a));
    }
    assert!(
        t.availability > 0.15 && t.availability < 0.36,
        "A = {}",
        t.availability
    );
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_eq!(o.state, BlockState::Uncertain, "{o:?}");
    assert_eq!(o.probes, DEFAULT_MAX_PROBES);

    // The same from a fixed state: 15 losses at A = 0.25 take B from
    // 0.99 to about 0.56, short of both thresholds.
    let mut t = BlockTracker::from_discovery(block(), hosts(200));
    t.availability = 0.25;
    let o = round(&mut t, &mut rng, |_, _| false);
    assert_eq!(
        (o.state, o.probes, o.replies),
        (BlockState::Uncertain, DEFAULT_MAX_PROBES, 0)
    );
    let expected = {
        let odds = 99.0 * 0.75f64.powi(15);
        odds / (1.0 + odds)
    };
    assert!(
        (o.belief - expected).abs() < 1e-9,
        "{} vs {expected}",
        o.belief
    );
    // Uncertain rounds do not move availability.
    assert_eq!(o.availability, 0.25);
}

#[test]
fn availability_converges() {
    for seed in 0..5 {
        let mut rng = StdRng::seed_from_u64(200 + seed);
        let mut t = BlockTracker::from_discovery(block(), hosts(200));
        let mut sum = 0.0;
        for i in 0..1500 {
            round(&mut t, &mut rng, |_, r| r.gen::<f64>() < 0.5);
            if i >= 1000 {
                sum += t.availability;
            }
        }
        let mean = sum / 500.0;
        assert!((mean - 0.5).abs() < 0.08, "seed {seed}: mean A = {mean}");
    }
}

#[test]
fn belief_is_clamped_and_tracker_round_trips_as_json() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut t = BlockTracker::from_discovery(block(), hosts(10));
    for _ in 0..5 {
        round(&mut t, &mut rng, |_, _| false);
    }
    assert!(t.belief >= BELIEF_MIN && t.belief <= DOWN_THRESHOLD);
    let json = serde_json::to_string(&t).unwrap();
    let back: BlockTracker = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    assert!(!json.contains("round"));
}

#[test]
fn responsive_sets_are_compact_sorted_and_deduplicated() {
    let mut hs = hosts(200);
    hs.reverse();
    hs.push(hs[0]);
    let r = Responsive::from(hs);
    assert!(matches!(r, Responsive::V4Block { .. }));
    assert_eq!(r.len(), 200);
    assert_eq!(r.iter().collect::<Vec<_>>(), hosts(200));
    assert!(r.contains(&IpAddr::from([198, 18, 7, 200])));
    assert!(!r.contains(&IpAddr::from([198, 18, 7, 201])));
    assert!(!r.contains(&IpAddr::from([198, 18, 8, 1])));
    // Host octets 0 and 255 and every word boundary survive.
    let edge: Vec<IpAddr> = [0u8, 63, 64, 127, 128, 255]
        .iter()
        .map(|&h| IpAddr::from([10, 0, 0, h]))
        .collect();
    assert_eq!(
        Responsive::from(edge.clone()).iter().collect::<Vec<_>>(),
        edge
    );
    // Mixed /24s or families fall back to a sorted list.
    let mixed = vec![
        IpAddr::from([198, 18, 8, 1]),
        IpAddr::from([198, 18, 7, 1]),
        "2001:db8::1".parse().unwrap(),
        IpAddr::from([198, 18, 7, 1]),
    ];
    let r = Responsive::from(mixed);
    assert!(matches!(r, Responsive::List(_)));
    assert_eq!(r.len(), 3);
    assert_eq!(r.iter().next(), Some(IpAddr::from([198, 18, 7, 1])));
    assert!(Responsive::from(vec![]).is_empty());
    // JSON is the sorted list, as before the compact form.
    let json = serde_json::to_string(&Responsive::from(hosts(2))).unwrap();
    assert_eq!(json, r#"["198.18.7.1","198.18.7.2"]"#);
}

#[test]
fn tracker_stays_small() {
    // The map entry of 100k tracked blocks: no heap for IPv4 /24 sets.
    assert!(
        std::mem::size_of::<BlockTracker>() <= 88,
        "{}",
        std::mem::size_of::<BlockTracker>()
    );
}

#[test]
fn later_discovery_grows_the_set_and_moves_availability() {
    let mut t = BlockTracker::from_discovery(block(), hosts(10));
    t.merge_discovery(&hosts(20)[10..]);
    assert_eq!(t.responsive.len(), 20);
    // Half the ever-responsive set answered this sweep.
    assert!((t.availability - (0.5 * AVAIL_MAX + 0.25)).abs() < 1e-9);
    let mut empty = BlockTracker::from_discovery(block(), vec![]);
    empty.merge_discovery(&hosts(4));
    assert_eq!(empty.responsive.len(), 4);
    assert_eq!(empty.availability, AVAIL_MAX);
}

#[test]
fn icmp_errors_from_outside_the_block_settle_it_down_and_inside_are_losses() {
    let mut rng = StdRng::seed_from_u64(5);
    let border: IpAddr = "203.0.113.244".parse().unwrap();
    let mut t = BlockTracker::from_discovery(block(), hosts(20));
    t.availability = 0.3;
    t.start_round(8, &mut rng);
    let mut n = 0;
    while t.next_target().is_some() {
        n += 1;
        t.on_error(border);
    }
    // A cut path: weighted as losses from a fully available block, so the
    // round decides before its budget even though A is low.
    let o = t.finish_round();
    assert_eq!(o.state, BlockState::Down);
    assert!(n < 8, "{n} probes");
    // An error from inside the block is an ordinary loss.
    let inside: IpAddr = "198.18.7.1".parse().unwrap();
    let mut a = BlockTracker::from_discovery(block(), hosts(20));
    let mut b = a.clone();
    a.start_round(8, &mut rng);
    b.start_round(8, &mut rng);
    a.next_target();
    a.on_error(inside);
    b.next_target();
    b.on_loss();
    assert_eq!(a.belief, b.belief);
}

#[test]
fn an_answered_block_is_probed_on_to_its_minimum_without_losing_belief() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut t = BlockTracker::from_discovery(block(), hosts(4));
    t.start_round_min(8, 12, &mut rng);
    let mut n = 0;
    while t.next_target().is_some() {
        n += 1;
        // Lost, answered, then lost every other probe.
        if n % 2 == 0 {
            t.on_reply();
        } else {
            t.on_loss();
        }
    }
    let o = t.finish_round();
    // Past max_probes: an answered block goes on to its minimum (cycling
    // its four addresses), and the later losses do not touch the belief.
    assert_eq!((o.probes, o.replies, o.state), (12, 6, BlockState::Up));
    assert_eq!(o.belief, BELIEF_MAX);
    // A silent block still stops at max_probes.
    let mut t = BlockTracker::from_discovery(block(), hosts(4));
    t.start_round_min(8, 12, &mut rng);
    while t.next_target().is_some() {
        t.on_loss();
    }
    assert_eq!(t.finish_round().probes, 8);
    // With a minimum of one, the first reply ends the round as before.
    let mut t = BlockTracker::from_discovery(block(), hosts(4));
    let o = round(&mut t, &mut rng, |_, _| true);
    assert_eq!(o.probes, 1);
}

#[test]
fn the_first_probe_is_uniform_over_the_known_addresses() {
    // 12 known addresses (a composite count, where a stride must skip the
    // non-coprime ones): over many rounds each comes first about as often,
    // and each round's first 12 probes cover all 12.
    let mut rng = StdRng::seed_from_u64(9);
    let mut first = std::collections::BTreeMap::<IpAddr, u32>::new();
    for _ in 0..12_000 {
        let mut t = BlockTracker::from_discovery(block(), hosts(12));
        t.start_round(12, &mut rng);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(a) = t.next_target() {
            if seen.is_empty() {
                *first.entry(a).or_default() += 1;
            }
            seen.insert(a);
            t.on_loss();
        }
        assert_eq!(seen.len(), 12);
    }
    assert_eq!(first.len(), 12);
    assert!(
        first.values().all(|&n| (850..=1150).contains(&n)),
        "{first:?}"
    );
}

#[test]
fn an_outcome_applied_to_a_nudged_tracker_keeps_the_nudge() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut t = BlockTracker::from_discovery(block(), hosts(10));
    t.availability = 0.6;
    let original = t.clone();
    // The round runs on a copy; two losses then a reply.
    let mut copy = t.clone();
    let mut n = 0;
    let o = round(&mut copy, &mut rng, |_, _| {
        n += 1;
        n == 3
    });
    assert_eq!((o.probes, o.replies), (3, 1));
    // Applied to an unchanged original: exactly what the copy holds.
    let mut same = original.clone();
    o.apply_to(&mut same);
    assert_eq!(
        (same.belief, same.availability),
        (copy.belief, copy.availability)
    );
    // A sweep meanwhile found the block half available: the round's update
    // comes on top of that nudge instead of erasing it.
    t.merge_discovery(&hosts(20)[10..]);
    let nudged = t.availability;
    o.apply_to(&mut t);
    assert_eq!(t.belief, copy.belief);
    assert_eq!(
        t.availability,
        fold_availability(nudged, o.state, o.probes, o.replies)
    );
    assert_ne!(t.availability, copy.availability);
}
