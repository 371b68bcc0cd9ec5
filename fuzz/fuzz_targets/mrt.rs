//! Fuzzes the MRT decoder and the BGP core behind it: no panic on any
//! bytes (compressed or not); a file that stops early says why; events are
//! never more than the records allow for a clean file with no records;
//! through the core, no prefix is announced by more peers than know it.
#![no_main]
use darkwatch_collector::bgp::{mrt, replay, state::BgpCore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = mrt::decode(data.to_vec(), "fuzz");
    if d.records == 0 && d.error.is_none() {
        assert!(d.events.is_empty());
    }
    if let Some(e) = &d.error {
        assert!(!e.is_empty());
    }
    let mut core = BgpCore::new();
    let mut rounds = replay::feed(&mut core, d.events, 60);
    rounds.extend(core.snapshot());
    for r in &rounds {
        assert!(r.peers_up <= r.peers_known);
        for p in &r.prefixes {
            assert!(p.announced_by <= p.known_peers, "{p:?}");
            assert!(p.cycles <= p.announcements.min(p.withdrawals), "{p:?}");
            assert!(p.origins.windows(2).all(|w| w[0] < w[1]), "{p:?}");
        }
    }
});
