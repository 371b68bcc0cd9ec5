//! Parser for RIR "delegated-extended" statistics files.
//!
//! Lines look like `registry|cc|type|start|value|date|status[|extensions]`.
//! Version lines, summary lines (`...|*|ipv4|*|n|summary`) and `#` comments
//! are skipped. For IPv4 `value` is an address count, which need not be a
//! power of two, so a range is split into the CIDRs that cover it exactly;
//! for IPv6 `value` is the prefix length. Only `allocated` and `assigned`
//! records are kept: `available` and `reserved` space is not in use.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("delegated stats line {line}: {why}")]
pub struct DelegatedError {
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

/// Prefixes delegated to country `cc` (case-insensitive), in file order.
pub fn parse(text: &str, cc: &str) -> Result<Vec<IpNet>, DelegatedError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |why: String| DelegatedError { line: i + 1, why };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        // Version line: starts with the format version number.
        if f[0].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        if f.len() < 7 {
            // Summary lines have 6 fields; anything else this short is broken.
            if f.len() == 6 && f[5] == "summary" {
                continue;
            }
            return Err(err(format!(
                "expected at least 7 '|'-separated fields, got {}",
                f.len()
            )));
        }
        if f[1] == "*" || f[5] == "summary" {
            continue;
        }
        if !f[1].eq_ignore_ascii_case(cc) {
            continue;
        }
        if !matches!(f[6], "allocated" | "assigned") {
            continue;
        }
        match f[2] {
            "ipv4" => {
                let start: Ipv4Addr = f[3]
                    .parse()
                    .map_err(|_| err(format!("bad IPv4 start address {:?}", f[3])))?;
                let count: u64 = f[4]
                    .parse()
                    .map_err(|_| err(format!("bad IPv4 address count {:?}", f[4])))?;
                let first = u64::from(u32::from(start));
                if count == 0 || first + count - 1 > u64::from(u32::MAX) {
                    return Err(err(format!(
                        "IPv4 count {count} from {start} is out of range"
                    )));
                }
                let end = Ipv4Addr::from((first + count - 1) as u32);
                out.extend(Ipv4Subnets::new(start, end, 0).map(IpNet::V4));
            }
            "ipv6" => {
                let start: Ipv6Addr = f[3]
                    .parse()
                    .map_err(|_| err(format!("bad IPv6 start address {:?}", f[3])))?;
                let len: u8 = f[4]
                    .parse()
                    .map_err(|_| err(format!("bad IPv6 prefix length {:?}", f[4])))?;
                let net = Ipv6Net::new(start, len)
                    .map_err(|_| err(format!("bad IPv6 prefix length {len}")))?;
                if net.trunc() != net {
                    return Err(err(format!("{net} has host bits set")));
                }
                out.push(IpNet::V6(net));
            }
            "asn" => {}
            other => return Err(err(format!("unknown record type {other:?}"))),
        }
    }
    Ok(out)
}

/// IPv4 prefixes only, for callers that watch v4 space.
pub fn ipv4_only(nets: &[IpNet]) -> Vec<Ipv4Net> {
    nets.iter()
        .filter_map(|n| match n {
            IpNet::V4(v) => Some(*v),
            IpNet::V6(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
2|apnic|20241122|71234|19830613|20241121|+1000
# a comment
apnic|*|asn|*|12345|summary
apnic|*|ipv4|*|45678|summary
apnic|KP|ipv4|175.45.176.0|1024|20071109|allocated
apnic|KP|ipv4|210.52.109.0|768|20050829|assigned|A91CEC3E
apnic|CN|ipv4|1.0.1.0|256|20110414|allocated
apnic|KP|ipv4|198.18.0.0|256|20110414|reserved
apnic|KP|asn|131279|1|20110216|allocated
apnic|KP|ipv6|2001:db8::|32|20110216|allocated
";

    fn s(v: &[IpNet]) -> Vec<String> {
        v.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn parses_country_records_and_splits_odd_counts() {
        let nets = parse(SAMPLE, "kp").unwrap();
        assert_eq!(
            s(&nets),
            [
                "175.45.176.0/22",
                "210.52.109.0/24",
                "210.52.110.0/23",
                "2001:db8::/32"
            ]
        );
        assert_eq!(ipv4_only(&nets).len(), 3);
        assert_eq!(s(&parse(SAMPLE, "CN").unwrap()), ["1.0.1.0/24"]);
        assert!(parse(SAMPLE, "FR").unwrap().is_empty());
    }

    #[test]
    fn unaligned_ranges_split_into_exact_cover() {
        let nets = parse("ripencc|FR|ipv4|10.0.0.128|384|20000101|allocated\n", "FR").unwrap();
        assert_eq!(s(&nets), ["10.0.0.128/25", "10.0.1.0/24"]);
    }

    #[test]
    fn errors_name_the_line() {
        let bad = "2|apnic|x\napnic|KP|ipv4|300.1.1.0|256|20071109|allocated\n";
        let e = parse(bad, "KP").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("line 2"), "{e}");

        let e = parse("apnic|KP|ipv4\n", "KP").unwrap_err();
        assert_eq!(e.line, 1);

        let e = parse("apnic|KP|ipv4|1.0.0.0|zero|2007|allocated\n", "KP").unwrap_err();
        assert!(e.why.contains("count"));

        let e = parse("apnic|KP|ipv4|255.255.255.0|512|2007|allocated\n", "KP").unwrap_err();
        assert!(e.why.contains("out of range"));

        let e = parse("apnic|KP|ipv6|2001:db8::1|32|2007|allocated\n", "KP").unwrap_err();
        assert!(e.why.contains("host bits"));
    }
}
