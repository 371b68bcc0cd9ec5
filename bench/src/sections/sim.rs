//! The `sim` section: a simulated week over the simulated Internet
//! (`darkwatch-sim`), scored against its ground truth; the rows of
//! `docs/verdicts.md`'s table against issue 29's goals.

use std::time::Instant;

use anyhow::Result;
use darkwatch_correlate::Params;
use darkwatch_sim::{report, simulate, SimConfig};

use crate::{Args, Row};

pub(crate) fn sim_rows(args: &Args, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    let cfg = SimConfig {
        blocks: args.sim_blocks,
        vps: args.sim_vps,
        rounds: args.sim_rounds,
        seed: args.sim_seed,
    };
    let started = Instant::now();
    let (world, run, score) = simulate(&cfg, &Params::default());
    let wall = started.elapsed().as_secs_f64();
    let table = report::rows(&score);
    for r in &table {
        rows.push(Row {
            what: format!("sim: {}", r.what),
            darkwatch: r.measured.clone(),
            peers: "–".into(),
            goal: r.goal.clone(),
            met: match r.met {
                Some(true) => "yes".into(),
                Some(false) => "**no**".into(),
                None => "–".into(),
            },
        });
    }
    rows.push(Row {
        what: format!(
            "sim: wall time, {} blocks × {} VPs × {} rounds",
            cfg.blocks, cfg.vps, cfg.rounds
        ),
        darkwatch: format!("{wall:.0} s"),
        peers: "–".into(),
        goal: "≤ 3600 s at 1M × 10 × 1,008".into(),
        met: "–".into(),
    });
    let date = std::process::Command::new("date")
        .args(["-u", "+%F %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    detail.push_str(&format!(
        "\n### Simulated week ({date})\n\n`darkwatch-bench --only sim --sim-blocks {} --sim-vps {} --sim-rounds {} --sim-seed {}`: \
         {} countries, {} ASes, {} prefixes, {} events; {} probes, {} judgements; \
         {wall:.0} s wall ({:.0} s in the agents' block logic and the network, {:.0} s in the engine), {:.0} s CPU.\n\n{}",
        cfg.blocks,
        cfg.vps,
        cfg.rounds,
        cfg.seed,
        world.pop.countries.len(),
        world.pop.ases.len(),
        world.pop.prefixes.len(),
        world.schedule.events.len(),
        run.probes,
        run.judgements,
        run.wall_probe_s,
        run.wall_engine_s,
        run.cpu_s,
        report::markdown(&table)
    ));
    Ok(())
}
