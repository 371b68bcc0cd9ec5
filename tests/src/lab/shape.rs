//! Throttling, as a censor's border does it: a token bucket (`tc tbf`)
//! that passes a link's packets at a low rate and queues the rest, up to a
//! bound, then drops. Replies slow by up to the queue's length and go
//! missing in proportion to the overload, while every block keeps
//! answering. This kernel has `tbf` but no `sch_netem`, and a bucket is
//! what real throttling looks like anyway.
//!
//! The agents' probes alone are too few to fill a queue; [`Lab::load`]
//! sends steady traffic over the link, as a country's own users would.

use std::process::{Child, Command};

use darkwatch_netlab::netns;

use super::{Lab, LabError, Node};

impl Lab {
    /// Shapes packets leaving `a` towards `b` to `rate_kbit`, queueing at
    /// most `queue_ms` of them (`tbf ... latency`). Replaces any qdisc there.
    pub fn shape(&self, a: Node, b: Node, rate_kbit: u32, queue_ms: u32) -> Result<(), LabError> {
        let (ns, ifname) = self.link_end(a, b)?;
        let mut tc = Command::new("tc");
        tc.args(["-n", &ns, "qdisc", "replace", "dev", &ifname, "root", "tbf"])
            .arg("rate")
            .arg(format!("{rate_kbit}kbit"))
            .args(["burst", "3000", "latency"])
            .arg(format!("{queue_ms}ms"));
        netns::run(&mut tc, &format!("tbf on {a}->{b}"))?;
        Ok(())
    }

    /// Removes the shaping of packets leaving `a` towards `b`.
    pub fn clear_shape(&self, a: Node, b: Node) -> Result<(), LabError> {
        let (ns, ifname) = self.link_end(a, b)?;
        let mut tc = Command::new("tc");
        tc.args(["-n", &ns, "qdisc", "del", "dev", &ifname, "root"]);
        netns::run(&mut tc, &format!("clearing tbf on {a}->{b}"))?;
        Ok(())
    }

    /// Steady traffic from `a` over its link to `b` (echo requests of
    /// `bytes` to `b`'s address on that link, every `every_ms`): a load
    /// the caller ends by killing the child (teardown kills it too).
    pub fn load(&self, a: Node, b: Node, bytes: u32, every_ms: u32) -> Result<Child, LabError> {
        let link = &self.plan.links[self.plan.link_between(a, b)?];
        let (_, addr) = link.end(b).ok_or(LabError::NoLink(a, b))?;
        let mut cmd = self.command(a, "ping");
        cmd.args(["-q", "-n", "-s"])
            .arg(bytes.to_string())
            .arg("-i")
            .arg(format!("{:.3}", f64::from(every_ms) / 1000.0))
            .arg(addr.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.spawn(a, cmd)
    }
}
