//! The on-disk spool: every batch is written here before it is sent, and
//! removed only after the collector acknowledged it.
//!
//! Layout under the spool directory:
//! - `outbox/{created_ms:015}-{batch_id}.json`: batches waiting to be sent,
//!   oldest first by name. Written to a temporary file, fsynced, then renamed,
//!   so a crash (even kill -9) leaves either the whole batch or nothing.
//! - `corrupt/`: files that could not be read back (torn by a storage fault,
//!   or edited by hand); moved aside with a log line, never sent, never lost.
//! - `rejected/`: batches the collector refused as invalid (HTTP 4xx other
//!   than 401/408/429), and copies of batches it stored only in part; kept
//!   for an operator to look at, each with a `NAME.reason` file saying why.
//! - `spaces/{digest}.json`: the prefix list of every block space a spooled
//!   packed round refers to, so that the round can be unpacked and resent
//!   plain if the collector no longer knows the space.
//!
//! When the outbox would grow past its size cap, the oldest batches are
//! dropped (and logged): during a long collector outage the newest rounds,
//! the ones that show what is happening now, are the ones worth keeping.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use darkwatch_schema::{BlockSpace, ReportBatch};
use ipnet::IpNet;

/// Writes `body` to `path` so that a crash (even kill -9 or a power cut)
/// leaves either the old file or the whole new one: a temporary file
/// (`.tmp-NAME` in the same directory) is written and fsynced, renamed over
/// `path`, and the directory is fsynced so that the rename itself is durable.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(".tmp-{}", name.to_string_lossy()));
    let mut f = File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("batch {0} alone is larger than the spool cap")]
    TooLarge(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A batch waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Debug)]
