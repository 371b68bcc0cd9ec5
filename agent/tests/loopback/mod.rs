//! A network namespace whose only interface is loopback, and the real
//! collector run inside it: shared by the agent tests that run the real
//! agent against the real collector where no packet can leave
//! (`policy.rs`, `spool_crash.rs`). Each test binary uses a subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A network namespace with only `lo`, removed on drop.
pub struct Netns(pub String);

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("dwt{}{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace, or None (skip) outside CI when it cannot be made.
    pub fn or_skip(tag: &str) -> Option<Netns> {
        match Netns::new(tag) {
            Ok(ns) => Some(ns),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("cannot create a network namespace in CI: {e}")
            }
            Err(e) => {
                eprintln!("skipping: cannot create a network namespace (needs root): {e}");
                None
            }
        }
    }

    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
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

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.0]) {
            eprintln!("cannot remove namespace {}: {e}", self.0);
        }
    }
}

/// A workspace binary next to this test's executable.
pub fn workspace_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the collector in `ns` listening on `listen` (`127.0.0.1:0` for
/// any free port) and returns it with the URL it announces.
pub fn collector_in(ns: &Netns, bin: &Path, db: &str, listen: &str) -> (Killed, String) {
    let mut child = ns
        .cmd(bin)
        .args(["serve", "--db", db, "--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start collector");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("darkwatch-collector listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("collector address");
    (Killed(child), url)
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
