//! The BGP state core: per peer, per routed prefix, per round.
//!
//! Sans-IO: events come in with the round they fall in (the caller maps
//! timestamps to rounds with the campaign's interval), rounds are closed
//! by time moving on, and a closed round comes out as a [`RoundState`].
//! Both the MRT import and the BMP listener feed the same core, so the two
//! give the same per-prefix state for the same updates.
//!
//! Semantics, chosen so verdicts can say "withdrawn by k of n peers":
//! - A route is (peer, prefix) → origin AS. A peer-down clears all the
//!   routes of that peer, as a BGP speaker does (RFC 4271 §8, RFC 7854 §4.9).
//! - `known_peers` of a prefix are the peers that have ever announced it
//!   since the core started; a peer-down does not forget them, so a prefix
//!   whose one peer dropped reads "withdrawn by 1 of 1 peers".
//! - Announcements and withdrawals count changes of state (absent → present
//!   and present → absent), not messages: a re-announcement with a new path
//!   is not churn. A cycle is a withdrawal followed by an announcement by
//!   the same peer within the round.
//! - Events for a round already closed are counted in the open round (late
//!   data never rewrites a stored round).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

/// A BGP peer as the monitor sees it: the router that reports it (BMP) or
/// the MRT collector ("" for a file), and the peer's address and AS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub source: String,
    pub ip: IpAddr,
    pub asn: u32,
}

/// One thing that happened in BGP, in wire-format-free terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The session with `peer` reached Established.
    PeerUp(PeerKey),
    /// The session with `peer` went down: all its routes are gone.
    PeerDown(PeerKey),
    /// `peer` announces `prefix` with origin AS `origin` (None when the path
    /// is empty, as for a route the monitored router originates itself).
    Announce {
        peer: PeerKey,
        prefix: IpNet,
        origin: Option<u32>,
    },
    /// `peer` withdraws `prefix`.
    Withdraw { peer: PeerKey, prefix: IpNet },
}

/// The state of one routed prefix at the end of a round.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrefixRound {
    pub prefix: IpNet,
    /// Peers announcing it at the end of the round.
    pub announced_by: u32,
    /// Peers that have announced it at some time (see the module doc).
    pub known_peers: u32,
    /// Distinct origin ASes the announcing peers see, ascending (more than
    /// one is a multi-origin conflict, or a hijack).
    pub origins: Vec<u32>,
    /// Routes that appeared in the round (absent → present).
    pub announcements: u32,
    /// Routes that went in the round (present → absent, peer-downs included).
    pub withdrawals: u32,
    /// Withdraw-then-announce cycles by the same peer in the round.
    pub cycles: u32,
}

impl PrefixRound {
    /// Peers that saw it before and no longer announce it.
    pub fn withdrawn_by(&self) -> u32 {
        self.known_peers - self.announced_by
    }
}

/// A closed round: the sessions and every prefix the core knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoundState {
    pub round: u64,
    pub peers_up: u32,
    pub peers_known: u32,
    /// Every known prefix, sorted by prefix.
    pub prefixes: Vec<PrefixRound>,
}

#[derive(Debug, Default)]
struct Peer {
    up: bool,
}

/// Per-prefix state: current routes by peer index, the peers ever seen,
/// and the open round's counters.
#[derive(Debug, Default)]
struct Prefix {
    routes: BTreeMap<u32, Option<u32>>,
    known: Vec<u32>,
    announcements: u32,
    withdrawals: u32,
    cycles: u32,
    /// Peers that withdrew it in the open round (for cycles).
    withdrew: Vec<u32>,
}

/// The core. Peers are interned to small indices so per-prefix state stays
/// compact under a full table (about 1M prefixes × a few peers).
#[derive(Debug, Default)]
pub struct BgpCore {
    peer_index: HashMap<PeerKey, u32>,
    peers: Vec<Peer>,
    prefixes: BTreeMap<IpNet, Prefix>,
    /// The round events are counted in; None before the first event.
    open: Option<u64>,
    /// Routes held per peer: a peer-down with none skips the scan over
    /// every prefix (a scan is fine otherwise: peer-downs are rare).
    route_count: Vec<u64>,
}

impl BgpCore {
    pub fn new() -> BgpCore {
        BgpCore::default()
    }

    /// The round events are being counted in.
    pub fn open_round(&self) -> Option<u64> {
        self.open
    }

