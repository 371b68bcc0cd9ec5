//! The live BGP state of a running collector: one [`BgpCore`] that the BMP
//! connections and the MRT directory feed, the recent closed rounds, and
//! the counters the metrics show.
//!
//! No I/O and no clock of its own: every call takes `now_ms`. Closed rounds
//! keep only the prefixes that moved or are not announced by every peer
//! that knows them (a steady full table of a million prefixes would
//! otherwise be copied every round); the full current state is the open
//! round's snapshot. With [`BgpHub::persist`], closed rounds also wait
//! whole for the store ([`BgpHub::take_closed`]; `listen::persist` writes
//! them through `compact`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use darkwatch_exposition::{Exposition, Labels};
use darkwatch_schema::round_of;
use ipnet::IpNet;

use super::mrt::TimedEvent;
use super::replay::MAX_GAP_ROUNDS;
use super::state::{BgpCore, Event, PrefixRound, RoundState};

/// Closed rounds kept in memory (a day of 10-minute rounds).
pub const KEEP_ROUNDS: usize = 144;

#[derive(Debug, Default)]
struct Inner {
    core: BgpCore,
    recent: VecDeque<RoundState>,
    /// Closed rounds whole, for the store (when it is kept).
    outbox: Vec<RoundState>,
    persist: bool,
}

/// Counters of what came in, for `/metrics`.
#[derive(Debug, Default)]
pub struct BgpCounters {
    pub bmp_connections: AtomicU64,
    pub bmp_messages: AtomicU64,
    pub bmp_errors: AtomicU64,
    pub mrt_files: AtomicU64,
    pub mrt_errors: AtomicU64,
    pub events: AtomicU64,
}

/// What `/v1/bgp` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpView {
    pub round_secs: u64,
    /// The open round, every prefix (or those inside the asked prefix).
    pub current: Option<RoundState>,
    /// Closed rounds, oldest first, with the prefixes that moved or were
    /// withdrawn by some peer.
    pub recent: Vec<RoundState>,
}

#[derive(Debug)]
pub struct BgpHub {
    round_secs: u64,
    inner: Mutex<Inner>,
    pub counters: BgpCounters,
}

fn notable(p: &PrefixRound) -> bool {
    p.announcements > 0 || p.withdrawals > 0 || p.announced_by < p.known_peers
}

fn within(p: &PrefixRound, filter: Option<IpNet>) -> bool {
    filter.is_none_or(|f| f.contains(&p.prefix) || p.prefix.contains(&f))
}

