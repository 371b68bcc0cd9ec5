//! The sweep benchmark's own two-namespace lab: a prober namespace, a veth
//! pair, and a target namespace where a `local` route makes a whole prefix
//! answer pings and `blackhole` routes in `table local` silence chosen /24s.
//! Namespaces are named `dwb<pid>p` / `dwb<pid>t` and deleted on drop, also
//! when a benchmark fails.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;

/// Prober-side address of the veth link (RFC 5737 documentation space).
pub const PROBER_ADDR: &str = "192.0.2.1";
/// Target-side address of the veth link.
pub const TARGET_ADDR: &str = "192.0.2.2";

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running two-namespace lab.
#[derive(Debug)]
pub struct SweepLab {
    pub prober_ns: String,
    pub target_ns: String,
    /// The prober's veth interface (zmap sends on it).
    pub prober_if: String,
    /// MAC address of the target's veth end (zmap's `-G`).
    pub gateway_mac: String,
}

impl SweepLab {
    /// Builds the lab: `space` answers except the /24s in `silent`.
    pub fn build(tag: &str, space: Ipv4Net, silent: &BTreeSet<u32>) -> Result<SweepLab> {
        let base = format!("dwb{}{tag}", std::process::id());
        let lab = SweepLab {
            prober_ns: format!("{base}p"),
            target_ns: format!("{base}t"),
            prober_if: format!("{base}a"),
            gateway_mac: String::new(),
        };
        // From here on, a failure tears down whatever was created.
        run(&["ip", "netns", "add", &lab.prober_ns])?;
        let mut lab = lab;
        run(&["ip", "netns", "add", &lab.target_ns])?;
        let target_if = format!("{base}b");
        run(&[
            "ip",
            "link",
            "add",
            &lab.prober_if,
            "netns",
            &lab.prober_ns,
            "type",
            "veth",
            "peer",
            "name",
            &target_if,
            "netns",
            &lab.target_ns,
        ])?;
        let (p, t) = (lab.prober_ns.clone(), lab.target_ns.clone());
        let space_s = space.to_string();
        let batch = [
            vec!["ip", "-n", &p, "link", "set", "lo", "up"],
            vec!["ip", "-n", &t, "link", "set", "lo", "up"],
            vec![
                "ip",
                "-n",
                &p,
                "addr",
                "add",
                "192.0.2.1/24",
                "dev",
                &lab.prober_if,
            ],
            vec![
                "ip",
                "-n",
                &t,
                "addr",
                "add",
                "192.0.2.2/24",
                "dev",
                &target_if,
            ],
            vec!["ip", "-n", &p, "link", "set", &lab.prober_if, "up"],
            vec!["ip", "-n", &t, "link", "set", &target_if, "up"],
            vec!["ip", "-n", &p, "route", "add", &space_s, "via", TARGET_ADDR],
            vec![
                "ip", "-n", &t, "route", "add", "local", &space_s, "dev", "lo",
            ],
            vec![
                "ip",
                "netns",
                "exec",
                &t,
                "sysctl",
                "-qw",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=10000000",
                "net.ipv4.icmp_msgs_burst=10000000",
            ],
        ];
        for cmd in batch {
            run(&cmd)?;
        }
        // Blackholes for the silent fifth, in one `ip -batch` call.
        let mut script = String::new();
        for b in silent {
            let net = Ipv4Net::new(Ipv4Addr::from(b << 8), 24).context("a /24")?;
            script.push_str(&format!("route add blackhole {net} table local\n"));
        }
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), script)?;
        run(&["ip", "-n", &t, "-batch", &file.path().display().to_string()])?;
        let link = run(&["ip", "-n", &t, "-o", "link", "show", &target_if])?;
        lab.gateway_mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .context("no MAC on the target's veth")?
            .to_string();
        Ok(lab)
    }

    /// `ip netns exec <prober> args...` as a command.
    pub fn in_prober(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.prober_ns]).args(args);
        c
    }
}

impl Drop for SweepLab {
    fn drop(&mut self) {
        for ns in [&self.prober_ns, &self.target_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
