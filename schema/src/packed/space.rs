//! Block spaces: the blocks of a campaign's prefixes in the fixed order
//! that packed rounds index into ([`BlockSpace`]), and the spaces a reader
//! knows by digest ([`Spaces`]), which is how a stored or received round
//! finds the space its indices refer to before it is unpacked.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{unpack_columns, PackedBlock, PackedError};
use crate::{BLOCK_LEN_V4, BLOCK_LEN_V6};

/// The blocks of a campaign's prefixes, in a fixed order: IPv4 /24s in
/// address order, then IPv6 /48s in address order. A prefix longer than a
/// block stands for the block that holds it; nested and overlapping prefixes
/// count once. The order depends on the set of prefixes only, so agent and
/// collector agree on every index without exchanging the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpace {
    /// Merged runs of block numbers: (is_v6, first block number, count,
    /// index of the run's first block).
    runs: Vec<Run>,
    len: u64,
    digest: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    v6: bool,
    first: u64,
    count: u64,
    index: u64,
}

/// Block number of an address: its top 24 (IPv4) or 48 (IPv6) bits.
fn block_number(net: &IpNet) -> (bool, u64) {
    match net {
        IpNet::V4(n) => (false, u64::from(u32::from(n.network()) >> 8)),
        IpNet::V6(n) => (true, (u128::from(n.network()) >> 80) as u64),
    }
}

impl BlockSpace {
    /// The space of `prefixes` (any order, duplicates and nesting allowed).
    pub fn new(prefixes: &[IpNet]) -> BlockSpace {
        let mut spans: Vec<(bool, u64, u64)> = prefixes
            .iter()
            .map(|p| {
                let (v6, first) = block_number(p);
                let (len, block_len) = match p {
                    IpNet::V4(n) => (n.prefix_len(), BLOCK_LEN_V4),
                    IpNet::V6(n) => (n.prefix_len(), BLOCK_LEN_V6),
                };
                let bits = u32::from(block_len.saturating_sub(len));
                // Align to the prefix (host bits may be set in the input).
                let count = 1u64 << bits;
                (v6, first & !(count - 1), count)
            })
            .collect();
        spans.sort_unstable();
        let mut runs: Vec<Run> = Vec::new();
        let mut index = 0u64;
        for (v6, first, count) in spans {
            if let Some(last) = runs.last_mut() {
                if last.v6 == v6 && first <= last.first + last.count {
                    let end = (first + count).max(last.first + last.count);
                    index += end - (last.first + last.count);
                    last.count = end - last.first;
                    continue;
                }
            }
            runs.push(Run {
                v6,
                first,
                count,
                index,
            });
            index += count;
        }
        // FNV-1a over the runs: stable across releases and platforms.
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        for r in &runs {
            for word in [u64::from(r.v6), r.first, r.count] {
                for b in word.to_le_bytes() {
                    digest ^= u64::from(b);
                    digest = digest.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        BlockSpace {
            runs,
            len: index,
            digest,
        }
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest that names this space on the wire (16 hex digits).
    pub fn digest(&self) -> String {
        format!("{:016x}", self.digest)
    }

    /// Index of `block` (a /24 or /48 with no host bits), if it is in the space.
    pub fn index_of(&self, block: &IpNet) -> Option<u64> {
        let ok = match block {
            IpNet::V4(n) => n.prefix_len() == BLOCK_LEN_V4,
            IpNet::V6(n) => n.prefix_len() == BLOCK_LEN_V6,
        };
        if !ok || block.trunc() != *block {
            return None;
        }
        let (v6, num) = block_number(block);
        let i = self
            .runs
            .partition_point(|r| (r.v6, r.first) <= (v6, num))
            .checked_sub(1)?;
        let r = self.runs[i];
        (r.v6 == v6 && num < r.first + r.count).then(|| r.index + (num - r.first))
    }

    /// The block at `index`.
    pub fn block_at(&self, index: u64) -> Option<IpNet> {
        if index >= self.len {
            return None;
        }
        let i = self.runs.partition_point(|r| r.index <= index) - 1;
        let r = self.runs[i];
        let num = r.first + (index - r.index);
        Some(if r.v6 {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from((num as u128) << 80), BLOCK_LEN_V6)
                    .expect("48 is a valid length"),
            )
        } else {
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from((num as u32) << 8), BLOCK_LEN_V4)
                    .expect("24 is a valid length"),
            )
        })
    }
}

/// The block spaces a reader knows, by digest: every generation of a
/// campaign, so that a round packed against an older prefix list still
/// decodes. The one place that turns a (digest, columns) pair into blocks:
/// the collector's ingest checks and its stored-round reads both go here.
#[derive(Debug, Default, Clone)]
pub struct Spaces {
    by_digest: HashMap<String, BlockSpace>,
}

impl Spaces {
    /// The spaces of `stored` (digest, prefix list) pairs, built once.
    pub fn new<'a>(stored: impl IntoIterator<Item = (&'a str, &'a [IpNet])>) -> Spaces {
        Spaces {
            by_digest: stored
                .into_iter()
                .map(|(digest, prefixes)| (digest.to_string(), BlockSpace::new(prefixes)))
                .collect(),
        }
    }

    pub fn get(&self, digest: &str) -> Option<&BlockSpace> {
        self.by_digest.get(digest)
    }

    /// The blocks of compressed columns said to hold `blocks` blocks of
    /// the space `digest`, with that space.
    pub fn unpack(
        &self,
        digest: &str,
        compressed: &[u8],
        blocks: u32,
    ) -> Result<(&BlockSpace, Vec<PackedBlock>), PackedError> {
        let space = self
            .get(digest)
            .ok_or_else(|| PackedError::UnknownSpace(digest.to_string()))?;
        Ok((space, unpack_columns(compressed, blocks, space)?))
    }
}
