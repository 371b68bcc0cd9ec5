//! CAIDA prefix-to-AS files (`routeviews-rv2-*.pfx2as`): one
//! `address<TAB>length<TAB>asn` line per prefix. Multi-origin prefixes list
//! origins joined by `_`, AS sets by `,`: the first origin is kept, which is
//! enough to group a country's prefixes by network.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{source_name}:{line}: {why}")]
pub struct Pfx2AsError {
    pub source_name: String,
    pub line: usize,
    pub why: String,
}

/// Prefix → origin AS, answering longest-prefix matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pfx2As {
    /// Sorted by prefix length, longest first, for longest-match lookups.
    entries: Vec<(IpNet, u32)>,
}

impl Pfx2As {
    pub fn parse(text: &str, source_name: &str) -> Result<Pfx2As, Pfx2AsError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: String| Pfx2AsError {
                source_name: source_name.to_string(),
                line: i + 1,
                why,
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return Err(err(format!("expected `address length asn`, got {line:?}")));
            }
            let addr: IpAddr = f[0]
                .parse()
                .map_err(|_| err(format!("bad address {:?}", f[0])))?;
            let len: u8 = f[1]
                .parse()
                .map_err(|_| err(format!("bad prefix length {:?}", f[1])))?;
            let net = IpNet::new(addr, len)
                .map_err(|_| err(format!("bad prefix length {len}")))?
                .trunc();
            let first = f[2].split(['_', ',']).next().unwrap_or_default();
            let asn: u32 = first
                .parse()
                .map_err(|_| err(format!("bad AS number {:?}", f[2])))?;
            entries.push((net, asn));
        }
        entries.sort_by(|a, b| b.0.prefix_len().cmp(&a.0.prefix_len()).then(a.0.cmp(&b.0)));
        Ok(Pfx2As { entries })
    }

    pub fn load(path: &std::path::Path) -> Result<Pfx2As, Pfx2AsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Pfx2AsError {
            source_name: name.clone(),
            line: 0,
            why: e.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    /// Origin AS of the most specific entry that covers `net`.
    pub fn origin(&self, net: &IpNet) -> Option<u32> {
        self.entries
            .iter()
            .find(|(p, _)| p.contains(net))
            .map(|(_, asn)| *asn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_and_moas() {
        let p = Pfx2As::parse(
            "175.45.176.0\t22\t131279\n175.45.178.0\t24\t131279_4837\n# c\n",
            "t",
        )
        .unwrap();
        assert_eq!(p.origin(&"175.45.176.0/24".parse().unwrap()), Some(131279));
        assert_eq!(p.origin(&"175.45.178.0/24".parse().unwrap()), Some(131279));
        assert_eq!(p.origin(&"10.0.0.0/24".parse().unwrap()), None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = Pfx2As::parse("1.2.3.0\t24\t5\n1.2.3.0 24\n", "f").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Pfx2As::parse("1.2.3.0\t33\t5\n", "f").is_err());
        assert!(Pfx2As::parse("1.2.3.0\t24\tASx\n", "f").is_err());
    }
}
