//! The lab's address and routing plan as plain data.
//!
//! Everything the lab builds is decided here, without touching the system:
//! nodes, links and their /30s, router loopbacks, responsive hosts per block,
//! and every route with the links it depends on. Keeping routes as data is
//! what lets `link_up` restore exactly what `link_down` took away, and lets
//! the plan be unit-tested deterministically.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::LabError;

/// Where the collector listens: `hub` owns it on its loopback.
pub const COLLECTOR_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Data-path infrastructure space, carved into /30s.
pub const DATA_SPACE: Ipv4Net = net(203, 0, 113, 0, 24);
/// Management-link space, carved into /30s.
pub const MGMT_SPACE: Ipv4Net = net(198, 51, 100, 0, 24);
/// All country prefixes must lie inside this; `ctry` drops the rest of it silently.
pub const COUNTRY_SPACE: Ipv4Net = net(198, 18, 0, 0, 16);
/// Addresses local to `edge`: always reachable while a VP's uplink works.
pub const CONTROL_PREFIX: Ipv4Net = net(198, 19, 255, 0, 28);
/// Largest number of vantage points.
pub const MAX_VPS: u8 = 8;
/// Most responsive hosts a single /24 block may have.
pub const MAX_RESPONSIVE_PER_BLOCK: u8 = 64;
/// Metric of the primary (via t1) and backup (via t2) paths.
pub const PRIMARY_METRIC: u32 = 10;
pub const BACKUP_METRIC: u32 = 20;
/// The country's AS (its pfx2as origin) and the upstream's, for the lab's
/// BGP session between `ctry` and `border`.
pub const COUNTRY_ASN: u32 = 64500;
pub const UPSTREAM_ASN: u32 = 64496;

const fn net(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(n) => n,
        Err(_) => panic!("constant prefix length out of range"),
    }
}

/// One node of the lab, i.e. one network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// Vantage point, numbered from 1 (`vp1`).
    Vp(u8),
    Edge,
    T1,
    T2,
    Border,
    Ctry,
    Hub,
}

impl Node {
    /// Short name: the namespace suffix and the interface name peers use.
    pub fn name(self) -> String {
        match self {
            Node::Vp(i) => format!("vp{i}"),
            Node::Edge => "edge".into(),
            Node::T1 => "t1".into(),
            Node::T2 => "t2".into(),
            Node::Border => "border".into(),
            Node::Ctry => "ctry".into(),
            Node::Hub => "hub".into(),
        }
    }

    /// Nodes that forward or answer for others get the router sysctls.
    pub fn is_router(self) -> bool {
        !matches!(self, Node::Vp(_))
    }

    /// The loopback address a traceroute sees for this router (every route a
    /// router uses towards the VPs carries it as `src`, so ICMP errors come
    /// from it whatever the path).
    pub fn hop_addr(self) -> Option<Ipv4Addr> {
        let last = match self {
            Node::Edge => 241,
            Node::T1 => 242,
            Node::T2 => 243,
            Node::Border => 244,
            _ => return None,
        };
        Some(Ipv4Addr::new(203, 0, 113, last))
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Node {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "edge" => Node::Edge,
            "t1" => Node::T1,
            "t2" => Node::T2,
            "border" => Node::Border,
            "ctry" => Node::Ctry,
            "hub" => Node::Hub,
            _ => match s.strip_prefix("vp").and_then(|n| n.parse::<u8>().ok()) {
                Some(i) if (1..=MAX_VPS).contains(&i) => Node::Vp(i),
                _ => return Err(LabError::UnknownNode(s.to_string())),
            },
        })
    }
}

/// Sizes and address space of a lab. `Default` is the standard topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Number of vantage points, 1..=8.
    pub vps: u8,
    /// The country's prefixes, inside 198.18.0.0/16, each /24 or shorter.
    pub country_prefixes: Vec<Ipv4Net>,
    /// Responsive hosts per /24 block, cycled over the blocks in order
    /// (each 1..=64).
    pub responsive_per_block: Vec<u8>,
}

impl Default for LabConfig {
    /// Three VPs and four prefixes like North Korea's (six /24 blocks) with
    /// 16, 8 and 3 responsive hosts per block in turn.
    fn default() -> Self {
        Self {
            vps: 3,
            country_prefixes: vec![
                net(198, 18, 0, 0, 23),
                net(198, 18, 2, 0, 24),
                net(198, 18, 4, 0, 24),
                net(198, 18, 6, 0, 23),
            ],
            responsive_per_block: vec![16, 8, 3],
        }
    }
}

