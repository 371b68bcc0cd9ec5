//! The census: known-responsive addresses per block of a campaign.
//!
//! Agents report what their discovery found (`ReportBatch.census`), hitlists
//! seed it (`campaign add --hitlist`, filed by `crate::hitlist::seed`), and the collector hands it out with
//! each assignment so that a new agent judges blocks from its first round
//! instead of sweeping first. Everything here is pure: it screens what
//! enters the census and what leaves it. An address is kept only inside the
//! campaign's prefixes and inside the block it is filed under; a block holds
//! at most [`MAX_ADDRS_V4`] (IPv4 /24) or [`MAX_ADDRS_V6`] (IPv6 /48)
//! addresses, the lowest ones, so a report cannot grow an assignment without
//! bound. Agents check again against their own policy.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use darkwatch_schema::{
    CampaignAssignment, CensusBlock, CensusSet, ReportBatch, BLOCK_LEN_V4, BLOCK_LEN_V6,
};
use ipnet::IpNet;

use crate::store::Campaign;

/// Most addresses kept per IPv4 /24: all of them.
pub const MAX_ADDRS_V4: usize = 256;

/// Most addresses kept per IPv6 /48: plenty to judge a block (an agent
/// probes a handful per round) while an assignment stays small.
pub const MAX_ADDRS_V6: usize = 1024;

/// The bound for `block`.
pub fn max_addrs(block: &IpNet) -> usize {
    match block {
        IpNet::V4(_) => MAX_ADDRS_V4,
        IpNet::V6(_) => MAX_ADDRS_V6,
    }
}

/// True for a census block: an IPv4 /24 or IPv6 /48 without host bits.
pub fn is_block(net: &IpNet) -> bool {
    let len_ok = match net {
        IpNet::V4(n) => n.prefix_len() == BLOCK_LEN_V4,
        IpNet::V6(n) => n.prefix_len() == BLOCK_LEN_V6,
    };
    len_ok && net.trunc() == *net
}

fn inside(prefixes: &[IpNet], addr: &IpAddr) -> bool {
    prefixes.iter().any(|p| p.contains(addr))
}

/// What screening removed, for the logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Addresses outside the campaign's prefixes or outside their block.
    pub outside: usize,
    /// Addresses beyond the per-block bound.
    pub over_bound: usize,
    /// Blocks that are not a /24 or /48.
    pub bad_blocks: usize,
    /// Census and coverage entries of campaigns unknown or not assigned to the agent.
    pub unassigned: usize,
}

impl Dropped {
    pub fn is_empty(&self) -> bool {
        *self == Dropped::default()
    }
}

/// One block's addresses as kept: inside `block` and `prefixes`,
/// deduplicated, sorted, at most the bound.
fn screen_block(
    block: IpNet,
    addrs: &[IpAddr],
    prefixes: &[IpNet],
    d: &mut Dropped,
) -> Vec<IpAddr> {
    let distinct: BTreeSet<IpAddr> = addrs.iter().copied().collect();
    let kept: Vec<IpAddr> = distinct
        .iter()
        .filter(|a| block.contains(*a) && inside(prefixes, a))
        .copied()
        .collect();
    d.outside += distinct.len() - kept.len();
    let max = max_addrs(&block);
    d.over_bound += kept.len().saturating_sub(max);
    kept.into_iter().take(max).collect()
}

