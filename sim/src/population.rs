//! Who is on the simulated Internet: countries, origin ASes, routed
//! prefixes and the /24 (IPv4) and /48 (IPv6) blocks inside them, with each
//! block's hosts. Sizes follow what is known of the real one (see
//! `/work/shared/notes/real-world.md` and the crate docs):
//!
//! - countries: a few of 1–5 blocks (North Korea had four routed /24s in
//!   2014), most of hundreds to tens of thousands, a few of hundreds of
//!   thousands at a million blocks (a Zipf law over country rank, s = 1.1);
//! - routed prefixes from /16 to /24, most of them /24s (about half of the
//!   routed IPv4 table is /24s in RouteViews), each wholly inside one
//!   country;
//! - origin ASes per country with a skewed number of prefixes (Zipf,
//!   s = 1.2: a few large ISPs, a long tail of small networks);
//! - a share of IPv6 /48s (hitlist-sized: a few responsive addresses each),
//!   in /44 prefixes inside 2001:db8::/32 (the documentation range: no
//!   packet is ever sent, but no real address is named either).
//!
//! IPv4 blocks are numbered from 16.0.0.0 upwards; the simulator sends
//! nothing, so the numbers only need to be distinct and aligned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::hosts::{self, Hosts};
use crate::rng::{zipf_cumulative, Seq};

/// The size of the population to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopConfig {
    pub blocks: u32,
    pub countries: u32,
    /// Share of blocks that are IPv6 /48s (capped at 65,536 /48s: one /32).
    pub v6_share: f64,
}

