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
use darkwatch_schema::{SkipReason, Skipped};
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSet {
    v4: Vec<Range>,
    v6: Vec<Range>,
}

/// Examples of skipped space kept per reason.
pub const MAX_SKIP_EXAMPLES: usize = 16;

fn to_cidrs(fam: Family, ranges: &[Range]) -> impl Iterator<Item = IpNet> + '_ {
    ranges
        .iter()
        .flat_map(move |&(s, e)| -> Box<dyn Iterator<Item = IpNet>> {
            match fam {
                Family::V4 => Box::new(
                    Ipv4Subnets::new(Ipv4Addr::from(s as u32), Ipv4Addr::from(e as u32), 0)
                        .map(IpNet::V4),
                ),
                Family::V6 => Box::new(
                    Ipv6Subnets::new(Ipv6Addr::from(s), Ipv6Addr::from(e), 0).map(IpNet::V6),
                ),
            }
        })
}

/// `a ∩ b` for normalized range lists.
fn intersect(a: &[Range], b: &[Range]) -> Vec<Range> {
    subtract(a, &subtract(a, b))
}

/// Keeps the first `budget` addresses of `ranges` (in order); returns the rest.
fn truncate(ranges: &mut Vec<Range>, budget: &mut u128) -> Vec<Range> {
    let mut rest = Vec::new();
    let mut kept = Vec::new();
    for &(s, e) in ranges.iter() {
        let n = e - s + 1;
        if n <= *budget {
            kept.push((s, e));
            *budget -= n;
        } else if *budget > 0 {
            kept.push((s, s + *budget - 1));
            rest.push((s + *budget, e));
            *budget = 0;
        } else {
            rest.push((s, e));
        }
    }
    *ranges = kept;
    rest
}

/// One [`Skipped`] entry from the skipped ranges of both families, or none.
fn skipped(reason: SkipReason, v4: &[Range], v6: &[Range]) -> Option<Skipped> {
    let n = size(v4).saturating_add(size(v6));
    (n > 0).then(|| Skipped {
        reason,
        addresses: u64::try_from(n).unwrap_or(u64::MAX),
        examples: to_cidrs(Family::V4, v4)
            .chain(to_cidrs(Family::V6, v6))
            .take(MAX_SKIP_EXAMPLES)
            .collect(),
    })
}

/// Ranges of both families.
#[derive(Debug, Clone, Default)]
struct Ranges {
    v4: Vec<Range>,
    v6: Vec<Range>,
}

impl Ranges {
    fn of(nets: &[IpNet]) -> Self {
        let (v4, v6) = split(nets);
        Ranges { v4, v6 }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let (ranges, x) = match addr {
            IpAddr::V4(a) => (&self.v4, u32::from(a) as u128),
            IpAddr::V6(a) => (&self.v6, u128::from(a)),
        };
        let i = ranges.partition_point(|r| r.1 < x);
        ranges.get(i).is_some_and(|r| r.0 <= x)
    }
}

/// Decides address by address what a [`TargetSpec`] admits, whatever the
/// sweep limits: inside `include`, not excluded, not reserved unless allowed.
#[derive(Debug, Clone)]
pub struct AddrFilter {
    include: Ranges,
    exclude: Ranges,
    reserved: Ranges,
}

impl AddrFilter {
    /// `Ok` if `addr` may be probed, else why not.
    pub fn check(&self, addr: IpAddr) -> Result<(), SkipReason> {
        if !self.include.contains(addr) {
            Err(SkipReason::OutsideCampaign)
        } else if self.exclude.contains(addr) {
            Err(SkipReason::Excluded)
        } else if self.reserved.contains(addr) {
            Err(SkipReason::Reserved)
        } else {
            Ok(())
        }
    }
}

impl TargetSpec {
    /// The address-by-address view of this spec (see [`AddrFilter`]).
    pub fn filter(&self) -> AddrFilter {
        let (al4, al6) = split(&self.allow);
        let (res4, res6) = if self.exclude_reserved {
            split(&reserved())
        } else {
            (vec![], vec![])
        };
        AddrFilter {
            include: Ranges::of(&self.include),
            exclude: Ranges::of(&self.exclude),
            reserved: Ranges {
                v4: subtract(&res4, &al4),
                v6: subtract(&res6, &al6),
            },
        }
    }
}