impl LabConfig {
    /// Checks sizes and address space; the error names the offending value.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |m: String| Err(LabError::Config(m));
        if !(1..=MAX_VPS).contains(&self.vps) {
            return bad(format!("vps must be 1..={MAX_VPS}, got {}", self.vps));
        }
        if self.country_prefixes.is_empty() {
            return bad("at least one country prefix is needed".into());
        }
        for (i, p) in self.country_prefixes.iter().enumerate() {
            if p.trunc() != *p {
                return bad(format!("country prefix {p} has host bits set"));
            }
            if !COUNTRY_SPACE.contains(p) {
                return bad(format!("country prefix {p} is outside {COUNTRY_SPACE}"));
            }
            if p.prefix_len() > 24 {
                return bad(format!("country prefix {p} is longer than /24"));
            }
            if let Some(q) = self.country_prefixes[..i]
                .iter()
                .find(|q| q.contains(p) || p.contains(*q))
            {
                return bad(format!("country prefixes {q} and {p} overlap"));
            }
        }
        if self.responsive_per_block.is_empty() {
            return bad("responsive_per_block must not be empty".into());
        }
        if let Some(n) = self
            .responsive_per_block
            .iter()
            .find(|n| !(1..=MAX_RESPONSIVE_PER_BLOCK).contains(*n))
        {
            return bad(format!(
                "responsive hosts per block must be 1..={MAX_RESPONSIVE_PER_BLOCK}, got {n}"
            ));
        }
        Ok(())
    }
}

/// Which address space a link is numbered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// The path probes take (203.0.113.0/24).
    Data,
    /// A VP's private line to `hub` (198.51.100.0/24).
    Mgmt,
}

/// A veth pair. In each namespace the interface is named after the peer node,
/// so names are short and never collide within a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub a: Node,
    pub b: Node,
    pub kind: LinkKind,
    pub net: Ipv4Net,
    pub a_addr: Ipv4Addr,
    pub b_addr: Ipv4Addr,
}

impl Link {
    /// True if this link joins `x` and `y`, in either order.
    pub fn joins(&self, x: Node, y: Node) -> bool {
        (self.a == x && self.b == y) || (self.a == y && self.b == x)
    }

    /// `node`'s end: (interface name in node's namespace, its address).
    pub fn end(&self, node: Node) -> Option<(String, Ipv4Addr)> {
        if node == self.a {
            Some((self.b.name(), self.a_addr))
        } else if node == self.b {
            Some((self.a.name(), self.b_addr))
        } else {
            None
        }
    }

    /// The address of the other end, seen from `node`.
    pub fn peer_addr(&self, node: Node) -> Option<Ipv4Addr> {
        if node == self.a {
            Some(self.b_addr)
        } else if node == self.b {
            Some(self.a_addr)
        } else {
            None
        }
    }
}

/// One route the lab installs, with the links it needs: a route is present
/// exactly when all of `depends_on` are up (a stand-in for a routing protocol
/// withdrawing paths that no longer lead anywhere) and it is not withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub node: Node,
    pub dst: Ipv4Net,
    /// Next hop; `None` for the connected routes the plan re-sources.
    pub via: Option<Ipv4Addr>,
    /// Index into `Plan::links` of the outgoing link.
    pub link: usize,
    pub metric: Option<u32>,
    pub src: Option<Ipv4Addr>,
    /// Indexes into `Plan::links`; always includes `link`.
    pub depends_on: Vec<usize>,
    /// Border's per-prefix routes: what `withdraw` deletes.
    pub withdrawable: bool,
}

/// A /24 block of the country with its responsive hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub net: Ipv4Net,
    pub responsive: Vec<Ipv4Addr>,
}

/// The whole lab as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub config: LabConfig,
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
    pub blocks: Vec<Block>,
}

/// Carves the `index`-th /30 out of `space`: (network, first host, second host).
pub fn carve_30(space: Ipv4Net, index: u32) -> Result<(Ipv4Net, Ipv4Addr, Ipv4Addr), LabError> {
    let count = 1u64 << (30 - u32::from(space.prefix_len().min(30)));
    if u64::from(index) >= count {
        return Err(LabError::Config(format!(
            "{space} has no room for /30 number {index}"
        )));
    }
    let base = u32::from(space.network()) + index * 4;
    let n = Ipv4Net::new(Ipv4Addr::from(base), 30).map_err(|e| LabError::Config(e.to_string()))?;
    Ok((n, Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2)))
}

/// `n` responsive hosts spread evenly over a /24, starting at .1.
pub fn spread_hosts(block: Ipv4Net, n: u8) -> Vec<Ipv4Addr> {
    let n = u32::from(n.max(1));
    let step = 250 / n;
    let base = u32::from(block.network());
    (0..n)
        .map(|i| Ipv4Addr::from(base + 1 + i * step))
        .collect()
}

