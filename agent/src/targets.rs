//! What to probe: target addresses and prefixes from the command line, from
//! plain target files, or from an RIR delegated-stats file filtered by country
//! (both parsed by `darkwatch_schema::inputs`), minus exclusions (IANA special-purpose space by default, as ZMap does, plus
//! an optional exclusion file), with `--allow` carving reserved space back in.
//!
//! The result is a [`TargetSet`] of disjoint ranges that lists its IPv4 /24 and
//! IPv6 /48 blocks and the addresses to sweep in each. Internally every set is
//! a sorted list of disjoint inclusive integer ranges per address family, which
//! makes union, difference and block enumeration simple and exact.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use darkwatch_schema::inputs::{addrlist, InputError, LineError};
use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};

/// Default cap on the number of addresses in a target set (a /8).
pub const DEFAULT_MAX_TARGETS: u64 = 16_777_216;

/// Longest IPv6 prefix that can still be swept address by address.
pub const MIN_IPV6_SWEEP_PREFIX: u8 = 120;

/// IANA special-purpose IPv4 ranges excluded by default (ZMap's list).
pub const RESERVED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IANA special-purpose IPv6 ranges excluded by default.
pub const RESERVED_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Why a target list could not be built. Messages are one line and name the
/// file and line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("bad target {value:?}: {why}")]
    BadArgument { value: String, why: String },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(
        "{0}; an exclusion list must parse completely, since a skipped entry would widen probing"
    )]
    Exclusion(LineError),
    #[error("IPv6 prefix {0} is larger than /{MIN_IPV6_SWEEP_PREFIX} and cannot be swept; give individual addresses or /{MIN_IPV6_SWEEP_PREFIX} or longer prefixes")]
    Ipv6TooLarge(IpNet),
    #[error(
        "{count} target addresses exceed the limit of {max} (raise max_targets / --max-targets)"
    )]
    TooMany { count: u128, max: u64 },
    #[error("no targets given")]
    NoTargets,
    #[error("no targets left: every target is excluded (special-purpose ranges are excluded by default; --allow CIDR carves them back in)")]
    AllExcluded,
}

impl TargetError {
    /// True if the error is about the command line itself rather than data.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TargetError::BadArgument { .. } | TargetError::NoTargets
        )
    }
}

/// Parses one target: an address (`198.18.0.1`, `2001:db8::1`) or a CIDR
/// (`198.18.0.0/24`), by the rule of address-list files
/// ([`addrlist::parse_entry`]): host bits in a CIDR are cleared.
pub fn parse_target(s: &str) -> Result<IpNet, String> {
    addrlist::parse_entry(s)
}

/// Parses a command-line target.
pub fn parse_target_arg(s: &str) -> Result<IpNet, TargetError> {
    parse_target(s).map_err(|why| TargetError::BadArgument {
        value: s.to_string(),
        why,
    })
}

/// Reads an exclusion list (an address list, see [`addrlist`]). Unlike
/// target files, it fails closed: a line that cannot be parsed refuses the
/// whole list, because skipping it would probe space the operator meant to
/// exclude.
pub fn read_exclusions(path: &Path) -> Result<Vec<IpNet>, TargetError> {
    let list = addrlist::read(path)?;
    match list.skipped.into_iter().next() {
        Some(e) => Err(TargetError::Exclusion(e)),
        None => Ok(list.items),
    }
}

/// What a [`TargetSet`] is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    pub include: Vec<IpNet>,
    /// Excluded even when `allow` covers them.
    pub exclude: Vec<IpNet>,
    /// Carved back out of the default special-purpose exclusions.
    pub allow: Vec<IpNet>,
    /// Exclude IANA special-purpose space ([`RESERVED_V4`], [`RESERVED_V6`]).
    pub exclude_reserved: bool,
    pub max_targets: u64,
}

impl Default for TargetSpec {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            allow: Vec::new(),
            exclude_reserved: true,
            max_targets: DEFAULT_MAX_TARGETS,
        }
    }
}

/// Inclusive integer range of addresses of one family.
type Range = (u128, u128);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

