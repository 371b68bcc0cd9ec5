//! The lab's control plane: FRR's `bgpd` in `ctry` and `border`.
//!
//! The country (AS [`COUNTRY_ASN`]) announces its prefixes over eBGP to its
//! upstream `border` (AS [`UPSTREAM_ASN`]), which streams BMP to the
//! collector's listener over its own line to `hub`: the setup an operator
//! would point at darkwatch. Each daemon keeps config, pid file, vty socket
//! and log in its own directory under the run's directory. `border` also
//! runs zebra, which installs the routes BGP learnt; once
//! [`LabBgp::follow_bgp`] has removed the lab's static routes for the
//! country at `border`, the data plane follows the control plane, as it
//! did in 2014: a withdrawn prefix becomes unreachable. Daemons are started with [`Lab::spawn`], so
//! the lab's teardown kills them whatever happens to the test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use darkwatch_netlab::frr::{self, BgpdConfig, BmpTarget, Neighbor};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::plan::{COUNTRY_ASN, UPSTREAM_ASN};
use super::{Lab, LabError, Node, COLLECTOR_ADDR};

/// Running `bgpd`s of one lab. See the module docs.
#[derive(Debug)]
pub struct LabBgp<'a> {
    lab: &'a Lab,
    dir: PathBuf,
    /// (node, pid) of each running daemon.
    pids: Vec<(Node, i32)>,
}

impl Lab {
    /// Starts `bgpd` in `ctry` (announcing every country prefix) and in
    /// `border` (with zebra, peering with it and streaming BMP to the
    /// collector's `bmp_port`), with their files under `dir`.
    pub fn start_bgp(&self, dir: &Path, bmp_port: u16) -> Result<LabBgp<'_>, LabError> {
        let mut bgp = LabBgp {
            lab: self,
            dir: dir.to_path_buf(),
            pids: Vec::new(),
        };
        let link = &self.plan.links[self.plan.link_between(Node::Border, Node::Ctry)?];
        let addr = |n| {
            link.end(n)
                .map(|(_, a)| a)
                .ok_or(LabError::NoLink(Node::Border, Node::Ctry))
        };
        let (ctry, border) = (addr(Node::Ctry)?, addr(Node::Border)?);
        bgp.start_zebra(Node::Border)?;
        bgp.start(
            Node::Ctry,
            &BgpdConfig {
                asn: COUNTRY_ASN,
                router_id: ctry,
                neighbors: vec![Neighbor {
                    addr: border,
                    asn: UPSTREAM_ASN,
                }],
                networks: self
                    .country_prefixes()
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
                bmp: None,
            },
        )?;
        bgp.start(
            Node::Border,
            &BgpdConfig {
                asn: UPSTREAM_ASN,
                router_id: border,
                neighbors: vec![Neighbor {
                    addr: ctry,
                    asn: COUNTRY_ASN,
                }],
                networks: Vec::new(),
                bmp: Some(BmpTarget {
                    addr: COLLECTOR_ADDR,
                    port: bmp_port,
                }),
            },
        )?;
        Ok(bgp)
    }
}

