//! RIR delegated-stats files, standard and extended, as the five RIRs
//! (AFRINIC, APNIC, ARIN, LACNIC, RIPE NCC) and the NRO publish them.
//!
//! Format (NRO "RIR statistics exchange format"): a version line
//! `version|registry|serial|records|startdate|enddate|UTCoffset`, summary
//! lines `registry|*|type|*|count|summary`, then one record per line,
//! `registry|cc|type|start|value|date|status[|opaque-id[|extensions...]]`,
//! and `#` comments. For `ipv4`, `value` is an address count that need not
//! be a power of two nor aligned, so the range is split into the CIDRs that
//! cover it exactly; for `ipv6` it is a prefix length; `asn` records carry
//! no prefixes and are checked but not returned.
//!
//! Status rule: only `allocated` and `assigned` space is kept. `available`
//! and `reserved` space is held by the registry, not in use by anyone in the
//! country (the extended files list it with an empty country code or `ZZ`),
//! so there is nothing there to watch. Every record is checked whatever its
//! country, so a broken line is reported even when it is not the country
//! asked for.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Net};

use super::text::encoding_note;
use super::{data_lines, read_text, Collector, InputError, Parsed};

/// The record statuses of the format.
const STATUSES: &[&str] = &["allocated", "assigned", "available", "reserved"];

/// True for the statuses whose space is in use (see the module docs).
fn in_use(status: &str) -> bool {
    status.eq_ignore_ascii_case("allocated") || status.eq_ignore_ascii_case("assigned")
}

/// A checked record: its prefixes (none for `asn`) and whether it counts.
struct Record {
    nets: Vec<IpNet>,
    cc: String,
    in_use: bool,
}

/// What one non-comment line is.
enum Line {
    Header,
    Record(Record),
}

fn parse_line(line: &str) -> Result<Line, String> {
    let f: Vec<&str> = line.split('|').map(str::trim).collect();
    // The version line starts with the format version ("2", "2.3");
    // registries are never named by a number.
    if f[0].starts_with(|c: char| c.is_ascii_digit()) {
        if f.len() < 3 {
            return Err(format!("version line with {} fields, expected 7", f.len()));
        }
        return Ok(Line::Header);
    }
    if f.len() >= 6 && f[1] == "*" && f[5] == "summary" {
        return Ok(Line::Header);
    }
    if f.len() < 7 {
        return Err(format!(
            "expected at least 7 '|'-separated fields, found {}",
            f.len()
        ));
    }
    let (cc, kind, start, value, status) = (f[1], f[2], f[3], f[4], f[6]);
    if f[0].is_empty() {
        return Err("empty registry field".into());
    }
    if !STATUSES.iter().any(|s| status.eq_ignore_ascii_case(s)) {
        return Err(format!("unknown status {status:?}"));
    }
    let nets = match kind {
        "ipv4" => {
            let first: Ipv4Addr = start
                .parse()
                .map_err(|_| format!("bad IPv4 start address {start:?}"))?;
            let count: u64 = value
                .parse()
                .map_err(|_| format!("bad IPv4 address count {value:?}"))?;
            let first_n = u64::from(u32::from(first));
            // Addresses left from `first` to the end of the IPv4 space.
            let room = (1u64 << 32) - first_n;
            if count == 0 || count > room {
                return Err(format!(
                    "IPv4 address count {count} does not fit after {first}"
                ));
            }
            let last = Ipv4Addr::from((first_n + count - 1) as u32);
            Ipv4Subnets::new(first, last, 0).map(IpNet::V4).collect()
        }
        "ipv6" => {
            let addr: Ipv6Addr = start
                .parse()
                .map_err(|_| format!("bad IPv6 start address {start:?}"))?;
            let len: u8 = value
                .parse()
                .map_err(|_| format!("bad IPv6 prefix length {value:?}"))?;
            let net =
                Ipv6Net::new(addr, len).map_err(|_| format!("bad IPv6 prefix length {len}"))?;
            if net.trunc() != net {
                return Err(format!("{net} has host bits set"));
            }
            vec![IpNet::V6(net)]
        }
        "asn" => {
            start
                .parse::<u32>()
                .map_err(|_| format!("bad AS number {start:?}"))?;
            match value.parse::<u64>() {
                Ok(n) if n >= 1 => {}
                _ => return Err(format!("bad AS count {value:?}")),
            }
            Vec::new()
        }
        other => return Err(format!("unknown record type {other:?}")),
    };
    Ok(Line::Record(Record {
        nets,
        cc: cc.to_string(),
        in_use: in_use(status),
    }))
}

