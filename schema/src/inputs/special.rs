//! Special-purpose address space (RFC 6890): the blocks of IANA's IPv4 and
//! IPv6 Special-Purpose Address Registries that are not globally reachable,
//! plus multicast. No registry allocates them to a country and no host in
//! them answers from the Internet, so a campaign that holds them was given
//! them by mistake: a count typo in a delegated file (`10.0.0.0|1073741824`
//! spans 10.0.0.0 to 73.255.255.255, private 10/8 included) or a private
//! address in a hitlist.
//!
//! The registry's globally reachable entries (AS112, AMT, 64:ff9b::/96) are
//! routed like any space and left out. Labs run in benchmarking and
//! documentation space, which is listed: callers decide whether to accept it
//! (`campaign add --allow-special-purpose`).

use std::sync::LazyLock;

use ipnet::IpNet;

/// One special-purpose block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub net: IpNet,
    /// Name in the IANA registry.
    pub name: &'static str,
    /// The RFC that set it aside.
    pub rfc: &'static str,
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.net, self.name, self.rfc)
    }
}

/// (prefix, name, RFC), from the IANA registries (entries not globally
/// reachable) and the multicast blocks.
const TABLE: &[(&str, &str, &str)] = &[
    ("0.0.0.0/8", "this network", "RFC 791"),
    ("10.0.0.0/8", "private-use", "RFC 1918"),
    ("100.64.0.0/10", "shared address space", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link local", "RFC 3927"),
    ("172.16.0.0/12", "private-use", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    (
        "192.88.99.0/24",
        "deprecated 6to4 relay anycast",
        "RFC 7526",
    ),
    ("192.168.0.0/16", "private-use", "RFC 1918"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    ("240.0.0.0/4", "reserved", "RFC 1112"),
    ("::/128", "unspecified address", "RFC 4291"),
    ("::1/128", "loopback address", "RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291"),
    (
        "64:ff9b:1::/48",
        "IPv4-IPv6 translation, local use",
        "RFC 8215",
    ),
    ("100::/64", "discard-only address block", "RFC 6666"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("3fff::/20", "documentation", "RFC 9637"),
    ("5f00::/16", "segment routing SIDs", "RFC 9602"),
    ("fc00::/7", "unique-local", "RFC 4193"),
    ("fe80::/10", "link-local unicast", "RFC 4291"),
    ("ff00::/8", "multicast", "RFC 4291"),
];

static BLOCKS: LazyLock<Vec<Block>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|&(net, name, rfc)| Block {
            net: net.parse().expect("special-purpose table entry"),
            name,
            rfc,
        })
        .collect()
});

/// Every special-purpose block, IPv4 first.
pub fn blocks() -> &'static [Block] {
    &BLOCKS
}

/// The first special-purpose block that `net` overlaps (holds or lies in).
pub fn overlapping(net: &IpNet) -> Option<&'static Block> {
    BLOCKS
        .iter()
        .find(|b| b.net.contains(net) || net.contains(&b.net))
}

/// The special-purpose block holding `addr`.
pub fn holding(addr: std::net::IpAddr) -> Option<&'static Block> {
    BLOCKS.iter().find(|b| b.net.contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn space_inside_or_around_a_block_is_found() {
        // The count typo: 10.0.0.0 + 2^30 addresses splits into 10.0.0.0/7 first.
        assert_eq!(
            overlapping(&net("10.0.0.0/7")).unwrap().to_string(),
            "10.0.0.0/8 (private-use, RFC 1918)"
        );
        assert_eq!(overlapping(&net("192.168.4.0/24")).unwrap().rfc, "RFC 1918");
        assert_eq!(
            overlapping(&net("2001:db8:5::/48")).unwrap().name,
            "documentation"
        );
        assert!(overlapping(&net("175.45.176.0/22")).is_none());
        assert!(overlapping(&net("2400:8b00::/32")).is_none());
        // Globally reachable registry entries are ordinary space.
        assert!(overlapping(&net("192.31.196.0/24")).is_none());
        assert!(holding("64:ff9b::1".parse().unwrap()).is_none());
        assert_eq!(
            holding("127.0.0.1".parse().unwrap()).unwrap().name,
            "loopback"
        );
        assert_eq!(blocks().len(), TABLE.len());
    }
}
