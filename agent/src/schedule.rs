//! When a round's probes go out, and how the round went: pure arithmetic the
//! round driver (`driver`) follows.
//!
//! A round is spread over [`SLICES`] slices, as trinarkular spreads a round
//! over 60: every block belongs to one slice (a stable hash of the block
//! shifted by this VP's phase, so a block is probed at about the same instant
//! of every round, and each VP at its own instant: `darkwatch_schema::phase`
//! says why and how phases are chosen) and slice `k` starts
//! `k × span / SLICES` after the round's start. The span leaves room at
//! the end of the interval for the slowest block (every probe timing out), so
//! the round ends before the next one begins. The country's blocks are thus
//! sampled at many instants, and the packet rate stays flat instead of a burst
//! at the round's start.
//!
//! Blocks whose responsive hosts become known during a round (discovery runs
//! beside the rounds) join it: a block whose slice has already passed goes
//! into the next slice to start, so that it is probed in the round it joined.
//!
//! The packet-rate cap is split in two fixed shares: background discovery
//! gets [`DISCOVERY_SHARE_PERCENT`] of it, rounds and traceroutes the rest.
//! A fixed split keeps a round's pace independent of whether a sweep runs,
//! which is what keeps rounds on time during a rediscovery; the sum never
//! exceeds the cap.

use darkwatch_schema::{phase, round_start_ms, Assignments, RoundInfo};
use ipnet::IpNet;

/// Slices per round (trinarkular uses 60).
pub const SLICES: u32 = 60;

/// Share of the packet-rate cap that background discovery may use.
pub const DISCOVERY_SHARE_PERCENT: u32 = 50;

/// Splits the cap `pps` into (rounds and traces, discovery). 0 (no cap)
/// leaves both uncapped.
pub fn split_pps(pps: u32) -> (u32, u32) {
    if pps == 0 {
        return (0, 0);
    }
    let discovery = (u64::from(pps) * u64::from(DISCOVERY_SHARE_PERCENT) / 100).max(1) as u32;
    (pps.saturating_sub(discovery).max(1), discovery)
}

/// The slice of `block` among `slices` for a VP at `phase` (in slices):
/// stable across rounds and runs.
pub fn slice_of(block: &IpNet, slices: u32, phase: u32) -> u32 {
    phase::slice_of(block, slices, phase)
}

/// This agent's phase (of `slices`) in `campaign`: the slot the collector
/// assigned in `a`, else a hash of the agent's name.
pub fn phase_in(a: &Assignments, campaign: &str, slices: u32) -> u32 {
    match a.phases.get(campaign) {
        Some(slot) => slot.phase(slices),
        None => phase::name_phase(&a.agent, slices),
    }
}

/// Milliseconds after the round's start over which slices start: the
/// interval less the longest a block may take (`worst_block_ms`) and a
/// margin (a tenth of the interval or of the worst block, whichever is
/// more) for a busy CPU; 0 (every slice at the start) when the interval is
/// too short for that.
pub fn span_ms(interval_ms: u64, worst_block_ms: u64) -> u64 {
    let margin = (interval_ms / 10).max(worst_block_ms / 10);
    interval_ms.saturating_sub(worst_block_ms + margin)
}

/// Offset of slice `k`'s start from the round's start.
pub fn slice_start_ms(k: u32, slices: u32, span_ms: u64) -> u64 {
    phase::slice_start_ms(k, slices, span_ms)
}

/// A round's blocks by slice, as the indices of their trackers
/// (`tracked::Trackers`; 4 bytes a block). Filled with the blocks known at
/// the round's start; blocks learnt meanwhile [`join`](Self::join) it.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceQueue {
    slices: Vec<Vec<u32>>,
    /// This VP's phase, in slices.
    phase: u32,
    /// Next slice to be taken.
    next: u32,
}

impl SliceQueue {
    /// `blocks`: each block with its tracker's index; `phase`: this VP's.
    pub fn new<'a>(
        slices: u32,
        phase: u32,
        blocks: impl ExactSizeIterator<Item = (u32, &'a IpNet)>,
    ) -> Self {
        let n = slices.max(1) as usize;
        // A hash spreads blocks evenly: room for an eighth more than the
        // mean in each slice, so that they are seldom grown.
        let each = blocks.len() / n;
        let mut q = SliceQueue {
            slices: (0..n)
                .map(|_| Vec::with_capacity(each + each / 8 + 1))
                .collect(),
            phase,
            next: 0,
        };
        for (i, b) in blocks {
            q.join(i, b);
        }
        q
    }

    /// Adds `block` (its tracker at `index`) to its slice, or to the next
    /// slice to be taken if its own has been taken already. Returns false
    /// if every slice was taken (the block waits for the next round).
    pub fn join(&mut self, index: u32, block: &IpNet) -> bool {
        let n = self.slices.len() as u32;
        let k = slice_of(block, n, self.phase).max(self.next);
        match self.slices.get_mut(k as usize) {
            Some(s) => {
                s.push(index);
                true
            }
            None => false,
        }
    }

    /// Takes the blocks (indices) of the next slice; `None` once every
    /// slice was taken.
    pub fn take(&mut self) -> Option<(u32, Vec<u32>)> {
        let k = self.next;
        let blocks = std::mem::take(self.slices.get_mut(k as usize)?);
        self.next += 1;
        Some((k, blocks))
    }

