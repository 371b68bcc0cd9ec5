//! A real BGP speaker for labs: FRR's `bgpd`, one per namespace.
//!
//! darkwatch never parses BGP itself, and its BGP input is only believable
//! against routers that really speak it, so labs run FRR's `bgpd` (Debian
//! package `frr`, installed by `.ci/setup`) rather than replaying canned
//! messages. Each daemon gets its own directory for config, pid file, vty
//! socket and log, so several labs and the host's own FRR (if any) never
//! share state. `bgpd` runs alone (`-Z`: it speaks BGP and streams BMP but
//! installs nothing) or with a `zebra` of its own, which installs what BGP
//! learnt in its namespace's kernel, so that the data plane follows the
//! control plane. [`BgpdConfig::render`] is plain text generation (unit-tested
//! here); [`bgpd_command`] and [`vtysh_command`] only build commands (and
//! [`zebra_command`] hands its directory to zebra's user), the caller runs
//! them in its namespace.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Where Debian's `frr` package puts its daemons.
const FRR_DIR: &str = "/usr/lib/frr";

/// An eBGP neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub addr: Ipv4Addr,
    pub asn: u32,
}

/// A BMP station (RFC 7854) the router connects to and streams to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmpTarget {
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// One router's BGP setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpdConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<Neighbor>,
    /// Prefixes originated with `network` (CIDR text, e.g. `198.18.0.0/23`).
    pub networks: Vec<String>,
    pub bmp: Option<BmpTarget>,
}

impl BgpdConfig {
    /// The `bgpd.conf` text. Timers are short (keepalive 1 s, hold 3 s,
    /// connect retry 1 s) so sessions come up and go down within a lab
    /// round; `network` needs no matching kernel route (no zebra here) and
    /// eBGP needs no policy (FRR's default since 7.4 would drop everything).
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "router bgp {}", self.asn);
        let _ = writeln!(s, " bgp router-id {}", self.router_id);
        s += " no bgp ebgp-requires-policy\n no bgp network import-check\n";
        for n in &self.neighbors {
            let _ = writeln!(s, " neighbor {} remote-as {}", n.addr, n.asn);
            let _ = writeln!(s, " neighbor {} timers 1 3", n.addr);
            let _ = writeln!(s, " neighbor {} timers connect 1", n.addr);
        }
        if !self.networks.is_empty() || self.bmp.is_some() {
            s += " address-family ipv4 unicast\n";
            for p in &self.networks {
                let _ = writeln!(s, "  network {p}");
            }
            if self.bmp.is_some() {
                // BMP's pre-policy monitoring reads the Adj-RIB-In, which
                // FRR keeps only with soft reconfiguration.
                for n in &self.neighbors {
                    let _ = writeln!(s, "  neighbor {} soft-reconfiguration inbound", n.addr);
                }
            }
            s += " exit-address-family\n";
        }
        if let Some(b) = &self.bmp {
            // Pre-policy Adj-RIB-In: what the peers sent, as route
            // collectors stream it.
            s += " bmp targets darkwatch\n  bmp monitor ipv4 unicast pre-policy\n";
            let _ = writeln!(
                s,
                "  bmp connect {} port {} min-retry 100 max-retry 1000",
                b.addr, b.port
            );
            s += " exit\n";
        }
        s += "exit\n";
        s
    }
}

/// The `bgpd` binary, or an error naming the package to install.
pub fn bgpd_binary() -> Result<PathBuf, Error> {
    let p = Path::new(FRR_DIR).join("bgpd");
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::NotFound(format!(
            "{} is missing: install FRR (Debian package frr, see .ci/setup)",
            p.display()
        )))
    }
}

/// `bgpd` in the foreground with everything under `dir` (which must hold
/// `bgpd.conf`): see [`bgpd_args`].
pub fn bgpd_command(dir: &Path, zebra: bool) -> Result<Command, Error> {
    let mut c = Command::new(bgpd_binary()?);
    c.args(bgpd_args(dir, zebra));
    Ok(c)
}