impl TargetSet {
    /// Builds the set `include \ ((reserved \ allow) ∪ exclude)` that can be
    /// swept, and says what it left out and why: excluded space, reserved
    /// space, IPv6 prefixes wider than /[`MIN_IPV6_SWEEP_PREFIX`] (skipped for
    /// sweeping only; see [`AddrFilter`] for known addresses in them), and the
    /// addresses beyond the first `max_targets` (in address order, IPv4 first).
    /// The set may be empty; only an empty `include` is an error.
    pub fn build(spec: &TargetSpec) -> Result<(Self, Vec<Skipped>), TargetError> {
        if spec.include.is_empty() {
            return Err(TargetError::NoTargets);
        }
        let wide = |n: &IpNet| matches!(n, IpNet::V6(n) if n.prefix_len() < MIN_IPV6_SWEEP_PREFIX);
        let (inc4, narrow6) = split(
            &spec
                .include
                .iter()
                .filter(|n| !wide(n))
                .copied()
                .collect::<Vec<_>>(),
        );
        let (_, wide6) = split(
            &spec
                .include
                .iter()
                .filter(|n| wide(n))
                .copied()
                .collect::<Vec<_>>(),
        );
        let inc6 = normalize([narrow6.clone(), wide6.clone()].concat());
        let f = spec.filter();
        let (ex4, ex6) = (
            intersect(&inc4, &f.exclude.v4),
            intersect(&inc6, &f.exclude.v6),
        );
        let (left4, left6) = (subtract(&inc4, &ex4), subtract(&inc6, &ex6));
        let res4 = intersect(&left4, &f.reserved.v4);
        let res6 = intersect(&left6, &f.reserved.v6);
        let mut v4 = subtract(&left4, &res4);
        let left6 = subtract(&left6, &res6);
        let mut v6 = intersect(&left6, &narrow6);
        let too_large = subtract(&left6, &v6);
        let mut budget = u128::from(spec.max_targets);
        let over4 = truncate(&mut v4, &mut budget);
        let over6 = truncate(&mut v6, &mut budget);
        let skips = [
            skipped(SkipReason::Excluded, &ex4, &ex6),
            skipped(SkipReason::Reserved, &res4, &res6),
            skipped(SkipReason::Ipv6TooLarge, &[], &too_large),
            skipped(SkipReason::OverMaxTargets, &over4, &over6),
        ];
        Ok((TargetSet { v4, v6 }, skips.into_iter().flatten().collect()))
    }

    /// Like [`TargetSet::build`] for a one-shot command, where the caller
    /// gave the targets: an empty set, or one cut short by `max_targets`, is
    /// an error. Other skips are returned for the caller to show.
    pub fn build_strict(spec: &TargetSpec) -> Result<(Self, Vec<Skipped>), TargetError> {
        let (set, skips) = Self::build(spec)?;
        if let Some(over) = skips
            .iter()
            .find(|s| s.reason == SkipReason::OverMaxTargets)
        {
            return Err(TargetError::TooMany {
                count: set.address_count() + u128::from(over.addresses),
                max: spec.max_targets,
            });
        }
        if set.is_empty() {
            let wide = spec
                .include
                .iter()
                .find(|n| matches!(n, IpNet::V6(v) if v.prefix_len() < MIN_IPV6_SWEEP_PREFIX));
            let too_large = skips.iter().any(|s| s.reason == SkipReason::Ipv6TooLarge);
            return Err(match wide {
                Some(net) if too_large => TargetError::Ipv6TooLarge(*net),
                _ => TargetError::AllExcluded,
            });
        }
        Ok((set, skips))
    }

    /// True if the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The set without the addresses of `nets`.
    pub fn without(&self, nets: &[IpNet]) -> TargetSet {
        let (n4, n6) = split(nets);
        TargetSet {
            v4: subtract(&self.v4, &n4),
            v6: subtract(&self.v6, &n6),
        }
    }

    /// The set's addresses inside `nets`.
    pub fn within(&self, nets: &[IpNet]) -> TargetSet {
        let (n4, n6) = split(nets);
        TargetSet {
            v4: intersect(&self.v4, &n4),
            v6: intersect(&self.v6, &n6),
        }
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
mod tests;
