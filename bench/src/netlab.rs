//! The sweep benchmark's two-namespace topology, on `darkwatch-netlab`: a
//! prober namespace, a veth pair, and a target namespace where a `local`
//! route makes a whole prefix answer pings and `blackhole` routes in
//! `table local` silence chosen /24s. The namespaces are deleted on drop,
//! also when a benchmark fails.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result};
use darkwatch_netlab::Namespaces;
use ipnet::Ipv4Net;

/// Prober-side address of the veth link (RFC 5737 documentation space).
pub const PROBER_ADDR: &str = "192.0.2.1";
/// Target-side address of the veth link.
pub const TARGET_ADDR: &str = "192.0.2.2";

const PROBER: &str = "prober";
const TARGET: &str = "target";
const TARGET_IF: &str = "veth-t";

/// A running two-namespace lab.
#[derive(Debug)]
pub struct SweepLab {
    ns: Namespaces,
    /// The prober's veth interface (zmap sends on it).
    pub prober_if: String,
    /// MAC address of the target's veth end (zmap's `-G`).
    pub gateway_mac: String,
}

impl SweepLab {
    /// Builds the lab: `space` answers except the /24s in `silent`.
    pub fn build(space: Ipv4Net, silent: &BTreeSet<u32>) -> Result<SweepLab> {
        // From here on, a failure tears down whatever was created.
        let mut lab = SweepLab {
            ns: Namespaces::new(),
            prober_if: "veth-p".into(),
            gateway_mac: String::new(),
        };
        let ns = &mut lab.ns;
        ns.add(&[PROBER, TARGET])?;
        ns.veth((PROBER, &lab.prober_if), (TARGET, TARGET_IF))?;
        let space_s = space.to_string();
        ns.ip(
            PROBER,
            &["addr", "add", "192.0.2.1/24", "dev", &lab.prober_if],
        )?;
        ns.ip(TARGET, &["addr", "add", "192.0.2.2/24", "dev", TARGET_IF])?;
        ns.ip(PROBER, &["route", "add", &space_s, "via", TARGET_ADDR])?;
        ns.ip(TARGET, &["route", "add", "local", &space_s, "dev", "lo"])?;
        ns.sysctl(
            TARGET,
            &[
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=10000000",
                "net.ipv4.icmp_msgs_burst=10000000",
            ],
        )?;
        // Blackholes for the silent fifth, in one `ip -batch` call.
        let mut script = Vec::new();
        for b in silent {
            let net = Ipv4Net::new(Ipv4Addr::from(b << 8), 24).context("a /24")?;
            script.push(format!("route add blackhole {net} table local"));
        }
        ns.batch(TARGET, &script)?;
        let link = ns.ip(TARGET, &["-o", "link", "show", TARGET_IF])?;
        lab.gateway_mac = String::from_utf8_lossy(&link.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .context("no MAC on the target's veth")?
            .to_string();
        Ok(lab)
    }

    /// `ip netns exec <prober> args...` as a command.
    pub fn in_prober(&self, args: &[&str]) -> Command {
        let mut c = self.ns.command(PROBER, args[0]);
        c.args(&args[1..]);
        c
    }
}
