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
