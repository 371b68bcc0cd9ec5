//! Network-namespace primitives shared by darkwatch's agent tests, scenario
//! lab and benchmarks, with no knowledge of agents or collectors.
//!
//! [`Namespaces`] creates namespaces under a unique per-run prefix, links
//! them with veth pairs, configures them with `ip` batches, and deletes them
//! (after killing what runs inside) when dropped, also while a test panics.
//! Namespaces left by killed processes are found by the pid in their names
//! ([`parse_lab_name`]) and removed by [`clean_stale`]. [`or_skip`] is the
//! rule every lab test follows: skip where no lab can be built, except in CI.
//! [`workspace_bin`] and [`announced_url`] find and start the workspace's
//! binaries; [`checks`] holds what tests assert about their output for other
//! tools (promtool, log formats); [`frr`] configures and starts FRR's
//! `bgpd` for labs that need a real BGP speaker.

pub mod checks;
pub mod frr;
mod namespaces;
pub mod netns;
mod process;

use std::fmt::Display;

pub use namespaces::Namespaces;
pub use netns::{new_prefix, parse_lab_name};
pub use process::{announced_url, workspace_bin, KillOnDrop};

/// Errors of the system commands a lab runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
}

/// Removes labs whose creating process is dead; returns the namespaces removed.
pub fn clean_stale() -> Result<Vec<String>, Error> {
    netns::clean(false)
}

/// Removes every lab namespace, including those of live processes.
pub fn clean_all() -> Result<Vec<String>, Error> {
    netns::clean(true)
}

/// The CI rule for anything a lab test needs (a lab, a built binary): when
/// `built` failed, prints a SKIP line and returns `None` so the test skips,
/// except with `CI=true`, where it panics.
pub fn or_skip<T, E: Display>(what: &str, built: Result<T, E>) -> Option<T> {
    match built {
        Ok(v) => Some(v),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("cannot set up {what} and CI=true forbids skipping: {e}")
        }
        Err(e) => {
            eprintln!("SKIP: cannot set up {what} ({e}); set CI=true to make this fail");
            None
        }
    }
}