/// The IPv4 and IPv6 prefixes allocated or assigned to `country` (ISO 3166
/// alpha-2, case-insensitive), in file order. `source_name` labels skipped
/// lines.
pub fn parse(text: &str, source_name: &str, country: &str) -> Result<Parsed<IpNet>, InputError> {
    let p = parse_lines(text, source_name, country)?;
    Ok(Parsed {
        items: p.items.into_iter().map(|(_, n)| n).collect(),
        skipped: p.skipped,
    })
}

/// As [`parse`], each prefix with the 1-based number of the line that
/// brought it in, so that a caller can name the line of a prefix it refuses.
pub fn parse_lines(
    text: &str,
    source_name: &str,
    country: &str,
) -> Result<Parsed<(usize, IpNet)>, InputError> {
    let mut c = Collector::new(source_name);
    let mut items = Vec::new();
    for (n, line) in data_lines(text) {
        match parse_line(line) {
            Ok(Line::Header) => {}
            Ok(Line::Record(r)) => {
                c.usable();
                if r.in_use && r.cc.eq_ignore_ascii_case(country) {
                    items.extend(r.nets.into_iter().map(|net| (n, net)));
                }
            }
            Err(why) => c.skip(n, encoding_note(line, why)),
        }
    }
    let skipped = c.finish()?;
    Ok(Parsed { items, skipped })
}

/// Reads and parses a delegated-stats file (see [`parse`]); it may be
/// compressed.
pub fn read(path: &Path, country: &str) -> Result<Parsed<IpNet>, InputError> {
    parse(&read_text(path)?, &path.display().to_string(), country)
}