impl Plan {
    pub fn new(config: LabConfig) -> Result<Plan, LabError> {
        config.validate()?;
        let mut links = Vec::new();
        let mut data_idx = 0u32;
        let add = |links: &mut Vec<Link>,
                   a: Node,
                   b: Node,
                   kind: LinkKind,
                   idx: u32|
         -> Result<usize, LabError> {
            let space = if kind == LinkKind::Data {
                DATA_SPACE
            } else {
                MGMT_SPACE
            };
            let (net, a_addr, b_addr) = carve_30(space, idx)?;
            links.push(Link {
                a,
                b,
                kind,
                net,
                a_addr,
                b_addr,
            });
            Ok(links.len() - 1)
        };
        // Core first, so core addresses do not move when the VP count changes.
        let mut data = |links: &mut Vec<Link>, a, b| {
            let r = add(links, a, b, LinkKind::Data, data_idx);
            data_idx += 1;
            r
        };
        let e_t1 = data(&mut links, Node::Edge, Node::T1)?;
        let e_t2 = data(&mut links, Node::Edge, Node::T2)?;
        let t1_b = data(&mut links, Node::T1, Node::Border)?;
        let t2_b = data(&mut links, Node::T2, Node::Border)?;
        let b_c = data(&mut links, Node::Border, Node::Ctry)?;
        let vps: Vec<u8> = (1..=config.vps).collect();
        let mut vp_data = Vec::new();
        for &i in &vps {
            vp_data.push(data(&mut links, Node::Vp(i), Node::Edge)?);
        }
        let mut vp_mgmt = Vec::new();
        for &i in &vps {
            vp_mgmt.push(add(
                &mut links,
                Node::Vp(i),
                Node::Hub,
                LinkKind::Mgmt,
                u32::from(i) - 1,
            )?);
        }

        // Border's own line to hub, where it streams BMP to the collector;
        // numbered after every VP's so no VP address moves.
        let b_hub = add(
            &mut links,
            Node::Border,
            Node::Hub,
            LinkKind::Mgmt,
            u32::from(MAX_VPS),
        )?;

        let mut routes = Vec::new();
        let mut route = |node: Node,
                         dst: Ipv4Net,
                         link: usize,
                         via: bool,
                         metric: Option<u32>,
                         extra: &[usize]| {
            let mut depends_on = vec![link];
            depends_on.extend_from_slice(extra);
            let via = if via {
                links[link].peer_addr(node)
            } else {
                None
            };
            routes.push(Route {
                node,
                dst,
                via,
                link,
                metric,
                src: node.hop_addr(),
                depends_on,
                withdrawable: false,
            });
        };
        let default = Ipv4Net::default();
        for (k, &i) in vps.iter().enumerate() {
            route(Node::Vp(i), default, vp_data[k], true, None, &[]);
            route(
                Node::Vp(i),
                Ipv4Net::from(COLLECTOR_ADDR),
                vp_mgmt[k],
                true,
                None,
                &[],
            );
            // Re-source edge's connected route so its ICMP errors come from its loopback.
            route(
                Node::Edge,
                links[vp_data[k]].net,
                vp_data[k],
                false,
                None,
                &[],
            );
            route(Node::T1, links[vp_data[k]].net, e_t1, true, None, &[]);
            route(Node::T2, links[vp_data[k]].net, e_t2, true, None, &[]);
        }
        route(
            Node::Edge,
            COUNTRY_SPACE,
            e_t1,
            true,
            Some(PRIMARY_METRIC),
            &[t1_b],
        );
        route(
            Node::Edge,
            COUNTRY_SPACE,
            e_t2,
            true,
            Some(BACKUP_METRIC),
            &[t2_b],
        );
        route(Node::T1, COUNTRY_SPACE, t1_b, true, None, &[]);
        route(Node::T2, COUNTRY_SPACE, t2_b, true, None, &[]);
        for p in &config.country_prefixes {
            route(Node::Border, *p, b_c, true, None, &[]);
        }
        route(
            Node::Border,
            DATA_SPACE,
            t1_b,
            true,
            Some(PRIMARY_METRIC),
            &[e_t1],
        );
        route(
            Node::Border,
            DATA_SPACE,
            t2_b,
            true,
            Some(BACKUP_METRIC),
            &[e_t2],
        );
        route(Node::Ctry, default, b_c, true, None, &[]);
        route(
            Node::Border,
            Ipv4Net::from(COLLECTOR_ADDR),
            b_hub,
            true,
            None,
            &[],
        );
        for r in &mut routes {
            r.withdrawable = r.node == Node::Border && config.country_prefixes.contains(&r.dst);
            // hub has no route back to border's loopback: its BMP session
            // leaves from the line's own address.
            if r.link == b_hub {
                r.src = None;
            }
        }

        let mut blocks = Vec::new();
        for p in &config.country_prefixes {
            let subnets = p.subnets(24).map_err(|e| LabError::Config(e.to_string()))?;
            for b in subnets {
                let n =
                    config.responsive_per_block[blocks.len() % config.responsive_per_block.len()];
                blocks.push(Block {
                    net: b,
                    responsive: spread_hosts(b, n),
                });
            }
        }
        Ok(Plan {
            config,
            links,
            routes,
            blocks,
        })
    }

