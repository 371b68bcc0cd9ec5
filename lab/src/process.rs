//! The workspace's binaries as tests and tools run them: where they are,
//! the address a collector announces on stdout, and a child that dies with
//! its guard.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use crate::Error;

/// Path of a workspace binary next to the running test or tool: test
/// binaries live in `target/<profile>/deps/`, tools in `target/<profile>/`.
/// A crate's tests reach its own binaries through `CARGO_BIN_EXE_<name>`;
/// this finds the other crates' ones, which cargo does not build for them.
pub fn workspace_bin(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        what: "locating the running binary".into(),
        source,
    })?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "{name} not found next to {}: run `cargo build --workspace` first",
                exe.display()
            ))
        })
}

/// What `darkwatch-collector serve` prints once it listens.
const ANNOUNCE: &str = "darkwatch-collector listening on ";

/// Reads the URL a collector started with piped stdout announces. A thread
/// keeps draining stdout afterwards, so the collector never blocks on a full
/// pipe. `timeout` guards against a hung start; it is not a timing check.
pub fn announced_url(child: &mut Child, timeout: Duration) -> Result<String, Error> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::NotFound("the collector's stdout is not piped".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(ANNOUNCE) {
                let _ = tx.send(url.to_string());
            }
        }
    });
    rx.recv_timeout(timeout).map_err(|_| {
        Error::NotFound(format!(
            "the collector did not announce its address within {timeout:?} (exit: {:?})",
            child.try_wait().ok().flatten()
        ))
    })
}

/// A child process killed and reaped when the guard drops.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
