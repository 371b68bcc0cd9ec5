//! CAIDA prefix-to-AS files (`routeviews-rv2-*.pfx2as`, `routeviews-rv6-*`):
//! one `prefix<TAB>length<TAB>origin` line per routed prefix.
//!
//! The origin field takes three forms, which combine:
//! - a single origin AS, `64500`;
//! - a multi-origin prefix (MOAS), origins joined by `_`: `64500_64501`
//!   (different ASes announced the prefix during the RIB snapshot);
//! - an AS set, members joined by `,`, with or without braces: `{64502,64503}`
//!   or `64502,64503` (a path ending in an AS_SET after aggregation);
//!   so `64500_{64501,64502}` is a MOAS prefix one of whose origins is a set.
//!
//! Grouping rule: a prefix belongs to **each** of its origins, set members
//! included. An outage of a MOAS prefix is an outage of every network that
//! announces it; picking one (say the first) would hide it from the others'
//! AS verdicts and make the grouping depend on the order CAIDA happened to
//! print. An AS set stands for the ASes aggregated behind it, and which of
//! them actually originates the space is unknown, so each member is treated
//! as an origin too. The cost is that one prefix can count in several AS
//! scopes, which a reader of AS verdicts should expect for MOAS space.
//!
//! Lookups are longest-prefix matches: a watched block takes the origins of
//! the most specific routed prefix that covers it ([`Pfx2As::route_of`]),
//! and [`Pfx2As::next_start`] finds where the next more-specific route
//! begins, so that a campaign's space can be cut into runs of blocks with
//! one route each without looking at every block (the collector's
//! `routing` module does).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::text::encoding_note;
use super::{data_lines, read_text, Collector, InputError, LineError};

/// Prefix → origin ASes, answering longest-prefix matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pfx2As {
    /// Origins of each prefix, sorted and without duplicates.
    entries: HashMap<IpNet, Vec<u32>>,
    /// Prefix lengths present, per family, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
    /// First address and length of every prefix, sorted, per family.
    v4_starts: Vec<(u128, u8)>,
    v6_starts: Vec<(u128, u8)>,
}

/// A prefix's first address as an integer.
fn start_of(net: &IpNet) -> u128 {
    match net {
        IpNet::V4(n) => u128::from(u32::from(n.network())),
        IpNet::V6(n) => u128::from(n.network()),
    }
}

/// Parses one AS number (asplain).
fn asn(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| format!("bad AS number {s:?}"))
}

