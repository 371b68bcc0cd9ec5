//! Input files reloaded while the collector runs, because they are
//! republished (CAIDA's pfx2as daily) and a restart to pick them up would
//! cost the correlation's state.
//!
//! A [`Reloading`] holds one file's parsed data and the file's stamp (size
//! and modification time) when it was read. [`Reloading::check`] compares
//! the stamp with the file's and, when it changed, parses it again with the
//! input's own function: a good file replaces the data (a new generation,
//! which tells users to rebuild what they derived from it), a bad one
//! keeps the old data, logs why and counts a failure (exported as
//! `darkwatch_input_reload_failures_total`), and is not read again until it
//! changes. What to do with an outcome is decided by [`Held`], a pure
//! state machine that takes the stamp and the parse's result; only
//! `Reloading` touches the file system. Any input plugs in with its parse
//! function (pfx2as here; AS names the same way).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What tells a file changed: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl Stamp {
    /// The stamp of `path` now.
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
}

/// What a check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file has the stamp it was last read (or refused) at.
    Unchanged,
    /// The changed file was read: its data is generation `generation`.
    Loaded { generation: u64 },
    /// The changed file was refused (or could not be read): the data read
    /// before is kept.
    Kept { why: String },
}

/// One input's data and what the last read of its file saw. Pure.
#[derive(Debug)]
pub struct Held<T> {
    value: Arc<T>,
    stamp: Option<Stamp>,
    generation: u64,
    failures: u64,
}

impl<T> Held<T> {
    /// Data first read at `stamp` (generation 1).
    pub fn new(value: T, stamp: Option<Stamp>) -> Held<T> {
        Held {
            value: Arc::new(value),
            stamp,
            generation: 1,
            failures: 0,
        }
    }

    /// True if a file now at `now` must be read again.
    pub fn changed(&self, now: &Stamp) -> bool {
        self.stamp.as_ref() != Some(now)
    }

    /// The file at `stamp` parsed to `parsed`: replaces the data, or keeps
    /// it and counts the failure. Either way the stamp is remembered, so a
    /// bad file is refused once, not at every check.
    pub fn read(&mut self, stamp: Option<Stamp>, parsed: Result<T, String>) -> Outcome {
        self.stamp = stamp;
        match parsed {
            Ok(v) => {
                self.value = Arc::new(v);
                self.generation += 1;
                Outcome::Loaded {
                    generation: self.generation,
                }
            }
            Err(why) => {
                self.failures += 1;
                Outcome::Kept { why }
            }
        }
    }

    pub fn value(&self) -> &Arc<T> {
        &self.value
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Changed files refused so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

/// A parse function: the file's data, or why it cannot be used.
pub type Load<T> = fn(&Path) -> Result<T, String>;

/// An input file, read again when it changes (see the module docs).
pub struct Reloading<T> {
    path: PathBuf,
    /// What the file is, for logs and metrics (`pfx2as`).
    pub what: &'static str,
    load: Load<T>,
    held: Mutex<Held<T>>,
}

impl<T> Reloading<T> {
    /// Reads `path` with `load` for the first time; an error is the
    /// caller's to report (`serve` refuses to start).
    pub fn open(path: &Path, what: &'static str, load: Load<T>) -> Result<Reloading<T>, String> {
        let stamp = Stamp::of(path).ok();
        let value = load(path)?;
        Ok(Reloading {
            path: path.to_path_buf(),
            what,
            load,
            held: Mutex::new(Held::new(value, stamp)),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held<T>> {
        // A poisoned lock only means a panic elsewhere mid-update; the
        // data it guards is whole (replaced by one assignment).
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data now and its generation.
    pub fn current(&self) -> (Arc<T>, u64) {
        let h = self.held();
        (h.value().clone(), h.generation())
    }

    /// Changed files refused so far.
    pub fn failures(&self) -> u64 {
        self.held().failures()
    }

    /// Reads the file again if its stamp changed, and logs what came of it.
    pub fn check(&self) -> Outcome {
        let file = self.path.display();
        let stamp = match Stamp::of(&self.path) {
            Ok(s) => s,
            Err(e) => {
                // Gone or unreadable: keep the data, say so once.
                let mut h = self.held();
                if h.stamp.is_none() {
                    return Outcome::Unchanged;
                }
                let why = format!("{file}: {e}");
                tracing::error!(input = self.what, error = %why, "cannot read the changed input file; keeping the data loaded before");
                return h.read(None, Err(why));
            }
        };
        if !self.held().changed(&stamp) {
            return Outcome::Unchanged;
        }
        // Parsed outside the lock: readers keep the old data meanwhile.
        let parsed = (self.load)(&self.path);
        let outcome = self.held().read(Some(stamp), parsed);
        match &outcome {
            Outcome::Loaded { generation } => {
                tracing::info!(input = self.what, %file, generation, "reloaded the changed input file")
            }
            Outcome::Kept { why } => {
                tracing::error!(input = self.what, error = %why, "the changed input file is refused; keeping the data loaded before")
            }
            Outcome::Unchanged => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64) -> Stamp {
        Stamp {
            len,
            modified: None,
        }
    }

    #[test]
    fn a_good_file_replaces_the_data_and_a_bad_one_keeps_it_once() {
        let mut h = Held::new(1, Some(stamp(10)));
        assert!(!h.changed(&stamp(10)));
        assert!(h.changed(&stamp(11)));
        assert_eq!(
            h.read(Some(stamp(11)), Ok(2)),
            Outcome::Loaded { generation: 2 }
        );
        assert_eq!((**h.value(), h.generation()), (2, 2));
        let kept = h.read(Some(stamp(12)), Err("line 3: bad".into()));
        assert_eq!(
            kept,
            Outcome::Kept {
                why: "line 3: bad".into()
            }
        );
        assert_eq!((**h.value(), h.generation(), h.failures()), (2, 2, 1));
        // The refused file is not read again until it changes.
        assert!(!h.changed(&stamp(12)));
        assert!(h.changed(&stamp(13)));
    }

    fn parse(path: &Path) -> Result<u64, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim()
            .parse()
            .map_err(|_| format!("not a number: {text:?}"))
    }

    #[test]
    fn a_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "7").unwrap();
        let r = Reloading::open(&path, "n", parse).unwrap();
        assert_eq!(r.check(), Outcome::Unchanged);
        // A different size is a change even within the mtime's resolution.
        std::fs::write(&path, "42").unwrap();
        assert_eq!(r.check(), Outcome::Loaded { generation: 2 });
        assert_eq!((*r.current().0, r.current().1), (42, 2));
        std::fs::write(&path, "x1").unwrap();
        std::fs::write(&path, "oops").unwrap();
        assert!(matches!(r.check(), Outcome::Kept { .. }));
        assert_eq!((*r.current().0, r.failures()), (42, 1));
        assert_eq!(r.check(), Outcome::Unchanged);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r.check(), Outcome::Kept { .. }));
        assert_eq!(r.check(), Outcome::Unchanged);
        assert_eq!(*r.current().0, 42);
        assert!(Reloading::open(&dir.path().join("none"), "n", parse).is_err());
    }
}
