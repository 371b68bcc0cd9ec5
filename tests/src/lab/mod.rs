//! The network-namespace lab every darkwatch test and demo runs in.
//!
//! `Lab::build` turns a [`Plan`] into namespaces, veth pairs, addresses and
//! routes; fault methods (withdraw, blackhole, link down, loss, isolation)
//! change it and undo the change; dropping the `Lab` (also while a test
//! panics) kills what runs inside and deletes every namespace. Labs left
//! behind by killed processes are found by the pid in their names and removed
//! by the next build or by `darkwatch-lab clean`. The namespace primitives
//! (naming, `ip` batches, teardown) are `darkwatch-netlab`'s; this module
//! adds the scenario topology and its faults; [`bgp`] adds its control
//! plane (real `bgpd`s in the country and its upstream).

pub mod bgp;
pub mod ping;
pub mod plan;
mod shape;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

use darkwatch_netlab::{netns, Namespaces};
use ipnet::Ipv4Net;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use bgp::LabBgp;
pub use darkwatch_netlab::parse_lab_name;
pub use ping::PingOutcome;
pub use plan::{
    Block, LabConfig, Link, LinkKind, Node, Plan, Route, COLLECTOR_ADDR, CONTROL_PREFIX,
    COUNTRY_ASN, COUNTRY_SPACE, UPSTREAM_ASN,
};

/// Errors of building, changing or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab config: {0}")]
    Config(String),
    #[error("unknown lab node {0:?}")]
    UnknownNode(String),
    #[error("no link between {0} and {1}")]
    NoLink(Node, Node),
    #[error("{0} is not a country prefix of this lab")]
    UnknownPrefix(Ipv4Net),
    #[error("{what}: {detail}")]
    Command { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported here: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Netlab(darkwatch_netlab::Error),
}

impl From<darkwatch_netlab::Error> for LabError {
    fn from(e: darkwatch_netlab::Error) -> Self {
        use darkwatch_netlab::Error as E;
        match e {
            E::Command { what, detail } => LabError::Command { what, detail },
            E::Io { what, source } => LabError::Io { what, source },
            e => LabError::Netlab(e),
        }
    }
}

/// Fault state the route plan is re-applied against.
#[derive(Debug, Default)]
struct Faults {
    down: BTreeSet<usize>,
    withdrawn: BTreeSet<Ipv4Net>,
    blackholes: BTreeSet<(Node, Ipv4Net)>,
}

/// A running lab. See the module docs.
#[derive(Debug)]
pub struct Lab {
    plan: Plan,
    ns: Namespaces,
    faults: Mutex<Faults>,
    /// Process-group ids of children started with [`Lab::spawn`].
    children: Mutex<Vec<i32>>,
    torn_down: bool,
}

