//! A campaign's address space as sorted, disjoint, inclusive ranges per
//! family, and the figures `campaign add` and `campaign show` print.
//!
//! Ranges rather than a list of prefixes because the questions asked of a
//! campaign are about its space as a whole, at real size: is this hitlist
//! address inside it (6.5M addresses against a US campaign's ~110k
//! prefixes: a binary search each, not a scan), how many /24 and /48
//! blocks does it hold (overlapping prefixes and several sub-/24
//! allocations in one /24 count once), and how many addresses would an
//! agent target. Pure: no I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;

use darkwatch_schema::inputs::pfx2as::Pfx2As;

use crate::routing::Routing;
use darkwatch_schema::{BLOCK_LEN_V4, BLOCK_LEN_V6};
use ipnet::IpNet;
use serde::Serialize;

/// Longest IPv6 range (in addresses) an agent sweeps address by address: a
/// /120, as the agent's `MIN_IPV6_SWEEP_PREFIX`. Wider IPv6 space is
/// watched through census addresses only.
pub const MAX_SWEPT_V6: u128 = 256;

/// The maximum number of addresses an agent watches per campaign when its
/// config does not say: the agent's default `max_targets` (2^24, a /8;
/// `DEFAULT_MAX_TARGETS` in the agent's `targets` module).
pub const AGENT_DEFAULT_MAX_TARGETS: u64 = 1 << 24;

/// Sorted disjoint inclusive ranges of one family, as integers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn from_unsorted(mut v: Vec<(u128, u128)>) -> Ranges {
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Ranges(out)
    }

    fn contains(&self, x: u128) -> bool {
        let i = self.0.partition_point(|&(a, _)| a <= x);
        i > 0 && self.0[i - 1].1 >= x
    }

    /// True if any range meets `[a, b]`.
    fn overlaps(&self, a: u128, b: u128) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < a);
        self.0.get(i).is_some_and(|&(start, _)| start <= b)
    }

    fn addresses(&self) -> u128 {
        self.0
            .iter()
            .map(|&(a, b)| b - a + 1)
            .fold(0u128, u128::saturating_add)
    }

    /// Distinct blocks of `2^shift` addresses the ranges touch.
    fn blocks(&self, shift: u32) -> u128 {
        let mut n = 0u128;
        let mut last: Option<u128> = None;
        for &(a, b) in &self.0 {
            let (first, end) = (a >> shift, b >> shift);
            let first = if last == Some(first) {
                first + 1
            } else {
                first
            };
            if end >= first {
                n += end - first + 1;
            }
            last = Some(end);
        }
        n
    }
}

