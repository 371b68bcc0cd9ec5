use super::*;

#[test]
fn cpu_is_interpolated_between_samples() {
    let s = [(1000, 1.0), (2000, 3.0), (4000, 4.0)];
    assert_eq!(cpu_at(&s, 1500), Some(2.0));
    assert_eq!(cpu_at(&s, 3000), Some(3.5));
    assert_eq!(cpu_at(&s, 1000), Some(1.0));
    assert_eq!(cpu_at(&s, 500), None, "before the first sample");
    assert_eq!(cpu_at(&s, 5000), None, "after the last");
}

#[test]
fn a_sweep_of_127_8_at_100k_pps_spans_four_minute_rounds() {
    // 16.7M addresses at 100k/s: 168 s, 3 rounds, and one to spare.
    assert_eq!(sweep_rounds(1 << 24, 100_000, 60), 4);
    assert_eq!(sweep_rounds(1 << 20, 100_000, 20), 2);
}

#[test]
fn a_round_is_reported_on_time_only_if_ended_and_stored_in_time() {
    let r = RoundRow {
        round: 1,
        blocks: 10,
        probes: 10,
        on_time: true,
        took_s: 40.0,
        stored_after_s: Some(70.0),
        cpu_s: Some(1.0),
        sweeping: false,
        packed_bytes: 30,
        drops: Some(0),
        rss_mib: Some(100.0),
    };
    assert!(r.reported_on_time(60));
    assert!(!RoundRow {
        stored_after_s: Some(121.0),
        ..r.clone()
    }
    .reported_on_time(60));
    assert!(!RoundRow {
        on_time: false,
        ..r.clone()
    }
    .reported_on_time(60));
    assert!(!RoundRow {
        stored_after_s: None,
        ..r
    }
    .reported_on_time(60));
}

#[test]
fn the_sparse_variant_answers_on_a_few_addresses_per_block() {
    let lines = sparse_routes("127.1.0.0/23".parse().unwrap(), 3);
    let local: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("route replace table local local 127.1."))
        .collect();
    assert_eq!(local.len(), 6);
    assert_eq!(
        local[0],
        "route replace table local local 127.1.0.1/32 dev lo"
    );
    assert_eq!(
        local[1],
        "route replace table local local 127.1.0.86/32 dev lo"
    );
    assert_eq!(
        local[5],
        "route replace table local local 127.1.1.171/32 dev lo"
    );
}