impl BgpHub {
    pub fn new(round_secs: u64) -> BgpHub {
        BgpHub {
            round_secs,
            inner: Mutex::default(),
            counters: BgpCounters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves whole events applied or not: the
        // state is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closed rounds are also kept whole until [`BgpHub::take_closed`]
    /// takes them (for the store).
    pub fn persist(self) -> BgpHub {
        self.lock().persist = true;
        self
    }

    /// The rounds closed since the last call, oldest first.
    pub fn take_closed(&self) -> Vec<RoundState> {
        std::mem::take(&mut self.lock().outbox)
    }

    fn keep(inner: &mut Inner, closed: Vec<RoundState>) {
        for mut r in closed {
            if inner.persist {
                inner.outbox.push(r.clone());
            }
            r.prefixes.retain(notable);
            inner.recent.push_back(r);
            while inner.recent.len() > KEEP_ROUNDS {
                inner.recent.pop_front();
            }
        }
    }

    /// Live events (BMP), counted in the round of `now_ms`.
    pub fn apply(&self, now_ms: i64, events: impl IntoIterator<Item = Event>) {
        let round = round_of(now_ms, self.round_secs);
        let mut inner = self.lock();
        let mut closed = inner.core.advance(round, MAX_GAP_ROUNDS);
        for e in events {
            self.counters.events.fetch_add(1, Ordering::Relaxed);
            closed.extend(inner.core.apply(round, e, MAX_GAP_ROUNDS));
        }
        Self::keep(&mut inner, closed);
    }

    /// Events with their own times (MRT files), in the rounds they fall in.
    pub fn apply_timed(&self, events: Vec<TimedEvent>) {
        let mut inner = self.lock();
        let n = events.len() as u64;
        let closed = super::replay::feed(&mut inner.core, events, self.round_secs);
        self.counters.events.fetch_add(n, Ordering::Relaxed);
        Self::keep(&mut inner, closed);
    }

    /// Time passes with no event: closes the rounds before `now_ms`'s.
    pub fn tick(&self, now_ms: i64) {
        let round = round_of(now_ms, self.round_secs);
        let mut inner = self.lock();
        let closed = inner.core.advance(round, MAX_GAP_ROUNDS);
        Self::keep(&mut inner, closed);
    }

    /// The state, limited to the prefixes inside (or covering) `prefix`.
    pub fn view(&self, prefix: Option<IpNet>) -> BgpView {
        let inner = self.lock();
        let cut = |r: &RoundState| RoundState {
            prefixes: r
                .prefixes
                .iter()
                .filter(|p| within(p, prefix))
                .cloned()
                .collect(),
            ..r.clone()
        };
        BgpView {
            round_secs: self.round_secs,
            current: inner.core.snapshot().map(|r| cut(&r)),
            recent: inner.recent.iter().map(cut).collect(),
        }
    }

    /// Gauges of the open round and the counters, for `/metrics`.
    pub fn expose(&self, e: &mut Exposition) {
        let snap = self.lock().core.snapshot();
        let (up, known, announced, withdrawn) = snap.map_or((0, 0, 0, 0), |s| {
            let announced = s.prefixes.iter().filter(|p| p.announced_by > 0).count();
            (
                s.peers_up,
                s.peers_known,
                announced,
                s.prefixes.len() - announced,
            )
        });
        let one = |v: f64| [(Labels::new(), v)];
        let c = |v: &AtomicU64| [(Labels::new(), v.load(Ordering::Relaxed))];
        e.gauge(
            "darkwatch_bgp_peers_up",
            "BGP peers whose session is up (BMP and MRT).",
            one(up as f64),
        )
        .gauge(
            "darkwatch_bgp_peers_known",
            "BGP peers seen since start.",
            one(known as f64),
        )
        .gauge(
            "darkwatch_bgp_prefixes_announced",
            "Routed prefixes announced by at least one peer.",
            one(announced as f64),
        )
        .gauge(
            "darkwatch_bgp_prefixes_withdrawn",
            "Routed prefixes seen before and now announced by no peer.",
            one(withdrawn as f64),
        )
        .counter(
            "darkwatch_bgp_bmp_connections_total",
            "BMP connections accepted.",
            c(&self.counters.bmp_connections),
        )
        .counter(
            "darkwatch_bgp_bmp_messages_total",
            "BMP messages decoded.",
            c(&self.counters.bmp_messages),
        )
        .counter(
            "darkwatch_bgp_bmp_errors_total",
            "BMP messages that did not decode, and streams that could not be framed.",
            c(&self.counters.bmp_errors),
        )
        .counter(
            "darkwatch_bgp_mrt_files_total",
            "MRT files read from the watched directory.",
            c(&self.counters.mrt_files),
        )
        .counter(
            "darkwatch_bgp_mrt_errors_total",
            "MRT files malformed or truncated (their records before the fault are kept).",
            c(&self.counters.mrt_errors),
        )
        .counter(
            "darkwatch_bgp_events_total",
            "BGP events (peer up/down, announcements, withdrawals) applied.",
            c(&self.counters.events),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::state::PeerKey;

    #[test]
    fn live_events_fall_in_the_round_of_now_and_closed_rounds_keep_what_moved() {
        let hub = BgpHub::new(60);
        let peer = PeerKey {
            source: "r".into(),
            ip: [192, 0, 2, 1].into(),
            asn: 64500,
        };
        let announce = |p: &str| Event::Announce {
            peer: peer.clone(),
            prefix: p.parse().unwrap(),
            origin: Some(65001),
        };
        hub.apply(
            1_000,
            [announce("198.18.1.0/24"), announce("198.18.2.0/24")],
        );
        hub.tick(61_000);
        hub.tick(121_000);
        hub.apply(125_000, [Event::PeerDown(peer.clone())]);
        hub.tick(181_000);
        let v = hub.view(None);
        assert_eq!(
            v.recent.iter().map(|r| r.round).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Round 1 had nothing move and everything announced.
        assert_eq!(
            v.recent
                .iter()
                .map(|r| r.prefixes.len())
                .collect::<Vec<_>>(),
            [2, 0, 2]
        );
        assert_eq!(v.recent[2].prefixes[0].withdrawn_by(), 1);
        let one = hub.view(Some("198.18.2.0/24".parse().unwrap()));
        assert_eq!(one.current.unwrap().prefixes.len(), 1);
        let mut e = Exposition::new();
        hub.expose(&mut e);
        let text = e.render();
        assert!(
            text.contains("darkwatch_bgp_prefixes_withdrawn 2"),
            "{text}"
        );
        assert!(text.contains("darkwatch_bgp_events_total 3"), "{text}");
    }
}
