//! Incremental correlation against the store, on both backends: each pass
//! of `Correlator` gives the output of a fresh engine fed the whole window
//! afresh (the correlate crate's equivalence test holds that to the batch
//! `correlate`); a late round (a VP's spool draining) is read alone and
//! changes the verdicts exactly as a full recomputation does; a collector
//! that starts over (restart, campaign taken over) rebuilds the same state.

use darkwatch_collector::correlation::memory::MemoryStore;
use darkwatch_collector::correlation::{CorrelationSettings, Correlator};
use darkwatch_collector::store::{Campaign, CampaignSpec, SqlStore, Store};
use darkwatch_correlate as core;
use darkwatch_schema::{round_start_ms, ReportBatch};

use crate::common::{kp_observation, plain_batch};

const INTERVAL: u64 = 60;
const BLOCKS: [&str; 4] = [
    "198.18.0.0/24",
    "198.18.1.0/24",
    "198.18.2.0/24",
    "198.18.3.0/24",
];
const FIRST: u64 = 29_100_000;
/// Offsets of the rounds in which the second prefix is dark for vp-a,
/// vp-b sends nothing, and vp-c's reports (all up) arrive late.
const DARK: std::ops::RangeInclusive<u64> = 8..=12;

async fn campaign(store: &SqlStore) -> Campaign {
    store
        .put_campaign(
            &CampaignSpec {
                name: "kp".into(),
                country: Some("KP".into()),
                interval_secs: INTERVAL,
                prefixes: vec![
                    "198.18.0.0/23".parse().unwrap(),
                    "198.18.2.0/23".parse().unwrap(),
                ],
                control: vec![],
                agents: vec![],
            },
            false,
            0,
        )
        .await
        .expect("campaign")
}

fn reports(vp: &str, rounds: impl Iterator<Item = u64>) -> ReportBatch {
    let mut observations = Vec::new();
    for round in rounds {
        for (i, b) in BLOCKS.iter().enumerate() {
            let dark = vp == "vp-a" && i >= 2 && DARK.contains(&(round - FIRST));
            observations.push(kp_observation(round, b, dark, INTERVAL));
        }
    }
    plain_batch(observations)
}

/// The output of a fresh correlator over the store at `now`: every round
/// of the window fed to a new engine, writing nowhere (its sink is in
/// memory). The oracle each incremental pass is checked against.
async fn fresh(store: &SqlStore, c: &Campaign, s: &CorrelationSettings, now: i64) -> core::Output {
    let (out, _, stats) = Correlator::default()
        .pass(store, &MemoryStore::default(), c, s, None, now)
        .await
        .expect("fresh pass");
    assert!(stats.rebuilt);
    out
}

fn dark_prefix_verdicts(out: &core::Output) -> usize {
    out.verdicts
        .iter()
        .filter(|v| v.prefixes.iter().any(|p| p.to_string() == "198.18.2.0/23"))
        .count()
}

