//! Routed scopes: which prefix scope each tracked block (IPv4 /24, IPv6
//! /48) of a campaign counts in.
//!
//! With a prefix-to-AS file, a block belongs to the longest routed prefix
//! that covers it and to that route's origin ASes, because that is how the
//! Internet sees networks come and go: a /22 allocation announced as four
//! /24s is four networks, possibly of two ASes, and a route wider than the
//! allocation is one network with it. Blocks that no route covers are not
//! dropped: they keep their campaign prefix (the allocation) with no
//! origin, and the correlation core groups such prefixes as `unrouted`.
//! Without a prefix-to-AS file each block counts in the longest campaign
//! prefix that holds it, as before.
//!
//! A block's route is the longest one that covers the whole block: a route
//! longer than a block (a /25, rarely seen in the global table) names no
//! block, since the block is judged as one.
//!
//! A prefix longer than a block (a /26 allocation) stands for the block
//! that holds it, so several of them in one /24 make one block, counted
//! once (the agents probe them inside that /24 and report the /24).
//!
//! The space is cut into runs of consecutive blocks with one prefix each,
//! walking from route to route ([`Pfx2As::next_start`]) rather than from
//! block to block, so that a country of millions of blocks costs one step
//! per route. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use darkwatch_correlate::PrefixInfo;
use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::{BLOCK_LEN_V4, BLOCK_LEN_V6};
use ipnet::IpNet;

/// A run of consecutive blocks of one family that count in one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    v6: bool,
    first: u128,
    last: u128,
    prefix: u32,
}

/// The prefix scopes of a campaign and the prefix of each of its blocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// The prefixes verdicts are made for: with a prefix-to-AS file the
    /// routed prefixes (sorted, with their origins), then the campaign
    /// prefixes holding unrouted blocks (sorted, no origin); without one
    /// the campaign's prefixes.
    prefixes: Vec<PrefixInfo>,
    /// How many of `prefixes` are routed prefixes (they come first).
    routed: usize,
    /// True if made with a prefix-to-AS file.
    by_routes: bool,
    /// Sorted, disjoint.
    runs: Vec<Run>,
}

/// Bits below a block.
fn shift(v6: bool) -> u32 {
    if v6 {
        u32::from(128 - BLOCK_LEN_V6)
    } else {
        u32::from(32 - BLOCK_LEN_V4)
    }
}

/// Family and first and last block numbers of `net`; a prefix longer than
/// a block gives the block that holds it.
fn block_range(net: &IpNet) -> (bool, u128, u128) {
    let (v6, a, b) = match net {
        IpNet::V4(n) => (
            false,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
    };
    (v6, a >> shift(v6), b >> shift(v6))
}

/// The block numbered `num`.
fn block_net(v6: bool, num: u128) -> IpNet {
    let addr = if v6 {
        IpAddr::V6(Ipv6Addr::from(num << shift(true)))
    } else {
        IpAddr::V4(Ipv4Addr::from((num << shift(false)) as u32))
    };
    IpNet::new(addr, if v6 { BLOCK_LEN_V6 } else { BLOCK_LEN_V4 }).expect("a block length")
}

/// Cuts the campaign's prefixes (sorted, deduplicated) into disjoint runs
/// labelled with the index of the longest prefix holding them. A prefix
/// longer than a block labels its block only if no other prefix holds it.
fn campaign_runs(prefixes: &[IpNet]) -> Vec<Run> {
    let mut items: Vec<(bool, u128, u128, u8, u32)> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (v6, a, b) = block_range(p);
            (v6, a, b, p.prefix_len(), i as u32)
        })
        .collect();
    // Outer ranges first; of equal ranges, the shortest prefix first.
    items.sort_by_key(|&(v6, a, b, len, i)| (v6, a, std::cmp::Reverse(b), len, i));
    let mut out: Vec<Run> = Vec::new();
    // Open ranges, each inside the one before, and the first block not
    // yet given to a run.
    let mut stack: Vec<Run> = Vec::new();
    let mut cursor = 0u128;
    let emit = |out: &mut Vec<Run>, top: &Run, from: u128, to: u128| {
        if from <= to {
            out.push(Run {
                first: from,
                last: to,
                ..*top
            });
        }
    };
    let close_before = |stack: &mut Vec<Run>, out: &mut Vec<Run>, cursor: &mut u128, v6, a| {
        while let Some(top) = stack.last().copied() {
            if top.v6 == v6 && top.last >= a {
                break;
            }
            emit(out, &top, *cursor, top.last);
            *cursor = (*cursor).max(top.last.saturating_add(1));
            stack.pop();
        }
    };
    for (v6, a, b, len, i) in items {
        close_before(&mut stack, &mut out, &mut cursor, v6, a);
        let sub_block = len > if v6 { BLOCK_LEN_V6 } else { BLOCK_LEN_V4 };
        match stack.last() {
            // Held already: the same range again, or a sub-block prefix
            // in a block of a wider one.
            Some(top) if (top.first == a && top.last == b) || sub_block => continue,
            Some(top) if a > cursor => emit(&mut out, top, cursor, a - 1),
            _ => {}
        }
        cursor = a;
        stack.push(Run {
            v6,
            first: a,
            last: b,
            prefix: i,
        });
    }
    // Past every block: closes them all.
    close_before(&mut stack, &mut out, &mut cursor, true, u128::MAX);
    out
}

