//! Rediscovery that costs what it learns: what a rediscovery sweep (every
//! `probe.rediscover_rounds` rounds, after the first discovery) probes.
//!
//! Re-sweeping every address of every block costs a full census of probes
//! in one burst (16.7 M at a /8), although the rounds already re-probe the
//! known-responsive addresses every round and most of the rest never
//! answer. As Trinocular and FBS do, a rediscovery instead goes where there
//! is something to learn:
//! - a block is swept fully when its census is stale: once in
//!   [`Rediscovery::stale_after`] rediscoveries, each block in a
//!   rediscovery of its own (a hash of the block staggers them, so every
//!   rediscovery sweeps about the same share of blocks);
//! - and when its state (up, down, uncertain) changed since the last
//!   rediscovery, since a block that comes back may come back renumbered;
//! - otherwise only a sample of its unknown addresses (not known to
//!   answer) is probed, [`Rediscovery::sample_per_mille`] of them, chosen
//!   anew each time (a hash of address and rediscovery), so that the rest
//!   is refreshed slowly and evenly.
//!
//! With the defaults a rediscovery costs about 1/8 of a full sweep where
//! every address is known, and 3/16 where none is.
//!
//! Pure: the caller passes the rediscovery's number, the targets, the
//! trackers and the blocks whose state changed; nothing here sends or
//! reads a clock.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::targets::TargetSet;
use crate::tracked::Trackers;

/// How rediscoveries share out a campaign's space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rediscovery {
    /// Rediscoveries after which a block's census is stale (each block is
    /// swept fully once in this many); 0: never.
    pub stale_after: u64,
    /// Unknown addresses sampled per rediscovery, in thousandths.
    pub sample_per_mille: u32,
}

impl Default for Rediscovery {
    fn default() -> Self {
        Rediscovery {
            stale_after: 8,
            sample_per_mille: 62,
        }
    }
}

/// What one rediscovery sweeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub targets: TargetSet,
    /// Blocks swept fully (stale or changed).
    pub full_blocks: u64,
    /// Unknown addresses sampled in the other blocks.
    pub sampled: u64,
    /// The blocks only sampled (not swept fully), in order: what a sweep
    /// finds in them adds to their census and does not replace it.
    pub sampled_blocks: Vec<IpNet>,
}

/// A 64-bit mix (splitmix64's finalizer): cheap, and spreads blocks and
/// addresses evenly over rediscoveries.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key_of(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u64) ^ mix((x >> 64) as u64)
        }
    }
}

impl Rediscovery {
    /// True if `block`'s census is stale in rediscovery `n` (its turn).
    pub fn stale(&self, block: &IpNet, n: u64) -> bool {
        self.stale_after > 0
            && mix(key_of(block.network())) % self.stale_after == n % self.stale_after
    }

    /// True if the unknown address `addr` is in rediscovery `n`'s sample.
    pub fn sampled(&self, addr: IpAddr, n: u64) -> bool {
        mix(key_of(addr) ^ mix(n)) % 1000 < u64::from(self.sample_per_mille)
    }

    /// What rediscovery `n` sweeps of `set` (see the module's docs): stale
    /// blocks and blocks in `changed` (sorted) fully, a sample of the other
    /// blocks' unknown addresses.
    pub fn select(
        &self,
        set: &TargetSet,
        trackers: &Trackers,
        changed: &[IpNet],
        n: u64,
    ) -> Selection {
        let mut full = Vec::new();
        let mut sample = Vec::new();
        let mut sampled_blocks = Vec::new();
        for block in set.blocks() {
            if changed.binary_search(&block).is_ok() || self.stale(&block, n) {
                full.push(block);
                continue;
            }
            sampled_blocks.push(block);
            let known = trackers.get(&block);
            sample.extend(set.addresses_in(&block).into_iter().filter(|a| {
                self.sampled(*a, n) && !known.is_some_and(|t| t.responsive.contains(a))
            }));
        }
        let sampled = sample.len() as u64;
        let full_blocks = full.len() as u64;
        let mut nets = full;
        nets.extend(sample.into_iter().map(IpNet::from));
        Selection {
            targets: set.within(&nets),
            full_blocks,
            sampled,
            sampled_blocks,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::belief::BlockTracker;
    use crate::targets::TargetSpec;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn set(prefixes: &[&str]) -> TargetSet {
        TargetSet::build(&TargetSpec {
            include: prefixes.iter().map(|p| net(p)).collect(),
            exclude_reserved: false,
            ..TargetSpec::default()
        })
        .unwrap()
        .0
    }

    const R: Rediscovery = Rediscovery {
        stale_after: 10,
        sample_per_mille: 16,
    };

    #[test]
    fn every_block_is_swept_fully_once_per_period_and_rediscoveries_share_them_evenly() {
        let s = set(&["198.18.0.0/16"]);
        let mut per_round = Vec::new();
        let mut times = std::collections::BTreeMap::<IpNet, u32>::new();
        for round in 100..110 {
            let sel = R.select(&s, &Trackers::new(), &[], round);
            per_round.push(sel.full_blocks);
            for b in s.blocks() {
                if R.stale(&b, round) {
                    *times.entry(b).or_default() += 1;
                }
            }
        }
        assert!(times.values().all(|&n| n == 1), "each block once");
        assert_eq!(times.len(), 256);
        // 256 blocks over 10 rounds: about 26 each.
        assert!(
            per_round.iter().all(|&n| (12..=40).contains(&n)),
            "{per_round:?}"
        );
    }

    #[test]
    fn a_known_block_gets_only_a_sample_of_its_unknown_addresses() {
        let s = set(&["198.18.3.0/24"]);
        let block = net("198.18.3.0/24");
        let known: Vec<IpAddr> = (1..=200u8).map(|i| IpAddr::from([198, 18, 3, i])).collect();
        let mut t = Trackers::new();
        t.insert(block, BlockTracker::from_discovery(block, known.clone()));
        t.settle();
        let never = Rediscovery {
            stale_after: 0,
            ..R
        };
        let mut total = 0;
        for round in 0..1000 {
            let sel = never.select(&s, &t, &[], round);
            assert_eq!(sel.full_blocks, 0);
            for a in sel.targets.addresses_in(&block) {
                assert!(!known.contains(&a), "{a} is known: the rounds probe it");
            }
            total += sel.sampled;
        }
        // 56 unknown addresses, 1.6 % of them each time: ~896 over 1000.
        assert!((600..1200).contains(&total), "{total}");
        // Without sampling, nothing at all.
        let none = Rediscovery {
            stale_after: 0,
            sample_per_mille: 0,
        };
        assert!(none.select(&s, &t, &[], 7).targets.is_empty());
    }

    #[test]
    fn a_block_whose_state_changed_is_swept_fully() {
        let s = set(&["198.18.3.0/24", "198.18.4.0/24"]);
        let never = Rediscovery {
            stale_after: 0,
            sample_per_mille: 0,
        };
        let sel = never.select(&s, &Trackers::new(), &[net("198.18.4.0/24")], 3);
        assert_eq!(sel.full_blocks, 1);
        assert_eq!(sel.targets.prefixes(), [net("198.18.4.0/24")]);
        assert_eq!(sel.sampled_blocks, [net("198.18.3.0/24")]);
    }
}