pub struct Spool {
    outbox: PathBuf,
    corrupt: PathBuf,
    rejected: PathBuf,
    spaces: PathBuf,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating if needed) the spool under `dir`, and removes the
    /// temporary files of writes that a crash interrupted.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let spool = Spool {
            outbox: dir.join("outbox"),
            corrupt: dir.join("corrupt"),
            rejected: dir.join("rejected"),
            spaces: dir.join("spaces"),
            max_bytes,
        };
        for d in [
            &spool.outbox,
            &spool.corrupt,
            &spool.rejected,
            &spool.spaces,
        ] {
            fs::create_dir_all(d).map_err(io(d))?;
        }
        for e in fs::read_dir(&spool.outbox).map_err(io(&spool.outbox))? {
            let e = e.map_err(io(&spool.outbox))?;
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                tracing::warn!(file = %e.path().display(), "removing a spool write interrupted by a crash");
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(spool)
    }

    /// Writes `batch` durably. Returns the number of old batches dropped to
    /// stay under the size cap.
    pub fn push(&self, batch: &ReportBatch) -> Result<usize, SpoolError> {
        let body = serde_json::to_vec(batch).expect("a ReportBatch always serializes");
        let size = body.len() as u64;
        if size > self.max_bytes {
            return Err(SpoolError::TooLarge(batch.batch_id.clone()));
        }
        let mut dropped = 0;
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        for old in &entries {
            if total + size <= self.max_bytes {
                break;
            }
            tracing::warn!(file = %old.path.display(), "spool full: dropping the oldest batch");
            fs::remove_file(&old.path).map_err(io(&old.path))?;
            total -= old.size;
            dropped += 1;
        }
        let name = format!("{:015}-{}.json", batch.created_ms.max(0), batch.batch_id);
        let dst = self.outbox.join(&name);
        write_atomic(&dst, &body).map_err(io(&dst))?;
        Ok(dropped)
    }

    /// Batches in the outbox, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.outbox).map_err(io(&self.outbox))? {
            let e = e.map_err(io(&self.outbox))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let size = e.metadata().map_err(io(&e.path()))?.len();
            v.push(Entry {
                path: e.path(),
                size,
            });
        }
        v.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(v)
    }

    /// Reads a spooled batch back. A file that does not parse is moved to
    /// `corrupt/` with a log line, and `None` is returned.
    pub fn read(&self, entry: &Entry) -> Result<Option<ReportBatch>, SpoolError> {
        let bytes = match fs::read(&entry.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(SpoolError::Io {
                    path: entry.path.clone(),
                    source: e,
                })
            }
        };
        match serde_json::from_slice::<ReportBatch>(&bytes) {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                tracing::error!(file = %entry.path.display(), error = %e, "unreadable spool file moved to corrupt/");
                self.move_to(&entry.path, &self.corrupt)?;
                Ok(None)
            }
        }
    }

    /// The collector acknowledged the batch: forget it.
    pub fn ack(&self, entry: &Entry) -> Result<(), SpoolError> {
        match fs::remove_file(&entry.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SpoolError::Io {
                path: entry.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Records the block space of `prefixes` (once per digest), before any
    /// batch packed against it is spooled.
    pub fn remember_space(&self, prefixes: &[IpNet]) -> Result<(), SpoolError> {
        let path = self
            .spaces
            .join(format!("{}.json", BlockSpace::new(prefixes).digest()));
        if path.exists() {
            return Ok(());
        }
        let body = serde_json::to_vec(prefixes).expect("prefixes always serialize");
        write_atomic(&path, &body).map_err(io(&path))
    }

    /// The block space named `digest`, if [`Self::remember_space`] kept it.
    pub fn space(&self, digest: &str) -> Option<BlockSpace> {
        if digest.len() != 16 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes = fs::read(self.spaces.join(format!("{digest}.json"))).ok()?;
        let prefixes: Vec<IpNet> = serde_json::from_slice(&bytes).ok()?;
        let space = BlockSpace::new(&prefixes);
        (space.digest() == digest).then_some(space)
    }

    /// Replaces a spooled batch by `batches` (the same data in another
    /// form): they are written before the old one is removed, so a crash in
    /// between leaves both, and resending is harmless when the new batches'
    /// ids are derived from the old one's.
    pub fn replace(&self, entry: &Entry, batches: &[ReportBatch]) -> Result<(), SpoolError> {
        for b in batches {
            self.push(b)?;
        }
        self.ack(entry)
    }

    /// The collector refused the batch as invalid: keep it aside, with
    /// `why` beside it.
    pub fn reject(&self, entry: &Entry, why: &str) -> Result<(), SpoolError> {
        self.write_reason(&entry.path, why)?;
        self.move_to(&entry.path, &self.rejected)
    }

    /// The collector stored the batch only in part: a copy goes aside, with
    /// `why` beside it (the caller then acknowledges the batch).
    pub fn keep_partial(&self, entry: &Entry, why: &str) -> Result<(), SpoolError> {
        let name = entry.path.file_name().unwrap_or_default();
        let body = fs::read(&entry.path).map_err(io(&entry.path))?;
        write_atomic(&self.rejected.join(name), &body).map_err(io(&self.rejected))?;
        self.write_reason(&entry.path, why)
    }

    fn write_reason(&self, path: &Path, why: &str) -> Result<(), SpoolError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".reason");
        let dst = self.rejected.join(name);
        write_atomic(&dst, format!("{why}\n").as_bytes()).map_err(io(&dst))
    }

    fn move_to(&self, path: &Path, dir: &Path) -> Result<(), SpoolError> {
        let dst = dir.join(path.file_name().unwrap_or_default());
        fs::rename(path, &dst).map_err(io(&dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::{BlockObservation, BlockState};

    fn batch(id: &str, created_ms: i64, n: usize) -> ReportBatch {
        let o = BlockObservation {
            campaign: "zz".into(),
            round: 1,
            block: "198.18.0.0/24".parse().unwrap(),
            state: BlockState::Up,
            probes: 1,
            replies: 1,
            belief: 0.99,
            availability: 0.9,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: created_ms,
        };
        ReportBatch {
            observations: vec![o; n],
            ..ReportBatch::new(id, created_ms)
        }
    }

    #[test]
    fn push_read_ack_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push(&batch("bbbbbbbb", 2_000, 1)).unwrap();
        s.push(&batch("aaaaaaaa", 1_000, 1)).unwrap();
        drop(s);
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let e = s.entries().unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            s.read(&e[0]).unwrap().unwrap().batch_id,
            "aaaaaaaa",
            "oldest first"
        );
        s.ack(&e[0]).unwrap();
        assert_eq!(s.entries().unwrap().len(), 1);
    }

    /// Refused and partly stored batches are kept in rejected/ with the
    /// reason beside them: never dropped without a word.
    #[test]
    fn rejected_and_partial_batches_keep_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push(&batch("aaaaaaaa", 1_000, 1)).unwrap();
        s.push(&batch("bbbbbbbb", 2_000, 1)).unwrap();
        let e = s.entries().unwrap();
        let name = |e: &Entry| e.path.file_name().unwrap().to_string_lossy().into_owned();
        let rejected = dir.path().join("rejected");
        let reason =
            |n: &str| std::fs::read_to_string(rejected.join(format!("{n}.reason"))).unwrap();

        s.reject(&e[0], "422: block outside the campaign").unwrap();
        assert!(rejected.join(name(&e[0])).exists());
        assert_eq!(reason(&name(&e[0])), "422: block outside the campaign\n");

        s.keep_partial(&e[1], "1 of its observations not stored: already stored")
            .unwrap();
        assert!(e[1].path.exists(), "the caller acknowledges it");
        assert_eq!(
            std::fs::read(rejected.join(name(&e[1]))).unwrap(),
            std::fs::read(&e[1].path).unwrap()
        );
        assert!(reason(&name(&e[1])).contains("already stored"));
        assert_eq!(s.entries().unwrap().len(), 1);
    }

    #[test]
    fn torn_files_go_to_corrupt_and_tmp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push(&batch("aaaaaaaa", 1_000, 3)).unwrap();
        let e = s.entries().unwrap();
        let full = fs::read(&e[0].path).unwrap();
        fs::write(&e[0].path, &full[..full.len() / 2]).unwrap();
        fs::write(
            dir.path().join("outbox/.tmp-000000000002000-cccccccc.json"),
            b"{\"ba",
        )
        .unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let e = s.entries().unwrap();
        assert_eq!(e.len(), 1, "tmp file is not an entry");
        assert!(s.read(&e[0]).unwrap().is_none());
        assert!(s.entries().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("corrupt")).unwrap().count(), 1);
        assert!(!dir
            .path()
            .join("outbox/.tmp-000000000002000-cccccccc.json")
            .exists());
    }

    #[test]
    fn spaces_are_kept_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        let prefixes: Vec<IpNet> = vec!["198.18.0.0/22".parse().unwrap()];
        let digest = BlockSpace::new(&prefixes).digest();
        assert!(s.space(&digest).is_none());
        s.remember_space(&prefixes).unwrap();
        s.remember_space(&prefixes).unwrap();
        assert_eq!(s.space(&digest).unwrap().len(), 4);
        assert!(s.space("../../etc/passwd").is_none());
        // A file whose contents do not match its name is not trusted.
        let other = BlockSpace::new(&["198.18.0.0/24".parse().unwrap()]).digest();
        fs::copy(
            dir.path().join(format!("spaces/{digest}.json")),
            dir.path().join(format!("spaces/{other}.json")),
        )
        .unwrap();
        assert!(s.space(&other).is_none());
    }

    #[test]
    fn full_spool_drops_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let one = serde_json::to_vec(&batch("aaaaaaaa", 1_000, 50))
            .unwrap()
            .len() as u64;
        let s = Spool::open(dir.path(), one * 3 + one / 2).unwrap();
        for (i, id) in ["aaaaaaa1", "aaaaaaa2", "aaaaaaa3"].iter().enumerate() {
            assert_eq!(s.push(&batch(id, 1_000 + i as i64, 50)).unwrap(), 0);
        }
        assert_eq!(s.push(&batch("aaaaaaa4", 1_004, 50)).unwrap(), 1);
        let ids: Vec<String> = s
            .entries()
            .unwrap()
            .iter()
            .map(|e| s.read(e).unwrap().unwrap().batch_id)
            .collect();
        assert_eq!(ids, ["aaaaaaa2", "aaaaaaa3", "aaaaaaa4"]);
    }
}
