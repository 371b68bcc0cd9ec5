//! Bytes of a published file to text, as the files are published.
//!
//! CAIDA ships pfx2as gzip-compressed and the RIRs offer `.gz` and `.bz2`
//! copies beside the plain ones, so a file is decompressed when its first
//! bytes are a gzip, bzip2, xz or zstd magic number. The magic bytes decide,
//! not the name: a renamed or re-downloaded file is read the same way, and a
//! plain file called `.gz` is not refused. Concatenated members (as `cat
//! a.gz b.gz` makes) are all read. A leading byte-order mark is dropped.
//!
//! Bytes that are not UTF-8 (a Latin-1 name in a comment or an opaque field)
//! do not refuse the file: they become U+FFFD, the line is read like any
//! other, and only a line whose used fields they spoil is skipped, with a
//! note saying why ([`encoding_note`]).

use std::io::Read;

/// Largest decompressed size accepted: far above any published file (the
/// NRO combined file is about 40 MB, pfx2as about 30 MB), low enough that a
/// corrupt or hostile file cannot fill memory.
pub const MAX_DECOMPRESSED: u64 = 2 << 30;

/// The compression a file is in, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Recognises the magic number at the start of `bytes`.
    pub fn sniff(bytes: &[u8]) -> Compression {
        match bytes {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            // "BZh" and a block size digit.
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Compression::Bzip2,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Decompresses `bytes` if they start with a known magic number; plain
/// bytes are returned as they are. The error is the decoder's own message.
pub fn decompress(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let kind = Compression::sniff(&bytes);
    let reader: Box<dyn Read + '_> = match kind {
        Compression::None => return Ok(bytes),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(&bytes[..])),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(&bytes[..])),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&bytes[..])
                .map_err(|e| format!("{} data: {e}", kind.name()))?,
        ),
    };
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    reader
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{} data: {e}", kind.name()))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(format!(
            "{} data expands beyond {} bytes",
            kind.name(),
            MAX_DECOMPRESSED
        ));
    }
    Ok(out)
}

/// UTF-8 text of `bytes`, invalid sequences replaced by U+FFFD, without a
/// leading byte-order mark.
pub fn to_text(bytes: Vec<u8>) -> String {
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// `text` without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `why`, with a note when `line` held bytes that were not UTF-8: the
/// reason a field is unreadable is then the file's encoding, not its value.
pub fn encoding_note(line: &str, why: String) -> String {
    if line.contains('\u{fffd}') {
        format!("{why} (the line has bytes that are not UTF-8, shown as \u{fffd})")
    } else {
        why
    }
}

/// Decompressed, decoded text of a file's bytes (see the module docs).
pub fn decode(bytes: Vec<u8>) -> Result<String, String> {
    decompress(bytes).map(to_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &str = "# pfx2as\n175.45.176.0\t24\t131279\n";

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn bzip2(b: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn xz(b: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zstd(b: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(b, 3).unwrap()
    }

    #[test]
    fn each_compression_is_recognised_by_its_magic_bytes() {
        for (kind, bytes) in [
            (Compression::Gzip, gzip(TEXT.as_bytes())),
            (Compression::Bzip2, bzip2(TEXT.as_bytes())),
            (Compression::Xz, xz(TEXT.as_bytes())),
            (Compression::Zstd, zstd(TEXT.as_bytes())),
            (Compression::None, TEXT.as_bytes().to_vec()),
        ] {
            assert_eq!(Compression::sniff(&bytes), kind);
            assert_eq!(decode(bytes).unwrap(), TEXT, "{kind:?}");
        }
    }

    #[test]
    fn concatenated_members_are_all_read() {
        let mut two = gzip(b"a\n");
        two.extend(gzip(b"b\n"));
        assert_eq!(decode(two).unwrap(), "a\nb\n");
        let mut two = bzip2(b"a\n");
        two.extend(bzip2(b"b\n"));
        assert_eq!(decode(two).unwrap(), "a\nb\n");
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_the_format() {
        let mut b = gzip(TEXT.as_bytes());
        b.truncate(b.len() - 12);
        let e = decode(b).unwrap_err();
        assert!(e.starts_with("gzip data: "), "{e}");
        let mut b = xz(TEXT.as_bytes());
        b.truncate(b.len() / 2);
        assert!(decode(b).unwrap_err().starts_with("xz data: "));
    }

    #[test]
    fn bom_and_latin1_bytes_do_not_refuse_the_text() {
        let mut b = "\u{feff}# Caf".as_bytes().to_vec();
        b.push(0xe9); // Latin-1 é
        b.extend(b"\n1.2.3.0\t24\t1\n");
        let t = decode(b).unwrap();
        assert_eq!(t, "# Caf\u{fffd}\n1.2.3.0\t24\t1\n");
        assert_eq!(strip_bom("\u{feff}x"), "x");
        assert_eq!(
            encoding_note("1.2.\u{fffd}", "bad".into()),
            "bad (the line has bytes that are not UTF-8, shown as \u{fffd})"
        );
        assert_eq!(encoding_note("1.2.3", "bad".into()), "bad");
    }
}