fn range_of(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn int_of(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An address space: the union of some prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    v4: Ranges,
    v6: Ranges,
}

impl Space {
    pub fn new<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> Space {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in prefixes {
            match p {
                IpNet::V4(_) => v4.push(range_of(p)),
                IpNet::V6(_) => v6.push(range_of(p)),
            }
        }
        Space {
            v4: Ranges::from_unsorted(v4),
            v6: Ranges::from_unsorted(v6),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.0.is_empty() && self.v6.0.is_empty()
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(_) => self.v4.contains(int_of(a)),
            IpAddr::V6(_) => self.v6.contains(int_of(a)),
        }
    }

    /// True if `net` and the space share an address.
    pub fn overlaps(&self, net: &IpNet) -> bool {
        let (a, b) = range_of(net);
        match net {
            IpNet::V4(_) => self.v4.overlaps(a, b),
            IpNet::V6(_) => self.v6.overlaps(a, b),
        }
    }

    /// IPv4 /24 blocks the space touches (a /26 counts its /24 once).
    pub fn v4_blocks(&self) -> u128 {
        self.v4.blocks(u32::from(32 - BLOCK_LEN_V4))
    }

    /// IPv6 /48 blocks the space spans.
    pub fn v6_blocks(&self) -> u128 {
        self.v6.blocks(u32::from(128 - BLOCK_LEN_V6))
    }

    pub fn v4_addresses(&self) -> u128 {
        self.v4.addresses()
    }

    /// IPv6 addresses in ranges narrow enough to sweep.
    pub fn v6_swept_addresses(&self) -> u128 {
        self.v6
            .0
            .iter()
            .map(|&(a, b)| b - a + 1)
            .filter(|&n| n <= MAX_SWEPT_V6)
            .sum()
    }
}

/// What a campaign holds, as `campaign add` and `campaign show` print it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Prefixes as stored (before merging).
    pub prefixes: usize,
    /// IPv4 /24 blocks.
    pub ipv4_blocks: u128,
    /// IPv6 /48 blocks the allocations span (mostly not tracked).
    pub ipv6_blocks_allocated: u128,
    /// IPv6 /48 blocks with census addresses: the tracked ones.
    pub ipv6_blocks_tracked: usize,
    /// Census blocks and addresses (hitlists and agents' discovery).
    pub census_blocks: usize,
    pub census_addresses: usize,
    /// Addresses an agent targets: swept space plus census addresses
    /// outside it.
    pub targets: u128,
    /// Routed prefixes of the pfx2as file the campaign's blocks fall in
    /// (each block's longest match: `crate::routing`), and their distinct
    /// origin ASes (absent without a pfx2as file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ases: Option<usize>,
    /// IPv4 /24s that no route covers: the `unrouted` group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrouted_ipv4_blocks: Option<u128>,
}

