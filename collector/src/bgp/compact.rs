//! Per-round BGP state, stored compactly: a prefix's row is written only
//! in a round where its state changed (peers announcing it, peers that
//! know it, origins) or where it moved (announcements, withdrawals), plus a
//! keyframe of every prefix once every `keyframe_rounds`, so that
//! retention can cut old rows and every kept round still has a baseline.
//! A steady full table costs one keyframe a day, not a row per round.
//!
//! [`Compactor`] picks the rows to write; [`expand`] reads them back into
//! one state per round, carrying a prefix's last state forward (with no
//! movement) over the rounds that have no row. Pure: no SQL, no clock.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use super::state::{PrefixRound, RoundState};

/// What must change for a new row.
type Level = (u32, u32, Vec<u32>);

fn level(p: &PrefixRound) -> Level {
    (p.announced_by, p.known_peers, p.origins.clone())
}

fn moved(p: &PrefixRound) -> bool {
    p.announcements > 0 || p.withdrawals > 0
}

/// Remembers the last row written per prefix.
#[derive(Debug)]
pub struct Compactor {
    keyframe_rounds: u64,
    last: HashMap<IpNet, Level>,
}

impl Compactor {
    pub fn new(keyframe_rounds: u64) -> Compactor {
        Compactor {
            keyframe_rounds: keyframe_rounds.max(1),
            last: HashMap::new(),
        }
    }

    /// The rows of `round` to store.
    pub fn rows(&mut self, round: &RoundState) -> Vec<PrefixRound> {
        let key = round.round % self.keyframe_rounds == 0;
        let mut out = Vec::new();
        for p in &round.prefixes {
            let l = level(p);
            let changed = self.last.get(&p.prefix) != Some(&l);
            if key || changed || moved(p) {
                out.push(p.clone());
            }
            if changed {
                self.last.insert(p.prefix, l);
            }
        }
        out
    }
}

/// One state per round in `from..=to` from stored rows (any order; rows
/// before `from` give the baseline). A prefix with no row yet in a round
/// is absent from it.
pub fn expand(rows: &[(u64, PrefixRound)], from: u64, to: u64) -> Vec<(u64, Vec<PrefixRound>)> {
    let mut by_prefix: BTreeMap<IpNet, BTreeMap<u64, &PrefixRound>> = BTreeMap::new();
    for (round, p) in rows {
        by_prefix.entry(p.prefix).or_default().insert(*round, p);
    }
    (from..=to)
        .map(|r| {
            let prefixes = by_prefix
                .values()
                .filter_map(|rounds| {
                    let (&at, p) = rounds.range(..=r).next_back()?;
                    let mut p = (*p).clone();
                    if at != r {
                        p.announcements = 0;
                        p.withdrawals = 0;
                        p.cycles = 0;
                    }
                    Some(p)
                })
                .collect();
            (r, prefixes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(prefix: &str, announced_by: u32, withdrawals: u32) -> PrefixRound {
        PrefixRound {
            prefix: prefix.parse().unwrap(),
            announced_by,
            known_peers: 1,
            origins: if announced_by > 0 {
                vec![65001]
            } else {
                vec![]
            },
            announcements: 0,
            withdrawals,
            cycles: 0,
        }
    }

    fn round(r: u64, prefixes: Vec<PrefixRound>) -> RoundState {
        RoundState {
            round: r,
            peers_up: 1,
            peers_known: 1,
            prefixes,
        }
    }

    #[test]
    fn only_changes_movement_and_keyframes_are_written_and_read_back_whole() {
        let mut c = Compactor::new(10);
        let a = "198.18.1.0/24";
        let b = "198.18.2.0/24";
        let mut stored = Vec::new();
        let rounds = [
            round(11, vec![p(a, 1, 0), p(b, 1, 0)]),
            round(12, vec![p(a, 1, 0), p(b, 1, 0)]),
            round(13, vec![p(a, 1, 0), p(b, 0, 1)]),
            round(14, vec![p(a, 1, 0), p(b, 0, 0)]),
            round(20, vec![p(a, 1, 0), p(b, 0, 0)]),
        ];
        let mut written = Vec::new();
        for r in &rounds {
            let rows = c.rows(r);
            written.push(rows.len());
            stored.extend(rows.into_iter().map(|p| (r.round, p)));
        }
        // First sight of both, nothing, b withdrawn, nothing, keyframe.
        assert_eq!(written, [2, 0, 1, 0, 2]);
        let back = expand(&stored, 11, 14);
        let full: Vec<(u64, Vec<PrefixRound>)> = rounds[..4]
            .iter()
            .map(|r| (r.round, r.prefixes.clone()))
            .collect();
        assert_eq!(back, full);
        // A window starting after the cut of retention still has its
        // baseline from the keyframe.
        let late: Vec<_> = stored.iter().filter(|(r, _)| *r >= 20).cloned().collect();
        assert_eq!(expand(&late, 20, 21)[1].1, rounds[4].prefixes);
    }
}
