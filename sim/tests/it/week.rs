//! One simulated week, scored. The world is seeded, so the figures are
//! exact for the code under test; the thresholds are the levels measured on
//! 2026-12-07 (issue 29's goal where it was met, the measured level where
//! it was not, see `docs/verdicts.md`): a change that makes verdicts worse
//! on this week fails here.
//!
//! Size: 2,000 blocks × 5 VPs × 1,008 rounds, not the 20,000:
//! in a debug build this week costs about 30 s of CPU (245 s wall on the
//! shared 2-core machine), so 20,000 blocks would be about 5 minutes of CPU,
//! beyond the 3-minute budget. `DW_SIM_BLOCKS`, `DW_SIM_VPS`,
//! `DW_SIM_ROUNDS` and `DW_SIM_SEED` run other sizes by hand (the
//! thresholds are for the default).

use darkwatch_correlate::Params;
use darkwatch_sim::score::Tally;
use darkwatch_sim::{report, simulate, SimConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ratio(t: Option<&Tally>) -> f64 {
    t.and_then(Tally::ratio).unwrap_or(0.0)
}

#[test]
fn simulated_week_meets_measured_levels() {
    let cfg = SimConfig {
        blocks: env("DW_SIM_BLOCKS", 2_000) as u32,
        vps: env("DW_SIM_VPS", 5) as u32,
        rounds: env("DW_SIM_ROUNDS", 1008),
        seed: env("DW_SIM_SEED", 29),
    };
    let started = std::time::Instant::now();
    let (_, run, s) = simulate(&cfg, &Params::default());
    println!(
        "{cfg:?}: {:.1} s, {} probes",
        started.elapsed().as_secs_f64(),
        run.probes
    );
    println!("{}", report::markdown(&report::rows(&s)));
    let blackout = |scope: &str| {
        s.precision
            .get(&("blackout".to_string(), scope.to_string()))
    };
    // Goals met on this week.
    assert!(ratio(s.recall.get("country")) >= 0.99, "{:?}", s.recall);
    assert!(ratio(s.recall.get("asn")) >= 0.99, "{:?}", s.recall);
    assert!(ratio(s.recall.get("prefix")) >= 0.95, "{:?}", s.recall);
    assert!(ratio(blackout("country")) >= 0.99, "{:?}", s.precision);
    assert!(ratio(blackout("asn")) >= 0.99, "{:?}", s.precision);
    assert!(ratio(blackout("prefix")) >= 0.95, "{:?}", s.precision);
    assert_eq!(s.false_country_blackouts, 0);
    assert!(
        s.probes_per_block_hour <= 20.0,
        "{}",
        s.probes_per_block_hour
    );
    // Measured levels short of the goals.
    let per_10k = s.false_block_outages as f64 / s.block_days * 10_000.0;
    assert!(
        per_10k <= 3.0,
        "false block outages per 10,000 block-days: {per_10k}"
    );
    assert!(
        s.false_diurnal <= 4 && s.false_renumbered == 0,
        "{} {}",
        s.false_diurnal,
        s.false_renumbered
    );
    // Onset and end to the round, not better (no staggered phases yet).
    assert!(
        s.onset_error_s.median <= 300.0 && s.onset_error_s.p95 <= 600.0,
        "{:?}",
        s.onset_error_s
    );
    // Flapping gives instability; the blackout trains are not gone yet.
    assert!(ratio(Some(&s.flapping_instability)) >= 0.95);
    assert!(ratio(Some(&s.heavy_loss_recall)) >= 0.75);
    assert!(ratio(Some(&s.partial_recall)) >= 0.75);
    assert!(ratio(Some(&s.degradation_recall)) >= 0.66);
    assert!(ratio(Some(&s.isolated_vp_flagged)) >= 0.95);
}