/// `bgpd`'s arguments: pid file, vty socket and log (`bgpd.log`) in `dir`;
/// runs as the caller (`-S`), loads the BMP module and opens no vty TCP
/// port. With `zebra`, it installs its routes through the zebra of the
/// same `dir` ([`zebra_command`]); without, it talks to none (`-Z -n`).
pub fn bgpd_args(dir: &Path, zebra: bool) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["-S".into()];
    if zebra {
        v.push("-z".into());
        v.push(dir.join("zserv.api").into());
    } else {
        v.extend(["-Z".into(), "-n".into()]);
    }
    v.extend(["-M", "bmp", "-P", "0", "-f"].iter().map(OsString::from));
    v.push(dir.join("bgpd.conf").into());
    v.push("-i".into());
    v.push(dir.join("bgpd.pid").into());
    v.push("--vty_socket".into());
    v.push(dir.into());
    v.push("--log".into());
    v.push(format!("file:{}", dir.join("bgpd.log").display()).into());
    v
}

/// `zebra` in the foreground with its files in `dir`: it installs the
/// routes of the `bgpd` started with `zebra` in the same `dir` into the
/// kernel of the namespace it runs in, and leaves other routes alone.
/// zebra drops privileges to the `frr` user, so `dir` is handed to that
/// user first.
pub fn zebra_command(dir: &Path) -> Result<Command, Error> {
    let p = Path::new(FRR_DIR).join("zebra");
    if !p.is_file() {
        return Err(Error::NotFound(format!(
            "{} is missing: install FRR (Debian package frr, see .ci/setup)",
            p.display()
        )));
    }
    let user = nix::unistd::User::from_name("frr")
        .ok()
        .flatten()
        .ok_or_else(|| Error::NotFound("user frr (made by the frr package)".into()))?;
    let conf = dir.join("zebra.conf");
    let io = |what: &str| {
        let what = format!("{what} {}", dir.display());
        move |source| Error::Io { what, source }
    };
    std::fs::write(&conf, "").map_err(io("writing zebra.conf in"))?;
    std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(io("handing to user frr"))?;
    let mut c = Command::new(p);
    c.arg("-f")
        .arg(conf)
        .arg("-i")
        .arg(dir.join("zebra.pid"))
        .arg("-z")
        .arg(dir.join("zserv.api"))
        .arg("--vty_socket")
        .arg(dir)
        .args(["-P", "0", "--log"])
        .arg(format!("file:{}", dir.join("zebra.log").display()));
    Ok(c)
}

/// `vtysh` talking to the `bgpd` of `dir`, running `commands` in turn
/// (e.g. `configure terminal`, `router bgp 64500`, `neighbor X shutdown`).
pub fn vtysh_command(dir: &Path, commands: &[&str]) -> Command {
    let mut c = Command::new("vtysh");
    c.arg("--vty_socket").arg(dir).args(["-d", "bgpd"]);
    for cmd in commands {
        c.args(["-c", cmd]);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_announces_networks_peers_and_streams_bmp() {
        let cfg = BgpdConfig {
            asn: 64500,
            router_id: Ipv4Addr::new(203, 0, 113, 18),
            neighbors: vec![Neighbor {
                addr: Ipv4Addr::new(203, 0, 113, 17),
                asn: 64496,
            }],
            networks: vec!["198.18.0.0/23".into(), "198.18.2.0/24".into()],
            bmp: Some(BmpTarget {
                addr: Ipv4Addr::new(192, 0, 2, 1),
                port: 11019,
            }),
        };
        let text = cfg.render();
        for line in [
            "router bgp 64500",
            " bgp router-id 203.0.113.18",
            " no bgp ebgp-requires-policy",
            " neighbor 203.0.113.17 remote-as 64496",
            "  network 198.18.0.0/23",
            "  network 198.18.2.0/24",
            "  bmp connect 192.0.2.1 port 11019 min-retry 100 max-retry 1000",
            "  neighbor 203.0.113.17 soft-reconfiguration inbound",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        let no_bmp = BgpdConfig {
            bmp: None,
            networks: vec![],
            ..cfg
        }
        .render();
        assert!(!no_bmp.contains("bmp"), "{no_bmp}");
        assert!(!no_bmp.contains("address-family"), "{no_bmp}");
    }

    #[test]
    fn daemon_keeps_all_its_paths_in_its_directory() {
        let args = |zebra| -> Vec<String> {
            bgpd_args(Path::new("/run/lab/ctry"), zebra)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let with_zebra = args(true);
        assert!(with_zebra.iter().any(|a| a == "/run/lab/ctry/zserv.api"));
        assert!(!with_zebra.iter().any(|a| a == "-Z"));
        let args = args(false);
        for want in [
            "/run/lab/ctry/bgpd.conf",
            "/run/lab/ctry/bgpd.pid",
            "/run/lab/ctry",
            "file:/run/lab/ctry/bgpd.log",
            "-Z",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
        }
    }
}
