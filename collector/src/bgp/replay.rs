//! Decoded MRT files through the core, in time order: what `bgp import`
//! prints and what the watched directory feeds.

use darkwatch_schema::round_of;

use super::mrt::{Decoded, TimedEvent};
use super::state::{BgpCore, RoundState};

/// Most empty rounds closed between two events: a gap of days in an
/// archive restarts the binning instead of emitting thousands of rounds.
pub const MAX_GAP_ROUNDS: u64 = 1_000;

/// The events of `files`, oldest first (stable: file order breaks ties, so
/// an announcement and its withdrawal in one second stay in order).
pub fn merged(files: Vec<Decoded>) -> Vec<TimedEvent> {
    let mut events: Vec<TimedEvent> = files.into_iter().flat_map(|d| d.events).collect();
    events.sort_by_key(|e| e.at_ms);
    events
}

/// Feeds `events` to `core` in rounds of `round_secs`; returns the rounds
/// this closes. The last round stays open in `core`.
pub fn feed(core: &mut BgpCore, events: Vec<TimedEvent>, round_secs: u64) -> Vec<RoundState> {
    let mut closed = Vec::new();
    for e in events {
        let round = round_of(e.at_ms, round_secs);
        closed.extend(core.apply(round, e.event, MAX_GAP_ROUNDS));
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::state::{Event, PeerKey};

    fn at(ms: i64, event: Event) -> TimedEvent {
        TimedEvent { at_ms: ms, event }
    }

    #[test]
    fn files_are_merged_by_time_and_binned_into_rounds() {
        let peer = PeerKey {
            source: "rv".into(),
            ip: [192, 0, 2, 1].into(),
            asn: 64500,
        };
        let prefix: ipnet::IpNet = "198.18.1.0/24".parse().unwrap();
        let announce = Event::Announce {
            peer: peer.clone(),
            prefix,
            origin: Some(65001),
        };
        let withdraw = Event::Withdraw {
            peer: peer.clone(),
            prefix,
        };
        // The second file is older: it must be applied first.
        let files = vec![
            Decoded {
                events: vec![at(125_000, withdraw)],
                ..Default::default()
            },
            Decoded {
                events: vec![at(61_000, announce)],
                ..Default::default()
            },
        ];
        let mut core = BgpCore::new();
        let closed = feed(&mut core, merged(files), 60);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].round, closed[0].prefixes[0].announced_by),
            (1, 1)
        );
        let open = core.snapshot().unwrap();
        assert_eq!((open.round, open.prefixes[0].withdrawn_by()), (2, 1));
    }
}