    /// Every node, in build order.
    pub fn nodes(&self) -> Vec<Node> {
        let mut v: Vec<Node> = (1..=self.config.vps).map(Node::Vp).collect();
        v.extend([
            Node::Edge,
            Node::T1,
            Node::T2,
            Node::Border,
            Node::Ctry,
            Node::Hub,
        ]);
        v
    }

    pub fn has_node(&self, node: Node) -> bool {
        match node {
            Node::Vp(i) => (1..=self.config.vps).contains(&i),
            _ => true,
        }
    }

    /// Index of the link joining `a` and `b`.
    pub fn link_between(&self, a: Node, b: Node) -> Result<usize, LabError> {
        self.links
            .iter()
            .position(|l| l.joins(a, b))
            .ok_or(LabError::NoLink(a, b))
    }

    pub fn block(&self, net: Ipv4Net) -> Option<&Block> {
        self.blocks.iter().find(|b| b.net == net)
    }

    /// `ip -batch` lines that configure `node` once its veth ends exist.
    pub fn setup_script(&self, node: Node) -> Vec<String> {
        let mut s = vec!["link set lo up".to_string()];
        if let Some(id) = node.hop_addr() {
            s.push(format!("addr add {id}/32 dev lo"));
        }
        match node {
            Node::Hub => s.push(format!("addr add {COLLECTOR_ADDR}/32 dev lo")),
            Node::Edge => s.push(format!("route add local {CONTROL_PREFIX} dev lo")),
            Node::Ctry => {
                s.push(format!("route add blackhole {COUNTRY_SPACE}"));
                for b in &self.blocks {
                    for h in &b.responsive {
                        s.push(format!("route add local {h}/32 dev lo"));
                    }
                }
            }
            _ => {}
        }
        for l in &self.links {
            if let Some((ifname, addr)) = l.end(node) {
                s.push(format!("addr add {addr}/30 dev {ifname}"));
                s.push(format!("link set {ifname} up"));
            }
        }
        // Fault rules (pref 10) must be consulted before the local table,
        // so move the local table's rule from pref 0 to after them.
        s.push(format!("rule add pref {LOCAL_RULE_PREF} lookup local"));
        s.push("rule del pref 0".into());
        for r in self.routes.iter().filter(|r| r.node == node) {
            s.push(format!("route replace {}", self.route_args(r)));
        }
        s
    }

    /// The route's `ip route` arguments after the verb.
    pub fn route_args(&self, r: &Route) -> String {
        let l = &self.links[r.link];
        let dev = l.end(r.node).map(|(i, _)| i).unwrap_or_default();
        let mut s = r.dst.to_string();
        match r.via {
            Some(gw) => s += &format!(" via {gw} dev {dev}"),
            None => s += &format!(" dev {dev} proto kernel scope link"),
        }
        if let Some(m) = r.metric {
            s += &format!(" metric {m}");
        }
        if let Some(src) = r.src {
            s += &format!(" src {src}");
        }
        s
    }

    /// Routes that should be installed given the links that are down and the
    /// prefixes withdrawn at the border.
    pub fn wanted(&self, r: &Route, down: &BTreeSet<usize>, withdrawn: &BTreeSet<Ipv4Net>) -> bool {
        let cut = r.depends_on.iter().any(|l| down.contains(l));
        let gone = r.withdrawable && withdrawn.contains(&r.dst);
        !(cut || gone)
    }

