//! AS names, so that a verdict on `AS131279` can say "Star Joint Venture".
//!
//! Two layouts are read, told apart by their content:
//! - CAIDA's AS-to-organisation file (`YYYYMMDD.as-org2info.txt(.gz)`),
//!   with two sections, each opened by a comment naming its fields:
//!   `# format:org_id|changed|org_name|country|source` (organisations) and
//!   `# format:aut|changed|aut_name|org_id|opaque_id|source` (ASes). An AS
//!   is named by its organisation's name, which is what users know (the
//!   `aut_name` is a registry handle such as `STAR-KP`), and by its
//!   `aut_name` when it has no organisation or the organisation has no name.
//!   The sections may come in either order.
//! - A plain list, one `ASN name` per line (`131279 Star Joint Venture` or
//!   `AS131279 Star Joint Venture`, space or tab separated), as the
//!   published `asnames.txt` lists are.
//!
//! A file with any `# format:` line is read as as-org2info; one without is
//! a plain list. Names are display text: a byte that is not UTF-8 in a name
//! shows as U+FFFD rather than losing the name.

use std::collections::HashMap;
use std::path::Path;

use super::text::{encoding_note, strip_bom};
use super::{read_text, Collector, InputError, LineError};

/// The header of the organisations section.
pub const ORG_FORMAT: &str = "org_id|changed|org_name|country|source";
/// The header of the ASes section.
pub const AUT_FORMAT: &str = "aut|changed|aut_name|org_id|opaque_id|source";

/// AS number → display name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsNames {
    names: HashMap<u32, String>,
}

/// Which section of an as-org2info file a line is in.
#[derive(Clone, Copy, PartialEq)]
enum Section {
    /// Before any `# format:` line: a plain list, or (in an as-org2info
    /// file) lines that belong to no section.
    None,
    Org,
    Aut,
    /// A `# format:` this parser does not know: its lines are skipped.
    Unknown,
}

/// Parses one AS number, asplain with or without an `AS` prefix.
fn asn(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    digits
        .parse::<u32>()
        .map_err(|_| format!("bad AS number {s:?}"))
}

/// `aut|changed|aut_name|org_id|opaque_id|source`: the AS, its aut_name and
/// its org_id. A name holding `|` keeps it: the fixed fields are counted
/// from both ends.
fn aut_line(line: &str) -> Result<(u32, String, String), String> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() < 6 {
        return Err(format!(
            "expected `{AUT_FORMAT}`, found {} field(s)",
            f.len()
        ));
    }
    let n = f.len();
    let name = f[2..n - 3].join("|").trim().to_string();
    Ok((asn(f[0].trim())?, name, f[n - 3].trim().to_string()))
}

/// `org_id|changed|org_name|country|source`: the org_id and its name.
fn org_line(line: &str) -> Result<(String, String), String> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() < 5 {
        return Err(format!(
            "expected `{ORG_FORMAT}`, found {} field(s)",
            f.len()
        ));
    }
    let n = f.len();
    let id = f[0].trim();
    if id.is_empty() {
        return Err("empty org_id".into());
    }
    Ok((id.to_string(), f[2..n - 2].join("|").trim().to_string()))
}

/// `ASN name`: the AS and the rest of the line.
fn plain_line(line: &str) -> Result<(u32, String), String> {
    let (a, name) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| "expected `ASN name`, found no name".to_string())?;
    let name = name.trim();
    if name.is_empty() {
        return Err("expected `ASN name`, found no name".into());
    }
    Ok((asn(a)?, name.to_string()))
}

impl AsNames {
    /// Parses an as-org2info file or a plain `ASN name` list (see the
    /// module docs). Returns the names and the skipped lines; the file is
    /// refused only if it has broken lines and no good one.
    pub fn parse(text: &str, source_name: &str) -> Result<(AsNames, Vec<LineError>), InputError> {
        let mut c = Collector::new(source_name);
        let mut section = Section::None;
        // as-org2info: resolved once both sections are read.
        let mut orgs: HashMap<String, String> = HashMap::new();
        let mut auts: Vec<(u32, String, String)> = Vec::new();
        let mut plain: HashMap<u32, String> = HashMap::new();
        // Plain-list lines seen before a `# format:` line, which in an
        // as-org2info file belong to no section.
        let mut before_format: Vec<usize> = Vec::new();
        for (i, raw) in strip_bom(text).lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if let Some(fmt) = line.strip_prefix("# format:") {
                section = match fmt.trim() {
                    ORG_FORMAT => Section::Org,
                    AUT_FORMAT => Section::Aut,
                    other => {
                        c.skip(n, format!("unknown section format {other:?}"));
                        Section::Unknown
                    }
                };
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = match section {
                Section::None => plain_line(line).map(|(a, name)| {
                    before_format.push(n);
                    plain.insert(a, name);
                }),
                Section::Org => org_line(line).map(|(id, name)| {
                    orgs.insert(id, name);
                }),
                Section::Aut => aut_line(line).map(|a| auts.push(a)),
                Section::Unknown => Err("line of an unknown section".into()),
            };
            match parsed {
                Ok(()) => c.usable(),
                Err(why) => c.skip(n, encoding_note(line, why)),
            }
        }
        let org2info = section != Section::None;
        if org2info {
            // Data before the first `# format:` line: not of any section.
            for n in before_format {
                c.skip(n, "line before any `# format:` section".into());
            }
            plain.clear();
        }
        let skipped = c.finish()?;
        let names = if org2info {
            auts.into_iter()
                .filter_map(|(a, aut_name, org_id)| {
                    let name = orgs
                        .get(&org_id)
                        .filter(|n| !n.is_empty())
                        .cloned()
                        .unwrap_or(aut_name);
                    (!name.is_empty()).then_some((a, name))
                })
                .collect()
        } else {
            plain
        };
        Ok((AsNames { names }, skipped))
    }

