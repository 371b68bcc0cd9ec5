//! Knobs shared by discovery, rounds and traces, with defaults suited to
//! watching a country's space from one vantage point.

use std::time::Duration;

/// Settings for discovery sweeps and probing rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// How long to wait for each echo reply.
    pub timeout: Duration,
    /// Most probes one block gets in one round (Trinocular uses 15).
    pub max_probes: u32,
    /// Probes a block that answers gets at least in one round (1: it stops
    /// at its first reply; see `campaign::min_probes_per_block`).
    pub min_probes: u32,
    /// Global packet rate cap (packets per second) for everything the agent sends.
    pub pps: u32,
    /// Most probes in flight at once during a discovery sweep.
    pub concurrency: usize,
    /// Most blocks probed at once during a round.
    pub block_concurrency: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(2000),
            max_probes: crate::belief::DEFAULT_MAX_PROBES,
            min_probes: 1,
            pps: 10_000,
            concurrency: 10_000,
            block_concurrency: 4_096,
        }
    }
}