/// nftables table holding loss rules in a namespace.
const NFT_TABLE: &str = "darkwatch_lab";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lab {
    /// Removes stale labs, then builds the lab described by `cfg`. On error,
    /// whatever was already created is removed again.
    pub fn build(cfg: LabConfig) -> Result<Lab, LabError> {
        let plan = Plan::new(cfg)?;
        let mut lab = Lab {
            plan,
            ns: Namespaces::new(),
            faults: Mutex::default(),
            children: Mutex::default(),
            torn_down: false,
        };
        // On error `lab` is dropped here, which removes the partial lab.
        lab.create()?;
        tracing::info!("lab {} is up", lab.prefix());
        Ok(lab)
    }

    fn create(&mut self) -> Result<(), LabError> {
        let nodes = self.plan.nodes();
        let names: Vec<String> = nodes.iter().map(|n| n.name()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.ns.add(&names)?;

        let mut running = Vec::new();
        for &n in &nodes {
            let mut cmd = self.command(n, "sysctl");
            cmd.arg("-q").arg("-w").args(self.plan.sysctls(n));
            running.push((
                netns::start(&mut cmd, &format!("sysctl in {}", self.namespace(n)))?,
                n,
            ));
        }
        for (child, n) in running {
            netns::finish(child, &format!("sysctl in {}", self.namespace(n)))?;
        }

        // Created directly in their namespaces: nothing appears in the root namespace.
        let veths: Vec<String> = self
            .plan
            .links
            .iter()
            .map(|l| {
                format!(
                    "link add {} netns {} type veth peer name {} netns {}",
                    l.b.name(),
                    self.namespace(l.a),
                    l.a.name(),
                    self.namespace(l.b)
                )
            })
            .collect();
        netns::batch(None, &veths, false)?;

        let mut running = Vec::new();
        for &n in &nodes {
            let ns = self.namespace(n);
            running.push(netns::start_batch(
                Some(&ns),
                &self.plan.setup_script(n),
                false,
            )?);
        }
        let mut first_err = None;
        for (child, what) in running {
            if let Err(e) = netns::finish(child, &what) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// The per-run prefix of every namespace name, e.g. `dw4242x0a1b`.
    pub fn prefix(&self) -> &str {
        self.ns.prefix()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Namespace name of `node` (`{prefix}-{node}`).
    pub fn namespace(&self, node: Node) -> String {
        self.ns.name(&node.name())
    }

    /// The VP nodes, `vp1` first.
    pub fn vps(&self) -> Vec<Node> {
        (1..=self.plan.config.vps).map(Node::Vp).collect()
    }

    pub fn vp_namespaces(&self) -> Vec<String> {
        self.vps().into_iter().map(|n| self.namespace(n)).collect()
    }

    /// Every namespace of this lab.
    pub fn namespaces(&self) -> Vec<String> {
        self.plan
            .nodes()
            .into_iter()
            .map(|n| self.namespace(n))
            .collect()
    }

    /// Where agents reach the collector (on `hub`'s loopback).
    pub fn collector_addr(&self) -> Ipv4Addr {
        COLLECTOR_ADDR
    }

    pub fn country_prefixes(&self) -> Vec<Ipv4Net> {
        self.plan.config.country_prefixes.clone()
    }

    /// The country's /24 blocks, in prefix order.
    pub fn blocks(&self) -> Vec<Ipv4Net> {
        self.plan.blocks.iter().map(|b| b.net).collect()
    }

    /// Exactly the addresses of `block` that answer pings (empty for a block
    /// that is not the country's).
    pub fn responsive_hosts(&self, block: Ipv4Net) -> Vec<Ipv4Addr> {
        self.plan
            .block(block)
            .map(|b| b.responsive.clone())
            .unwrap_or_default()
    }

    /// Some address of `block` that never answers.
    pub fn unresponsive_host(&self, block: Ipv4Net) -> Option<Ipv4Addr> {
        let b = self.plan.block(block)?;
        block.hosts().find(|h| !b.responsive.contains(h))
    }

    /// Prefix local to `edge`: answers while a VP's uplink works.
    pub fn control_prefix(&self) -> Ipv4Net {
        CONTROL_PREFIX
    }

    /// The source address of ICMP errors from `node` (edge, t1, t2, border)
    /// as a VP's traceroute sees it, whichever path is in use.
    pub fn router_hop_addr(&self, node: Node) -> Option<Ipv4Addr> {
        node.hop_addr()
    }

    /// A VP's data-path address: the source of its probes.
    pub fn vp_addr(&self, vp: u8) -> Result<Ipv4Addr, LabError> {
        self.vp_link_addr(vp, Node::Edge)
    }

    /// A VP's management-link address: the source of its reports.
    pub fn vp_mgmt_addr(&self, vp: u8) -> Result<Ipv4Addr, LabError> {
        self.vp_link_addr(vp, Node::Hub)
    }

    fn vp_link_addr(&self, vp: u8, peer: Node) -> Result<Ipv4Addr, LabError> {
        let node = self.node(Node::Vp(vp))?;
        let l = &self.plan.links[self.plan.link_between(node, peer)?];
        Ok(l.end(node).map(|(_, a)| a).unwrap_or(Ipv4Addr::UNSPECIFIED))
    }

    /// RIR delegated-stats text assigning the country prefixes to `cc`.
    pub fn delegated_stats(&self, cc: &str) -> String {
        self.plan.delegated_stats(cc)
    }

    /// CAIDA prefix-to-AS text for the country prefixes.
    pub fn pfx2as(&self) -> String {
        self.plan.pfx2as()
    }

    /// Human-readable topology with this lab's namespace names.
    pub fn describe(&self) -> String {
        format!(
            "lab {}\n{}",
            self.prefix(),
            self.plan.describe(&|n| self.namespace(n))
        )
    }

    fn node(&self, node: Node) -> Result<Node, LabError> {
        if self.plan.has_node(node) {
            Ok(node)
        } else {
            Err(LabError::UnknownNode(node.name()))
        }
    }

    /// `ip netns exec {ns} program`: add arguments and run it.
    pub fn command(&self, node: Node, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"])
            .arg(self.namespace(node))
            .arg(program);
        c
    }

    /// Starts `cmd` in `node` and tracks it so teardown kills it (and its
    /// process group). Pass a command made by [`Lab::command`] for `node`;
    /// any other command is wrapped in `ip netns exec` keeping program, args,
    /// environment and working directory (not stdio settings).
    pub fn spawn(&self, node: Node, cmd: Command) -> Result<Child, LabError> {
        let node = self.node(node)?;
        let ns = self.namespace(node);
        let args: Vec<&OsStr> = cmd.get_args().collect();
        let wrapped =
            cmd.get_program() == "ip" && args.len() >= 3 && args[0] == "netns" && args[1] == "exec";
        let mut cmd = if wrapped {
            if args[2] != OsStr::new(&ns) {
                return Err(LabError::Config(format!(
                    "spawn in {node}: command runs in {:?}, not {ns}",
                    args[2]
                )));
            }
            cmd
        } else {
            let mut c = self.command(node, cmd.get_program());
            c.args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            if let Some(d) = cmd.get_current_dir() {
                c.current_dir(d);
            }
            c
        };
        // Own process group, so teardown reaches the whole tree.
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|source| LabError::Io {
            what: format!("spawning {:?} in {ns}", cmd.get_program()),
            source,
        })?;
        lock(&self.children).push(child.id() as i32);
        Ok(child)
    }

    /// One `ping -c1 -W1` from `node` to `addr`.
    pub fn ping(&self, node: Node, addr: Ipv4Addr) -> Result<PingOutcome, LabError> {
        Ok(self.ping_all(&[(node, addr, None)])?.remove(0))
    }

    /// Like [`Lab::ping`] with the IP TTL set: `TimeExceeded` names the hop.
    pub fn ping_ttl(&self, node: Node, addr: Ipv4Addr, ttl: u8) -> Result<PingOutcome, LabError> {
        Ok(self.ping_all(&[(node, addr, Some(ttl))])?.remove(0))
    }

    /// Runs the pings concurrently (a silent target costs the 1 s timeout
    /// once, not per ping); outcomes in input order.
    pub fn ping_all(
        &self,
        probes: &[(Node, Ipv4Addr, Option<u8>)],
    ) -> Result<Vec<PingOutcome>, LabError> {
        let mut running = Vec::new();
        for &(node, addr, ttl) in probes {
            let node = self.node(node)?;
            let mut cmd = self.command(node, "ping");
            cmd.args(["-n", "-c1", "-W1"]);
            if let Some(t) = ttl {
                cmd.arg("-t").arg(t.to_string());
            }
            cmd.arg(addr.to_string());
            running.push(netns::start(&mut cmd, &format!("ping {addr} from {node}"))?);
        }
        let mut out = Vec::new();
        for child in running {
            let o = child.wait_with_output().map_err(|source| LabError::Io {
                what: "waiting for ping".into(),
                source,
            })?;
            out.push(ping::parse(
                &String::from_utf8_lossy(&o.stdout),
                &String::from_utf8_lossy(&o.stderr),
            ));
        }
        Ok(out)
    }

    fn border_route(&self, prefix: Ipv4Net) -> Result<(), LabError> {
        if self
            .plan
            .routes
            .iter()
            .any(|r| r.withdrawable && r.dst == prefix)
        {
            Ok(())
        } else {
            Err(LabError::UnknownPrefix(prefix))
        }
    }

    /// Deletes border's route to a country prefix: the border then answers
    /// ICMP net unreachable for it.
    pub fn withdraw(&self, prefix: Ipv4Net) -> Result<(), LabError> {
        self.border_route(prefix)?;
        let mut f = lock(&self.faults);
        f.withdrawn.insert(prefix);
        self.sync_routes(&f, &[Node::Border])
    }

    /// Undoes [`Lab::withdraw`].
    pub fn announce(&self, prefix: Ipv4Net) -> Result<(), LabError> {
        self.border_route(prefix)?;
        let mut f = lock(&self.faults);
        f.withdrawn.remove(&prefix);
        self.sync_routes(&f, &[Node::Border])
    }

    /// Silently drops everything `node` would forward to or deliver for
    /// `prefix`, local addresses included (a policy rule ahead of every
    /// routing table, local one included).
    pub fn blackhole(&self, node: Node, prefix: Ipv4Net) -> Result<(), LabError> {
        let node = self.node(node)?;
        let mut f = lock(&self.faults);
        if f.blackholes.contains(&(node, prefix)) {
            return Ok(());
        }
        let line = format!(
            "rule add pref {} to {} blackhole",
            plan::FAULT_RULE_PREF,
            prefix.trunc()
        );
        netns::batch(Some(&self.namespace(node)), &[line], false)?;
        f.blackholes.insert((node, prefix));
        Ok(())
    }

    /// Undoes [`Lab::blackhole`].
    pub fn unblackhole(&self, node: Node, prefix: Ipv4Net) -> Result<(), LabError> {
        let node = self.node(node)?;
        let mut f = lock(&self.faults);
        if f.blackholes.remove(&(node, prefix)) {
            let line = format!(
                "rule del pref {} to {} blackhole",
                plan::FAULT_RULE_PREF,
                prefix.trunc()
            );
            netns::batch(Some(&self.namespace(node)), &[line], false)?;
        }
        Ok(())
    }

    fn set_link(&self, a: Node, b: Node, up: bool) -> Result<(), LabError> {
        let idx = self.plan.link_between(self.node(a)?, self.node(b)?)?;
        let l = &self.plan.links[idx];
        let mut f = lock(&self.faults);
        let state = if up { "up" } else { "down" };
        let mut running = Vec::new();
        for n in [l.a, l.b] {
            let (ifname, _) = l.end(n).ok_or(LabError::NoLink(a, b))?;
            running.push(netns::start_batch(
                Some(&self.namespace(n)),
                &[format!("link set {ifname} {state}")],
                false,
            )?);
        }
        for (child, what) in running {
            netns::finish(child, &what)?;
        }
        if up {
            f.down.remove(&idx);
        } else {
            f.down.insert(idx);
        }
        self.sync_routes(&f, &self.plan.nodes())
    }

    /// Takes both ends of the a–b link down; routes that needed it go away
    /// and traffic takes the backup path where there is one.
    pub fn link_down(&self, a: Node, b: Node) -> Result<(), LabError> {
        self.set_link(a, b, false)
    }

    /// Brings the a–b link back with every route that used it.
    pub fn link_up(&self, a: Node, b: Node) -> Result<(), LabError> {
        self.set_link(a, b, true)
    }

    /// Cuts VP `vp`'s data link (1-based); its management link stays up.
    pub fn isolate_vp(&self, vp: u8) -> Result<(), LabError> {
        self.link_down(Node::Vp(vp), Node::Edge)
    }

    /// Undoes [`Lab::isolate_vp`].
    pub fn reconnect_vp(&self, vp: u8) -> Result<(), LabError> {
        self.link_up(Node::Vp(vp), Node::Edge)
    }

    /// Rate-limits the ICMP errors `node` sends (unreachables and
    /// time-exceeded alike): at most one per `per_dest_ms` to each
    /// destination, and `per_sec` (burst `burst`) in all. Real routers limit
    /// these, often more strictly than Linux's defaults; the lab routers keep
    /// those defaults unless a scenario calls this.
    pub fn icmp_limits(
        &self,
        node: Node,
        per_dest_ms: u32,
        per_sec: u32,
        burst: u32,
    ) -> Result<(), LabError> {
        let node = self.node(node)?;
        let mut cmd = self.command(node, "sysctl");
        cmd.args(["-q", "-w"]).args([
            format!("net.ipv4.icmp_ratelimit={per_dest_ms}"),
            format!("net.ipv4.icmp_msgs_per_sec={per_sec}"),
            format!("net.ipv4.icmp_msgs_burst={burst}"),
        ]);
        netns::run(
            &mut cmd,
            &format!("ICMP limits in {}", self.namespace(node)),
        )?;
        Ok(())
    }

    /// Loss (percent, 0..=100) and delay on packets leaving `a` towards `b`;
    /// call again with `(b, a)` for the other direction. Loss is an nftables
    /// rule; delay needs the kernel's `sch_netem` and is refused without it.
    /// Replaces any earlier setting on that link end.
    pub fn netem(&self, a: Node, b: Node, loss_pct: f64, delay_ms: u32) -> Result<(), LabError> {
        if !(0.0..=100.0).contains(&loss_pct) {
            return Err(LabError::Config(format!(
                "loss must be 0..=100 percent, got {loss_pct}"
            )));
        }
        let (ns, ifname) = self.link_end(a, b)?;
        self.clear_netem(a, b)?;
        if delay_ms > 0 {
            let mut tc = Command::new("tc");
            tc.args([
                "-n", &ns, "qdisc", "replace", "dev", &ifname, "root", "netem", "delay",
            ])
            .arg(format!("{delay_ms}ms"));
            netns::run(&mut tc, &format!("netem delay on {a}->{b}")).map_err(|e| {
                match e.into() {
                    LabError::Command { detail, .. }
                        if detail.contains("qdisc kind is unknown") =>
                    {
                        LabError::Unsupported(format!(
                            "delay on {a}->{b}: this kernel has no sch_netem"
                        ))
                    }
                    e => e,
                }
            })?;
        }
        if loss_pct > 0.0 {
            // numgen draws per packet; parts per 10000 give 0.01 % steps.
            let drop = if loss_pct >= 100.0 {
                "drop".to_string()
            } else {
                format!(
                    "numgen random mod 10000 < {} drop",
                    (loss_pct * 100.0).round() as u32
                )
            };
            let chain = format!("egress_{ifname}");
            let script = format!(
                "add table ip {NFT_TABLE}\n\
                 add chain ip {NFT_TABLE} {chain} {{ type filter hook postrouting priority 0 ; }}\n\
                 flush chain ip {NFT_TABLE} {chain}\n\
                 add rule ip {NFT_TABLE} {chain} oifname \"{ifname}\" {drop}\n"
            );
            self.nft(a, &script, &format!("loss on {a}->{b}"))?;
        }
        Ok(())
    }

    /// Removes loss and delay from packets leaving `a` towards `b`.
    pub fn clear_netem(&self, a: Node, b: Node) -> Result<(), LabError> {
        let (ns, ifname) = self.link_end(a, b)?;
        let chain = format!("egress_{ifname}");
        // Adding first makes the delete succeed whether or not it existed.
        let script = format!(
            "add table ip {NFT_TABLE}\n\
             add chain ip {NFT_TABLE} {chain} {{ type filter hook postrouting priority 0 ; }}\n\
             flush chain ip {NFT_TABLE} {chain}\n\
             delete chain ip {NFT_TABLE} {chain}\n"
        );
        self.nft(a, &script, &format!("clearing loss on {a}->{b}"))?;
        let mut tc = Command::new("tc");
        tc.args(["-n", &ns, "qdisc", "show", "dev", &ifname]);
        let shown = netns::run(&mut tc, &format!("reading qdisc of {a}->{b}"))?;
        if String::from_utf8_lossy(&shown.stdout).contains("netem") {
            let mut tc = Command::new("tc");
            tc.args(["-n", &ns, "qdisc", "del", "dev", &ifname, "root"]);
            netns::run(&mut tc, &format!("clearing delay on {a}->{b}"))?;
        }
        Ok(())
    }

    fn link_end(&self, a: Node, b: Node) -> Result<(String, String), LabError> {
        let a = self.node(a)?;
        let l = &self.plan.links[self.plan.link_between(a, self.node(b)?)?];
        let (ifname, _) = l.end(a).ok_or(LabError::NoLink(a, b))?;
        Ok((self.namespace(a), ifname))
    }

    fn nft(&self, node: Node, script: &str, what: &str) -> Result<(), LabError> {
        let mut cmd = self.command(node, "nft");
        cmd.args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LabError::Io {
            what: format!("{what}: cannot run nft"),
            source,
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(script.as_bytes());
        }
        Ok(netns::finish(child, what).map(drop)?)
    }

    /// Makes the routes of `nodes` match the plan under the current faults.
    fn sync_routes(&self, f: &Faults, nodes: &[Node]) -> Result<(), LabError> {
        let mut running = Vec::new();
        for &n in nodes {
            let mut del = Vec::new();
            let mut add = Vec::new();
            for r in self.plan.routes.iter().filter(|r| r.node == n) {
                if self.plan.wanted(r, &f.down, &f.withdrawn) {
                    add.push(format!("route replace {}", self.plan.route_args(r)));
                } else {
                    del.push(format!("route del {}", self.plan.route_args(r)));
                }
            }
            let ns = self.namespace(n);
            // Deleting what the kernel already flushed with a link fails: fine.
            netns::batch_best_effort(Some(&ns), &del);
            if !add.is_empty() {
                running.push(netns::start_batch(Some(&ns), &add, false)?);
            }
        }
        let mut first_err = None;
        for (child, what) in running {
            if let Err(e) = netns::finish(child, &what) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Kills tracked children and everything else in the lab's namespaces,
    /// then deletes the namespaces. Dropping the lab does the same but can
    /// only log failures.
    pub fn teardown(mut self) -> Result<(), LabError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), LabError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let names = self.namespaces();
        let inside = netns::pids_in(&names);
        for pgid in lock(&self.children).drain(..) {
            // Only groups whose leader is still in the lab: the pid may have
            // been reused once the caller reaped the child.
            if inside.contains(&pgid) {
                let _ = kill(Pid::from_raw(-pgid), Signal::SIGTERM);
            }
        }
        Ok(self.ns.teardown()?)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            tracing::error!("tearing down lab {}: {e}", self.prefix());
            eprintln!("darkwatch lab {}: teardown failed: {e}", self.prefix());
        }
    }
}

/// Removes labs whose creating process is dead; returns the namespaces removed.
pub fn clean_stale() -> Result<Vec<String>, LabError> {
    Ok(darkwatch_netlab::clean_stale()?)
}

/// Removes every lab namespace, including those of live processes.
pub fn clean_all() -> Result<Vec<String>, LabError> {
    Ok(darkwatch_netlab::clean_all()?)
}

/// Builds a lab for a test. If that fails (not root, no `ip netns`), prints a
/// skip line and returns `None`, except with `CI=true`, where it panics.
pub fn lab_or_skip(cfg: LabConfig) -> Option<Lab> {
    darkwatch_netlab::or_skip("the network lab", Lab::build(cfg))
}
