//! Instability: random loss gives nothing, flapping and loss bursts are instability.

use super::sim::*;
use crate::*;

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
    let top: Vec<&Verdict> = in_scope(&out, Scope::Country);
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
    let top: Vec<&Verdict> = in_scope(&out, Scope::Country);
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
        // Half the probes lost (30 % each way) on every path for twelve
        // rounds. (The simulated VPs send at most two probes per block, a
        // dozen a round to four blocks: lighter or shorter loss is too
        // little evidence to tell from background loss.)
        let out = four_blocks(
            Box::new(|a| {
                if (10..22).contains(&a.t) {
                    Net::Loss(0.5)
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