/// Screens what an agent reports beyond observations: census and coverage
/// of campaigns unknown or not assigned to `agent` are dropped (they are
/// advisory, so they do not cost the batch its observations), and census
/// addresses are screened as the module says. Duplicate addresses are
/// merged without counting as dropped.
pub fn screen_report(batch: &mut ReportBatch, agent: &str, campaigns: &[Campaign]) -> Dropped {
    let by_name: HashMap<&str, &Campaign> =
        campaigns.iter().map(|c| (c.name.as_str(), c)).collect();
    let assigned = |name: &str| by_name.get(name).filter(|c| c.assigned_to(agent)).copied();
    let mut d = Dropped::default();
    let before = batch.coverage.len();
    batch.coverage.retain(|c| assigned(&c.campaign).is_some());
    d.unassigned += before - batch.coverage.len();
    let before = batch.census.len();
    batch.census.retain(|c| assigned(&c.campaign).is_some());
    d.unassigned += before - batch.census.len();
    for cc in &mut batch.census {
        let Some(campaign) = assigned(&cc.campaign) else {
            continue;
        };
        let mut blocks = Vec::with_capacity(cc.blocks.len());
        for b in cc.blocks.drain(..) {
            if !is_block(&b.block) {
                d.bad_blocks += 1;
                continue;
            }
            let addrs = screen_block(b.block, &b.addrs, &campaign.prefixes, &mut d);
            if !addrs.is_empty() {
                blocks.push(CensusBlock {
                    block: b.block,
                    addrs,
                });
            }
        }
        cc.blocks = blocks;
    }
    batch.census.retain(|c| !c.blocks.is_empty());
    d
}

/// A campaign as an agent is handed it. These live here, not beside
/// [`Campaign`] in `store`, so that the store does not call back into the
/// census screening that depends on its types.
impl Campaign {
    pub fn to_assignment(&self) -> CampaignAssignment {
        self.to_assignment_with_census(CensusSet::default())
    }

    /// The assignment with `census` inline (see [`compact_census`]).
    pub fn to_assignment_with_census(&self, census: CensusSet) -> CampaignAssignment {
        CampaignAssignment {
            name: self.name.clone(),
            country: self.country.clone(),
            interval_secs: self.interval_secs,
            prefixes: self.prefixes.clone(),
            control: self.control.clone(),
            generation: self.generation,
            census,
            census_tag: None,
        }
    }
}

/// The census a campaign's assignment carries, compact: the stored blocks
/// screened and bounded as [`for_assignment`] says.
pub fn compact_census(campaign: &Campaign, stored: Vec<CensusBlock>) -> CensusSet {
    CensusSet::from_blocks(&for_assignment(campaign, stored))
}

/// A strong entity tag of an encoded census (or any body): the first 16
/// bytes of its SHA-256, quoted.
pub fn etag_of(body: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(body)[..16]))
}

/// A census as `GET /v1/census/{campaign}` serves it: its tag and its
/// encoded body ([`CensusSet::encode`]).
pub fn census_body(census: &CensusSet) -> (String, Vec<u8>) {
    let body = census.encode();
    (etag_of(&body), body)
}

