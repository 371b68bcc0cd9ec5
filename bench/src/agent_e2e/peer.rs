//! The peer: fping over the same space, from the same namespace.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use darkwatch_netlab::Namespaces;
use ipnet::Ipv4Net;
use nix::sys::resource::{getrusage, UsageWho};

use super::{PeerRun, NODE};

/// fping, from the same namespace, over one address (`.1`) of every /24
/// of `space`, in lists of at most 32,768 (fping 5.1 runs out of sequence
/// numbers above ~65k): a round's probes, by a tool that does nothing else.
pub(super) fn fping_peer(ns: &Namespaces, space: Ipv4Net, dir: &Path) -> Result<PeerRun> {
    let first = u32::from(space.network()) >> 8;
    let n = 1u32 << (24 - space.prefix_len().min(24));
    let (mut wall, mut cpu, mut answered) = (0.0, 0.0, 0u64);
    for (i, part) in (0..n).collect::<Vec<_>>().chunks(32_768).enumerate() {
        let list = dir.join(format!("fping-{i}.txt"));
        let text: String = part
            .iter()
            .map(|b| format!("{}\n", Ipv4Addr::from(((first + b) << 8) | 1)))
            .collect();
        std::fs::write(&list, text)?;
        let before = getrusage(UsageWho::RUSAGE_CHILDREN)?;
        let t = Instant::now();
        let mut c = ns.command(NODE, "fping");
        c.args(["-a", "-q", "-i", "0", "-r", "0", "-t", "1000", "-f"])
            .arg(&list);
        let out = c.output().context("run fping (apt-get install fping)")?;
        wall += t.elapsed().as_secs_f64();
        let after = getrusage(UsageWho::RUSAGE_CHILDREN)?;
        let secs = |u: &nix::sys::resource::Usage| {
            let (a, b) = (u.user_time(), u.system_time());
            a.tv_sec() as f64
                + a.tv_usec() as f64 / 1e6
                + b.tv_sec() as f64
                + b.tv_usec() as f64 / 1e6
        };
        cpu += secs(&after) - secs(&before);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("not enough sequence numbers") {
            bail!("fping: {}", stderr.trim());
        }
        answered += String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
    }
    Ok(PeerRun {
        addresses: u64::from(n),
        wall_s: wall,
        cpu_s: cpu,
        answered,
    })
}
