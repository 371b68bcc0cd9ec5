//! A simulated Internet for darkwatch (issue 29): seeded and deterministic,
//! so that a verdict's quality can be measured at scales and on host
//! behaviour the namespace lab cannot have — a million blocks, sparse and
//! diurnal blocks, renumbering, rate-limited routers, per-VP path failures —
//! against a ground truth known exactly.
//!
//! The pieces, each pure (no socket, no clock, no file):
//! - `rng`: hashing and sequences (every draw is a hash of what it is
//!   about, so answers do not depend on the order they are computed in);
//! - `population`: countries, ASes, routed prefixes and blocks;
//! - `hosts`: how a block's hosts answer (with the published figures the
//!   parameters come from);
//! - `events`: the ground truth (outages, flapping, degradation, loss, VP
//!   failures) and the benign changes (renumbering, path failures, bursty
//!   loss);
//! - `network`: a probe's answer, with Linux's ICMP error limit;
//! - `run`: the agent's block trackers and the collector's engine over
//!   the world;
//! - `score`: verdicts against the truth (precision, recall, onset and end
//!   error, false alarms, probe budget).
//!
//! `darkwatch-bench --only sim` runs it at scale and writes the table of
//! `docs/verdicts.md`; the crate's `it` test runs a CI-sized week.

pub mod events;
pub mod hosts;
pub mod network;
pub mod population;
pub mod report;
pub mod rng;
pub mod run;
pub mod score;

use darkwatch_correlate::Params;

/// The size of a simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub blocks: u32,
    pub vps: u32,
    pub rounds: u64,
    pub seed: u64,
}

/// Builds the world of `cfg`.
pub fn world(cfg: &SimConfig) -> network::World {
    let pop = population::generate(&population::PopConfig::for_blocks(cfg.blocks), cfg.seed);
    let schedule = events::generate(&pop, cfg.vps, cfg.rounds, cfg.seed);
    network::World::new(pop, schedule, cfg.vps, cfg.rounds, cfg.seed)
}

/// Builds, runs and scores `cfg` with the engine's `params`.
pub fn simulate(
    cfg: &SimConfig,
    params: &Params,
) -> (network::World, run::RunResult, score::Score) {
    let w = world(cfg);
    let r = run::run(&w, params);
    let s = score::score(&w, &r);
    (w, r, s)
}
