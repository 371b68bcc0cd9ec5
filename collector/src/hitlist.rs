//! Hitlists: files of known-responsive addresses for `campaign add --hitlist`.
//!
//! A hitlist is an address list, read by the shared parser
//! (`darkwatch_schema::inputs::addrlist`): one IPv4 or IPv6 address per
//! line, `#` starts a comment, blank lines and a leading byte-order mark are
//! ignored. A line that cannot be read is reported as `file:line: why` and
//! skipped; the rest of the file is used, and the file is refused only when
//! nothing in it is usable. Entries wider than one address (`/32`, `/128`)
//! are skipped with a reason: a hitlist names hosts that answer. Pure:
//! callers read the file.
//!
//! [`seed`] files the addresses into the census, per /24 or /48 block. An
//! address outside the campaign's space is skipped and counted, never
//! added: a hitlist is a list of hosts, not a say on what the campaign
//! watches (203.0.113.7 in a KP list must not join the KP campaign). Only a
//! campaign made from hitlists alone takes its space from them, block by
//! block. Special-purpose addresses (RFC 6890: private, documentation, ...)
//! are skipped as such unless the campaign's own prefixes hold them or the
//! operator allowed them. Lookups go through sorted ranges
//! ([`crate::space::Space`]), so millions of addresses against a country's
//! hundred thousand prefixes take seconds.

use std::fmt;
use std::net::IpAddr;

use darkwatch_schema::inputs::{addrlist, special, InputError};
use darkwatch_schema::{block_of, CensusBlock};
use ipnet::IpNet;

use crate::census::max_addrs;
use crate::space::Space;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HitlistError {
    #[error("{file}: no usable address ({skipped} lines skipped{first})")]
    Empty {
        file: String,
        skipped: usize,
        /// `; first: file:line: why`, or nothing.
        first: String,
    },
    /// The list could not be read at all (the parser's own message).
    #[error("{0}")]
    Unreadable(String),
}

fn empty<E: fmt::Display>(source: &str, skipped: &[E]) -> HitlistError {
    HitlistError::Empty {
        file: source.to_string(),
        skipped: skipped.len(),
        first: skipped
            .first()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default(),
    }
}

/// A hitlist's addresses and the lines (or entries) it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hitlist {
    pub addrs: Vec<IpAddr>,
    /// One message per skipped line or entry, `file:line: why` where the
    /// line is known.
    pub skipped: Vec<String>,
}

/// Reads a hitlist named `source` (for messages). Entries that are
/// prefixes rather than addresses are skipped: a hitlist names hosts that
/// answer, whole prefixes go to `--prefix`.
pub fn read(text: &str, source: &str) -> Result<Hitlist, HitlistError> {
    let parsed = match addrlist::parse(text, source) {
        Ok(p) => p,
        Err(InputError::NothingUsable { skipped, .. }) => return Err(empty(source, &skipped)),
        Err(e) => return Err(HitlistError::Unreadable(e.to_string())),
    };
    let mut skipped: Vec<String> = parsed.skipped.iter().map(ToString::to_string).collect();
    let mut addrs = Vec::with_capacity(parsed.items.len());
    for n in parsed.items {
        if n.prefix_len() == n.max_prefix_len() {
            addrs.push(n.addr());
        } else {
            skipped.push(format!(
                "{source}: {n} is a prefix, not an address (use --prefix)"
            ));
        }
    }
    if addrs.is_empty() {
        return Err(empty(source, &skipped));
    }
    Ok(Hitlist { addrs, skipped })
}

/// Hitlist addresses filed for a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// Census blocks, bounded, in address order.
    pub blocks: Vec<CensusBlock>,
    /// Blocks that join the campaign's prefixes: only for a campaign made
    /// from hitlists alone.
    pub new_prefixes: Vec<IpNet>,
    /// Distinct addresses kept.
    pub addresses: usize,
    /// Addresses beyond the per-block bound.
    pub over_bound: usize,
    /// Addresses outside the campaign's space, skipped.
    pub outside: usize,
    /// Special-purpose addresses outside the campaign's space, skipped.
    pub reserved: usize,
}

