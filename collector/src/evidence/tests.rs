//! Tests of the evidence's pure parts: round counts, affected blocks,
//! traces and their endings, alert history, windows.

use super::*;
use crate::store::Alerted;
use darkwatch_correlate::Kind;
use darkwatch_schema::{BlockObservation, Hop, TraceObservation};

const INTERVAL: u64 = 60;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn obs(agent: &str, round: u64, block: &str, state: BlockState) -> AgentObservation {
    let up = state == BlockState::Up;
    AgentObservation {
        agent: agent.into(),
        obs: BlockObservation {
            campaign: "kp".into(),
            round,
            block: net(block),
            state,
            probes: if up { 1 } else { 3 },
            replies: u32::from(up),
            belief: 0.5,
            availability: 0.5,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: round_start_ms(round, INTERVAL),
        },
    }
}

fn verdict(start: u64, end: Option<u64>) -> Verdict {
    Verdict {
        id: 3,
        scope: Scope::Prefix,
        target: "198.18.0.0/23".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round: start,
        end_round: end,
        start_ms: round_start_ms(start, INTERVAL),
        end_ms: end.map(|e| round_start_ms(e, INTERVAL)),
        blocks_affected: 2,
        blocks_total: 2,
        prefixes: vec![net("198.18.0.0/23")],
        vantage_points: vec!["a".into(), "b".into()],
        localization: None,
        updated_ms: 0,
        change: None,
        alerted: Alerted {
            open: true,
            close: false,
        },
    }
}

fn campaign() -> Campaign {
    Campaign {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: INTERVAL,
        prefixes: vec![net("198.18.2.0/23"), net("198.18.0.0/23")],
        control: vec![],
        agents: vec![],
        generation: 1,
        created_ms: 0,
    }
}

fn trace(agent: &str, round: u64, hops: &[Option<&str>], reached: bool) -> AgentTrace {
    let hops: Vec<Hop> = hops
        .iter()
        .enumerate()
        .map(|(i, a)| Hop {
            ttl: i as u8 + 1,
            addr: a.map(|a| a.parse().unwrap()),
            rtt_ms: None,
            unreachable: None,
        })
        .collect();
    AgentTrace {
        agent: agent.into(),
        trace: TraceObservation {
            campaign: "kp".into(),
            round,
            target: "198.18.0.1".parse().unwrap(),
            last_responding: TraceObservation::derive_last_responding(&hops),
            reached,
            hops,
            ts_ms: 0,
        },
    }
}

#[test]
fn a_block_is_up_when_at_least_half_of_its_judges_saw_it_up() {
    use BlockState::*;
    let nets = [net("198.18.0.0/23")];
    let rows = [
        obs("a", 5, "198.18.0.0/24", Up),
        obs("b", 5, "198.18.0.0/24", Down),
        obs("a", 5, "198.18.1.0/24", Down),
        obs("b", 5, "198.18.1.0/24", Down),
        obs("c", 5, "198.18.1.0/24", Uncertain),
        // Out of scope, out of range: not counted.
        obs("a", 5, "198.18.2.0/24", Down),
        obs("a", 9, "198.18.0.0/24", Down),
    ];
    let r = round_counts(&rows, &nets, 0..=8, INTERVAL);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!((r.round, r.start_ms), (5, 300_000));
    assert_eq!(
        (r.blocks_judged, r.blocks_up, r.share_up),
        (2, 1, Some(0.5))
    );
    assert_eq!((r.probes, r.replies), (1 + 3 + 3 + 3 + 3, 1));
    let vps: Vec<_> = r
        .per_vp
        .iter()
        .map(|v| (v.vp.as_str(), v.blocks_judged, v.blocks_up, v.share_up))
        .collect();
    // An uncertain observation counts probes, not blocks.
    assert_eq!(
        vps,
        [
            ("a", 2, 1, Some(0.5)),
            ("b", 2, 0, Some(0.0)),
            ("c", 0, 0, None)
        ]
    );
    let json = serde_json::to_value(r).unwrap();
    assert!(json.get("phase").is_none(), "{json}");
    assert_eq!(json["per_vp"][0]["vp"], "a");
}