impl LabBgp<'_> {
    fn node_dir(&self, node: Node) -> PathBuf {
        self.dir.join(format!("bgpd-{node}"))
    }

    /// The node with a zebra: its `bgpd` installs routes.
    const ZEBRA: Node = Node::Border;

    fn start_zebra(&mut self, node: Node) -> Result<(), LabError> {
        let dir = self.node_dir(node);
        fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        // zebra runs as user frr: it must get through the run's directory
        // (a 0700 temporary directory) to its own.
        let io = |source| LabError::Io {
            what: format!("opening {} to zebra", self.dir.display()),
            source,
        };
        let mode = fs::metadata(&self.dir).map_err(io)?.permissions().mode();
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(mode | 0o011)).map_err(io)?;
        let cmd = frr::zebra_command(&dir)?;
        self.run(node, cmd, &dir.join("zebra.out"))
    }

    fn run(&mut self, node: Node, mut cmd: Command, out: &Path) -> Result<(), LabError> {
        let io = |source| LabError::Io {
            what: format!("creating {}", out.display()),
            source,
        };
        let log = fs::File::create(out).map_err(io)?;
        let err = log.try_clone().map_err(io)?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = self.lab.spawn(node, cmd)?;
        self.pids.push((node, child.id() as i32));
        // Reap it in the background so a stopped daemon is no zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }

    fn start(&mut self, node: Node, cfg: &BgpdConfig) -> Result<(), LabError> {
        let dir = self.node_dir(node);
        let io = |what: &str| {
            let what = format!("{what} {}", dir.display());
            move |source| LabError::Io { what, source }
        };
        fs::create_dir_all(&dir).map_err(io("creating"))?;
        fs::write(dir.join("bgpd.conf"), cfg.render()).map_err(io("writing bgpd.conf in"))?;
        let cmd = frr::bgpd_command(&dir, node == Self::ZEBRA)?;
        self.run(node, cmd, &dir.join("bgpd.out"))
    }

    /// Hands the country's routes at `border` to BGP: removes the lab's
    /// static routes for them ([`Lab::withdraw`]; while they are there
    /// zebra prefers them), then waits until zebra has installed every
    /// country prefix learnt from `ctry`. From then on, what BGP withdraws
    /// is no longer reachable.
    pub fn follow_bgp(&self, timeout: Duration) -> Result<(), LabError> {
        let want = self.lab.country_prefixes();
        for p in &want {
            self.lab.withdraw(*p)?;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut cmd = self.lab.command(Self::ZEBRA, "ip");
            cmd.args(["-4", "route", "show", "proto", "bgp"]);
            let out = darkwatch_netlab::netns::run(&mut cmd, "ip route show proto bgp")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let installed = |p: &Ipv4Net| text.lines().any(|l| l.starts_with(&format!("{p} ")));
            if want.iter().all(installed) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Command {
                    what: "waiting for zebra to install the country's BGP routes".into(),
                    detail: format!("after {timeout:?}, border has: {text}"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops `node`'s `bgpd` as an operator would (SIGTERM: it closes its
    /// sessions with a NOTIFICATION).
    pub fn stop(&mut self, node: Node) -> Result<(), LabError> {
        let Some(i) = self.pids.iter().rposition(|(n, _)| *n == node) else {
            return Err(LabError::UnknownNode(format!("no bgpd running in {node}")));
        };
        let (_, pid) = self.pids.remove(i);
        // Only bgpd runs in nodes other than ZEBRA's; there, bgpd is the
        // second daemon (zebra stays, so its routes go as BGP withdraws).
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| LabError::Command {
            what: format!("stopping bgpd in {node}"),
            detail: e.to_string(),
        })
    }

    /// Runs vtysh `commands` against `node`'s `bgpd`; returns its output.
    pub fn vtysh(&self, node: Node, commands: &[&str]) -> Result<String, LabError> {
        let c = frr::vtysh_command(&self.node_dir(node), commands);
        let mut cmd = self.lab.command(node, c.get_program());
        cmd.args(c.get_args());
        let out = darkwatch_netlab::netns::run(&mut cmd, &format!("vtysh in {node}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The tail of every daemon's log, for a failing test's output.
    pub fn logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for (node, daemon) in [
            (Node::Ctry, "bgpd"),
            (Node::Border, "bgpd"),
            (Node::Border, "zebra"),
        ] {
            let log = fs::read_to_string(self.node_dir(node).join(format!("{daemon}.log")))
                .unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            s += &format!("--- {daemon} in {node}\n");
            for l in &all[all.len().saturating_sub(lines)..] {
                s += l;
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for LabBgp<'_> {
    /// Stops what still runs (the lab's teardown would, later).
    fn drop(&mut self) {
        for (_, pid) in self.pids.drain(..) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}