fn range_of(net: &IpNet) -> (Family, Range) {
    match net {
        IpNet::V4(n) => (
            Family::V4,
            (
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            ),
        ),
        IpNet::V6(n) => (
            Family::V6,
            (u128::from(n.network()), u128::from(n.broadcast())),
        ),
    }
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalize(mut v: Vec<Range>) -> Vec<Range> {
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a \ b` for normalized range lists.
fn subtract(a: &[Range], b: &[Range]) -> Vec<Range> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(s, e) in a {
        let mut cur = s;
        while j < b.len() && b[j].1 < cur {
            j += 1;
        }
        let mut k = j;
        let mut alive = true;
        while k < b.len() && b[k].0 <= e {
            if b[k].0 > cur {
                out.push((cur, b[k].0 - 1));
            }
            if b[k].1 >= e {
                alive = false;
                break;
            }
            cur = b[k].1 + 1;
            k += 1;
        }
        if alive {
            out.push((cur, e));
        }
    }
    out
}

fn split(nets: &[IpNet]) -> (Vec<Range>, Vec<Range>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for n in nets {
        match range_of(n) {
            (Family::V4, r) => v4.push(r),
            (Family::V6, r) => v6.push(r),
        }
    }
    (normalize(v4), normalize(v6))
}

fn reserved() -> Vec<IpNet> {
    RESERVED_V4
        .iter()
        .chain(RESERVED_V6)
        .map(|s| s.parse().expect("reserved ranges are valid CIDRs"))
        .collect()
}

fn size(ranges: &[Range]) -> u128 {
    ranges.iter().map(|(s, e)| e - s + 1).sum()
}

/// A set of target addresses: disjoint, sorted ranges per address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSet {
    v4: Vec<Range>,
    v6: Vec<Range>,
}

impl TargetSet {
    /// Builds the set `include \ ((reserved \ allow) ∪ exclude)` and checks it
    /// against the IPv6 sweep limit and `max_targets`.
    pub fn build(spec: &TargetSpec) -> Result<Self, TargetError> {
        if spec.include.is_empty() {
            return Err(TargetError::NoTargets);
        }
        let (inc4, inc6) = split(&spec.include);
        let (ex4, ex6) = split(&spec.exclude);
        let (al4, al6) = split(&spec.allow);
        let (res4, res6) = if spec.exclude_reserved {
            split(&reserved())
        } else {
            (vec![], vec![])
        };
        let drop4 = normalize([subtract(&res4, &al4), ex4].concat());
        let drop6 = normalize([subtract(&res6, &al6), ex6].concat());
        // Refuse a wide IPv6 prefix only if some of it would actually be swept.
        for net in &spec.include {
            if let IpNet::V6(n) = net {
                if n.prefix_len() < MIN_IPV6_SWEEP_PREFIX
                    && !subtract(&[range_of(net).1], &drop6).is_empty()
                {
                    return Err(TargetError::Ipv6TooLarge(*net));
                }
            }
        }
        let set = TargetSet {
            v4: subtract(&inc4, &drop4),
            v6: subtract(&inc6, &drop6),
        };
        let count = set.address_count();
        if count == 0 {
            return Err(TargetError::AllExcluded);
        }
        if count > spec.max_targets as u128 {
            return Err(TargetError::TooMany {
                count,
                max: spec.max_targets,
            });
        }
        Ok(set)
    }

    /// Number of target addresses.
    pub fn address_count(&self) -> u128 {
        size(&self.v4) + size(&self.v6)
    }

    /// The set as a minimal list of CIDR prefixes.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let v4 = self.v4.iter().flat_map(|&(s, e)| {
            Ipv4Subnets::new(Ipv4Addr::from(s as u32), Ipv4Addr::from(e as u32), 0).map(IpNet::V4)
        });
        let v6 = self.v6.iter().flat_map(|&(s, e)| {
            Ipv6Subnets::new(Ipv6Addr::from(s), Ipv6Addr::from(e), 0).map(IpNet::V6)
        });
        v4.chain(v6).collect()
    }

    /// True if `addr` is a target.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (ranges, x) = match addr {
            IpAddr::V4(a) => (&self.v4, u32::from(a) as u128),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let i = ranges.partition_point(|r| r.1 < x);
        ranges.get(i).is_some_and(|r| r.0 <= x)
    }

    /// The blocks (IPv4 /24, IPv6 /48, as `darkwatch_schema::block_of`) that
    /// hold at least one target, in order.
    pub fn blocks(&self) -> Vec<IpNet> {
        let mut out = BTreeSet::new();
        for &(s, e) in &self.v4 {
            for b in (s >> 8)..=(e >> 8) {
                let net = Ipv4Net::new(Ipv4Addr::from((b << 8) as u32), 24)
                    .expect("24 is a valid length");
                out.insert(IpNet::V4(net));
            }
        }
        for &(s, e) in &self.v6 {
            let shift = 128 - u32::from(darkwatch_schema::BLOCK_LEN_V6);
            for b in (s >> shift)..=(e >> shift) {
                let net = Ipv6Net::new(Ipv6Addr::from(b << shift), darkwatch_schema::BLOCK_LEN_V6)
                    .expect("a valid block length");
                out.insert(IpNet::V6(net));
            }
        }
        out.into_iter().collect()
    }

    /// The target addresses inside `block` (any prefix, usually one of [`Self::blocks`]).
    pub fn addresses_in(&self, block: &IpNet) -> Vec<IpAddr> {
        let (fam, (bs, be)) = range_of(block);
        let ranges = match fam {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        let mut out = Vec::new();
        let first = ranges.partition_point(|r| r.1 < bs);
        for &(s, e) in &ranges[first..] {
            if s > be {
                break;
            }
            for x in s.max(bs)..=e.min(be) {
                out.push(match fam {
                    Family::V4 => IpAddr::V4(Ipv4Addr::from(x as u32)),
                    Family::V6 => IpAddr::V6(Ipv6Addr::from(x)),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| parse_target(s).unwrap()).collect()
    }

    fn build(include: &[&str], exclude: &[&str], allow: &[&str]) -> Result<TargetSet, TargetError> {
        TargetSet::build(&TargetSpec {
            include: nets(include),
            exclude: nets(exclude),
            allow: nets(allow),
            ..TargetSpec::default()
        })
    }

    #[test]
    fn exclusion_lists_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("exclude.txt");
        std::fs::write(&f, "# ours\n198.18.4.0/24\n198.18.5.0/33\n").unwrap();
        let err = read_exclusions(&f).unwrap_err();
        assert!(
            matches!(err, TargetError::Exclusion(ref e) if e.line == 3),
            "{err}"
        );
        assert!(err.to_string().contains(":3: "), "{err}");
        std::fs::write(&f, "# ours\n198.18.4.0/24\n").unwrap();
        assert_eq!(read_exclusions(&f).unwrap(), nets(&["198.18.4.0/24"]));
        std::fs::write(&f, "# nothing excluded\n").unwrap();
        assert!(read_exclusions(&f).unwrap().is_empty());
        assert!(matches!(
            read_exclusions(&dir.path().join("missing.txt")),
            Err(TargetError::Input(InputError::Io { .. }))
        ));
    }

    #[test]
    fn single_targets_clear_host_bits() {
        // Host bits are cleared like ZMap does.
        assert_eq!(
            parse_target("198.18.0.77/24").unwrap().to_string(),
            "198.18.0.0/24"
        );
        assert!(parse_target_arg("198.18.0.300").is_err());
    }

    #[test]
    fn reserved_space_is_excluded_unless_allowed() {
        assert!(matches!(
            build(&["198.18.0.0/24"], &[], &[]),
            Err(TargetError::AllExcluded)
        ));
        let set = build(&["198.18.0.0/24"], &[], &["198.18.0.0/15"]).unwrap();
        assert_eq!(set.address_count(), 256);
        // 10/8 is carved out of a /7 that spans it.
        let set = build(&["10.0.0.0/7"], &[], &[]).unwrap();
        assert_eq!(set.prefixes(), nets(&["11.0.0.0/8"]));
        let set = build(&["9.255.255.0/24", "10.0.0.0/24", "11.0.0.0/24"], &[], &[]).unwrap();
        assert_eq!(set.prefixes(), nets(&["9.255.255.0/24", "11.0.0.0/24"]));
        // IPv6 documentation space likewise.
        assert!(matches!(
            build(&["2001:db8::1"], &[], &[]),
            Err(TargetError::AllExcluded)
        ));
        assert!(build(&["2001:db8::1"], &[], &["2001:db8::/32"]).is_ok());
    }

    #[test]
    fn exclusions_win_over_allow_and_split_prefixes() {
        let set = build(
            &["198.18.0.0/22"],
            &["198.18.1.0/24", "198.18.2.128/25"],
            &["198.18.0.0/15"],
        )
        .unwrap();
        assert_eq!(
            set.prefixes(),
            nets(&["198.18.0.0/24", "198.18.2.0/25", "198.18.3.0/24"])
        );
        assert_eq!(set.address_count(), 256 + 128 + 256);
        assert_eq!(
            set.blocks(),
            nets(&["198.18.0.0/24", "198.18.2.0/24", "198.18.3.0/24"])
        );
        assert_eq!(
            set.addresses_in(&"198.18.2.0/24".parse().unwrap()).len(),
            128
        );
        assert!(set.contains("198.18.3.9".parse().unwrap()));
        assert!(!set.contains("198.18.1.9".parse().unwrap()));
        assert!(!set.contains("198.18.2.200".parse().unwrap()));
    }

    #[test]
    fn small_prefixes_map_to_their_block() {
        let set = build(
            &["198.18.5.7", "198.18.5.9", "198.18.6.0/28"],
            &[],
            &["198.18.0.0/15"],
        )
        .unwrap();
        assert_eq!(set.blocks(), nets(&["198.18.5.0/24", "198.18.6.0/24"]));
        let addrs = set.addresses_in(&"198.18.5.0/24".parse().unwrap());
        assert_eq!(
            addrs,
            vec![
                "198.18.5.7".parse::<IpAddr>().unwrap(),
                "198.18.5.9".parse().unwrap()
            ]
        );
    }

    #[test]
    fn ipv6_sweeps_are_limited_to_slash_120() {
        let err = build(&["2400:1::/64"], &[], &[]).unwrap_err();
        assert!(matches!(err, TargetError::Ipv6TooLarge(_)));
        assert!(err.to_string().contains("2400:1::/64"));
        let set = build(&["2400:1::/120", "2400:1::1:5"], &[], &[]).unwrap();
        assert_eq!(set.address_count(), 257);
        assert_eq!(set.blocks(), nets(&["2400:1::/48"]));
        // A wide prefix that is entirely reserved is just excluded, not refused.
        assert!(matches!(
            build(&["fe80::/64"], &[], &[]),
            Err(TargetError::AllExcluded)
        ));
    }

    #[test]
    fn max_targets_caps_the_set() {
        let spec = TargetSpec {
            include: nets(&["11.0.0.0/8", "12.0.0.0/31"]),
            ..TargetSpec::default()
        };
        let err = TargetSet::build(&spec).unwrap_err();
        assert!(
            matches!(
                err,
                TargetError::TooMany {
                    count: 16_777_218,
                    ..
                }
            ),
            "{err}"
        );
        let spec = TargetSpec {
            include: nets(&["11.0.0.0/8"]),
            ..TargetSpec::default()
        };
        assert_eq!(TargetSet::build(&spec).unwrap().blocks().len(), 65_536);
        assert!(matches!(
            TargetSet::build(&TargetSpec::default()),
            Err(TargetError::NoTargets)
        ));
    }

    #[test]
    fn range_subtraction_handles_edges() {
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
        assert_eq!(subtract(&[(0, 10)], &[(5, 5)]), vec![(0, 4), (6, 10)]);
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(8, 22)]),
            vec![(0, 7), (23, 30)]
        );
        assert_eq!(subtract(&[(5, 10)], &[(0, 1), (12, 13)]), vec![(5, 10)]);
        assert_eq!(
            normalize(vec![(5, 6), (0, 4), (8, 9)]),
            vec![(0, 6), (8, 9)]
        );
        assert_eq!(
            normalize(vec![(0, u128::MAX), (3, 4)]),
            vec![(0, u128::MAX)]
        );
    }
}