    /// Applies `event`, which happened in `round`. Returns the rounds this
    /// closes (when `round` is past the open one), oldest first; the empty
    /// rounds in between are closed too, at most `max_gap` of them (a jump
    /// of days closes the open round and restarts there).
    pub fn apply(&mut self, round: u64, event: Event, max_gap: u64) -> Vec<RoundState> {
        let closed = self.advance(round, max_gap);
        self.apply_in_open(event);
        closed
    }

    /// Moves time to `round` without an event (a timer): closes the open
    /// round and the empty ones up to `round`, as [`BgpCore::apply`] does.
    pub fn advance(&mut self, round: u64, max_gap: u64) -> Vec<RoundState> {
        let Some(open) = self.open else {
            self.open = Some(round);
            return Vec::new();
        };
        if round <= open {
            return Vec::new();
        }
        let mut out = vec![self.close_open(open)];
        let gap_end = round.min(open.saturating_add(max_gap.saturating_add(1)));
        for r in open + 1..gap_end {
            out.push(self.close_open(r));
        }
        self.open = Some(round);
        out
    }

    /// The open round's state so far, without closing it.
    pub fn snapshot(&self) -> Option<RoundState> {
        self.open.map(|r| self.state_of(r))
    }

    fn peer(&mut self, key: PeerKey) -> u32 {
        if let Some(&i) = self.peer_index.get(&key) {
            return i;
        }
        let i = self.peers.len() as u32;
        self.peers.push(Peer::default());
        self.route_count.push(0);
        self.peer_index.insert(key, i);
        i
    }

    fn apply_in_open(&mut self, event: Event) {
        match event {
            Event::PeerUp(key) => {
                let p = self.peer(key);
                self.peers[p as usize].up = true;
            }
            Event::PeerDown(key) => {
                let p = self.peer(key);
                self.peers[p as usize].up = false;
                if self.route_count[p as usize] > 0 {
                    for entry in self.prefixes.values_mut() {
                        if entry.routes.remove(&p).is_some() {
                            entry.withdrawals += 1;
                            entry.withdrew.push(p);
                        }
                    }
                    self.route_count[p as usize] = 0;
                }
            }
            Event::Announce {
                peer,
                prefix,
                origin,
            } => {
                let p = self.peer(peer);
                // Routes arrive only on an established session; BMP and
                // MRT update files may start mid-session, so the first
                // route counts as the session being up.
                self.peers[p as usize].up = true;
                let entry = self.prefixes.entry(prefix.trunc()).or_default();
                if entry.routes.insert(p, origin).is_none() {
                    entry.announcements += 1;
                    self.route_count[p as usize] += 1;
                    if entry.withdrew.contains(&p) {
                        entry.cycles += 1;
                        entry.withdrew.retain(|&q| q != p);
                    }
                }
                if !entry.known.contains(&p) {
                    entry.known.push(p);
                }
            }
            Event::Withdraw { peer, prefix } => {
                let p = self.peer(peer);
                if let Some(entry) = self.prefixes.get_mut(&prefix.trunc()) {
                    if entry.routes.remove(&p).is_some() {
                        entry.withdrawals += 1;
                        entry.withdrew.push(p);
                        self.route_count[p as usize] -= 1;
                    }
                }
            }
        }
    }

    fn state_of(&self, round: u64) -> RoundState {
        let prefixes = self
            .prefixes
            .iter()
            .map(|(net, e)| {
                let mut origins: Vec<u32> = e.routes.values().filter_map(|o| *o).collect();
                origins.sort_unstable();
                origins.dedup();
                PrefixRound {
                    prefix: *net,
                    announced_by: e.routes.len() as u32,
                    known_peers: e.known.len() as u32,
                    origins,
                    announcements: e.announcements,
                    withdrawals: e.withdrawals,
                    cycles: e.cycles,
                }
            })
            .collect();
        RoundState {
            round,
            peers_up: self.peers.iter().filter(|p| p.up).count() as u32,
            peers_known: self.peers.len() as u32,
            prefixes,
        }
    }

    fn close_open(&mut self, round: u64) -> RoundState {
        let state = self.state_of(round);
        for e in self.prefixes.values_mut() {
            e.announcements = 0;
            e.withdrawals = 0;
            e.cycles = 0;
            e.withdrew.clear();
        }
        state
    }
}

#[cfg(test)]
mod tests;