/// Files `addrs` into census blocks for a campaign of `prefixes` (empty: a
/// campaign of hitlists alone, see the module docs). `allow_special`
/// accepts special-purpose addresses as any other.
pub fn seed(mut addrs: Vec<IpAddr>, prefixes: &[IpNet], allow_special: bool) -> Seed {
    let space = Space::new(prefixes);
    let special_space = Space::new(special::blocks().iter().map(|b| &b.net));
    let hitlist_only = space.is_empty();
    addrs.sort_unstable();
    addrs.dedup();
    let mut out = Seed::default();
    let mut current: Option<(IpNet, Vec<IpAddr>)> = None;
    let flush = |cur: Option<(IpNet, Vec<IpAddr>)>, out: &mut Seed| {
        if let Some((block, mut v)) = cur {
            let max = max_addrs(&block);
            out.over_bound += v.len().saturating_sub(max);
            v.truncate(max);
            out.addresses += v.len();
            if hitlist_only {
                out.new_prefixes.push(block);
            }
            out.blocks.push(CensusBlock { block, addrs: v });
        }
    };
    for a in addrs {
        let inside = space.contains(a);
        if !inside && !allow_special && special_space.contains(a) {
            out.reserved += 1;
            continue;
        }
        if !inside && !hitlist_only {
            out.outside += 1;
            continue;
        }
        // Sorted addresses arrive block by block.
        let block = block_of(a);
        match &mut current {
            Some((b, v)) if *b == block => v.push(a),
            _ => {
                let done = current.replace((block, vec![a]));
                flush(done, &mut out);
            }
        }
    }
    flush(current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_outside_the_campaign_are_skipped_and_counted_never_added() {
        let addrs = vec![
            ip("175.45.176.9"),
            ip("175.45.177.1"),
            ip("175.45.176.9"),
            // Off-campaign: routable, and documentation space.
            ip("8.8.8.8"),
            ip("203.0.113.7"),
            ip("2001:db8:1::1"),
            ip("10.1.2.3"),
            ip("2400:8b00:1::1"),
        ];
        let s = seed(
            addrs,
            &[net("175.45.176.0/22"), net("2400:8b00::/32")],
            false,
        );
        assert!(s.new_prefixes.is_empty(), "{:?}", s.new_prefixes);
        assert_eq!(s.addresses, 3);
        assert_eq!((s.outside, s.reserved), (1, 3));
        assert_eq!(
            s.blocks.iter().map(|b| b.block).collect::<Vec<_>>(),
            [
                net("175.45.176.0/24"),
                net("175.45.177.0/24"),
                net("2400:8b00:1::/48")
            ]
        );
        // Allowed, special-purpose addresses off the campaign are just outside.
        let s = seed(vec![ip("203.0.113.7")], &[net("175.45.176.0/22")], true);
        assert_eq!((s.outside, s.reserved, s.addresses), (1, 0, 0));
    }

    #[test]
    fn a_campaign_of_hitlists_alone_takes_their_blocks() {
        let addrs = vec![
            ip("2001:db8:1::1"),
            ip("2001:db8:1:2::1"),
            ip("175.45.176.1"),
            ip("175.45.179.7"),
            ip("10.0.0.1"),
        ];
        let s = seed(addrs.clone(), &[], false);
        assert_eq!(
            s.new_prefixes,
            [net("175.45.176.0/24"), net("175.45.179.0/24")]
        );
        assert_eq!(s.reserved, 3);
        let s = seed(addrs, &[], true);
        assert_eq!(s.new_prefixes.len(), 4);
        assert_eq!(s.blocks[3].addrs.len(), 2);
        assert_eq!((s.addresses, s.outside, s.reserved), (5, 0, 0));
    }

    #[test]
    fn special_purpose_space_the_campaign_holds_is_kept() {
        let s = seed(
            vec![ip("198.18.3.1"), ip("198.19.0.1")],
            &[net("198.18.0.0/16")],
            false,
        );
        assert_eq!((s.addresses, s.reserved), (1, 1));
    }

    #[test]
    fn each_block_keeps_its_lowest_addresses_up_to_the_bound() {
        let addrs: Vec<IpAddr> = (0..1100u32)
            .map(|i| {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    0x2400_8b00_u128 << 96 | u128::from(i),
                ))
            })
            .rev()
            .collect();
        let s = seed(addrs, &[net("2400:8b00::/32")], false);
        assert_eq!(s.blocks.len(), 1);
        assert_eq!(s.blocks[0].addrs.len(), crate::census::MAX_ADDRS_V6);
        assert_eq!(s.over_bound, 1100 - crate::census::MAX_ADDRS_V6);
        assert_eq!(s.blocks[0].addrs[0], ip("2400:8b00::"));
    }

    #[test]
    fn bad_lines_are_reported_by_file_and_line_and_the_rest_is_used() {
        let text = "\u{feff}# KP hitlist\r\n\
                    2001:db8:1::1\n\
                    \n\
                    198.18.3.1   # a router\n\
                    2001:db8:1::zz\n\
                    198.18.3.2 198.18.3.3\n\
                    198.18.0.0/16\n\
                    198.18.4.4/32\n";
        let h = read(text, "kp.txt").unwrap();
        assert_eq!(
            h.addrs,
            ["2001:db8:1::1", "198.18.3.1", "198.18.4.4"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            h.skipped,
            [
                "kp.txt:5: not an address or CIDR prefix: \"2001:db8:1::zz\"",
                "kp.txt:6: expected one entry per line: \"198.18.3.2 198.18.3.3\"",
                "kp.txt: 198.18.0.0/16 is a prefix, not an address (use --prefix)",
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_does_not_spoil_the_first_address() {
        let h = read("\u{feff}198.18.3.1\n2001:db8::1/128\n", "bom.txt").unwrap();
        assert_eq!(
            h.addrs,
            ["198.18.3.1", "2001:db8::1"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert!(h.skipped.is_empty(), "{:?}", h.skipped);
    }

    #[test]
    fn a_file_with_nothing_usable_is_refused() {
        assert_eq!(
            read("# only comments\n\n", "a.txt")
                .unwrap_err()
                .to_string(),
            "a.txt: no usable address (0 lines skipped)"
        );
        assert_eq!(
            read("nonsense\n198.18.0.0/16\n", "b.txt")
                .unwrap_err()
                .to_string(),
            "b.txt: no usable address (2 lines skipped; first: b.txt:1: not an address or CIDR prefix: \"nonsense\")"
        );
        // Not one line parses: refused the same way, naming the first line.
        assert_eq!(
            read("nonsense\n198.18.0.300\n", "c.txt")
                .unwrap_err()
                .to_string(),
            "c.txt: no usable address (2 lines skipped; first: c.txt:1: not an address or CIDR prefix: \"nonsense\")"
        );
    }
}
