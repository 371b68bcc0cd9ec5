//! The published input formats darkwatch reads: RIR delegated-stats files
//! ([`delegated`]), CAIDA prefix-to-AS files ([`pfx2as`]) and plain address
//! and CIDR lists ([`addrlist`]), and AS names for display ([`asnames`]:
//! CAIDA's as-org2info or a plain `ASN name` list). Agent and collector both parse through here,
//! so one file yields the same prefixes on either side.
//!
//! Every parser follows the same rules. A line that cannot be parsed is
//! skipped and reported as a [`LineError`] (`file:line: reason`); the rest of
//! the file is used. The whole file is refused ([`InputError::NothingUsable`])
//! only when it has broken lines and not one usable line. A well-formed file
//! that simply holds nothing for the caller (no records for the requested
//! country, only comments) is not an error: the caller gets no items and
//! decides. Parsing is pure; the `read`/`load` functions only add file reading.
//!
//! Files are read as published ([`text`]): gzip, bzip2, xz or zstd by their
//! magic bytes, a byte-order mark skipped, and bytes that are not UTF-8
//! tolerated wherever they do not spoil a field that is used.
//! [`special`] names the special-purpose address blocks (RFC 6890) that no
//! registry hands out, for callers that check what a file brought in.

use std::fmt;
use std::path::Path;

pub mod addrlist;
pub mod asnames;
pub mod delegated;
pub mod pfx2as;
pub mod special;
pub mod text;

/// How many skipped lines [`report_skipped`] names one by one.
pub const MAX_REPORTED_LINES: usize = 10;

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {why}")]
pub struct LineError {
    /// File name (or other label) the line came from.
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

/// What a parser kept, and the lines it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub items: Vec<T>,
    /// Lines that could not be parsed, in file order.
    pub skipped: Vec<LineError>,
}

/// Why a whole file was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decompress {path}: {why}")]
    Decompress { path: String, why: String },
    #[error("{source_name}: nothing usable, {}", Summary(.skipped))]
    NothingUsable {
        source_name: String,
        skipped: Vec<LineError>,
    },
}

/// The first few skipped lines, for the one-line message of `NothingUsable`.
struct Summary<'a>(&'a [LineError]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        write!(f, "{} line(s) refused: ", self.0.len())?;
        for (i, e) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "; ...")?;
        }
        Ok(())
    }
}

/// Hands the skipped lines to `emit` as log messages: the first
/// [`MAX_REPORTED_LINES`] one by one, then one line with the count of the
/// rest, so a badly broken file does not flood the log.
pub fn report_skipped(skipped: &[LineError], mut emit: impl FnMut(String)) {
    for e in skipped.iter().take(MAX_REPORTED_LINES) {
        emit(format!("skipped {e}"));
    }
    if skipped.len() > MAX_REPORTED_LINES {
        emit(format!(
            "skipped {} more unparseable line(s) of {}",
            skipped.len() - MAX_REPORTED_LINES,
            skipped[0].source_name
        ));
    }
}

/// Collects items and skipped lines while a parser walks a file.
pub(crate) struct Collector<'a> {
    source_name: &'a str,
    skipped: Vec<LineError>,
    /// Lines that parsed (whether or not they produced an item).
    usable: usize,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(source_name: &'a str) -> Self {
        Collector {
            source_name,
            skipped: Vec::new(),
            usable: 0,
        }
    }

    pub(crate) fn skip(&mut self, line: usize, why: String) {
        self.skipped.push(LineError {
            source_name: self.source_name.to_string(),
            line,
            why,
        });
    }

    pub(crate) fn usable(&mut self) {
        self.usable += 1;
    }

    /// The skipped lines, or `NothingUsable` if nothing else was there.
    pub(crate) fn finish(self) -> Result<Vec<LineError>, InputError> {
        if self.usable == 0 && !self.skipped.is_empty() {
            return Err(InputError::NothingUsable {
                source_name: self.source_name.to_string(),
                skipped: self.skipped,
            });
        }
        Ok(self.skipped)
    }
}

/// Reads a whole file as text (decompressed, see [`text`]), for the
/// `read`/`load` functions.
pub fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: path.display().to_string(),
        source,
    })?;
    text::decode(bytes).map_err(|why| InputError::Decompress {
        path: path.display().to_string(),
        why,
    })
}

/// The lines of `text` with their 1-based numbers, trimmed, without a
/// leading byte-order mark, blank lines and lines that are comments as a
/// whole.
pub(crate) fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text::strip_bom(text)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: usize) -> LineError {
        LineError {
            source_name: "f.txt".into(),
            line,
            why: format!("bad {line}"),
        }
    }

    #[test]
    fn line_errors_read_file_colon_line() {
        assert_eq!(err(7).to_string(), "f.txt:7: bad 7");
    }

    #[test]
    fn nothing_usable_names_the_first_errors() {
        let e = InputError::NothingUsable {
            source_name: "f.txt".into(),
            skipped: (1..=5).map(err).collect(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("f.txt: nothing usable, 5 line(s) refused: f.txt:1: bad 1; f.txt:2: bad 2; f.txt:3: bad 3; ..."), "{msg}");
        assert!(!msg.contains("bad 4"), "{msg}");
        assert_eq!(msg.lines().count(), 1);
    }

    #[test]
    fn skipped_lines_are_reported_up_to_a_limit() {
        let mut lines = Vec::new();
        report_skipped(&(1..=3).map(err).collect::<Vec<_>>(), |m| lines.push(m));
        assert_eq!(
            lines,
            [
                "skipped f.txt:1: bad 1",
                "skipped f.txt:2: bad 2",
                "skipped f.txt:3: bad 3"
            ]
        );
        let mut lines = Vec::new();
        report_skipped(&(1..=25).map(err).collect::<Vec<_>>(), |m| lines.push(m));
        assert_eq!(lines.len(), MAX_REPORTED_LINES + 1);
        assert_eq!(lines[9], "skipped f.txt:10: bad 10");
        assert_eq!(lines[10], "skipped 15 more unparseable line(s) of f.txt");
    }

    #[test]
    fn a_file_is_refused_only_without_any_usable_line() {
        let mut c = Collector::new("f");
        c.skip(1, "x".into());
        assert!(matches!(c.finish(), Err(InputError::NothingUsable { .. })));
        let mut c = Collector::new("f");
        c.skip(1, "x".into());
        c.usable();
        assert_eq!(c.finish().unwrap().len(), 1);
        // Nothing at all, nothing broken: the caller decides.
        assert!(Collector::new("f").finish().unwrap().is_empty());
    }
}