    /// Reads and parses a file (see [`AsNames::parse`]).
    pub fn load(path: &Path) -> Result<(AsNames, Vec<LineError>), InputError> {
        Self::parse(&read_text(path)?, &path.display().to_string())
    }

    /// The name of `asn`, if the file gave one.
    pub fn get(&self, asn: u32) -> Option<&str> {
        self.names.get(&asn).map(String::as_str)
    }

    /// ASes named.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl FromIterator<(u32, String)> for AsNames {
    fn from_iter<I: IntoIterator<Item = (u32, String)>>(iter: I) -> Self {
        AsNames {
            names: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The layout CAIDA publishes (organisations first, as in the files).
    const ORG2INFO: &str = "\
# name: AS Org
# some header lines
# format:org_id|changed|org_name|country|source
STAR-KP-APNIC|20170208|Star Joint Venture Co. Ltd.|KP|APNIC
NONAME-ARIN|20170208||US|ARIN
# format:aut|changed|aut_name|org_id|opaque_id|source
131279|20170208|STAR-KP|STAR-KP-APNIC|e5e3b9c13678dfc483fb1f819d70883c_APNIC|APNIC
64500|20170208|EXAMPLE-NET|NONAME-ARIN||ARIN
64501|20170208|ORPHAN-AS|MISSING-ORG||ARIN
";

    #[test]
    fn org2info_prefers_the_organisation_name_then_the_aut_name() {
        let (n, skipped) = AsNames::parse(ORG2INFO, "20241001.as-org2info.txt").unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(n.get(131279), Some("Star Joint Venture Co. Ltd."));
        // An organisation without a name, or none at all: the aut_name.
        assert_eq!(n.get(64500), Some("EXAMPLE-NET"));
        assert_eq!(n.get(64501), Some("ORPHAN-AS"));
        assert_eq!(n.get(1), None);
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn org2info_sections_may_come_in_either_order() {
        let text = "\
# format:aut|changed|aut_name|org_id|opaque_id|source
131279|20170208|STAR-KP|STAR-KP-APNIC||APNIC
# format:org_id|changed|org_name|country|source
STAR-KP-APNIC|20170208|Star Joint Venture|KP|APNIC
";
        let (n, _) = AsNames::parse(text, "f").unwrap();
        assert_eq!(n.get(131279), Some("Star Joint Venture"));
    }

    #[test]
    fn a_plain_list_takes_asn_then_name() {
        let text = "\u{feff}131279 Star Joint Venture\nAS64500\tExample Net, US\n# comment\n\n";
        let (n, skipped) = AsNames::parse(text, "asnames.txt").unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(n.get(131279), Some("Star Joint Venture"));
        assert_eq!(n.get(64500), Some("Example Net, US"));
    }

    #[test]
    fn malformed_lines_are_skipped_with_file_and_line() {
        let text = "\
# format:org_id|changed|org_name|country|source
ORG-A|20170208|Org A|KP|APNIC
ORG-B|oops
# format:aut|changed|aut_name|org_id|opaque_id|source
64500|20170208|A|ORG-A||APNIC
x64501|20170208|B|ORG-A||APNIC
";
        let (n, skipped) = AsNames::parse(text, "as-org2info.txt").unwrap();
        let lines: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "as-org2info.txt:3: expected `org_id|changed|org_name|country|source`, found 2 field(s)",
                "as-org2info.txt:6: bad AS number \"x64501\"",
            ]
        );
        assert_eq!(n.get(64500), Some("Org A"));
        let (_, skipped) = AsNames::parse("64500 A\nnot-a-number B\n7\n", "l.txt").unwrap();
        let lines: Vec<String> = skipped.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "l.txt:2: bad AS number \"not-a-number\"",
                "l.txt:3: expected `ASN name`, found no name"
            ]
        );
        // Nothing usable at all: refused.
        assert!(matches!(
            AsNames::parse("junk\n", "l.txt"),
            Err(InputError::NothingUsable { .. })
        ));
    }

    #[test]
    fn the_published_gzip_file_loads_with_latin1_bytes() {
        let mut bytes = ORG2INFO.replace("Star Joint", "Caf\u{1}").into_bytes();
        // A Latin-1 é where the placeholder is: the name is kept.
        let at = bytes.iter().position(|&b| b == 1).unwrap();
        bytes[at] = 0xe9;
        let dir = std::env::temp_dir().join(format!("asnames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("20241001.as-org2info.txt.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&bytes).unwrap();
        std::fs::write(&path, e.finish().unwrap()).unwrap();
        let (n, skipped) = AsNames::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(n.get(131279), Some("Caf\u{fffd} Venture Co. Ltd."));
        assert_eq!(n.len(), 3);
    }
}
