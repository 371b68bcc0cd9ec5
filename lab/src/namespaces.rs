//! A set of network namespaces named `{prefix}-{node}` under one per-run
//! prefix, torn down together.

use std::ffi::OsStr;
use std::process::{Command, Output};
use std::time::Duration;

use crate::netns;
use crate::Error;

/// Namespaces of one lab. Dropping it kills every process inside them and
/// deletes them; [`Namespaces::teardown`] does the same and reports failure.
#[derive(Debug)]
pub struct Namespaces {
    prefix: String,
    created: Vec<String>,
    torn_down: bool,
}

impl Namespaces {
    /// Removes stale labs of dead processes, then reserves a fresh prefix.
    /// Creates nothing yet.
    pub fn new() -> Namespaces {
        if let Err(e) = netns::clean(false) {
            tracing::warn!("cleaning stale labs: {e}");
        }
        Namespaces {
            prefix: netns::new_prefix(),
            created: Vec::new(),
            torn_down: false,
        }
    }

    /// The per-run prefix of every namespace name, e.g. `dw4242x0a1b`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Namespace name of `node`.
    pub fn name(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Every namespace created so far.
    pub fn names(&self) -> &[String] {
        &self.created
    }

    /// Creates a namespace per node (one `ip -batch`) and brings up their
    /// loopback. Names are recorded first, so a partial failure is undone
    /// by the teardown too.
    pub fn add(&mut self, nodes: &[&str]) -> Result<(), Error> {
        let names: Vec<String> = nodes.iter().map(|n| self.name(n)).collect();
        self.created.extend(names.iter().cloned());
        let adds: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
        netns::batch(None, &adds, false)?;
        for n in nodes {
            self.ip(n, &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// A veth pair from `a_if` in `a` to `b_if` in `b`, created directly in
    /// the namespaces (nothing appears in the root namespace, so interface
    /// names never clash with other labs), both ends up.
    pub fn veth(&self, (a, a_if): (&str, &str), (b, b_if): (&str, &str)) -> Result<(), Error> {
        let line = format!(
            "link add {a_if} netns {} type veth peer name {b_if} netns {}",
            self.name(a),
            self.name(b)
        );
        netns::batch(None, &[line], false)?;
        self.ip(a, &["link", "set", a_if, "up"])?;
        self.ip(b, &["link", "set", b_if, "up"])?;
        Ok(())
    }

    /// `ip -n {node} args...`; fails with ip's error message.
    pub fn ip(&self, node: &str, args: &[&str]) -> Result<Output, Error> {
        let ns = self.name(node);
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &ns]).args(args);
        netns::run(&mut cmd, &format!("ip -n {ns} {}", args.join(" ")))
    }

    /// One `ip -n {node} -batch` of `lines`.
    pub fn batch(&self, node: &str, lines: &[String]) -> Result<(), Error> {
        netns::batch(Some(&self.name(node)), lines, false)
    }

    /// Sets `key=value` sysctls inside `node`.
    pub fn sysctl(&self, node: &str, settings: &[&str]) -> Result<(), Error> {
        let mut cmd = self.command(node, "sysctl");
        cmd.args(["-q", "-w"]).args(settings);
        netns::run(&mut cmd, &format!("sysctl in {}", self.name(node))).map(drop)
    }

    /// `ip netns exec {ns} program`: add arguments and run it.
    pub fn command(&self, node: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"]).arg(self.name(node)).arg(program);
        c
    }

    /// Kills every process inside the namespaces, then deletes them. Errors
    /// if a namespace is still there afterwards. Runs once: later calls and
    /// the drop do nothing.
    pub fn teardown(&mut self) -> Result<(), Error> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        netns::kill_all_in(&self.created, Duration::from_secs(1));
        netns::remove_namespaces(&self.created)
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces::new()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!("tearing down lab {}: {e}", self.prefix);
            eprintln!("darkwatch lab {}: teardown failed: {e}", self.prefix);
        }
    }
}
