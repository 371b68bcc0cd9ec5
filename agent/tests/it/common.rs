//! A tiny network-namespace lab for the agent's integration tests:
//!
//! ```text
//! prober (192.0.2.1) ── (192.0.2.2) r1 (198.51.100.1) ── (198.51.100.2) r2 (203.0.113.1) ── (203.0.113.2) target
//! ```
//!
//! The prober's only route is 198.18.0.0/15 towards r1, so nothing it sends
//! can leave the lab. `target` answers for whole /24s via `local` routes.
//! Namespaces come from `darkwatch-netlab` (per-run prefix, torn down by
//! `Drop`, also when a test fails).

use std::process::{Command, Output};

use darkwatch_netlab::{Error, Namespaces};

pub struct Lab {
    /// Namespace names, for `ip -n` and `ip netns exec`.
    pub prober: String,
    pub r1: String,
    pub r2: String,
    ns: Namespaces,
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    darkwatch_netlab::netns::run(&mut cmd, &format!("ip {}", args.join(" "))).map(drop)
}

impl Lab {
    /// Builds the lab, or explains why it cannot (not root, no `ip netns`).
    pub fn try_new() -> Result<Lab, Error> {
        let mut ns = Namespaces::new();
        ns.add(&["p", "r1", "r2", "t"])?;
        let links = [
            ("p", "192.0.2.1/30", "r1", "192.0.2.2/30"),
            ("r1", "198.51.100.1/30", "r2", "198.51.100.2/30"),
            ("r2", "203.0.113.1/30", "t", "203.0.113.2/30"),
        ];
        for (i, (a, a_ip, b, b_ip)) in links.iter().enumerate() {
            let (ia, ib) = (format!("l{i}a"), format!("l{i}b"));
            ns.veth((a, &ia), (b, &ib))?;
            ns.ip(a, &["addr", "add", a_ip, "dev", &ia])?;
            ns.ip(b, &["addr", "add", b_ip, "dev", &ib])?;
        }
        ns.ip("p", &["route", "add", "198.18.0.0/15", "via", "192.0.2.2"])?;
        ns.ip(
            "r1",
            &["route", "add", "198.18.0.0/15", "via", "198.51.100.2"],
        )?;
        ns.ip(
            "r2",
            &["route", "add", "198.18.0.0/15", "via", "203.0.113.2"],
        )?;
        ns.ip(
            "r2",
            &["route", "add", "192.0.2.0/30", "via", "198.51.100.1"],
        )?;
        ns.ip("t", &["route", "add", "192.0.2.0/30", "via", "203.0.113.1"])?;
        for r in ["r1", "r2"] {
            // Time-exceeded and unreachable messages must not be rate-limited,
            // or traces become flaky.
            ns.sysctl(r, &["net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"])?;
        }
        Ok(Lab {
            prober: ns.name("p"),
            r1: ns.name("r1"),
            r2: ns.name("r2"),
            ns,
        })
    }

    /// The lab, or `None` when it cannot be built outside CI (the test then
    /// skips). With `CI=true` a lab that cannot be built is a failure.
    pub fn or_skip() -> Option<Lab> {
        darkwatch_netlab::or_skip(
            "the namespace lab (needs root and `ip netns`)",
            Lab::try_new(),
        )
    }

    /// Makes the target namespace answer for every address of `prefix`.
    pub fn respond(&self, prefix: &str) {
        self.ns
            .ip("t", &["route", "add", "local", prefix, "dev", "lo"])
            .unwrap();
    }

    /// Adds a route of `kind` (`unreachable`, `blackhole`, ...) on a router
    /// (its namespace name, `lab.r1` or `lab.r2`).
    pub fn route(&self, router: &str, kind: &str, prefix: &str) {
        ip(&["-n", router, "route", "add", kind, prefix]).unwrap();
    }

    /// Runs the agent binary in the prober namespace.
    pub fn agent(&self, args: &[&str]) -> Output {
        self.ns
            .command("p", env!("CARGO_BIN_EXE_darkwatch-agent"))
            .args(args)
            .output()
            .expect("run darkwatch-agent")
    }
}

/// Parses the JSON lines of `probe --json`.
/// Rows of `sql` run on the SQLite database at `db_path` by the `sqlite3`
/// shell, one `|`-separated line per row.
pub fn sqlite_rows(db_path: &std::path::Path, sql: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(db_path)
        .arg(sql)
        .output()
        .expect("sqlite3 (apt install sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