impl PopConfig {
    /// About one country per 5,000 blocks, between 20 and 200 (the
    /// world has about 200 with routed space).
    pub fn for_blocks(blocks: u32) -> PopConfig {
        PopConfig {
            blocks,
            countries: (blocks / 5_000).clamp(20, 200),
            v6_share: 0.05,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Country {
    /// A two-letter code (synthetic).
    pub code: String,
    /// Hours east of UTC (the diurnal clock of its blocks).
    pub utc_offset_h: i32,
    /// Share of its IPv4 blocks that are diurnal.
    pub diurnal_share: f64,
    pub prefixes: Range<u32>,
    pub asns: Range<u32>,
    pub blocks: Range<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct As {
    pub asn: u32,
    pub country: u32,
    /// Indices into [`Population::prefixes`].
    pub prefixes: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prefix {
    pub net: IpNet,
    /// Index into [`Population::ases`].
    pub origin: u32,
    pub country: u32,
    pub blocks: Range<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub net: IpNet,
    pub prefix: u32,
    pub hosts: Hosts,
}

impl Block {
    /// The `i`th ever-responsive address (hosts `::1`, `.1` upwards).
    pub fn addr(&self, i: u32) -> IpAddr {
        match self.net {
            IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 1 + i)),
            IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1 + u128::from(i))),
        }
    }

    /// Which host `addr` is (the inverse of [`Block::addr`]).
    pub fn host_of(&self, addr: IpAddr) -> Option<u32> {
        let i = match (self.net, addr) {
            (IpNet::V4(n), IpAddr::V4(a)) => {
                u128::from(u32::from(a).checked_sub(u32::from(n.network()) + 1)?)
            }
            (IpNet::V6(n), IpAddr::V6(a)) => {
                u128::from(a).checked_sub(u128::from(n.network()) + 1)?
            }
            _ => return None,
        };
        u32::try_from(i).ok().filter(|&i| i < self.hosts.responsive)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub countries: Vec<Country>,
    pub ases: Vec<As>,
    pub prefixes: Vec<Prefix>,
    pub blocks: Vec<Block>,
}

/// Prefix lengths of routed IPv4 space, /16../24, and how often each is
/// drawn (about half /24s, then a tail of shorter ones).
const V4_LENGTHS: [(u8, f64); 9] = [
    (24, 0.50),
    (23, 0.12),
    (22, 0.14),
    (21, 0.07),
    (20, 0.06),
    (19, 0.04),
    (18, 0.03),
    (17, 0.02),
    (16, 0.02),
];

/// Country sizes in blocks: three tiny ones (1–5 blocks), the rest by Zipf.
fn country_sizes(cfg: &PopConfig, seq: &mut Seq) -> Vec<u32> {
    let n = cfg.countries.max(4) as usize;
    let tiny: Vec<u32> = (0..3).map(|_| seq.range(1, 6) as u32).collect();
    let rest = cfg.blocks.saturating_sub(tiny.iter().sum()) as f64;
    let zipf = zipf_cumulative(n - 3, 1.1);
    let total = zipf.last().copied().unwrap_or(1.0);
    let mut prev = 0.0;
    let mut sizes: Vec<u32> = zipf
        .iter()
        .map(|&c| {
            let w = c - prev;
            prev = c;
            ((w / total) * rest).floor().max(1.0) as u32
        })
        .collect();
    // Give the rounding's remainder to the largest.
    let have: u32 = sizes.iter().sum::<u32>() + tiny.iter().sum::<u32>();
    if let Some(first) = sizes.first_mut() {
        *first = (*first + cfg.blocks.saturating_sub(have)).max(1);
    }
    sizes.extend(tiny);
    sizes
}

fn code(i: usize) -> String {
    let l = |k: usize| (b'A' + (k % 26) as u8) as char;
    format!("{}{}", l(i / 26), l(i))
}

/// Builds the population of `cfg` from `seed`.
pub fn generate(cfg: &PopConfig, seed: u64) -> Population {
    let mut seq = Seq::new(seed);
    let sizes = country_sizes(cfg, &mut seq);
    let len_cum: Vec<f64> = V4_LENGTHS
        .iter()
        .scan(0.0, |a, &(_, w)| {
            *a += w;
            Some(*a)
        })
        .collect();
    let mut pop = Population {
        countries: vec![],
        ases: vec![],
        prefixes: vec![],
        blocks: vec![],
    };
    // Cursors in /24 units (IPv4) and /48 units (IPv6).
    let mut v4 = 16u32 << 16;
    let mut v6 = 0u32;
    for (ci, &size) in sizes.iter().enumerate() {
        let ci = ci as u32;
        let v6_blocks = if size >= 20 && v6 < 65_536 {
            ((size as f64 * cfg.v6_share).round() as u32).min(65_536 - v6)
        } else {
            0
        };
        let mut left4 = size - v6_blocks;
        let mut left6 = v6_blocks;
        let p0 = pop.prefixes.len() as u32;
        let b0 = pop.blocks.len() as u32;
        let diurnal_share = [0.0, 0.05, 0.1, 0.3][seq.range(0, 4) as usize];
        let utc_offset_h = seq.range(0, 23) as i32 - 10;
        let mut nets: Vec<(IpNet, u32)> = vec![];
        while left4 > 0 {
            let len = V4_LENGTHS[seq.pick(&len_cum)].0;
            // The largest power of two not above what is left.
            let fit = 31 - left4.leading_zeros();
            let len = len.max(24 - fit.min(8) as u8);
            let n = 1u32 << (24 - len);
            v4 = v4.next_multiple_of(n);
            let net = Ipv4Net::new(Ipv4Addr::from(v4 << 8), len).expect("length ≤ 24");
            nets.push((IpNet::V4(net), n));
            v4 += n;
            left4 -= n;
        }
        while left6 > 0 {
            // /44 prefixes hold 16 /48s; hitlists leave many of them sparse.
            let n = (seq.range(1, 17) as u32).min(left6);
            v6 = v6.next_multiple_of(16);
            let base = 0x2001_0db8u128 << 96 | u128::from(v6) << 80;
            let net = Ipv6Net::new(Ipv6Addr::from(base), 44).expect("length 44");
            nets.push((IpNet::V6(net), n));
            v6 += 16;
            left6 -= n;
        }
        // Origin ASes: about one per 8 prefixes, prefixes spread by Zipf.
        let n_as = (nets.len() / 8).max(1);
        let as0 = pop.ases.len() as u32;
        for k in 0..n_as {
            pop.ases.push(As {
                asn: 4_200_000_000 + as0 + k as u32,
                country: ci,
                prefixes: vec![],
            });
        }
        let as_cum = zipf_cumulative(n_as, 1.2);
        for (k, (net, n)) in nets.into_iter().enumerate() {
            let pi = pop.prefixes.len() as u32;
            // Every AS gets at least one prefix, then Zipf.
            let origin = as0 + if k < n_as { k } else { seq.pick(&as_cum) } as u32;
            pop.ases[origin as usize].prefixes.push(pi);
            let start = pop.blocks.len() as u32;
            for j in 0..n {
                let bnet = match net {
                    IpNet::V4(p) => IpNet::V4(
                        Ipv4Net::new(Ipv4Addr::from(u32::from(p.network()) + (j << 8)), 24)
                            .expect("/24"),
                    ),
                    IpNet::V6(p) => IpNet::V6(
                        Ipv6Net::new(
                            Ipv6Addr::from(u128::from(p.network()) + (u128::from(j) << 80)),
                            48,
                        )
                        .expect("/48"),
                    ),
                };
                let hosts = hosts::draw(&mut seq, bnet.addr().is_ipv6(), diurnal_share);
                pop.blocks.push(Block {
                    net: bnet,
                    prefix: pi,
                    hosts,
                });
            }
            pop.prefixes.push(Prefix {
                net,
                origin,
                country: ci,
                blocks: start..pop.blocks.len() as u32,
            });
        }
        pop.countries.push(Country {
            code: code(ci as usize),
            utc_offset_h,
            diurnal_share,
            prefixes: p0..pop.prefixes.len() as u32,
            asns: as0..pop.ases.len() as u32,
            blocks: b0..pop.blocks.len() as u32,
        });
    }
    pop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop() -> Population {
        generate(&PopConfig::for_blocks(50_000), 1)
    }

    #[test]
    fn same_seed_same_population() {
        assert_eq!(pop(), pop());
        assert_ne!(pop(), generate(&PopConfig::for_blocks(50_000), 2));
    }

    #[test]
    fn countries_of_very_different_sizes() {
        let p = pop();
        assert_eq!(p.blocks.len(), 50_000);
        let mut sizes: Vec<u32> = p.countries.iter().map(|c| c.blocks.len() as u32).collect();
        sizes.sort_unstable();
        assert!(sizes[0] <= 5, "a tiny country: {sizes:?}");
        assert!(*sizes.last().unwrap() >= 5_000, "a huge one: {sizes:?}");
        let mid = sizes[sizes.len() / 2];
        assert!((50..5_000).contains(&mid), "most in between: {mid}");
    }

    #[test]
    fn prefixes_from_16_to_24_and_v6_48s() {
        let p = pop();
        let v4: Vec<u8> = p
            .prefixes
            .iter()
            .filter(|x| x.net.addr().is_ipv4())
            .map(|x| x.net.prefix_len())
            .collect();
        assert!(v4.contains(&16) && v4.contains(&24));
        assert!(v4.iter().all(|l| (16..=24).contains(l)));
        let v6 = p.blocks.iter().filter(|b| b.net.prefix_len() == 48).count();
        assert!(v6 > 1_000, "{v6} /48s");
        for pr in &p.prefixes {
            for b in &p.blocks[pr.blocks.start as usize..pr.blocks.end as usize] {
                assert!(pr.net.contains(&b.net), "{} in {}", b.net, pr.net);
            }
        }
    }

    #[test]
    fn as_sizes_are_skewed() {
        let p = pop();
        let c = &p.countries[0];
        let mut n: Vec<usize> = p.ases[c.asns.start as usize..c.asns.end as usize]
            .iter()
            .map(|a| a.prefixes.len())
            .collect();
        n.sort_unstable();
        assert!(n.len() > 10);
        assert!(*n.last().unwrap() >= 10 * n[n.len() / 2], "{n:?}");
    }

    #[test]
    fn addresses_map_back_to_hosts() {
        let p = pop();
        for b in p.blocks.iter().step_by(997) {
            for i in 0..b.hosts.responsive {
                assert_eq!(b.host_of(b.addr(i)), Some(i));
                assert!(b.net.contains(&b.addr(i)));
            }
        }
    }
}