#[test]
fn affected_blocks_are_those_down_during_the_verdict() {
    use BlockState::*;
    let v = verdict(10, Some(12));
    let c = campaign();
    let nets = scope_nets(v.scope, &v.target, &c, &v.prefixes);
    assert_eq!(nets, [net("198.18.0.0/23")]);
    let rows = [
        // Down before: not affected by this verdict.
        obs("a", 9, "198.18.1.0/24", Down),
        obs("a", 10, "198.18.0.0/24", Down),
        obs("b", 10, "198.18.0.0/24", Down),
        obs("a", 11, "198.18.0.0/24", Up),
        obs("a", 11, "198.18.1.0/24", Up),
        obs("a", 12, "198.18.0.0/24", Down),
    ];
    let b = affected_blocks(&rows, &nets, &v, &c.prefixes);
    assert_eq!(
        b,
        [AffectedBlock {
            block: net("198.18.0.0/24"),
            prefix: Some(net("198.18.0.0/23")),
            rounds_down: 1,
            rounds_judged: 2,
        }]
    );
}

#[test]
fn scopes_map_to_their_networks() {
    let c = campaign();
    let fallback = [net("198.18.2.0/23")];
    let all = [net("198.18.0.0/23"), net("198.18.2.0/23")];
    assert_eq!(scope_nets(Scope::Country, "KP", &c, &fallback), all);
    assert_eq!(scope_nets(Scope::Asn, "AS64501", &c, &fallback), fallback);
    assert_eq!(
        scope_nets(Scope::Block, "198.18.0.0/24", &c, &[]),
        [net("198.18.0.0/24")]
    );
    assert_eq!(scope_nets(Scope::Prefix, "junk", &c, &fallback), fallback);
}

#[test]
fn traces_are_grouped_per_vp_with_where_they_ended() {
    let v = verdict(10, None);
    let nets = [net("198.18.0.0/23")];
    let full = [Some("192.0.2.1"), Some("203.0.113.1"), Some("198.18.0.1")];
    let cut = [Some("192.0.2.1"), Some("203.0.113.1"), None];
    let silent = [None, None];
    let mut other = trace("a", 10, &cut, false);
    other.trace.target = "198.18.9.1".parse().unwrap();
    let ts = [
        trace("b", 11, &cut, false),
        trace("a", 9, &full, true),
        trace("a", 10, &cut, false),
        trace("b", 10, &silent, false),
        trace("a", 11, &cut, false),
        other,
    ];
    let (per_vp, endings) = traces(&ts, &nets, &v);
    assert_eq!(per_vp.len(), 2);
    assert_eq!(per_vp[0].vp, "a");
    let rounds: Vec<(u64, &str)> = per_vp[0]
        .traces
        .iter()
        .map(|t| (t.round, t.phase))
        .collect();
    assert_eq!(rounds, [(9, "before"), (10, "during"), (11, "during")]);
    assert_eq!(
        per_vp[0].traces[1].hops,
        [
            Some("192.0.2.1".parse().unwrap()),
            Some("203.0.113.1".parse().unwrap()),
            None
        ]
    );
    let e: Vec<_> = endings
        .iter()
        .map(|e| {
            (
                e.phase,
                e.last_hop.map(|a| a.to_string()),
                e.reached,
                e.traces,
                e.of,
                e.vantage_points.join(","),
            )
        })
        .collect();
    assert_eq!(
        e,
        [
            ("before", Some("198.18.0.1".into()), true, 1, 1, "a".into()),
            (
                "during",
                Some("203.0.113.1".into()),
                false,
                3,
                4,
                "a,b".into()
            ),
            ("during", None, false, 1, 4, "b".into()),
        ]
    );
}

