//! The BGP signal of a scope (`signals --source bgp`): per round, how many
//! of the scope's routed prefixes are announced, by how many peers, and
//! how much they moved, from the stored rounds (`compact::expand`d).
//!
//! A prefix is in a prefix scope when it is inside or covers the target;
//! in an AS scope when the AS originated it in some round of the window
//! (a withdrawn prefix has no origin, and must still count); in a country
//! scope when it overlaps the prefixes of the country's campaigns. When
//! routed scopes come from pfx2as, the same [`BgpScope::Prefixes`] takes
//! them.

use ipnet::IpNet;

use super::state::PrefixRound;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BgpScope {
    Prefix(IpNet),
    Asn(u32),
    /// Any prefix overlapping one of these (a country's campaigns).
    Prefixes(Vec<IpNet>),
}

/// One round of a scope's BGP signal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpSignalRound {
    pub round: u64,
    /// Routed prefixes of the scope known by then.
    pub prefixes: u32,
    /// Of them, announced by at least one peer.
    pub announced: u32,
    /// Of them, announced by every peer that knows them.
    pub announced_by_all: u32,
    /// (prefix, peer) routes known, and of them withdrawn: "withdrawn by k
    /// of n peers" summed over the scope.
    pub peer_routes: u32,
    pub withdrawn_routes: u32,
    pub announcements: u32,
    pub withdrawals: u32,
    pub cycles: u32,
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// The prefixes of `rounds` in `scope`.
pub fn members(scope: &BgpScope, rounds: &[(u64, Vec<PrefixRound>)]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = rounds
        .iter()
        .flat_map(|(_, ps)| ps.iter())
        .filter(|p| match scope {
            BgpScope::Prefix(t) => overlaps(&p.prefix, t),
            BgpScope::Asn(a) => p.origins.contains(a),
            BgpScope::Prefixes(list) => list.iter().any(|t| overlaps(&p.prefix, t)),
        })
        .map(|p| p.prefix)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The signal of `scope` over `rounds` (as `compact::expand` gives them).
pub fn signal(scope: &BgpScope, rounds: &[(u64, Vec<PrefixRound>)]) -> Vec<BgpSignalRound> {
    let members = members(scope, rounds);
    rounds
        .iter()
        .map(|(round, ps)| {
            let mut s = BgpSignalRound {
                round: *round,
                prefixes: 0,
                announced: 0,
                announced_by_all: 0,
                peer_routes: 0,
                withdrawn_routes: 0,
                announcements: 0,
                withdrawals: 0,
                cycles: 0,
            };
            for p in ps
                .iter()
                .filter(|p| members.binary_search(&p.prefix).is_ok())
            {
                s.prefixes += 1;
                s.announced += u32::from(p.announced_by > 0);
                s.announced_by_all += u32::from(p.announced_by == p.known_peers);
                s.peer_routes += p.known_peers;
                s.withdrawn_routes += p.withdrawn_by();
                s.announcements += p.announcements;
                s.withdrawals += p.withdrawals;
                s.cycles += p.cycles;
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(prefix: &str, announced_by: u32, origins: &[u32], cycles: u32) -> PrefixRound {
        PrefixRound {
            prefix: prefix.parse().unwrap(),
            announced_by,
            known_peers: 2,
            origins: origins.to_vec(),
            announcements: cycles,
            withdrawals: cycles,
            cycles,
        }
    }

    #[test]
    fn an_as_keeps_its_withdrawn_prefixes_and_scopes_sum_peers() {
        let rounds = vec![
            (
                1,
                vec![
                    p("198.18.1.0/24", 2, &[65001], 0),
                    p("198.18.2.0/24", 2, &[65002], 0),
                ],
            ),
            (
                2,
                vec![
                    p("198.18.1.0/24", 0, &[], 0),
                    p("198.18.2.0/24", 2, &[65002], 3),
                ],
            ),
        ];
        let s = signal(&BgpScope::Asn(65001), &rounds);
        assert_eq!(
            s.iter()
                .map(|r| (r.prefixes, r.announced, r.withdrawn_routes, r.peer_routes))
                .collect::<Vec<_>>(),
            [(1, 1, 0, 2), (1, 0, 2, 2)]
        );
        let all = signal(
            &BgpScope::Prefixes(vec!["198.18.0.0/15".parse().unwrap()]),
            &rounds,
        );
        assert_eq!(
            (all[1].prefixes, all[1].announced_by_all, all[1].cycles),
            (2, 1, 3)
        );
        let one = signal(&BgpScope::Prefix("198.18.2.0/25".parse().unwrap()), &rounds);
        assert_eq!((one[0].prefixes, one[1].cycles), (1, 3));
    }
}
