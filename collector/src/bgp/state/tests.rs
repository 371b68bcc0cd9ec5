use super::*;

fn peer(n: u8) -> PeerKey {
    PeerKey {
        source: "r1".into(),
        ip: IpAddr::from([192, 0, 2, n]),
        asn: 64500 + n as u32,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn announce(p: u8, prefix: &str, origin: u32) -> Event {
    Event::Announce {
        peer: peer(p),
        prefix: net(prefix),
        origin: Some(origin),
    }
}

fn withdraw(p: u8, prefix: &str) -> Event {
    Event::Withdraw {
        peer: peer(p),
        prefix: net(prefix),
    }
}

fn only(state: &RoundState, prefix: &str) -> PrefixRound {
    state
        .prefixes
        .iter()
        .find(|p| p.prefix == net(prefix))
        .cloned()
        .expect("prefix in the round")
}

#[test]
fn announcements_count_peers_and_origins_per_prefix() {
    let mut core = BgpCore::new();
    core.apply(10, Event::PeerUp(peer(1)), 5);
    core.apply(10, announce(1, "198.18.1.0/24", 65001), 5);
    core.apply(10, announce(2, "198.18.1.0/24", 65002), 5);
    core.apply(10, announce(2, "198.18.1.0/24", 65002), 5);
    let closed = core.advance(11, 5);
    assert_eq!(closed.len(), 1);
    let s = &closed[0];
    assert_eq!((s.round, s.peers_up, s.peers_known), (10, 2, 2));
    let p = only(s, "198.18.1.0/24");
    assert_eq!(p.announced_by, 2);
    assert_eq!(p.known_peers, 2);
    assert_eq!(p.origins, vec![65001, 65002]);
    // The repeated announcement is not a new route.
    assert_eq!((p.announcements, p.withdrawals, p.cycles), (2, 0, 0));
}

#[test]
fn peer_down_clears_its_routes_and_reads_withdrawn_by_1_of_1() {
    let mut core = BgpCore::new();
    core.apply(1, announce(1, "198.18.1.0/24", 65001), 5);
    core.apply(1, announce(1, "198.18.2.0/24", 65001), 5);
    core.advance(2, 5);
    core.apply(2, Event::PeerDown(peer(1)), 5);
    let s = &core.advance(3, 5)[0];
    assert_eq!(s.peers_up, 0);
    for prefix in ["198.18.1.0/24", "198.18.2.0/24"] {
        let p = only(s, prefix);
        assert_eq!((p.announced_by, p.known_peers, p.withdrawn_by()), (0, 1, 1));
        assert_eq!(p.withdrawals, 1);
        assert!(p.origins.is_empty());
    }
    // The next round still knows the prefix, withdrawn, with no movement.
    let next = &core.advance(4, 5)[0];
    let p = only(next, "198.18.1.0/24");
    assert_eq!((p.withdrawn_by(), p.withdrawals), (1, 0));
}

#[test]
fn withdraw_then_announce_in_a_round_is_a_cycle() {
    let mut core = BgpCore::new();
    core.apply(1, announce(1, "198.18.1.0/24", 65001), 5);
    core.advance(2, 5);
    for _ in 0..3 {
        core.apply(2, withdraw(1, "198.18.1.0/24"), 5);
        core.apply(2, announce(1, "198.18.1.0/24", 65001), 5);
    }
    let p = only(&core.advance(3, 5)[0], "198.18.1.0/24");
    assert_eq!((p.announcements, p.withdrawals, p.cycles), (3, 3, 3));
    assert_eq!(p.announced_by, 1);
}

#[test]
fn withdrawal_of_an_unknown_route_changes_nothing() {
    let mut core = BgpCore::new();
    core.apply(1, withdraw(1, "198.18.1.0/24"), 5);
    core.apply(1, announce(2, "198.18.2.0/24", 65001), 5);
    core.apply(1, withdraw(1, "198.18.2.0/24"), 5);
    let s = &core.advance(2, 5)[0];
    assert_eq!(s.prefixes.len(), 1);
    let p = only(s, "198.18.2.0/24");
    assert_eq!((p.announced_by, p.withdrawals), (1, 0));
}

#[test]
fn prefixes_are_keyed_by_their_network_address() {
    let mut core = BgpCore::new();
    core.apply(1, announce(1, "198.18.1.7/24", 65001), 5);
    core.apply(1, withdraw(1, "198.18.1.0/24"), 5);
    let p = only(&core.advance(2, 5)[0], "198.18.1.0/24");
    assert_eq!((p.announced_by, p.withdrawals), (0, 1));
}

#[test]
fn empty_rounds_between_events_are_closed_up_to_the_gap() {
    let mut core = BgpCore::new();
    core.apply(1, announce(1, "198.18.1.0/24", 65001), 5);
    let closed = core.apply(4, withdraw(1, "198.18.1.0/24"), 5);
    assert_eq!(
        closed.iter().map(|s| s.round).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(only(&closed[2], "198.18.1.0/24").announcements, 0);
    let far = core.advance(1000, 5);
    assert_eq!(
        far.iter().map(|s| s.round).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8, 9]
    );
    assert_eq!(core.open_round(), Some(1000));
}

#[test]
fn late_events_count_in_the_open_round() {
    let mut core = BgpCore::new();
    core.apply(5, announce(1, "198.18.1.0/24", 65001), 5);
    assert!(core.apply(3, withdraw(1, "198.18.1.0/24"), 5).is_empty());
    let s = core.snapshot().unwrap();
    assert_eq!(s.round, 5);
    assert_eq!(only(&s, "198.18.1.0/24").withdrawals, 1);
}

#[test]
fn origin_change_is_not_churn_but_is_seen() {
    let mut core = BgpCore::new();
    core.apply(1, announce(1, "198.18.1.0/24", 65001), 5);
    core.advance(2, 5);
    core.apply(2, announce(1, "198.18.1.0/24", 65666), 5);
    let p = only(&core.advance(3, 5)[0], "198.18.1.0/24");
    assert_eq!(p.origins, vec![65666]);
    assert_eq!((p.announcements, p.withdrawals), (0, 0));
}

#[test]
fn peer_up_without_routes_counts_the_session() {
    let mut core = BgpCore::new();
    core.apply(1, Event::PeerUp(peer(1)), 5);
    core.apply(1, Event::PeerUp(peer(2)), 5);
    core.apply(1, Event::PeerDown(peer(2)), 5);
    let s = &core.advance(2, 5)[0];
    assert_eq!((s.peers_up, s.peers_known), (1, 2));
    assert!(s.prefixes.is_empty());
}
