//! A tiny network-namespace lab for the agent's integration tests:
//!
//! ```text
//! prober (192.0.2.1) ── (192.0.2.2) r1 (198.51.100.1) ── (198.51.100.2) r2 (203.0.113.1) ── (203.0.113.2) target
//! ```
//!
//! The prober's only route is 198.18.0.0/15 towards r1, so nothing it sends
//! can leave the lab. `target` answers for whole /24s via `local` routes.
//! Namespaces are named `dwa{pid}x{n}{role}` and torn down by `Drop`, also
//! when a test fails.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    pub prober: String,
    pub r1: String,
    pub r2: String,
    pub target: String,
    created: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
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

fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), String> {
    ip(&[
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        &format!("{key}={value}"),
    ])
}

impl Lab {
    /// Builds the lab, or explains why it cannot (not root, no `ip netns`).
    pub fn try_new() -> Result<Lab, String> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = |role: &str| format!("dwa{}x{}{}", std::process::id(), n, role);
        let mut lab = Lab {
            prober: name("p"),
            r1: name("r1"),
            r2: name("r2"),
            target: name("t"),
            created: vec![],
        };
        for ns in [
            lab.prober.clone(),
            lab.r1.clone(),
            lab.r2.clone(),
            lab.target.clone(),
        ] {
            ip(&["netns", "add", &ns])?;
            lab.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let (p, r1, r2, t) = (
            lab.prober.clone(),
            lab.r1.clone(),
            lab.r2.clone(),
            lab.target.clone(),
        );
        // Links are created inside the namespaces, so interface names never
        // clash with other engineers' labs in the root namespace.
        let links = [
            (&p, "192.0.2.1/30", &r1, "192.0.2.2/30"),
            (&r1, "198.51.100.1/30", &r2, "198.51.100.2/30"),
            (&r2, "203.0.113.1/30", &t, "203.0.113.2/30"),
        ];
        for (i, (a, a_ip, b, b_ip)) in links.iter().enumerate() {
            let (ia, ib) = (format!("l{i}a"), format!("l{i}b"));
            ip(&[
                "-n", a, "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns", b,
            ])?;
            ip(&["-n", a, "addr", "add", a_ip, "dev", &ia])?;
            ip(&["-n", b, "addr", "add", b_ip, "dev", &ib])?;
            ip(&["-n", a, "link", "set", &ia, "up"])?;
            ip(&["-n", b, "link", "set", &ib, "up"])?;
        }
        ip(&[
            "-n",
            &p,
            "route",
            "add",
            "198.18.0.0/15",
            "via",
            "192.0.2.2",
        ])?;
        ip(&[
            "-n",
            &r1,
            "route",
            "add",
            "198.18.0.0/15",
            "via",
            "198.51.100.2",
        ])?;
        ip(&[
            "-n",
            &r2,
            "route",
            "add",
            "198.18.0.0/15",
            "via",
            "203.0.113.2",
        ])?;
        ip(&[
            "-n",
            &r2,
            "route",
            "add",
            "192.0.2.0/30",
            "via",
            "198.51.100.1",
        ])?;
        ip(&[
            "-n",
            &t,
            "route",
            "add",
            "192.0.2.0/30",
            "via",
            "203.0.113.1",
        ])?;
        for r in [&r1, &r2] {
            sysctl(r, "net.ipv4.ip_forward", "1")?;
            // Time-exceeded and unreachable messages must not be rate-limited,
            // or traces become flaky.
            sysctl(r, "net.ipv4.icmp_ratelimit", "0")?;
        }
        Ok(lab)
    }

    /// The lab, or `None` when it cannot be built outside CI (the test then
    /// skips). With `CI=true` a lab that cannot be built is a failure.
    pub fn or_skip() -> Option<Lab> {
        match Lab::try_new() {
            Ok(lab) => Some(lab),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("cannot build the namespace lab in CI: {e}")
            }
            Err(e) => {
                eprintln!(
                    "skipping: cannot build the namespace lab (needs root and `ip netns`): {e}"
                );
                None
            }
        }
    }

    /// Makes the target namespace answer for every address of `prefix`.
    pub fn respond(&self, prefix: &str) {
        ip(&[
            "-n",
            &self.target,
            "route",
            "add",
            "local",
            prefix,
            "dev",
            "lo",
        ])
        .unwrap();
    }

    /// Adds a route of `kind` (`unreachable`, `blackhole`, ...) on a router.
    pub fn route(&self, router: &str, kind: &str, prefix: &str) {
        ip(&["-n", router, "route", "add", kind, prefix]).unwrap();
    }

    /// Runs the agent binary in the prober namespace.
    pub fn agent(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.prober,
                env!("CARGO_BIN_EXE_darkwatch-agent"),
            ])
            .args(args)
            .output()
            .expect("run darkwatch-agent")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cannot remove namespace {ns}: {e}");
            }
        }
    }
}

/// Parses the JSON lines of `probe --json`.
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