async fn a_late_round_rejudges_as_a_full_recomputation(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c = campaign(&store).await;
    let settings = CorrelationSettings {
        window_rounds: 16,
        ..CorrelationSettings::default()
    };
    let t = |offset: u64| round_start_ms(FIRST + offset + 2, INTERVAL);
    let mut correlator = Correlator::default();
    let mut last_out = core::Output::default();
    let mut next = 0;
    for upto in [3u64, 6, 10, 14, 17, 19] {
        // Rounds reported so far (vp-c's dark rounds are still spooled).
        for off in next..=upto {
            let r = FIRST + off;
            store
                .ingest("vp-a", &reports("vp-a", std::iter::once(r)), t(upto))
                .await
                .expect("a");
            if !DARK.contains(&off) {
                for vp in ["vp-b", "vp-c"] {
                    store
                        .ingest(vp, &reports(vp, std::iter::once(r)), t(upto))
                        .await
                        .expect("b, c");
                }
            }
        }
        next = upto + 1;
        let (out, _, stats) = correlator
            .pass(&store, &store, &c, &settings, None, t(upto))
            .await
            .expect("pass");
        assert_eq!(
            out,
            fresh(&store, &c, &settings, t(upto)).await,
            "up to {upto}"
        );
        assert!(
            stats.rounds_loaded <= 4,
            "{} rounds read for a pass",
            stats.rounds_loaded
        );
        last_out = out;
    }
    assert!(
        dark_prefix_verdicts(&last_out) > 0,
        "vp-a alone saw the prefix dark: {:#?}",
        last_out.verdicts
    );

    // vp-c's spool drains: its rounds say the prefix was up all along.
    let now = t(19) + 1000;
    store
        .ingest("vp-c", &reports("vp-c", (FIRST + 8)..=(FIRST + 12)), now)
        .await
        .expect("late");
    let (out, _, stats) = correlator
        .pass(&store, &store, &c, &settings, None, now)
        .await
        .expect("pass");
    assert_eq!(stats.rounds_loaded, 5, "only the late rounds are read");
    assert!(!stats.rebuilt);
    assert_eq!(out, fresh(&store, &c, &settings, now).await);
    assert_eq!(dark_prefix_verdicts(&out), 0, "{:#?}", out.verdicts);
    assert_ne!(out.verdicts, last_out.verdicts);
    // The verdicts stored are those of a full pass.
    let stored = store.list_verdicts(Some("kp"), None).await.expect("list");
    let (full, _, _) = Correlator::default()
        .pass(&store, &store, &c, &settings, None, now)
        .await
        .expect("full pass");
    assert_eq!(full, out);
    assert_eq!(
        store.list_verdicts(Some("kp"), None).await.expect("list"),
        stored
    );

    // Nothing new: nothing read.
    let (again, _, stats) = correlator
        .pass(&store, &store, &c, &settings, None, now + 1)
        .await
        .expect("pass");
    assert_eq!((stats.rounds_loaded, again), (0, out.clone()));

    // A collector that starts over (restarted, or handed the campaign)
    // reads the window once and reaches the same output.
    let mut fresh = Correlator::default();
    let (rebuilt, _, stats) = fresh
        .pass(&store, &store, &c, &settings, None, now + 2)
        .await
        .expect("pass");
    assert!(stats.rebuilt);
    assert_eq!(rebuilt, out);
    // Losing the campaign drops its state.
    fresh.retain(&Default::default());
    assert!(fresh.campaigns().is_empty());
}

