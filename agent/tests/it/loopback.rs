//! A network namespace whose only interface is loopback, and the real
//! collector run inside it: shared by the agent tests that run the real
//! agent against the real collector where no packet can leave
//! (`policy.rs`, `spool_crash.rs`); `v6hitlist.rs` uses its CLI helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use darkwatch_netlab::{announced_url, Namespaces};

pub use darkwatch_netlab::KillOnDrop as Killed;

/// A network namespace with only `lo`, removed on drop.
pub struct Netns {
    ns: Namespaces,
    node: String,
}

impl Netns {
    pub fn new(tag: &str) -> Result<Netns, darkwatch_netlab::Error> {
        let mut ns = Namespaces::new();
        ns.add(&[tag])?;
        Ok(Netns {
            ns,
            node: tag.to_string(),
        })
    }

    /// The namespace, or None (skip) outside CI when it cannot be made.
    pub fn or_skip(tag: &str) -> Option<Netns> {
        darkwatch_netlab::or_skip("a network namespace (needs root)", Netns::new(tag))
    }

    /// The namespace's name (for `darkwatch_netlab::netns::enter`).
    pub fn name(&self) -> String {
        self.ns.name(&self.node)
    }

    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.ns.command(&self.node, program)
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self
            .cmd(program)
            .args(args)
            .output()
            .expect("run in namespace");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// `darkwatch-collector`, built by `cargo build --workspace`: None (skip)
/// outside CI when it is missing.
pub fn collector_bin() -> Option<PathBuf> {
    darkwatch_netlab::or_skip(
        "darkwatch-collector",
        darkwatch_netlab::workspace_bin("darkwatch-collector"),
    )
}

/// Starts the collector in `ns` listening on `listen` (`127.0.0.1:0` for
/// any free port) and returns it with the URL it announces.
pub fn collector_in(ns: &Netns, bin: &Path, db: &str, listen: &str) -> (Killed, String) {
    let child = ns
        .cmd(bin)
        .args(["serve", "--db", db, "--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start collector");
    let mut collector = Killed(child);
    let url = announced_url(&mut collector.0, Duration::from_secs(60)).expect("collector address");
    (collector, url)
}

pub fn cli(bin: &Path, db: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .args(["--db", db])
        .env_remove("DARKWATCH_DB")
        .output()
        .expect("collector CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
