//! Hitlists: files of known-responsive addresses for `campaign add --hitlist`.
//!
//! The format is a plain address list: one IPv4 or IPv6 address per line,
//! `#` starts a comment, blank lines are ignored. A line that cannot be read
//! is reported as `file:line: why` and skipped; the rest of the file is
//! used, and the file is refused only when nothing in it is usable. Reading
//! the list ([`parse_addrlist`]) is kept apart from turning it into
//! addresses ([`read`]) so that the shared address-list parser can take
//! its place. Pure: callers read the file.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A line that was skipped, displayed as `file:line: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub source: String,
    pub line: usize,
    pub why: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.why)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HitlistError {
    #[error("{file}: no usable address ({skipped} lines skipped{first})")]
    Empty {
        file: String,
        skipped: usize,
        /// `; first: file:line: why`, or nothing.
        first: String,
    },
}

/// What an address list yields: the prefixes and addresses it names, and
/// the lines it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub items: Vec<IpNet>,
    pub skipped: Vec<LineError>,
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

/// Reads an address list: one address or CIDR prefix per line (an address
/// becomes a /32 or /128).
fn parse_addrlist(text: &str, source: &str) -> Result<Parsed, HitlistError> {
    let mut out = Parsed {
        items: Vec::new(),
        skipped: Vec::new(),
    };
    // Files saved by some editors start with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let skip = |why: String| LineError {
            source: source.to_string(),
            line: i + 1,
            why,
        };
        if line.split_whitespace().nth(1).is_some() {
            out.skipped
                .push(skip(format!("{line:?}: expected one address per line")));
            continue;
        }
        match line.parse::<IpAddr>() {
            Ok(a) => out.items.push(IpNet::from(a)),
            Err(_) => match line.parse::<IpNet>() {
                Ok(n) => out.items.push(n),
                Err(_) => out
                    .skipped
                    .push(skip(format!("{line:?} is not an IP address"))),
            },
        }
    }
    if out.items.is_empty() {
        return Err(empty(source, &out.skipped));
    }
    Ok(out)
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
    let parsed = parse_addrlist(text, source)?;
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
                "kp.txt:5: \"2001:db8:1::zz\" is not an IP address",
                "kp.txt:6: \"198.18.3.2 198.18.3.3\": expected one address per line",
                "kp.txt: 198.18.0.0/16 is a prefix, not an address (use --prefix)",
            ]
        );
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
            "b.txt: no usable address (2 lines skipped; first: b.txt:1: \"nonsense\" is not an IP address)"
        );
    }
}
