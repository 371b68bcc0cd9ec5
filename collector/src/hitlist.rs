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

use std::fmt;
use std::net::IpAddr;

use darkwatch_schema::inputs::{addrlist, InputError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