/// What a run of blocks counts in, before the prefixes are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Route(IpNet),
    /// Unrouted, in this campaign prefix.
    Unrouted(u32),
}

impl Routing {
    /// The prefix scopes of a campaign of `prefixes` (any order,
    /// duplicates allowed), routed by `pfx2as` if given.
    pub fn new(prefixes: &[IpNet], pfx2as: Option<&Pfx2As>) -> Routing {
        let mut campaign: Vec<IpNet> = prefixes.iter().map(IpNet::trunc).collect();
        campaign.sort();
        campaign.dedup();
        let runs = campaign_runs(&campaign);
        let Some(m) = pfx2as else {
            return Routing {
                prefixes: campaign
                    .iter()
                    .map(|&net| PrefixInfo { net, asns: vec![] })
                    .collect(),
                routed: 0,
                by_routes: false,
                runs,
            };
        };
        let mut labelled: Vec<(Run, Label)> = Vec::new();
        let mut origins: BTreeMap<IpNet, Vec<u32>> = BTreeMap::new();
        for run in runs {
            let (v6, sh) = (run.v6, shift(run.v6));
            let max_len = if v6 { BLOCK_LEN_V6 } else { BLOCK_LEN_V4 };
            let mut cursor = run.first;
            loop {
                let route = m.route_of(&block_net(v6, cursor));
                let mut last = run.last;
                if let Some((net, _)) = route {
                    last = last.min(block_range(&net).2);
                }
                if let Some(next) = m.next_start(v6, cursor << sh, max_len) {
                    last = last.min((next >> sh) - 1);
                }
                let label = match route {
                    Some((net, o)) => {
                        origins.entry(net).or_insert_with(|| o.to_vec());
                        Label::Route(net)
                    }
                    None => Label::Unrouted(run.prefix),
                };
                labelled.push((
                    Run {
                        first: cursor,
                        last,
                        ..run
                    },
                    label,
                ));
                if last >= run.last {
                    break;
                }
                cursor = last + 1;
            }
        }
        let unrouted: BTreeSet<u32> = labelled
            .iter()
            .filter_map(|(_, l)| match l {
                Label::Unrouted(c) => Some(*c),
                Label::Route(_) => None,
            })
            .collect();
        let routed = origins.len();
        let index: BTreeMap<Label, u32> = origins
            .keys()
            .map(|&n| Label::Route(n))
            .chain(unrouted.iter().map(|&c| Label::Unrouted(c)))
            .enumerate()
            .map(|(i, l)| (l, i as u32))
            .collect();
        let mut prefixes: Vec<PrefixInfo> = origins
            .into_iter()
            .map(|(net, asns)| PrefixInfo { net, asns })
            .collect();
        prefixes.extend(unrouted.iter().map(|&c| PrefixInfo {
            net: campaign[c as usize],
            asns: vec![],
        }));
        Routing {
            prefixes,
            routed,
            by_routes: true,
            runs: labelled
                .into_iter()
                .map(|(r, l)| Run {
                    prefix: index[&l],
                    ..r
                })
                .collect(),
        }
    }

    /// The prefixes verdicts are made for (see the field).
    pub fn prefixes(&self) -> &[PrefixInfo] {
        &self.prefixes
    }

    /// The routed prefixes the campaign's blocks fall in, with their
    /// origins (empty without a prefix-to-AS file).
    pub fn routed_prefixes(&self) -> &[PrefixInfo] {
        &self.prefixes[..self.routed]
    }

    /// The campaign prefixes holding blocks that no route covers (empty
    /// without a prefix-to-AS file).
    pub fn unrouted_prefixes(&self) -> &[PrefixInfo] {
        if !self.by_routes {
            return &[];
        }
        &self.prefixes[self.routed..]
    }

    /// Index into [`Routing::prefixes`] of the prefix `block` counts in;
    /// `None` for a block outside the campaign.
    pub fn prefix_of(&self, block: &IpNet) -> Option<u32> {
        let (v6, num, _) = block_range(block);
        let i = self
            .runs
            .partition_point(|r| (r.v6, r.first) <= (v6, num))
            .checked_sub(1)?;
        let r = self.runs[i];
        (r.v6 == v6 && num <= r.last).then_some(r.prefix)
    }

    /// IPv4 blocks (/24s) of the campaign in unrouted prefixes.
    pub fn unrouted_v4_blocks(&self) -> u128 {
        self.runs
            .iter()
            .filter(|r| self.by_routes && !r.v6 && r.prefix as usize >= self.routed)
            .map(|r| r.last - r.first + 1)
            .sum()
    }
}

#[cfg(test)]
mod tests;