/// The census a campaign's assignment carries: the stored blocks screened
/// against the campaign's current prefixes (they may have narrowed since
/// the census was learnt) and the bound.
pub fn for_assignment(campaign: &Campaign, stored: Vec<CensusBlock>) -> Vec<CensusBlock> {
    let mut d = Dropped::default();
    stored
        .into_iter()
        .filter(|b| is_block(&b.block))
        .filter_map(|b| {
            let addrs = screen_block(b.block, &b.addrs, &campaign.prefixes, &mut d);
            (!addrs.is_empty()).then_some(CensusBlock {
                block: b.block,
                addrs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::{CampaignCensus, Coverage};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn campaign(name: &str, prefixes: &[&str], agents: &[&str]) -> Campaign {
        Campaign {
            name: name.into(),
            country: None,
            interval_secs: 60,
            prefixes: prefixes.iter().map(|p| net(p)).collect(),
            control: vec![],
            agents: agents.iter().map(|a| a.to_string()).collect(),
            generation: 1,
            created_ms: 0,
        }
    }

    fn report(census: Vec<CampaignCensus>, coverage: &[&str]) -> ReportBatch {
        ReportBatch {
            coverage: coverage
                .iter()
                .map(|c| Coverage {
                    campaign: c.to_string(),
                    generation: 1,
                    blocks_tracked: 1,
                    addresses_targeted: 256,
                    skipped: vec![],
                })
                .collect(),
            census,
            ..ReportBatch::new("00ff00ff", 0)
        }
    }

    fn cc(campaign: &str, blocks: &[(&str, &[&str])]) -> CampaignCensus {
        CampaignCensus {
            campaign: campaign.into(),
            blocks: blocks
                .iter()
                .map(|(b, a)| CensusBlock {
                    block: net(b),
                    addrs: a.iter().map(|s| ip(s)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn reported_census_keeps_only_addresses_inside_the_campaign_and_their_block() {
        let cs = [campaign("kp", &["198.18.3.64/26", "2001:db8::/32"], &[])];
        let mut b = report(
            vec![cc(
                "kp",
                &[
                    // .1 is in the block but outside the /26; 198.18.4.70 is in the /26's
                    // neighbourhood but filed under the wrong block; .70 twice.
                    (
                        "198.18.3.0/24",
                        &["198.18.3.70", "198.18.3.1", "198.18.4.70", "198.18.3.70"],
                    ),
                    ("2001:db8:1::/48", &["2001:db8:1::1", "2001:db9::1"]),
                    ("198.18.3.0/25", &["198.18.3.70"]),
                    ("203.0.113.0/24", &["203.0.113.1"]),
                ],
            )],
            &[],
        );
        let d = screen_report(&mut b, "vp1", &cs);
        assert_eq!(
            b.census,
            vec![cc(
                "kp",
                &[
                    ("198.18.3.0/24", &["198.18.3.70"]),
                    ("2001:db8:1::/48", &["2001:db8:1::1"]),
                ]
            )]
        );
        assert_eq!(
            d,
            Dropped {
                outside: 4,
                over_bound: 0,
                bad_blocks: 1,
                unassigned: 0
            }
        );
    }

    #[test]
    fn census_and_coverage_of_other_campaigns_are_dropped() {
        let cs = [
            campaign("kp", &["198.18.0.0/16"], &["vp1"]),
            campaign("cu", &["198.19.0.0/16"], &[]),
        ];
        let mut b = report(
            vec![
                cc("kp", &[("198.18.3.0/24", &["198.18.3.1"])]),
                cc("zz", &[("198.18.3.0/24", &["198.18.3.1"])]),
            ],
            &["kp", "cu", "zz"],
        );
        let d = screen_report(&mut b, "vp2", &cs);
        assert!(b.census.is_empty(), "{:?}", b.census);
        assert_eq!(
            b.coverage
                .iter()
                .map(|c| c.campaign.as_str())
                .collect::<Vec<_>>(),
            ["cu"]
        );
        assert_eq!(d.unassigned, 4);
    }

    #[test]
    fn blocks_are_bounded() {
        let cs = [campaign("v6", &["2001:db8::/32"], &[])];
        let many: Vec<String> = (0..MAX_ADDRS_V6 + 10)
            .map(|i| format!("2001:db8:5::{i:x}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut b = report(vec![cc("v6", &[("2001:db8:5::/48", &many)])], &[]);
        let d = screen_report(&mut b, "vp1", &cs);
        assert_eq!(b.census[0].blocks[0].addrs.len(), MAX_ADDRS_V6);
        assert_eq!(d.over_bound, 10);
        assert_eq!(max_addrs(&net("198.18.0.0/24")), 256);
    }

    #[test]
    fn assignments_follow_the_current_prefixes() {
        let c = campaign("kp", &["198.18.3.0/24"], &[]);
        let stored = vec![
            CensusBlock {
                block: net("198.18.3.0/24"),
                addrs: vec![ip("198.18.3.9"), ip("198.18.3.1")],
            },
            CensusBlock {
                block: net("198.18.4.0/24"),
                addrs: vec![ip("198.18.4.1")],
            },
        ];
        assert_eq!(
            for_assignment(&c, stored),
            vec![CensusBlock {
                block: net("198.18.3.0/24"),
                addrs: vec![ip("198.18.3.1"), ip("198.18.3.9")],
            }]
        );
    }
}