impl Figures {
    /// Figures of `prefixes` with the census `census` (block, addresses).
    pub fn new<'a>(
        prefixes: &[IpNet],
        census: impl IntoIterator<Item = (&'a IpNet, &'a [IpAddr])>,
        pfx2as: Option<&Pfx2As>,
    ) -> Figures {
        let space = Space::new(prefixes);
        let mut f = Figures {
            prefixes: prefixes.len(),
            ipv4_blocks: space.v4_blocks(),
            ipv6_blocks_allocated: space.v6_blocks(),
            targets: space.v4_addresses() + space.v6_swept_addresses(),
            ..Figures::default()
        };
        let swept = Space::new(
            prefixes
                .iter()
                .filter(|p| matches!(p, IpNet::V4(_)) || p.prefix_len() >= 120),
        );
        for (block, addrs) in census {
            f.census_blocks += 1;
            f.census_addresses += addrs.len();
            if matches!(block, IpNet::V6(_)) {
                f.ipv6_blocks_tracked += 1;
            }
            f.targets += addrs.iter().filter(|a| !swept.contains(**a)).count() as u128;
        }
        if let Some(m) = pfx2as {
            let routing = Routing::new(prefixes, Some(m));
            let routed = routing.routed_prefixes();
            let ases: BTreeSet<u32> = routed.iter().flat_map(|p| p.asns.iter().copied()).collect();
            f.routes = Some(routed.len());
            f.origin_ases = Some(ases.len());
            f.unrouted_ipv4_blocks = Some(routing.unrouted_v4_blocks());
        }
        f
    }

    /// Percentage of `max_targets` the campaign needs per agent.
    pub fn share_of(&self, max_targets: u64) -> f64 {
        self.targets as f64 * 100.0 / (max_targets.max(1) as f64)
    }

    /// One line for the operator.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} prefixes: {} IPv4 /24s, {} IPv6 /48s tracked ({} allocated), {} census addresses in {} blocks, {} addresses targeted per agent",
            self.prefixes,
            self.ipv4_blocks,
            self.ipv6_blocks_tracked,
            self.ipv6_blocks_allocated,
            self.census_addresses,
            self.census_blocks,
            self.targets
        );
        if let (Some(r), Some(a)) = (self.routes, self.origin_ases) {
            s.push_str(&format!(
                "; {r} routed prefixes of the pfx2as file overlap it, from {a} origin ASes, {} IPv4 /24s unrouted",
                self.unrouted_ipv4_blocks.unwrap_or(0)
            ));
        }
        s
    }

    /// The warning when the campaign needs more than `share` percent of an
    /// agent's `max_targets`.
    pub fn over_share(&self, max_targets: u64, share: f64) -> Option<String> {
        let pct = self.share_of(max_targets);
        (pct > share).then(|| {
            let watched = (100.0 / pct * 100.0).min(100.0);
            format!(
                "the campaign targets {} addresses per agent, {pct:.0} % of max_targets {max_targets} (warning above {share} %){}",
                self.targets,
                if pct > 100.0 {
                    format!("; agents with that limit watch about {watched:.1} % of it")
                } else {
                    String::new()
                }
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlapping_prefixes_and_sub_24s_count_each_block_once() {
        let s = Space::new(&nets(&[
            "175.45.176.0/22",
            "175.45.177.0/24",
            // Three /26 allocations in one /24, and one in the next.
            "198.51.100.0/26",
            "198.51.100.64/26",
            "198.51.100.192/26",
            "198.51.101.0/26",
            "2400:8b00::/32",
        ]));
        assert_eq!(s.v4_blocks(), 4 + 2);
        assert_eq!(s.v6_blocks(), 65_536);
        assert_eq!(s.v4_addresses(), 1024 + 4 * 64);
        assert!(s.contains(ip("198.51.100.70")));
        assert!(!s.contains(ip("198.51.100.130")));
        assert!(s.contains(ip("2400:8b00:ffff::1")));
        assert!(!s.contains(ip("2400:8b01::1")));
        assert!(!s.contains(ip("175.45.180.0")));
        assert!(s.overlaps(&nets(&["175.45.0.0/16"])[0]));
        assert!(!s.overlaps(&nets(&["175.45.180.0/22"])[0]));
    }

    #[test]
    fn figures_count_tracked_v6_blocks_and_targets() {
        let prefixes = nets(&["175.45.176.0/22", "2400:8b00::/32", "2001:db8::/120"]);
        let block = nets(&["2400:8b00:1::/48"])[0];
        let addrs = [ip("2400:8b00:1::1"), ip("2400:8b00:1::2")];
        let f = Figures::new(&prefixes, [(&block, &addrs[..])], None);
        assert_eq!(f.ipv4_blocks, 4);
        assert_eq!(f.ipv6_blocks_allocated, 65_536 + 1);
        assert_eq!(f.ipv6_blocks_tracked, 1);
        assert_eq!(f.targets, 1024 + 256 + 2);
        assert!(f.over_share(4096, 100.0).is_none());
        let w = f.over_share(1000, 100.0).unwrap();
        assert!(w.contains("128 % of max_targets 1000"), "{w}");
        assert!(w.contains("watch about 78.0 % of it"), "{w}");
        assert!(f.over_share(2000, 50.0).is_some());
    }

    #[test]
    fn figures_count_routes_and_origins_overlapping_the_space() {
        let (m, _) = Pfx2As::parse(
            "175.45.176.0\t24\t131279\n175.45.177.0\t24\t131279\n175.45.178.0\t24\t64500_64501\n\
             8.0.0.0\t8\t3356\n2400:8b00::\t32\t131279\n",
            "p",
        )
        .unwrap();
        let f = Figures::new(
            &nets(&["175.45.176.0/22", "2400:8b00::/32"]),
            std::iter::empty(),
            Some(&m),
        );
        assert_eq!((f.routes, f.origin_ases), (Some(4), Some(3)));
        // 175.45.179.0/24 has no route; 8.0.0.0/8 holds no block.
        assert_eq!(f.unrouted_ipv4_blocks, Some(1));
        assert!(f
            .text()
            .ends_with("from 3 origin ASes, 1 IPv4 /24s unrouted"));
    }
}
