//! Steady-state rounds without a network: the agent's own `BlockTracker`
//! state machine driven round after round by a seeded model of blocks (how
//! many addresses answer, how reliably), exactly as `round::probe_block`
//! drives it. Counts probes per block per round for blocks that are up and
//! for blocks that are down, and the false verdicts.

use std::net::IpAddr;

use darkwatch_agent::belief::{BlockTracker, DEFAULT_MAX_PROBES};
use darkwatch_schema::BlockState;
use ipnet::IpNet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A model of the blocks: each has `hosts` known-responsive addresses that
/// answer with probability `availability` while the block is up.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub blocks: u32,
    pub rounds: u32,
    /// Availability drawn uniformly from this range per block.
    pub availability: (f64, f64),
    /// Share of blocks that go down during rounds [rounds/2, rounds/2+5).
    pub outage_share: f64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SteadyResult {
    pub up_rounds: u64,
    pub up_probes: u64,
    pub down_rounds: u64,
    pub down_probes: u64,
    /// Rounds of up blocks judged down.
    pub false_down: u64,
    /// Rounds of down blocks judged up.
    pub false_up: u64,
}

impl SteadyResult {
    pub fn up_mean(&self) -> f64 {
        self.up_probes as f64 / self.up_rounds.max(1) as f64
    }
    pub fn down_mean(&self) -> f64 {
        self.down_probes as f64 / self.down_rounds.max(1) as f64
    }
}

/// Runs the model; the first two rounds (settling after discovery) count too.
pub fn simulate(m: &Model, seed: u64) -> SteadyResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut res = SteadyResult::default();
    let outage = m.rounds / 2..m.rounds / 2 + 5;
    for b in 0..m.blocks {
        let block: IpNet = IpNet::V4(
            ipnet::Ipv4Net::new(std::net::Ipv4Addr::from((0x0a00_0000 + b) << 8), 24)
                .expect("a /24"),
        );
        let hosts = rng.gen_range(4..=64u32);
        let addrs: Vec<IpAddr> = (1..=hosts)
            .map(|h| IpAddr::V4(std::net::Ipv4Addr::from(((0x0a00_0000 + b) << 8) + h)))
            .collect();
        let avail = rng.gen_range(m.availability.0..=m.availability.1);
        let goes_down = rng.gen_bool(m.outage_share);
        let mut t = BlockTracker::from_discovery(block, addrs);
        for r in 0..m.rounds {
            let down = goes_down && outage.contains(&r);
            t.start_round(DEFAULT_MAX_PROBES, &mut rng);
            while t.next_target().is_some() {
                if !down && rng.gen_bool(avail) {
                    t.on_reply();
                } else {
                    t.on_loss();
                }
            }
            let o = t.finish_round();
            if down {
                res.down_rounds += 1;
                res.down_probes += u64::from(o.probes);
                res.false_up += u64::from(o.state == BlockState::Up);
            } else {
                res.up_rounds += 1;
                res.up_probes += u64::from(o.probes);
                res.false_down += u64::from(o.state == BlockState::Down);
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_blocks_take_one_probe_and_dead_ones_more() {
        let m = Model {
            blocks: 50,
            rounds: 20,
            availability: (1.0, 1.0),
            outage_share: 0.5,
        };
        let r = simulate(&m, 1);
        assert_eq!(r.up_mean(), 1.0);
        assert!(r.down_rounds > 0 && r.down_mean() > 1.0, "{r:?}");
        assert_eq!(r.false_down, 0);
        assert_eq!(r.false_up, 0);
    }
}