/// A pass that panics in the correlation core (forced with the test hook
/// `Correlator::panic_once`) is caught: logged, counted in
/// `darkwatch_correlation_panics_total`, the other campaign of the same
/// loop pass is still correlated, and the next pass rebuilds the panicked
/// campaign from the store and judges it as a full pass does.
async fn a_panicking_pass_is_caught_and_correlation_goes_on(db: &str) {
    use darkwatch_collector::alerts::Alerts;
    use darkwatch_collector::clock::{Clock, ManualClock};
    use darkwatch_collector::correlation::{
        correlate_campaigns, LoopSetup, PassOutcome, RetentionSettings,
    };
    use darkwatch_collector::metrics::Metrics;
    use std::sync::Arc;

    let store = SqlStore::open(db).await.expect("open");
    let kp = campaign(&store).await;
    let kq = store
        .put_campaign(
            &CampaignSpec {
                name: "kq".into(),
                country: None,
                interval_secs: INTERVAL,
                prefixes: kp.prefixes.clone(),
                control: vec![],
                agents: vec![],
            },
            false,
            0,
        )
        .await
        .expect("campaign kq");
    let t = |offset: u64| round_start_ms(FIRST + offset + 2, INTERVAL);
    for vp in ["vp-a", "vp-b"] {
        // Both VPs see the second prefix dark in the DARK rounds.
        for name in ["kp", "kq"] {
            let mut b = reports("vp-a", FIRST..=FIRST + 14);
            for o in &mut b.observations {
                o.campaign = name.into();
            }
            store.ingest(vp, &b, t(14)).await.expect("ingest");
        }
    }
    let settings = CorrelationSettings {
        window_rounds: 16,
        ..CorrelationSettings::default()
    };
    let clock = ManualClock::new(t(14));
    let metrics = Metrics::default();
    let mut correlator = Correlator::default();
    correlator.panic_once("kp");
    let campaigns = [kp.clone(), kq.clone()];
    let setup = LoopSetup {
        settings: settings.clone(),
        retention: RetentionSettings::default(),
        holder: "test".into(),
        pfx2as: None,
        alerts: Alerts::disabled(),
        stats: metrics.correlation_stats(),
        clock: Arc::new(clock.clone()),
    };
    macro_rules! loop_pass {
        () => {
            correlate_campaigns(&mut correlator, &store, &store, &campaigns, &setup).await
        };
    }
    let outcomes = loop_pass!();
    assert_eq!(outcomes[0], PassOutcome::Panicked);
    assert!(
        matches!(outcomes[1], PassOutcome::Done(s) if s.rebuilt),
        "{outcomes:?}"
    );
    assert_eq!(metrics.correlation_panics("kp"), 1);
    assert_eq!(metrics.correlation_panics("kq"), 0);
    assert!(metrics
        .render(None)
        .contains("darkwatch_correlation_panics_total{campaign=\"kp\"} 1\n"));
    // kq was judged in the same loop pass; kp's state was dropped.
    let verdicts = |name: &'static str| {
        let store = &store;
        async move { store.list_verdicts(Some(name), None).await.expect("list") }
    };
    assert!(!verdicts("kq").await.is_empty(), "kq judged");
    assert!(verdicts("kp").await.is_empty(), "kp not judged yet");
    assert_eq!(correlator.campaigns(), ["kq"]);

    // The next pass rebuilds kp from the store and judges it.
    let outcomes = loop_pass!();
    assert!(
        matches!(outcomes[0], PassOutcome::Done(s) if s.rebuilt && s.rounds_loaded > 0),
        "{outcomes:?}"
    );
    assert!(matches!(outcomes[1], PassOutcome::Done(s) if !s.rebuilt));
    assert_eq!(metrics.correlation_panics("kp"), 1);
    let judged = verdicts("kp").await;
    assert!(
        judged
            .iter()
            .any(|v| v.prefixes.iter().any(|p| p.to_string() == "198.18.2.0/23")),
        "{judged:#?}"
    );
    // As a full pass judges it.
    let (full, _, _) = Correlator::default()
        .pass(&store, &store, &kp, &settings, None, clock.now_ms())
        .await
        .expect("full pass");
    let (again, _, _) = correlator
        .pass(&store, &store, &kp, &settings, None, clock.now_ms())
        .await
        .expect("pass");
    assert_eq!(again, full);
}

/// A packed round of `space` from one VP: every block, except every
/// seventh one (shifted by the round), up after one answered probe; the
/// blocks of `dark` down after 15 silent probes, in chunks of 5 blocks.
fn packed_round(
    space: &darkwatch_schema::BlockSpace,
    round: u64,
    dark: Option<&str>,
) -> ReportBatch {
    use darkwatch_schema::{BlockState, PackedBlock};
    let dark: Option<ipnet::IpNet> = dark.map(|d| d.parse().expect("net"));
    let blocks: Vec<PackedBlock> = (0..space.len())
        .filter(|i| (i + round) % 7 != 0)
        .map(|index| {
            let net = space.block_at(index).expect("block");
            let down = dark.is_some_and(|d| d.contains(&net));
            PackedBlock {
                index,
                state: if down {
                    BlockState::Down
                } else {
                    BlockState::Up
                },
                probes: if down {
                    15
                } else {
                    1 + u32::from(index % 5 == 0)
                },
                replies: u32::from(!down),
                belief: 0,
                availability: 0,
                rtt: darkwatch_schema::rtt::Rtt::NONE,
            }
        })
        .collect();
    let mut b = plain_batch(vec![]);
    b.packed = darkwatch_schema::packed::pack_chunks(
        "kp",
        round,
        space,
        round_start_ms(round, INTERVAL) + 1000,
        blocks,
        5,
    )
    .expect("pack");
    b
}

