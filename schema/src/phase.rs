//! Phases: when in a round a vantage point (VP) probes a block, as pure
//! arithmetic both sides share.
//!
//! A round is spread over slices; a block's slice is a stable hash of the
//! block, shifted by the VP's *phase* (a number of slices). Were every VP at
//! the same phase, N VPs would sample a block at one instant of the round,
//! and an outage's start would be known to ± a round however many VPs watch.
//! Shifted, N VPs sample it N times a round, and the collector times an
//! onset to the gap between two VPs' samples.
//!
//! The phase comes from the collector, which gives each of a campaign's N
//! agents its rank among them ([`PhaseSlot`]), so phases are `rank/N` of the
//! round: evenly spread, with gaps of exactly a round over N. A hash of the
//! agent's name ([`name_phase`]), the fallback with a collector that assigns
//! none, needs no coordination but spreads N VPs at random, with a largest gap
//! of about `ln N / N` of the round (twice the even gap at N = 10); hence the
//! assignment. Adding or removing an agent re-ranks the others: their phases
//! shift from the next round, which costs nothing but one round's uneven
//! sampling.
//!
//! A packed round carries its [`RoundSchedule`] once (a few numbers), from
//! which the collector computes any block's probing time
//! ([`RoundSchedule::slice_start_ms_of`]) instead of receiving one time per
//! block.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Salt of the block hash that places blocks in slices.
const SLICE_SALT: u64 = 0x0051_1ce5;

/// A stable hash of `block` (splitmix64 over its address and length).
pub fn block_hash(block: &IpNet) -> u64 {
    seeded_hash(SLICE_SALT, block)
}

/// splitmix64 of `block`'s address and length from `seed`: the slices'
/// hash, and the agent's per-block RNG seeds.
pub fn seeded_hash(seed: u64, block: &IpNet) -> u64 {
    let mut x = seed;
    let (v4, v6);
    let bytes: &[u8] = match block {
        IpNet::V4(n) => {
            v4 = n.network().octets();
            &v4
        }
        IpNet::V6(n) => {
            v6 = n.network().octets();
            &v6
        }
    };
    for &b in bytes.iter().chain(&[block.prefix_len()]) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15 ^ b as u64);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// The slice of `block` among `slices` for a VP at `phase` (in slices):
/// stable across rounds and runs; phase 0 is every VP's slice before phases.
pub fn slice_of(block: &IpNet, slices: u32, phase: u32) -> u32 {
    let n = u64::from(slices.max(1));
    ((block_hash(block) % n + u64::from(phase) % n) % n) as u32
}

/// Offset of slice `k`'s start from the round's start, slices starting over
/// `span_ms`.
pub fn slice_start_ms(k: u32, slices: u32, span_ms: u64) -> u64 {
    span_ms * u64::from(k) / u64::from(slices.max(1))
}

/// A VP's place among the agents of a campaign, as the collector assigns
/// it: `rank` in `0..of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseSlot {
    pub rank: u32,
    pub of: u32,
}

impl PhaseSlot {
    /// The phase (in slices, of `slices`) of this slot: `rank/of` of the
    /// round, so that `of` VPs are evenly spread.
    pub fn phase(&self, slices: u32) -> u32 {
        let of = u64::from(self.of.max(1));
        let rank = u64::from(self.rank) % of;
        (rank * u64::from(slices.max(1)) / of) as u32
    }
}

/// The fallback phase of an agent named `agent` (of `slices`), when the
/// collector assigns none: a stable hash of the name.
pub fn name_phase(agent: &str, slices: u32) -> u32 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let h = agent.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h % u64::from(slices.max(1))) as u32
}

/// When one VP's round of one campaign probed its blocks: what a packed
/// round carries once so that the collector knows each block's probing
/// time to the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSchedule {
    /// When slice 0 started (Unix ms).
    pub anchor_ms: i64,
    /// Milliseconds over which the slices start.
    pub span_ms: u64,
    pub slices: u32,
    /// The VP's phase, in slices.
    pub phase: u32,
}

impl RoundSchedule {
    /// When `block`'s slice started (Unix ms). A block that joined the round
    /// after its slice had passed went out with a later slice: it was probed
    /// later than this, never earlier.
    pub fn slice_start_ms_of(&self, block: &IpNet) -> i64 {
        let k = slice_of(block, self.slices, self.phase);
        self.anchor_ms + slice_start_ms(k, self.slices, self.span_ms) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u32) -> IpNet {
        IpNet::V4(
            ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0xC612_0000 + (i << 8)), 24).unwrap(),
        )
    }

    #[test]
    fn a_phase_shifts_every_block_by_as_many_slices() {
        for i in 0..200 {
            let b = block(i);
            let k = slice_of(&b, 60, 0);
            assert_eq!(slice_of(&b, 60, 6), (k + 6) % 60, "{b}");
            assert_eq!(slice_of(&b, 60, 66), (k + 6) % 60, "phases wrap");
        }
        assert_eq!(slice_of(&block(1), 0, 5), 0, "no slices means one");
    }

    #[test]
    fn slots_spread_evenly_over_the_round() {
        let phases: Vec<u32> = (0..10)
            .map(|rank| PhaseSlot { rank, of: 10 }.phase(60))
            .collect();
        assert_eq!(phases, [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]);
        assert_eq!(PhaseSlot { rank: 0, of: 0 }.phase(60), 0);
        assert_eq!(PhaseSlot { rank: 2, of: 3 }.phase(0), 0);
    }

    #[test]
    fn name_phases_are_stable_and_differ() {
        assert_eq!(name_phase("vp-a", 60), name_phase("vp-a", 60));
        let distinct: std::collections::BTreeSet<u32> = (0..20)
            .map(|i| name_phase(&format!("vp-{i}"), 60))
            .collect();
        assert!(distinct.len() > 10, "{distinct:?}");
        assert!(name_phase("x", 60) < 60);
    }

    #[test]
    fn a_schedule_gives_the_slice_start_of_a_block() {
        let s = RoundSchedule {
            anchor_ms: 1_000_000,
            span_ms: 60_000,
            slices: 60,
            phase: 30,
        };
        let b = block(7);
        let k = slice_of(&b, 60, 30);
        assert_eq!(s.slice_start_ms_of(&b), 1_000_000 + i64::from(k) * 1_000);
    }
}