    /// The slice [`take`](Self::take) gives next (`slices` once all are taken).
    pub fn next_slice(&self) -> u32 {
        self.next
    }
}

/// What the daemon measured of one round of one campaign, beyond its
/// outcomes; [`info`](Self::info) is what goes on the wire and into `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTiming {
    pub round: u64,
    pub interval_secs: u64,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub blocks: u64,
    pub probes: u64,
}

impl RoundTiming {
    /// On time: probing ended before the next round began.
    pub fn on_time(&self) -> bool {
        self.ended_ms <= round_start_ms(self.round + 1, self.interval_secs)
    }

    pub fn info(&self, campaign: &str) -> RoundInfo {
        RoundInfo {
            campaign: campaign.to_string(),
            round: self.round,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            on_time: self.on_time(),
            blocks: self.blocks,
            probes: self.probes,
        }
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
    fn blocks_spread_evenly_and_stably_over_slices() {
        let mut per = vec![0u32; SLICES as usize];
        for i in 0..6000 {
            let k = slice_of(&block(i), SLICES, 0);
            assert_eq!(k, slice_of(&block(i), SLICES, 0), "stable");
            per[k as usize] += 1;
        }
        // 100 per slice on average; a hash keeps every slice within ±40 %.
        assert!(per.iter().all(|&n| (60..=140).contains(&n)), "{per:?}");
        assert_eq!(slice_of(&block(1), 1, 0), 0);
        assert_eq!(slice_of(&block(1), 0, 0), 0, "no slices means one");
        // Phase 0 keeps the slices blocks had before phases.
        for i in 0..100 {
            let old = crate::round::block_seed(0x0051_1ce5, &block(i)) % u64::from(SLICES);
            assert_eq!(u64::from(slice_of(&block(i), SLICES, 0)), old);
        }
    }

    #[test]
    fn slices_start_over_the_span_and_leave_room_for_the_slowest_block() {
        // 60-s rounds, 15 probes of 2 s: slices over the first 24 s.
        let span = span_ms(60_000, 30_000);
        assert_eq!(span, 24_000);
        assert_eq!(slice_start_ms(0, 60, span), 0);
        assert_eq!(slice_start_ms(30, 60, span), 12_000);
        assert_eq!(slice_start_ms(59, 60, span), 23_600);
        assert!(slice_start_ms(59, 60, span) + 30_000 < 60_000);
        // Too short an interval: all at the start.
        assert_eq!(span_ms(10_000, 30_000), 0);
    }

    #[test]
    fn late_blocks_join_the_next_slice_and_none_after_the_last() {
        let blocks: Vec<IpNet> = (0..500).map(block).collect();
        let indexed = || blocks.iter().enumerate().map(|(i, b)| (i as u32, b));
        let mut q = SliceQueue::new(10, 3, indexed().take(400));
        let mut seen = Vec::new();
        for k in 0..10 {
            if k == 5 {
                for (i, b) in indexed().skip(400) {
                    assert!(q.join(i, b));
                }
            }
            let (got, taken) = q.take().unwrap();
            assert_eq!(got, k);
            let taken: Vec<IpNet> = taken.iter().map(|&i| blocks[i as usize]).collect();
            for b in &taken {
                let own = slice_of(b, 10, 3);
                if blocks[..400].contains(b) || own >= 5 {
                    assert_eq!(own, k, "{b} in its own slice");
                } else {
                    assert_eq!(k, 5, "{b} joined late: the next slice");
                }
            }
            seen.extend(taken);
        }
        seen.sort();
        assert_eq!(seen, blocks, "every block once");
        assert!(q.take().is_none());
        assert!(
            !q.join(900, &block(900)),
            "after the last slice: next round"
        );
    }

    #[test]
    fn the_phase_is_the_collectors_slot_else_a_hash_of_the_name() {
        let mut a: Assignments = serde_json::from_str(r#"{"agent":"vp7","campaigns":[]}"#).unwrap();
        assert_eq!(phase_in(&a, "kp", 60), phase::name_phase("vp7", 60));
        a.phases
            .insert("kp".into(), phase::PhaseSlot { rank: 3, of: 4 });
        assert_eq!(phase_in(&a, "kp", 60), 45);
        assert_eq!(phase_in(&a, "other", 60), phase::name_phase("vp7", 60));
    }

    #[test]
    fn the_cap_is_split_and_never_exceeded() {
        assert_eq!(split_pps(0), (0, 0));
        assert_eq!(split_pps(500), (250, 250));
        assert_eq!(split_pps(1), (1, 1));
        let (r, d) = split_pps(10_001);
        assert!(r + d <= 10_001 && d > 0 && r > 0);
    }

    #[test]
    fn a_round_is_on_time_if_it_ends_before_the_next_begins() {
        let t = RoundTiming {
            round: 10,
            interval_secs: 60,
            started_ms: 600_000,
            ended_ms: 659_000,
            blocks: 3,
            probes: 5,
        };
        assert!(t.on_time());
        let late = RoundTiming {
            ended_ms: 660_001,
            ..t
        };
        assert!(!late.on_time());
        let info = late.info("kp");
        assert_eq!(
            (info.campaign.as_str(), info.round, info.on_time),
            ("kp", 10, false)
        );
        assert_eq!((info.blocks, info.probes), (3, 5));
    }
}