/// Packed rounds (several chunks, two VPs, mixed with a plain agent's
/// rows, one VP's rounds late) decode straight into the engine and give
/// the batch output over the window at every pass; after the campaign
/// changes, rounds packed against the old generation still decode (blocks
/// no longer in the campaign left out) and the output still equals it.
async fn packed_rounds_correlate_as_a_full_pass(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let spec = |prefixes: &[&str]| CampaignSpec {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: INTERVAL,
        prefixes: prefixes
            .iter()
            .map(|p| p.parse().expect("prefix"))
            .collect(),
        control: vec![],
        agents: vec![],
    };
    let c1 = store
        .put_campaign(&spec(&["198.18.0.0/21", "198.18.8.0/22"]), false, 0)
        .await
        .expect("campaign");
    let s1 = darkwatch_schema::BlockSpace::new(&c1.prefixes);
    let settings = CorrelationSettings {
        window_rounds: 12,
        ..CorrelationSettings::default()
    };
    let t = |offset: u64| round_start_ms(FIRST + offset + 2, INTERVAL);
    let dark = |off: u64| DARK.contains(&off).then_some("198.18.8.0/22");
    let mut correlator = Correlator::default();
    let mut next = 0;
    let mut judged_dark = false;
    for upto in [4u64, 9, 13, 16] {
        for off in next..=upto {
            let r = FIRST + off;
            store
                .ingest("pa", &packed_round(&s1, r, dark(off)), t(upto))
                .await
                .expect("pa");
            if off % 3 != 1 {
                // pb's rounds 1, 4, 7, ... come later.
                store
                    .ingest("pb", &packed_round(&s1, r, dark(off)), t(upto))
                    .await
                    .expect("pb");
            }
            store
                .ingest("old", &reports("old", std::iter::once(r)), t(upto))
                .await
                .expect("old");
        }
        next = upto + 1;
        let (out, _, _) = correlator
            .pass(&store, &store, &c1, &settings, None, t(upto))
            .await
            .expect("pass");
        assert_eq!(
            out,
            fresh(&store, &c1, &settings, t(upto)).await,
            "up to {upto}"
        );
        judged_dark |= dark_verdicts(&out, "198.18.8.0/22") > 0;
    }
    assert!(judged_dark, "the dark prefix was judged");
    // pb's held-back rounds arrive.
    for off in (0..=16).filter(|o| o % 3 == 1) {
        let r = FIRST + off;
        store
            .ingest("pb", &packed_round(&s1, r, dark(off)), t(16))
            .await
            .expect("late pb");
    }
    let (out, _, stats) = correlator
        .pass(&store, &store, &c1, &settings, None, t(16) + 1)
        .await
        .expect("pass");
    assert!(!stats.rebuilt && stats.rounds_loaded > 0, "{stats:?}");
    assert_eq!(out, fresh(&store, &c1, &settings, t(16) + 1).await);

    // A new generation: 198.18.8.0/22 leaves, 198.18.12.0/24 comes.
    let c2 = store
        .put_campaign(&spec(&["198.18.0.0/21", "198.18.12.0/24"]), true, 0)
        .await
        .expect("replace");
    let s2 = darkwatch_schema::BlockSpace::new(&c2.prefixes);
    for off in 17..=18 {
        let r = FIRST + off;
        for vp in ["pa", "pb"] {
            store
                .ingest(vp, &packed_round(&s2, r, Some("198.18.12.0/24")), t(18))
                .await
                .expect("new space");
        }
    }
    let (out, _, stats) = correlator
        .pass(&store, &store, &c2, &settings, None, t(18))
        .await
        .expect("pass");
    assert!(stats.rebuilt);
    assert_eq!(out, fresh(&store, &c2, &settings, t(18)).await);
    assert!(out
        .verdicts
        .iter()
        .all(|v| v.prefixes.iter().all(|p| p.to_string() != "198.18.8.0/22")));
    assert!(
        dark_verdicts(&out, "198.18.12.0/24") > 0,
        "{:#?}",
        out.verdicts
    );
}

fn dark_verdicts(out: &core::Output, prefix: &str) -> usize {
    out.verdicts
        .iter()
        .filter(|v| v.prefixes.iter().any(|p| p.to_string() == prefix))
        .count()
}

db_tests!(
    packed_rounds_correlate_as_a_full_pass,
    a_late_round_rejudges_as_a_full_recomputation,
    a_panicking_pass_is_caught_and_correlation_goes_on
);