    /// Sysctl assignments for `node`, applied before its links exist so new
    /// interfaces inherit `rp_filter=0` from `default`. Routers keep the
    /// kernel's ICMP rate limits, as real routers have them: localization
    /// must cope with a border that answers only some probes
    /// ([`Lab::icmp_limits`](super::Lab::icmp_limits) makes it stricter).
    pub fn sysctls(&self, node: Node) -> Vec<&'static str> {
        let mut v = vec![
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ];
        if node.is_router() {
            v.push("net.ipv4.ip_forward=1");
        }
        v
    }

    /// An RIR delegated-stats file assigning the country prefixes to `cc`,
    /// in the published extended format (as APNIC ships it): version and
    /// summary lines, a comment, an `asn` record, the country's IPv6
    /// allocation (documentation space, too wide to sweep), adjacent prefixes
    /// merged into one record whose count need not be a power of two, the
    /// gaps between them as `reserved` (the country's code) and `available`
    /// (`ZZ`) records that must not be watched, and another country's record.
    pub fn delegated_stats(&self, cc: &str) -> String {
        let date = "20141222";
        let mut prefixes = self.config.country_prefixes.clone();
        prefixes.sort();
        // Runs of adjacent prefixes: (first address, address count).
        let mut runs: Vec<(u32, u64)> = Vec::new();
        for p in &prefixes {
            let (start, count) = (
                u32::from(p.network()),
                1u64 << (32 - u32::from(p.prefix_len())),
            );
            match runs.last_mut() {
                Some((s, c)) if u64::from(*s) + *c == u64::from(start) => *c += count,
                _ => runs.push((start, count)),
            }
        }
        let mut ipv4 = Vec::new();
        for (k, &(start, count)) in runs.iter().enumerate() {
            ipv4.push(format!(
                "apnic|{cc}|ipv4|{}|{count}|{date}|allocated|A91E0F1A",
                Ipv4Addr::from(start)
            ));
            // The gap up to the next run, as space that is not in use.
            if let Some(&(next, _)) = runs.get(k + 1) {
                let gap_start = u64::from(start) + count;
                let gap = u64::from(next) - gap_start;
                let addr = Ipv4Addr::from(gap_start as u32);
                ipv4.push(if k % 2 == 0 {
                    format!("apnic|{cc}|ipv4|{addr}|{gap}|{date}|reserved|A91E0F1A")
                } else {
                    format!("apnic|ZZ|ipv4|{addr}|{gap}||available|")
                });
            }
        }
        ipv4.push(format!(
            "apnic|JP|ipv4|198.18.200.0|256|{date}|allocated|A91C0DDE"
        ));
        let mut s = format!(
            "2|apnic|{date}|{}|19830613|{date}|+1000\n\
             apnic|*|asn|*|1|summary\n\
             apnic|*|ipv4|*|{}|summary\n\
             apnic|*|ipv6|*|1|summary\n\
             # lab file in the layout of delegated-apnic-extended-latest\n\
             apnic|{cc}|asn|64500|1|{date}|allocated|A91E0F1A\n",
            ipv4.len() + 2,
            ipv4.len()
        );
        for line in ipv4 {
            s += &line;
            s.push('\n');
        }
        s += &format!("apnic|{cc}|ipv6|3fff:100::|32|{date}|allocated|A91E0F1A\n");
        s
    }

    /// A CAIDA prefix-to-AS file (`routeviews-rv2-*.pfx2as` layout) for the
    /// country prefixes, cycling through the origin forms the published
    /// files hold: one origin (AS64500), a multi-origin prefix
    /// (`64500_64501`), an AS set (`{64502,64503}`) and one origin again
    /// (AS64502); plus a line for space outside the country.
    pub fn pfx2as(&self) -> String {
        const ORIGINS: [&str; 4] = ["64500", "64500_64501", "{64502,64503}", "64502"];
        let mut s = String::new();
        for (i, p) in self.config.country_prefixes.iter().enumerate() {
            s += &format!("{}\t{}\t{}\n", p.network(), p.prefix_len(), ORIGINS[i % 4]);
        }
        s += "198.18.200.0\t24\t64999\n";
        s
    }

    /// Human-readable description; `ns` maps a node to its namespace name.
    pub fn describe(&self, ns: &dyn Fn(Node) -> String) -> String {
        let mut s = String::from("nodes:\n");
        for n in self.nodes() {
            let mut addrs: Vec<String> = self
                .links
                .iter()
                .filter_map(|l| l.end(n))
                .map(|(i, a)| format!("{i}={a}"))
                .collect();
            if let Some(id) = n.hop_addr() {
                addrs.push(format!("lo={id}"));
            }
            if n == Node::Hub {
                addrs.push(format!("lo={COLLECTOR_ADDR} (collector)"));
            }
            if n == Node::Edge {
                addrs.push(format!("local {CONTROL_PREFIX} (control)"));
            }
            s += &format!("  {:<7} {:<20} {}\n", n.name(), ns(n), addrs.join(" "));
        }
        s += "links:\n";
        for l in &self.links {
            let kind = if l.kind == LinkKind::Data {
                "data"
            } else {
                "mgmt"
            };
            s += &format!(
                "  {} {:<6} {} -- {} {}\n",
                kind, l.a, l.a_addr, l.b, l.b_addr
            );
        }
        s += "routes:\n";
        for r in &self.routes {
            s += &format!("  {:<7} {}\n", r.node.name(), self.route_args(r));
        }
        s += "country blocks (responsive hosts):\n";
        for b in &self.blocks {
            s += &format!("  {} ({})\n", b.net, b.responsive.len());
        }
        s += &format!(
            "path from a VP: edge {}, t1 {}, border {} (backup t2 {})\n",
            Node::Edge.hop_addr().unwrap_or(Ipv4Addr::UNSPECIFIED),
            Node::T1.hop_addr().unwrap_or(Ipv4Addr::UNSPECIFIED),
            Node::Border.hop_addr().unwrap_or(Ipv4Addr::UNSPECIFIED),
            Node::T2.hop_addr().unwrap_or(Ipv4Addr::UNSPECIFIED),
        );
        s += &format!(
            "collector: http://{COLLECTOR_ADDR}:PORT (in {})\n",
            ns(Node::Hub)
        );
        s
    }
}