#[test]
fn the_window_spans_the_verdict_and_its_surroundings() {
    let m = MAX_ROUNDS;
    assert_eq!(
        window(&verdict(100, Some(110)), 10, Some(200), m),
        (90..=120, false)
    );
    // Not past the last complete round.
    assert_eq!(
        window(&verdict(100, Some(110)), 10, Some(115), m),
        (90..=115, false)
    );
    // Open: up to the last complete round.
    assert_eq!(
        window(&verdict(100, None), 5, Some(130), m),
        (95..=130, false)
    );
    assert_eq!(window(&verdict(3, None), 10, None, m), (0..=3, false));
    let (r, cut) = window(&verdict(100, None), 0, Some(100 + 5 * m), m);
    assert!(cut);
    assert_eq!(r.end() - r.start() + 1, m);
    assert_eq!(
        window(&verdict(100, Some(110)), 10, Some(200), 25),
        (90..=114, true)
    );
}

#[test]
fn large_campaigns_show_fewer_rounds() {
    assert_eq!(blocks_in(&[net("198.18.0.0/22"), net("198.18.8.0/24")]), 5);
    assert_eq!(blocks_in(&[net("198.18.0.0/25")]), 1);
    assert_eq!(blocks_in(&[net("2001:db8::/32")]), 65_536);
    assert_eq!(blocks_in(&[net("::/0")]), 1 << 48);
    // A small campaign: every round allowed.
    assert_eq!(max_rounds(8, 3, 10), MAX_ROUNDS);
    // 10 000 blocks seen by 4 VPs: 10 rounds fit, but never fewer than
    // the verdict's start with `around` rounds on each side.
    assert_eq!(max_rounds(10_000, 4, 2), 10);
    assert_eq!(max_rounds(10_000, 4, 10), 22);
    assert_eq!(max_rounds(u64::MAX, 0, 10), 22);
}

#[test]
fn alert_history_follows_the_stored_flags() {
    let mut v = verdict(100, None);
    let a = alert_history(&v);
    assert_eq!(
        (a[0].event, a[0].given, a[0].round),
        ("open", true, Some(100))
    );
    assert_eq!((a[1].event, a[1].given, a[1].round), ("close", false, None));
    assert_eq!(a[0].time.as_deref(), Some("1970-01-01T01:40:00Z"));
    v.end_round = Some(110);
    v.end_ms = Some(round_start_ms(110, INTERVAL));
    v.alerted.close = true;
    let a = alert_history(&v);
    assert_eq!((a[1].given, a[1].round), (true, Some(110)));
    assert_eq!(a[1].time.as_deref(), Some("1970-01-01T01:50:00Z"));
}

#[test]
fn an_ipv6_allocation_beside_a_hitlist_counts_its_tracked_48s_only() {
    let prefixes = [
        net("175.45.176.0/22"),
        net("198.51.100.0/26"),
        net("198.51.100.64/26"),
        net("2400:8b00::/32"),
    ];
    // Census /48s: two in the allocation (one twice), one outside it.
    let census = [
        net("2400:8b00:1::/48"),
        net("2400:8b00:2::/48"),
        net("2400:8b00:1::/48"),
        net("2001:db8::/48"),
    ];
    assert_eq!(tracked_blocks(&prefixes, &census), 4 + 1 + 2);
    // A 13-round blackout seen by three VPs is shown whole, with the
    // rounds around it; counting the /32 as 65,536 blocks cut it short.
    let v = verdict(100, Some(113));
    let max = max_rounds(tracked_blocks(&prefixes, &census), 3, ROUNDS_AROUND);
    assert_eq!(window(&v, ROUNDS_AROUND, Some(200), max), (90..=123, false));
    let by_allocation = max_rounds(blocks_in(&prefixes), 3, ROUNDS_AROUND);
    assert!(window(&v, ROUNDS_AROUND, Some(200), by_allocation).1);
}
