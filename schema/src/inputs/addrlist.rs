//! Plain address and CIDR lists: target files, exclusion files and
//! hitlists. One IPv4 or IPv6 address or CIDR prefix per line; `#` starts a
//! comment (whole line or after the entry); blank lines are ignored, and so
//! is a byte-order mark at the start of the file (some editors save one).
//! Host bits of a CIDR are cleared (`198.18.0.77/24` is `198.18.0.0/24`), as
//! ZMap does with its allow and block lists.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::text::encoding_note;
use super::{read_text, Collector, InputError, Parsed};

/// Parses one entry: an address (a /32 or /128) or a CIDR prefix.
pub fn parse_entry(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty target".into());
    }
    let parsed = if s.contains('/') {
        s.parse::<IpNet>().map(|n| n.trunc()).ok()
    } else {
        s.parse::<IpAddr>().map(IpNet::from).ok()
    };
    parsed.ok_or_else(|| "not an address or CIDR prefix".to_string())
}

/// Parses a list; `source_name` labels skipped lines.
pub fn parse(text: &str, source_name: &str) -> Result<Parsed<IpNet>, InputError> {
    let mut c = Collector::new(source_name);
    let mut items = Vec::new();
    // Not whitespace to `trim`: left in, it would spoil the first entry.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        if entry.split_whitespace().nth(1).is_some() {
            c.skip(i + 1, format!("expected one entry per line: {entry:?}"));
            continue;
        }
        match parse_entry(entry) {
            Ok(net) => {
                c.usable();
                items.push(net);
            }
            Err(why) => c.skip(i + 1, encoding_note(entry, format!("{why}: {entry:?}"))),
        }
    }
    let skipped = c.finish()?;
    Ok(Parsed { items, skipped })
}

/// Reads and parses a list file (see [`parse`]).
pub fn read(path: &Path) -> Result<Parsed<IpNet>, InputError> {
    parse(&read_text(path)?, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_prefixes_and_comments() {
        let text = include_str!("../../tests/data/hitlist.txt");
        let p = parse(text, "hitlist.txt").unwrap();
        assert_eq!(
            p.items,
            nets(&[
                "198.18.0.0/24",
                "198.18.1.7/32",
                "2001:db8::1/128",
                "2001:db8:1::/48",
                "198.18.2.0/24",
            ])
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    }

    #[test]
    fn broken_lines_are_skipped_with_file_line_and_reason() {
        let p = parse(
            "198.18.0.0/24\n\nbogus\n198.18.0.0/33 # too long\n198.18.9.9\n",
            "t.txt",
        )
        .unwrap();
        assert_eq!(p.items, nets(&["198.18.0.0/24", "198.18.9.9/32"]));
        let got: Vec<String> = p.skipped.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "t.txt:3: not an address or CIDR prefix: \"bogus\"",
                "t.txt:4: not an address or CIDR prefix: \"198.18.0.0/33\"",
            ]
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_first_entry() {
        let p = parse("\u{feff}198.18.0.1\r\n198.18.0.0/24\n", "bom.txt").unwrap();
        assert_eq!(p.items, nets(&["198.18.0.1/32", "198.18.0.0/24"]));
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // Also before a comment, and only at the very start.
        let p = parse(
            "\u{feff}# list\n198.18.0.1\n\u{feff}198.18.0.2\n",
            "bom.txt",
        )
        .unwrap();
        assert_eq!(p.items, nets(&["198.18.0.1/32"]));
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].line, 3);
    }

    #[test]
    fn two_entries_on_one_line_are_skipped_as_such() {
        let p = parse("198.18.3.1\n198.18.3.2 198.18.3.3 # pair\n", "t.txt").unwrap();
        assert_eq!(p.items, nets(&["198.18.3.1/32"]));
        let got: Vec<String> = p.skipped.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            ["t.txt:2: expected one entry per line: \"198.18.3.2 198.18.3.3\""]
        );
    }

    #[test]
    fn nothing_usable_is_refused_and_empty_is_not() {
        let e = parse("bogus\n# c\n1.2.3\n", "t.txt").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.txt: nothing usable, 2 line(s) refused: t.txt:1: "),
            "{e}"
        );
        // An exclusion list with every entry commented out is a valid list.
        let p = parse("# nothing excluded\n\n", "t.txt").unwrap();
        assert!(p.items.is_empty() && p.skipped.is_empty());
    }

    #[test]
    fn single_entries_clear_host_bits() {
        assert_eq!(
            parse_entry(" 198.18.0.77/24 ").unwrap(),
            nets(&["198.18.0.0/24"])[0]
        );
        assert_eq!(
            parse_entry("2001:db8::1").unwrap(),
            nets(&["2001:db8::1/128"])[0]
        );
        assert!(parse_entry("").is_err());
        assert!(parse_entry("198.18.0.300").is_err());
    }
}