/// Preference of the moved local-table rule; fault rules sit before it.
pub const LOCAL_RULE_PREF: u32 = 100;
/// Preference of `blackhole` fault rules.
pub const FAULT_RULE_PREF: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn carve_30_numbers_hosts_and_refuses_overflow() {
        let (n, a, b) = carve_30(DATA_SPACE, 3).unwrap();
        assert_eq!(n, p("203.0.113.12/30"));
        assert_eq!(
            (a, b),
            (
                Ipv4Addr::new(203, 0, 113, 13),
                Ipv4Addr::new(203, 0, 113, 14)
            )
        );
        assert!(carve_30(DATA_SPACE, 63).is_ok());
        assert!(carve_30(DATA_SPACE, 64).is_err());
    }

    #[test]
    fn links_are_disjoint_30s_in_their_space_and_avoid_router_loopbacks() {
        for vps in 1..=MAX_VPS {
            let plan = Plan::new(LabConfig {
                vps,
                ..LabConfig::default()
            })
            .unwrap();
            for (i, l) in plan.links.iter().enumerate() {
                let space = if l.kind == LinkKind::Data {
                    DATA_SPACE
                } else {
                    MGMT_SPACE
                };
                assert!(space.contains(&l.net), "{l:?}");
                assert!(
                    l.net.contains(&l.a_addr) && l.net.contains(&l.b_addr) && l.a_addr != l.b_addr
                );
                for other in &plan.links[i + 1..] {
                    assert!(
                        !l.net.contains(&other.net.network()),
                        "{l:?} overlaps {other:?}"
                    );
                }
                for n in plan.nodes() {
                    if let Some(id) = n.hop_addr() {
                        assert!(!l.net.contains(&id), "{id} inside {}", l.net);
                    }
                }
            }
            // One data and one management link per VP, five core links,
            // border's management link.
            assert_eq!(plan.links.len(), 6 + 2 * usize::from(vps));
        }
    }

    #[test]
    fn interface_names_fit_and_are_unique_per_namespace() {
        let plan = Plan::new(LabConfig {
            vps: MAX_VPS,
            ..LabConfig::default()
        })
        .unwrap();
        for n in plan.nodes() {
            let names: Vec<String> = plan
                .links
                .iter()
                .filter_map(|l| l.end(n))
                .map(|(i, _)| i)
                .collect();
            let unique: BTreeSet<&String> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{n}: {names:?}");
            assert!(
                names
                    .iter()
                    .all(|i| !i.is_empty() && i.len() <= 15 && i != "lo"),
                "{names:?}"
            );
        }
    }

    #[test]
    fn default_config_has_six_blocks_with_varied_known_hosts() {
        let plan = Plan::new(LabConfig::default()).unwrap();
        let nets: Vec<String> = plan.blocks.iter().map(|b| b.net.to_string()).collect();
        assert_eq!(
            nets,
            [
                "198.18.0.0/24",
                "198.18.1.0/24",
                "198.18.2.0/24",
                "198.18.4.0/24",
                "198.18.6.0/24",
                "198.18.7.0/24"
            ]
        );
        let counts: Vec<usize> = plan.blocks.iter().map(|b| b.responsive.len()).collect();
        assert_eq!(counts, [16, 8, 3, 16, 8, 3]);
        for b in &plan.blocks {
            let set: BTreeSet<_> = b.responsive.iter().collect();
            assert_eq!(set.len(), b.responsive.len());
            assert!(b
                .responsive
                .iter()
                .all(|h| b.net.contains(h) && *h != b.net.network() && *h != b.net.broadcast()));
        }
        assert_eq!(
            plan.blocks[2].responsive,
            [
                Ipv4Addr::new(198, 18, 2, 1),
                Ipv4Addr::new(198, 18, 2, 84),
                Ipv4Addr::new(198, 18, 2, 167)
            ]
        );
    }

    #[test]
    fn spread_hosts_stays_inside_block_for_all_counts() {
        let b = p("198.18.9.0/24");
        for n in 1..=MAX_RESPONSIVE_PER_BLOCK {
            let hosts = spread_hosts(b, n);
            assert_eq!(hosts.len(), usize::from(n));
            assert!(hosts
                .iter()
                .all(|h| b.contains(h) && *h != b.broadcast() && *h != b.network()));
        }
    }

    #[test]
    fn config_validation_rejects_bad_values() {
        let bad = [
            LabConfig {
                vps: 0,
                ..LabConfig::default()
            },
            LabConfig {
                vps: 9,
                ..LabConfig::default()
            },
            LabConfig {
                country_prefixes: vec![],
                ..LabConfig::default()
            },
            LabConfig {
                country_prefixes: vec![p("10.0.0.0/24")],
                ..LabConfig::default()
            },
            LabConfig {
                country_prefixes: vec![p("198.18.0.0/25")],
                ..LabConfig::default()
            },
            LabConfig {
                country_prefixes: vec![p("198.18.0.0/23"), p("198.18.1.0/24")],
                ..LabConfig::default()
            },
            LabConfig {
                responsive_per_block: vec![],
                ..LabConfig::default()
            },
            LabConfig {
                responsive_per_block: vec![0],
                ..LabConfig::default()
            },
            LabConfig {
                responsive_per_block: vec![65],
                ..LabConfig::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(Plan::new(c.clone()), Err(LabError::Config(_))),
                "{c:?}"
            );
        }
        assert!(LabConfig::default().validate().is_ok());
        let host_bits = LabConfig {
            country_prefixes: vec![Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 1), 24).unwrap()],
            ..LabConfig::default()
        };
        assert!(host_bits.validate().is_err());
    }

    #[test]
    fn delegated_stats_lists_each_prefix_with_its_address_count() {
        let plan = Plan::new(LabConfig::default()).unwrap();
        let text = plan.delegated_stats("KP");
        let records: Vec<&str> = text.lines().filter(|l| l.contains("|ipv")).collect();
        assert_eq!(
            records,
            [
                "apnic|*|ipv4|*|6|summary",
                "apnic|*|ipv6|*|1|summary",
                // 198.18.0.0/23 and 198.18.2.0/24 are adjacent: 768 addresses.
                "apnic|KP|ipv4|198.18.0.0|768|20141222|allocated|A91E0F1A",
                "apnic|KP|ipv4|198.18.3.0|256|20141222|reserved|A91E0F1A",
                "apnic|KP|ipv4|198.18.4.0|256|20141222|allocated|A91E0F1A",
                "apnic|ZZ|ipv4|198.18.5.0|256||available|",
                "apnic|KP|ipv4|198.18.6.0|512|20141222|allocated|A91E0F1A",
                "apnic|JP|ipv4|198.18.200.0|256|20141222|allocated|A91C0DDE",
                "apnic|KP|ipv6|3fff:100::|32|20141222|allocated|A91E0F1A",
            ]
        );
        assert!(text.starts_with("2|apnic|20141222|8|"));
        // The shared parser reads back exactly the lab's country space.
        let parsed = darkwatch_schema::inputs::delegated::parse(&text, "lab", "KP").unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let v4: Vec<IpNet> = parsed
            .items
            .iter()
            .filter(|n| n.addr().is_ipv4())
            .copied()
            .collect();
        let want: Vec<IpNet> = plan
            .config
            .country_prefixes
            .iter()
            .map(|&p| IpNet::V4(p))
            .collect();
        assert_eq!(v4, want);
        assert!(parsed.items.contains(&"3fff:100::/32".parse().unwrap()));
    }

    #[test]
    fn node_names_round_trip_and_bad_names_are_errors() {
        let plan = Plan::new(LabConfig {
            vps: MAX_VPS,
            ..LabConfig::default()
        })
        .unwrap();
        for n in plan.nodes() {
            assert_eq!(n.name().parse::<Node>().unwrap(), n);
        }
        for bad in ["vp0", "vp9", "vpx", "core", ""] {
            assert!(bad.parse::<Node>().is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_depend_on_their_link_and_backups_have_higher_metrics() {
        let plan = Plan::new(LabConfig::default()).unwrap();
        for r in &plan.routes {
            assert!(r.depends_on.contains(&r.link));
            assert!(
                plan.links[r.link].end(r.node).is_some(),
                "{r:?} leaves by a link {} is not on",
                r.node
            );
        }
        let edge_country: Vec<(Option<u32>, Option<Ipv4Addr>)> = plan
            .routes
            .iter()
            .filter(|r| r.node == Node::Edge && r.dst == COUNTRY_SPACE)
            .map(|r| (r.metric, r.via))
            .collect();
        let t1 = plan.links[plan.link_between(Node::Edge, Node::T1).unwrap()].peer_addr(Node::Edge);
        let t2 = plan.links[plan.link_between(Node::Edge, Node::T2).unwrap()].peer_addr(Node::Edge);
        assert_eq!(
            edge_country,
            [(Some(PRIMARY_METRIC), t1), (Some(BACKUP_METRIC), t2)]
        );
        let withdrawable: Vec<Ipv4Net> = plan
            .routes
            .iter()
            .filter(|r| r.withdrawable)
            .inspect(|r| assert_eq!(r.node, Node::Border))
            .map(|r| r.dst)
            .collect();
        assert_eq!(withdrawable, plan.config.country_prefixes);
    }

    #[test]
    fn cutting_t1_border_removes_every_route_through_t1_towards_the_country() {
        let plan = Plan::new(LabConfig::default()).unwrap();
        let cut = plan.link_between(Node::Border, Node::T1).unwrap();
        let down = BTreeSet::from([cut]);
        let none: BTreeSet<Ipv4Net> = BTreeSet::new();
        let no_links: BTreeSet<usize> = BTreeSet::new();
        let wanted = |node, dst| -> Vec<Option<u32>> {
            plan.routes
                .iter()
                .filter(|r| r.node == node && r.dst == dst && plan.wanted(r, &down, &none))
                .map(|r| r.metric)
                .collect()
        };
        assert_eq!(wanted(Node::Edge, COUNTRY_SPACE), [Some(BACKUP_METRIC)]);
        assert_eq!(wanted(Node::Border, DATA_SPACE), [Some(BACKUP_METRIC)]);
        let withdrawn = BTreeSet::from([p("198.18.2.0/24")]);
        let border: Vec<Ipv4Net> = plan
            .routes
            .iter()
            .filter(|r| r.withdrawable && plan.wanted(r, &no_links, &withdrawn))
            .map(|r| r.dst)
            .collect();
        assert_eq!(
            border,
            [p("198.18.0.0/23"), p("198.18.4.0/24"), p("198.18.6.0/23")]
        );
    }

    #[test]
    fn setup_script_sources_router_routes_from_loopback() {
        let plan = Plan::new(LabConfig::default()).unwrap();
        let s = plan.setup_script(Node::Edge);
        assert!(s.contains(&"addr add 203.0.113.241/32 dev lo".to_string()));
        assert!(s.contains(&"route add local 198.19.255.0/28 dev lo".to_string()));
        assert!(s
            .iter()
            .any(|l| l.starts_with("route replace 198.18.0.0/16 via")
                && l.ends_with("metric 10 src 203.0.113.241")));
        let ctry = plan.setup_script(Node::Ctry);
        let locals = ctry
            .iter()
            .filter(|l| l.starts_with("route add local "))
            .count();
        assert_eq!(
            locals,
            plan.blocks
                .iter()
                .map(|b| b.responsive.len())
                .sum::<usize>()
        );
        assert!(ctry.contains(&"route add blackhole 198.18.0.0/16".to_string()));
    }

    #[test]
    fn border_reaches_the_collector_from_its_own_line_and_vp_lines_stay_put() {
        let small = Plan::new(LabConfig::default()).unwrap();
        let big = Plan::new(LabConfig {
            vps: MAX_VPS,
            ..LabConfig::default()
        })
        .unwrap();
        let line = |plan: &Plan, a, b| plan.links[plan.link_between(a, b).unwrap()].net;
        assert_eq!(
            line(&small, Node::Border, Node::Hub),
            line(&big, Node::Border, Node::Hub)
        );
        assert_eq!(
            line(&small, Node::Vp(1), Node::Hub),
            line(&big, Node::Vp(1), Node::Hub)
        );
        let border = small.setup_script(Node::Border);
        let to_collector = border
            .iter()
            .find(|l| l.starts_with(&format!("route replace {COLLECTOR_ADDR}/32 via")))
            .expect("border has a route to the collector");
        assert!(to_collector.ends_with("dev hub"), "{to_collector}");
    }
}