/// Reads a delegated-stats file with line numbers (see [`parse_lines`]).
pub fn read_lines(path: &Path, country: &str) -> Result<Parsed<(usize, IpNet)>, InputError> {
    parse_lines(&read_text(path)?, &path.display().to_string(), country)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[IpNet]) -> Vec<String> {
        v.iter().map(|n| n.to_string()).collect()
    }

    fn ok(text: &str, cc: &str) -> Parsed<IpNet> {
        parse(text, "d.txt", cc).unwrap()
    }

    const APNIC: &str = include_str!("../../tests/data/delegated-apnic-latest");
    const APNIC_EXT: &str = include_str!("../../tests/data/delegated-apnic-extended-latest");
    const ARIN_EXT: &str = include_str!("../../tests/data/delegated-arin-extended-latest");
    const RIPE_EXT: &str = include_str!("../../tests/data/delegated-ripencc-extended-latest");
    const LACNIC: &str = include_str!("../../tests/data/delegated-lacnic-latest");
    const AFRINIC: &str = include_str!("../../tests/data/delegated-afrinic-extended-latest");
    const NRO: &str = include_str!("../../tests/data/delegated-nro-extended-stats");

    #[test]
    fn apnic_standard_keeps_allocated_and_assigned_v4_and_v6() {
        let p = ok(APNIC, "KP");
        assert_eq!(
            strs(&p.items),
            [
                "175.45.176.0/22",
                // 768 addresses from a /24 boundary: a /24 and a /23.
                "210.52.109.0/24",
                "210.52.110.0/23",
                "2400:8b00::/32",
            ]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // Lower-case country codes match too, and other countries are there.
        assert_eq!(
            strs(&ok(APNIC, "jp").items),
            ["1.0.16.0/20", "2001:200::/35"]
        );
    }

    #[test]
    fn apnic_extended_drops_available_and_reserved() {
        let p = ok(APNIC_EXT, "AU");
        assert_eq!(
            strs(&p.items),
            ["1.0.0.0/24", "1.0.4.0/22", "2001:4400::/32"]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // Available space carries no country; nothing there is in use.
        assert!(ok(APNIC_EXT, "ZZ").items.is_empty());
        assert!(ok(APNIC_EXT, "").items.is_empty());
    }

    #[test]
    fn arin_extended_with_empty_and_zz_country_for_registry_space() {
        let p = ok(ARIN_EXT, "US");
        assert_eq!(
            strs(&p.items),
            [
                "3.0.0.0/8",
                // 3584 = 512 + 1024 + 2048 from 23.130.2.0.
                "23.130.2.0/23",
                "23.130.4.0/22",
                "23.130.8.0/21",
                "2600::/29",
            ]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(strs(&ok(ARIN_EXT, "CA").items), ["24.36.0.0/16"]);
        assert!(ok(ARIN_EXT, "ZZ").items.is_empty());
    }

    #[test]
    fn ripencc_extended_unaligned_counts_split_exactly() {
        let p = ok(RIPE_EXT, "FR");
        assert_eq!(
            strs(&p.items),
            [
                "2.0.0.0/12",
                // 384 addresses starting at a /25 boundary.
                "5.39.0.128/25",
                "5.39.1.0/24",
                "2a01:e00::/26",
            ]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // 1000 = 512 + 256 + 128 + 64 + 32 + 8.
        assert_eq!(
            strs(&ok(RIPE_EXT, "RU").items),
            [
                "5.3.0.0/23",
                "5.3.2.0/24",
                "5.3.3.0/25",
                "5.3.3.128/26",
                "5.3.3.192/27",
                "5.3.3.224/29",
            ]
        );
    }

    #[test]
    fn lacnic_and_afrinic_and_the_nro_combined_file() {
        let p = ok(LACNIC, "BR");
        assert_eq!(
            strs(&p.items),
            ["45.160.0.0/22", "177.0.0.0/14", "2801:80::/32"]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let p = ok(AFRINIC, "ZA");
        assert_eq!(
            strs(&p.items),
            ["41.0.0.0/11", "102.64.0.0/15", "2c0f:f000::/32"]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // The combined file lists every registry's records.
        let p = ok(NRO, "KP");
        assert_eq!(strs(&p.items), ["175.45.176.0/22", "2400:8b00::/32"]);
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(strs(&ok(NRO, "BR").items), ["45.160.0.0/22"]);
    }

    #[test]
    fn no_records_for_the_country_is_not_an_error() {
        let p = ok(APNIC, "FR");
        assert!(p.items.is_empty() && p.skipped.is_empty());
        // Nor is a file of only headers and comments.
        let p = ok(
            "# nothing\n2|apnic|20241122|0|19830613|20241121|+1000\n",
            "KP",
        );
        assert!(p.items.is_empty() && p.skipped.is_empty());
    }

    #[test]
    fn broken_lines_are_skipped_with_file_line_and_reason() {
        let text = include_str!("../../tests/data/delegated-broken");
        let p = parse(text, "broken.txt", "KP").unwrap();
        // Good KP lines survive around the broken ones.
        assert_eq!(strs(&p.items), ["175.45.176.0/22", "2400:8b00::/32"]);
        let got: Vec<(usize, &str)> = p.skipped.iter().map(|e| (e.line, e.why.as_str())).collect();
        assert_eq!(
            got,
            [
                (4, "bad IPv4 start address \"175.45.300.0\""),
                (5, "bad IPv4 address count \"many\""),
                (6, "IPv4 address count 0 does not fit after 175.45.180.0"),
                (7, "IPv4 address count 512 does not fit after 255.255.255.0"),
                (8, "bad IPv6 prefix length 129"),
                (9, "2400:8b00::1/32 has host bits set"),
                (10, "bad IPv6 start address \"2400:zz::\""),
                (11, "expected at least 7 '|'-separated fields, found 4"),
                (12, "unknown record type \"ipv5\""),
                (13, "unknown status \"stolen\""),
                (14, "bad AS number \"AS131279\""),
                (15, "bad AS count \"0\""),
                // Other countries' lines are checked too.
                (16, "bad IPv4 start address \"1.0.16\""),
                (17, "empty registry field"),
                (
                    19,
                    "IPv4 address count 18446744073709551615 does not fit after 1.2.6.0"
                ),
            ]
        );
        assert_eq!(
            p.skipped[0].to_string(),
            "broken.txt:4: bad IPv4 start address \"175.45.300.0\""
        );
    }

    #[test]
    fn a_file_with_nothing_usable_is_refused() {
        let text = "2|apnic|20241122|2|19830613|20241121|+1000\n\
                    apnic|*|ipv4|*|2|summary\n\
                    apnic|KP|ipv4|175.45.176.0|many|20071109|allocated\n\
                    not a delegated file\n";
        let e = parse(text, "d.txt", "KP").unwrap_err();
        let InputError::NothingUsable { skipped, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [3, 4]);
        assert!(
            e.to_string().contains("d.txt:3: bad IPv4 address count"),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_an_unknown_status() {
        let p = ok(&format!("\u{feff}{APNIC}"), "KP");
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.items, ok(APNIC, "KP").items);
    }

    #[test]
    fn a_latin1_comment_or_opaque_field_is_tolerated_and_a_used_field_named() {
        let mut bytes = b"# Registre: r\xe9seau de l'APNIC\n".to_vec();
        bytes.extend(b"apnic|KP|ipv4|175.45.176.0|1024|20071109|allocated|Caf\xe9\n");
        bytes.extend(b"apnic|KP|ipv4|175.45.18\xe9.0|256|20071109|allocated\n");
        let dir = std::env::temp_dir().join(format!("dw-latin1-{}", std::process::id()));
        std::fs::write(&dir, &bytes).unwrap();
        let p = read_lines(&dir, "KP");
        std::fs::remove_file(&dir).unwrap();
        let p = p.unwrap();
        assert_eq!(p.items, [(2, "175.45.176.0/22".parse().unwrap())]);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 3);
        assert!(
            p.skipped[0]
                .why
                .ends_with("(the line has bytes that are not UTF-8, shown as \u{fffd})"),
            "{}",
            p.skipped[0]
        );
    }

    #[test]
    fn compressed_copies_read_like_the_plain_file() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(APNIC.as_bytes()).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(APNIC.as_bytes()).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(APNIC.as_bytes()).unwrap();
        for (name, bytes) in [
            // Named as published, and misnamed: the bytes decide.
            ("delegated-apnic-latest.gz", gz.finish().unwrap()),
            ("delegated-apnic-latest.bz2", bz.finish().unwrap()),
            ("delegated-apnic-latest", xz.finish().unwrap()),
        ] {
            let path = std::env::temp_dir().join(format!("dw-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            let p = read(&path, "KP");
            std::fs::remove_file(&path).unwrap();
            let p = p.unwrap();
            assert_eq!(p.items, ok(APNIC, "KP").items, "{name}");
            assert!(p.skipped.is_empty(), "{name}: {:?}", p.skipped);
        }
    }

    #[test]
    fn read_names_a_missing_file() {
        let e = read(Path::new("/nonexistent/delegated"), "KP").unwrap_err();
        assert!(matches!(e, InputError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/delegated: "),
            "{e}"
        );
    }
}