/// Parses the origin field into its ASes.
fn origins(field: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in field.split('_') {
        let set = match part.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| format!("unclosed AS set in {field:?}"))?,
            None => part,
        };
        if set.is_empty() {
            return Err(format!("empty origin in {field:?}"));
        }
        for member in set.split(',') {
            out.push(asn(member).map_err(|e| format!("{e} in origin {field:?}"))?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn parse_line(line: &str) -> Result<(IpNet, Vec<u32>), String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 3 {
        return Err(format!(
            "expected `prefix<TAB>length<TAB>origin`, found {} field(s)",
            f.len()
        ));
    }
    let addr: IpAddr = f[0]
        .parse()
        .map_err(|_| format!("bad address {:?}", f[0]))?;
    let len: u8 = f[1]
        .parse()
        .map_err(|_| format!("bad prefix length {:?}", f[1]))?;
    let net = IpNet::new(addr, len).map_err(|_| format!("bad prefix length {len} for {addr}"))?;
    Ok((net.trunc(), origins(f[2])?))
}

impl Pfx2As {
    /// Parses a pfx2as file. Returns the table and the skipped lines; the
    /// file is refused only if it has broken lines and no good one. A prefix
    /// listed twice gets the origins of both lines.
    pub fn parse(text: &str, source_name: &str) -> Result<(Pfx2As, Vec<LineError>), InputError> {
        let mut c = Collector::new(source_name);
        let mut entries: HashMap<IpNet, Vec<u32>> = HashMap::new();
        for (n, line) in data_lines(text) {
            match parse_line(line) {
                Ok((net, asns)) => {
                    c.usable();
                    let e = entries.entry(net).or_default();
                    e.extend(asns);
                    e.sort_unstable();
                    e.dedup();
                }
                Err(why) => c.skip(n, encoding_note(line, why)),
            }
        }
        let skipped = c.finish()?;
        let lens = |v4: bool| -> Vec<u8> {
            let set: BTreeSet<u8> = entries
                .keys()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .map(|n| n.prefix_len())
                .collect();
            set.into_iter().rev().collect()
        };
        let starts = |v4: bool| -> Vec<(u128, u8)> {
            let mut v: Vec<(u128, u8)> = entries
                .keys()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .map(|n| (start_of(n), n.prefix_len()))
                .collect();
            v.sort_unstable();
            v
        };
        let table = Pfx2As {
            v4_lens: lens(true),
            v6_lens: lens(false),
            v4_starts: starts(true),
            v6_starts: starts(false),
            entries,
        };
        Ok((table, skipped))
    }

    /// Reads and parses a pfx2as file (see [`Pfx2As::parse`]).
    pub fn load(path: &Path) -> Result<(Pfx2As, Vec<LineError>), InputError> {
        Self::parse(&read_text(path)?, &path.display().to_string())
    }

    /// Origin ASes of the most specific prefix that covers `net` (all of
    /// `net`, not just its first address); empty if none does.
    pub fn origins(&self, net: &IpNet) -> &[u32] {
        self.route_of(net).map_or(&[], |(_, o)| o)
    }

    /// The most specific routed prefix that covers all of `net`, with its
    /// origins; `None` if no route does.
    pub fn route_of(&self, net: &IpNet) -> Option<(IpNet, &[u32])> {
        let lens = match net {
            IpNet::V4(_) => &self.v4_lens,
            IpNet::V6(_) => &self.v6_lens,
        };
        for &len in lens.iter().filter(|&&l| l <= net.prefix_len()) {
            let Ok(cover) = IpNet::new(net.addr(), len) else {
                continue;
            };
            let cover = cover.trunc();
            if let Some(v) = self.entries.get(&cover) {
                return Some((cover, v));
            }
        }
        None
    }

    /// The first address (as an integer) above `after` where a route of at
    /// most `max_len` bits begins, in the family of `v6`; `None` if none
    /// does. A binary search, then a scan past longer routes only.
    pub fn next_start(&self, v6: bool, after: u128, max_len: u8) -> Option<u128> {
        let starts = if v6 { &self.v6_starts } else { &self.v4_starts };
        let i = starts.partition_point(|&(a, _)| a <= after);
        starts[i..]
            .iter()
            .find(|&&(_, len)| len <= max_len)
            .map(|&(a, _)| a)
    }

    /// Every routed prefix with its origins, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (&IpNet, &[u32])> {
        self.entries.iter().map(|(n, o)| (n, o.as_slice()))
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/data/routeviews-rv2-sample.pfx2as");

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn table() -> Pfx2As {
        let (t, skipped) = Pfx2As::parse(SAMPLE, "rv2.pfx2as").unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        t
    }

    #[test]
    fn single_origin_and_longest_match() {
        let t = table();
        assert_eq!(t.len(), 9);
        assert_eq!(t.origins(&net("175.45.176.0/24")), [131279]);
        // A more specific route wins over its covering /22.
        assert_eq!(t.origins(&net("175.45.178.0/24")), [64499]);
        assert_eq!(t.origins(&net("175.45.178.0/25")), [64499]);
        // A block wider than any covering entry matches only the cover.
        assert_eq!(t.origins(&net("175.45.176.0/22")), [131279]);
        assert!(t.origins(&net("175.45.176.0/21")).is_empty());
        assert!(t.origins(&net("10.0.0.0/24")).is_empty());
    }

    #[test]
    fn route_of_names_the_matching_route_and_next_start_the_next_one() {
        let t = table();
        let r = t.route_of(&net("175.45.177.0/24")).unwrap();
        assert_eq!((r.0, r.1), (net("175.45.176.0/22"), &[131279][..]));
        let r = t.route_of(&net("175.45.178.0/24")).unwrap();
        assert_eq!(r.0, net("175.45.178.0/24"));
        assert!(t.route_of(&net("175.45.180.0/24")).is_none());
        let int = |s: &str| u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()));
        // After the /22's start, the next route is its more-specific /24.
        assert_eq!(
            t.next_start(false, int("175.45.176.0"), 24),
            Some(int("175.45.178.0"))
        );
        assert_eq!(
            t.next_start(false, int("175.45.178.0"), 24),
            Some(int("192.0.2.0"))
        );
        assert_eq!(t.next_start(false, int("203.0.113.0"), 24), None);
        // Routes longer than the limit are passed over.
        assert_eq!(t.next_start(true, 0, 47), None);
        assert!(t.next_start(true, 0, 48).is_some());
    }

    #[test]
    fn multi_origin_prefixes_belong_to_each_origin() {
        let t = table();
        assert_eq!(t.origins(&net("192.0.2.0/24")), [64500, 64501]);
    }

    #[test]
    fn as_set_members_are_origins_with_or_without_braces() {
        let t = table();
        assert_eq!(t.origins(&net("198.51.100.0/24")), [64502, 64503]);
        assert_eq!(t.origins(&net("198.51.101.0/24")), [64502, 64503]);
        // MOAS with a set as one origin.
        assert_eq!(t.origins(&net("203.0.113.0/24")), [64500, 64501, 64502]);
        // 32-bit AS numbers.
        assert_eq!(t.origins(&net("198.18.0.0/24")), [4_200_000_000]);
    }

    #[test]
    fn ipv6_prefixes_and_repeated_lines_merge() {
        let t = table();
        assert_eq!(t.origins(&net("2001:db8:1::/48")), [64496]);
        assert_eq!(t.origins(&net("2001:db8:2::/48")), [64496, 64497]);
        // Space that no entry covers has no origin.
        assert!(t.origins(&net("2001:db9::/48")).is_empty());
    }

    #[test]
    fn broken_lines_are_skipped_with_file_line_and_reason() {
        let text = include_str!("../../tests/data/pfx2as-broken");
        let (t, skipped) = Pfx2As::parse(text, "bad.pfx2as").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.origins(&net("198.18.5.0/24")), [64500, 64501]);
        let got: Vec<(usize, &str)> = skipped.iter().map(|e| (e.line, e.why.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "bad prefix length 33 for 198.18.1.0"),
                (3, "bad AS number \"ASx\" in origin \"ASx\""),
                (
                    4,
                    "expected `prefix<TAB>length<TAB>origin`, found 2 field(s)"
                ),
                (5, "bad address \"198.18.300.0\""),
                (6, "unclosed AS set in \"{64500,64501\""),
                (7, "empty origin in \"64500_\""),
                (8, "bad AS number \"\" in origin \"{64500,}\""),
                (9, "bad AS number \"4294967296\" in origin \"4294967296\""),
                (10, "bad prefix length \"x\""),
            ]
        );
        assert_eq!(
            skipped[0].to_string(),
            "bad.pfx2as:2: bad prefix length 33 for 198.18.1.0"
        );
    }

    #[test]
    fn a_byte_order_mark_does_not_spoil_the_first_line() {
        let (t, skipped) = Pfx2As::parse(&format!("\u{feff}{SAMPLE}"), "rv2.pfx2as").unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(t, table());
    }

    #[test]
    fn the_published_gzip_file_loads() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(SAMPLE.as_bytes()).unwrap();
        let path = std::env::temp_dir().join(format!(
            "dw-{}-routeviews-rv2-20141222-1200.pfx2as.gz",
            std::process::id()
        ));
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let loaded = Pfx2As::load(&path);
        std::fs::remove_file(&path).unwrap();
        let (t, skipped) = loaded.unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(t, table());
    }

    #[test]
    fn nothing_usable_is_refused_and_empty_is_not() {
        let e = Pfx2As::parse("garbage\n1.2.3.0\t24\t{x}\n", "p").unwrap_err();
        assert!(matches!(e, InputError::NothingUsable { ref skipped, .. } if skipped.len() == 2));
        let (t, skipped) = Pfx2As::parse("# nothing yet\n", "p").unwrap();
        assert!(t.is_empty() && skipped.is_empty());
        assert!(matches!(
            Pfx2As::load(Path::new("/nonexistent/x.pfx2as")),
            Err(InputError::Io { .. })
        ));
    }
}
