//! The traceroutes on a verdict's page: each VP's traces toward the
//! verdict's scope, and where the traces of each phase (before, during,
//! after the verdict) ended, most agreed-on ending first. What a reader
//! checks the verdict's localization against.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{in_nets, phase};
use crate::store::{AgentTrace, Verdict};

/// One traceroute, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceJson {
    pub round: u64,
    pub phase: &'static str,
    pub target: IpAddr,
    pub reached: bool,
    pub last_responding: Option<IpAddr>,
    /// Answering hops in TTL order (`null` where nothing answered).
    pub hops: Vec<Option<IpAddr>>,
}

/// One VP's traceroutes, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VpTraces {
    pub vp: String,
    pub traces: Vec<TraceJson>,
}

/// Where traces of one phase ended: one row per last answering hop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ending {
    pub phase: &'static str,
    /// `None`: nothing answered at all.
    pub last_hop: Option<IpAddr>,
    /// Whether these traces reached their target.
    pub reached: bool,
    /// Traces that ended there (they agree on it).
    pub traces: usize,
    /// Of all traces of the phase.
    pub of: usize,
    pub vantage_points: Vec<String>,
}

/// Traceroutes toward `nets` grouped per VP, and per phase where they ended
/// (most agreed-on ending first).
pub fn traces(ts: &[AgentTrace], nets: &[IpNet], v: &Verdict) -> (Vec<VpTraces>, Vec<Ending>) {
    let mut per_vp: BTreeMap<&str, Vec<TraceJson>> = BTreeMap::new();
    for t in ts {
        let target = IpNet::from(t.trace.target);
        if !in_nets(nets, &target) {
            continue;
        }
        per_vp.entry(&t.agent).or_default().push(TraceJson {
            round: t.trace.round,
            phase: phase(v, t.trace.round),
            target: t.trace.target,
            reached: t.trace.reached,
            last_responding: t.trace.last_responding.or_else(|| {
                darkwatch_schema::TraceObservation::derive_last_responding(&t.trace.hops)
            }),
            hops: t.trace.hops.iter().map(|h| h.addr).collect(),
        });
    }
    let mut endings: BTreeMap<(&str, Option<IpAddr>, bool), BTreeSet<&str>> = BTreeMap::new();
    let mut counts: BTreeMap<(&str, Option<IpAddr>, bool), usize> = BTreeMap::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for (vp, list) in per_vp.iter_mut() {
        list.sort_by_key(|t| (t.round, t.target));
        for t in list.iter() {
            let key = (t.phase, t.last_responding, t.reached);
            endings.entry(key).or_default().insert(vp);
            *counts.entry(key).or_default() += 1;
            *totals.entry(t.phase).or_default() += 1;
        }
    }
    let order = |p: &str| ["before", "during", "after"].iter().position(|x| *x == p);
    let mut endings: Vec<Ending> = endings
        .into_iter()
        .map(|(key @ (phase, last_hop, reached), vps)| Ending {
            phase,
            last_hop,
            reached,
            traces: counts[&key],
            of: totals[phase],
            vantage_points: vps.into_iter().map(String::from).collect(),
        })
        .collect();
    endings.sort_by(|a, b| {
        order(a.phase)
            .cmp(&order(b.phase))
            .then(b.traces.cmp(&a.traces))
            .then(a.last_hop.cmp(&b.last_hop))
    });
    let per_vp = per_vp
        .into_iter()
        .map(|(vp, traces)| VpTraces {
            vp: vp.to_string(),
            traces,
        })
        .collect();
    (per_vp, endings)
}
