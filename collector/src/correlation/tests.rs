//! The correlation loop over the in-memory store ([`MemoryStore`]): no SQL,
//! no files, time from a [`ManualClock`]. The loop correlates, writes
//! verdicts and purges rounds past the retention; a failing pass and a panicking pass are reported and caught
//! while the other campaigns go on; leases move between two collectors;
//! packed records feed the engine as the same rows do.

use std::sync::Arc;

use darkwatch_schema::{
    round_start_ms, BlockObservation, BlockSpace, BlockState, PackedBlock, PackedRound,
};

use super::memory::MemoryStore;
use super::*;
use crate::alerts::Alerts;
use crate::clock::{Clock, ManualClock};
use crate::store::{AgentObservation, Campaign, RoundRecord, StoreError, StoredSpace, Verdict};

const INTERVAL: u64 = 60;
const FIRST: u64 = 29_100_000;
const BLOCKS: [&str; 4] = [
    "198.18.0.0/24",
    "198.18.1.0/24",
    "198.18.2.0/24",
    "198.18.3.0/24",
];
/// Offsets of the rounds in which the second prefix is dark.
const DARK: std::ops::RangeInclusive<u64> = 8..=12;
const DARK_PREFIX: &str = "198.18.2.0/23";

fn campaign(name: &str, country: Option<&str>, prefixes: &[&str]) -> Campaign {
    Campaign {
        name: name.into(),
        country: country.map(str::to_string),
        interval_secs: INTERVAL,
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        control: vec![],
        agents: vec![],
        generation: 1,
        created_ms: 0,
    }
}

fn kp(name: &str) -> Campaign {
    campaign(name, Some("KP"), &["198.18.0.0/23", DARK_PREFIX])
}

fn observation(
    campaign: &str,
    agent: &str,
    round: u64,
    block: &str,
    dark: bool,
) -> AgentObservation {
    AgentObservation {
        agent: agent.into(),
        obs: BlockObservation {
            campaign: campaign.into(),
            round,
            block: block.parse().unwrap(),
            state: if dark {
                BlockState::Down
            } else {
                BlockState::Up
            },
            probes: if dark { 3 } else { 1 },
            replies: u32::from(!dark),
            belief: 0.0,
            availability: 1.0,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: round_start_ms(round, INTERVAL) + 1000,
        },
    }
}

/// Rounds `FIRST..=FIRST + 14` of `campaign` from vp-a and vp-b, both
/// seeing the second prefix dark in the [`DARK`] rounds.
fn seed(store: &MemoryStore, campaign: &str) {
    let mut rows = Vec::new();
    for off in 0..=14 {
        for vp in ["vp-a", "vp-b"] {
            for (i, b) in BLOCKS.iter().enumerate() {
                let dark = i >= 2 && DARK.contains(&off);
                rows.push(observation(campaign, vp, FIRST + off, b, dark));
            }
        }
    }
    store.add_rounds(
        campaign,
        StoredRounds {
            rows,
            ..Default::default()
        },
    );
}

/// The time at which round `FIRST + 14` is the last one to judge.
fn t14() -> i64 {
    round_start_ms(FIRST + 16, INTERVAL)
}

fn setup(holder: &str, clock: &ManualClock) -> LoopSetup {
    LoopSetup {
        settings: CorrelationSettings {
            window_rounds: 16,
            lease_ttl_secs: Some(1.0),
            ..Default::default()
        },
        retention: RetentionSettings::default(),
        holder: holder.into(),
        pfx2as: None,
        alerts: Alerts::disabled(),
        stats: Arc::new(CorrelationStats::default()),
        clock: Arc::new(clock.clone()),
    }
}

fn dark_verdicts(vs: &[Verdict]) -> usize {
    vs.iter()
        .filter(|v| v.prefixes.iter().any(|p| p.to_string() == DARK_PREFIX))
        .count()
}

fn outcome(outcomes: &[(String, PassOutcome)], campaign: &str) -> PassOutcome {
    outcomes
        .iter()
        .find(|(c, _)| c == campaign)
        .unwrap_or_else(|| panic!("no pass over {campaign}: {outcomes:?}"))
        .1
}

#[tokio::test]
async fn the_loop_correlates_and_writes_verdicts() {
    let store = MemoryStore::default();
    store.put_campaign(kp("kp"));
    seed(&store, "kp");
    // A round older than the retention (30 days of 1-minute rounds).
    let old = FIRST - 50_000;
    store.add_rounds(
        "kp",
        StoredRounds {
            rows: vec![observation("kp", "vp-a", old, BLOCKS[0], false)],
            ..Default::default()
        },
    );
    let clock = ManualClock::new(t14());
    let setup = setup("a", &clock);
    let mut state = LoopState::default();

    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(
        matches!(outcome(&outcomes, "kp"), PassOutcome::Done(s) if s.rebuilt && s.rounds_loaded == 15),
        "{outcomes:?}"
    );
    let stored = store.verdicts("kp");
    assert!(dark_verdicts(&stored) > 0, "{stored:#?}");
    assert!(stored.iter().all(|v| v.id > 0));
    assert_eq!(
        store.lease_holder(&campaign_lease("kp"), clock.now_ms()),
        Some("a".into())
    );
    let writes = store.summary_writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(*writes[0].window.end(), FIRST + 14);
    assert_eq!(writes[0].rounds, 15);
    // The old round was purged after the pass; the window's rounds stay.
    let kept = |r| store.stored_rounds("kp", r);
    assert_eq!(kept(old..=old).await.unwrap(), StoredRounds::default());
    assert_eq!(
        kept(FIRST..=FIRST + 14).await.unwrap().rows.len(),
        15 * 2 * 4
    );

    // Nothing new: nothing read, the same verdicts (same ids) kept.
    clock.advance(std::time::Duration::from_millis(100));
    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(
        matches!(outcome(&outcomes, "kp"), PassOutcome::Done(s) if !s.rebuilt && s.rounds_loaded == 0),
        "{outcomes:?}"
    );
    assert_eq!(store.verdicts("kp"), stored);
}

#[tokio::test]
async fn a_failing_pass_is_reported_and_correlation_goes_on() {
    let store = MemoryStore::default();
    for name in ["kp", "kq"] {
        store.put_campaign(kp(name));
        seed(&store, name);
    }
    store.set_failing("kp", true);
    let clock = ManualClock::new(t14());
    let setup = setup("a", &clock);
    let mut state = LoopState::default();

    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert_eq!(outcome(&outcomes, "kp"), PassOutcome::Failed);
    assert!(matches!(outcome(&outcomes, "kq"), PassOutcome::Done(s) if s.rebuilt));
    assert!(store.verdicts("kp").is_empty());
    assert!(dark_verdicts(&store.verdicts("kq")) > 0);
    assert_eq!(state.correlator.campaigns(), ["kq"]);
    assert_eq!(setup.stats.panics("kp"), 0, "a failure is no panic");

    // The store is back: kp is rebuilt and judged.
    store.set_failing("kp", false);
    clock.advance(std::time::Duration::from_millis(100));
    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(
        matches!(outcome(&outcomes, "kp"), PassOutcome::Done(s) if s.rebuilt && s.rounds_loaded > 0),
        "{outcomes:?}"
    );
    assert!(dark_verdicts(&store.verdicts("kp")) > 0);
}

/// A pass that panics in the correlation core (forced with the test hook
/// `Correlator::panic_once`) is caught, counted, the other campaign of the
/// same loop pass is still correlated, and the next pass rebuilds the
/// panicked campaign and judges it as a fresh correlator does.
#[tokio::test]
async fn a_panicking_pass_is_caught_counted_and_rebuilt() {
    let store = MemoryStore::default();
    for name in ["kp", "kq"] {
        store.put_campaign(kp(name));
        seed(&store, name);
    }
    let clock = ManualClock::new(t14());
    let setup = setup("a", &clock);
    let mut state = LoopState::default();
    state.correlator.panic_once("kp");

    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert_eq!(outcome(&outcomes, "kp"), PassOutcome::Panicked);
    assert!(matches!(outcome(&outcomes, "kq"), PassOutcome::Done(s) if s.rebuilt));
    assert_eq!(setup.stats.panics("kp"), 1);
    assert_eq!(setup.stats.panics("kq"), 0);
    assert!(store.verdicts("kp").is_empty(), "kp not judged yet");
    assert!(!store.verdicts("kq").is_empty(), "kq judged");
    assert_eq!(state.correlator.campaigns(), ["kq"]);

    let outcomes = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(
        matches!(outcome(&outcomes, "kp"), PassOutcome::Done(s) if s.rebuilt && s.rounds_loaded > 0),
        "{outcomes:?}"
    );
    assert!(matches!(outcome(&outcomes, "kq"), PassOutcome::Done(s) if !s.rebuilt));
    assert_eq!(setup.stats.panics("kp"), 1);
    assert!(dark_verdicts(&store.verdicts("kp")) > 0);

    // As a fresh correlator judges it.
    let c = kp("kp");
    let now = clock.now_ms();
    let s = &setup.settings;
    let (again, _, _) = state
        .correlator
        .pass(&store, &store, &c, s, None, now)
        .await
        .unwrap();
    let (fresh, _, stats) = Correlator::default()
        .pass(&store, &store, &c, s, None, now)
        .await
        .unwrap();
    assert!(stats.rebuilt);
    assert_eq!(again, fresh);
}

/// Two collectors on one store: the first takes every campaign, hands the
/// surplus back when the second joins, and the second takes over all of
/// them once the first stops renewing its leases.
#[tokio::test]
async fn leases_move_between_two_collectors() {
    let store = MemoryStore::default();
    let names = ["ka", "kb", "kc", "kd"];
    for n in names {
        store.put_campaign(campaign(n, None, &["198.18.0.0/24"]));
    }
    let clock = ManualClock::new(t14());
    let (sa, sb) = (setup("a", &clock), setup("b", &clock));
    let (mut a, mut b) = (LoopState::default(), LoopState::default());
    let held = |s: &LoopState| s.held.iter().cloned().collect::<Vec<_>>();
    let holders = || {
        names
            .iter()
            .map(|n| store.lease_holder(&campaign_lease(n), clock.now_ms()))
            .collect::<Vec<_>>()
    };

    let outcomes = loop_pass(&mut a, &store, &store, &sa).await.unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(held(&a), names);
    // b joins: every lease has a live holder, so it takes none yet.
    clock.advance(std::time::Duration::from_millis(100));
    assert!(loop_pass(&mut b, &store, &store, &sb)
        .await
        .unwrap()
        .is_empty());
    // a sees two members and hands back the last two by name; b takes them.
    clock.advance(std::time::Duration::from_millis(100));
    assert_eq!(
        loop_pass(&mut a, &store, &store, &sa).await.unwrap().len(),
        2
    );
    assert_eq!(held(&a), ["ka", "kb"]);
    assert_eq!(a.correlator.campaigns().len(), 2);
    clock.advance(std::time::Duration::from_millis(100));
    assert_eq!(
        loop_pass(&mut b, &store, &store, &sb).await.unwrap().len(),
        2
    );
    assert_eq!(held(&b), ["kc", "kd"]);
    let some = |h: &str| Some(h.to_string());
    assert_eq!(holders(), [some("a"), some("a"), some("b"), some("b")]);

    // a dies: once its leases expire, b is alone and takes everything.
    clock.advance(std::time::Duration::from_millis(1_500));
    assert_eq!(
        loop_pass(&mut b, &store, &store, &sb).await.unwrap().len(),
        4
    );
    assert_eq!(held(&b), names);
    assert_eq!(holders(), vec![some("b"); 4]);
}

fn record(agent: &str, round: u64, space: &BlockSpace, blocks: Vec<PackedBlock>) -> RoundRecord {
    let p = PackedRound::pack("kp", round, space, 1_000, (0, 1), blocks).unwrap();
    RoundRecord {
        agent: agent.into(),
        round,
        chunk: 0,
        space: p.space.clone(),
        blocks: p.blocks,
        ts_ms: p.ts_ms,
        data: p.compressed().unwrap(),
    }
}

/// Packed records feed the engine as the same observations stored as rows
/// do, across two generations of the campaign's prefixes and mixed with
/// rows from an agent that does not pack; a record naming a space the
/// store does not know is corrupt.
#[tokio::test]
async fn packed_records_feed_the_engine_as_rows_do() {
    let old = campaign("kp", Some("KP"), &["198.18.0.0/22", "198.18.16.0/23"]);
    let new = campaign(
        "kp",
        Some("KP"),
        &["198.18.0.0/22", "198.18.8.0/24", "2001:db8::/47"],
    );
    let (s_old, s_new) = (
        BlockSpace::new(&old.prefixes),
        BlockSpace::new(&new.prefixes),
    );
    let block = |i: u64, round: u64| PackedBlock {
        index: i,
        state: [BlockState::Up, BlockState::Down, BlockState::Uncertain]
            [((i + round) % 3) as usize],
        probes: (i % 4) as u32 + 1,
        replies: (i % 2) as u32,
        belief: 0,
        availability: 0,
        rtt: darkwatch_schema::rtt::Rtt::NONE,
    };
    let mut records = Vec::new();
    let mut rows = Vec::new();
    for round in 10..14u64 {
        let (space, agent) = if round < 12 {
            (&s_old, "a")
        } else {
            (&s_new, "b")
        };
        let blocks: Vec<PackedBlock> = (0..space.len())
            .filter(|i| (i + round) % 4 != 0)
            .map(|i| block(i, round))
            .collect();
        for b in &blocks {
            let mut o = observation("kp", agent, round, "198.18.0.0/24", false);
            o.obs.block = space.block_at(b.index).unwrap();
            (o.obs.state, o.obs.probes, o.obs.replies) = (b.state, b.probes, b.replies);
            rows.push(o);
        }
        records.push(record(agent, round, space, blocks));
    }
    // An old agent's rows, kept as rows on both sides.
    let plain = observation("kp", "c", 10, "198.18.8.0/24", false);
    rows.push(plain.clone());
    let (from_rows, from_records) = (MemoryStore::default(), MemoryStore::default());
    from_rows.add_rounds(
        "kp",
        StoredRounds {
            rows,
            ..Default::default()
        },
    );
    from_records.add_rounds(
        "kp",
        StoredRounds {
            rows: vec![plain],
            records,
            ..Default::default()
        },
    );
    for (s, c) in [(&s_old, &old), (&s_new, &new)] {
        from_records.add_space(
            "kp",
            StoredSpace {
                digest: s.digest(),
                prefixes: c.prefixes.clone(),
            },
        );
    }
    // Round 13 is the last one to judge.
    let now = round_start_ms(15, INTERVAL);
    let settings = CorrelationSettings::default();
    let pass = |store| {
        let (new, settings) = (&new, &settings);
        async move {
            Correlator::default()
                .pass(store, store, new, settings, None, now)
                .await
        }
    };
    let (a, _, _) = pass(&from_rows).await.unwrap();
    let (b, _, _) = pass(&from_records).await.unwrap();
    assert_eq!(a, b);
    // Not vacuous: the VPs' probes of every observation (all but one a
    // packed block) are counted.
    let s = &a.summaries;
    let probes: u64 = (10..14)
        .filter_map(|r| s.round_index(r))
        .flat_map(|r| (0..s.vps as u32).filter_map(move |v| s.vp(r, v, 0)))
        .map(|t| t.probes)
        .sum();
    assert!(probes >= 15, "{probes} probes");

    // A record naming a space the store does not know is corrupt.
    let unknown = MemoryStore::default();
    unknown.add_rounds(
        "kp",
        StoredRounds {
            records: vec![record("a", 10, &s_old, vec![block(0, 10)])],
            ..Default::default()
        },
    );
    assert!(matches!(
        pass(&unknown).await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn a_changed_pfx2as_file_rebuilds_the_scopes_and_a_bad_one_is_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routeviews-rv2.pfx2as");
    std::fs::write(&path, "198.18.0.0\t23\t64500\n198.18.2.0\t23\t64501\n").unwrap();
    let store = MemoryStore::default();
    store.put_campaign(kp("kp"));
    seed(&store, "kp");
    let clock = ManualClock::new(t14());
    let mut setup = setup("a", &clock);
    setup.pfx2as = crate::inputs::open_pfx2as(&path, "correlating");
    let mut state = LoopState::default();
    let asn = |s: &MemoryStore, t: &str| {
        s.verdicts("kp")
            .iter()
            .any(|v| v.scope == darkwatch_correlate::Scope::Asn && v.target == t)
    };
    let rebuilt =
        |o: &[(String, PassOutcome)]| matches!(outcome(o, "kp"), PassOutcome::Done(s) if s.rebuilt);

    let o = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(rebuilt(&o) && asn(&store, "AS64501") && !asn(&store, "AS64502"));

    // Republished: the dark /23 now belongs to AS64502 (another size, so
    // a change within the file system's time resolution shows too).
    std::fs::write(
        &path,
        "198.18.0.0\t23\t64500\n198.18.2.0\t23\t64502_64503\n",
    )
    .unwrap();
    clock.advance(std::time::Duration::from_millis(100));
    let o = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(rebuilt(&o) && asn(&store, "AS64502"), "{o:?}");

    // A broken file: the data before is kept, the engines too; counted.
    std::fs::write(&path, "garbage\n").unwrap();
    clock.advance(std::time::Duration::from_millis(100));
    let o = loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    assert!(!rebuilt(&o), "{o:?}");
    let reloads = setup.stats.all_reloads();
    assert_eq!(reloads.get(&("pfx2as".to_string(), "loaded")), Some(&1));
    assert_eq!(reloads.get(&("pfx2as".to_string(), "refused")), Some(&1));
    assert_eq!(setup.pfx2as.as_ref().unwrap().current().1, 2);
}

/// Replay (issue 29): the verdicts a pass stored are re-derived from the
/// stored rounds, and a stored verdict the rounds do not give is found out.
#[tokio::test]
async fn replay_rederives_the_stored_verdicts() {
    let store = MemoryStore::default();
    store.put_campaign(kp("kp"));
    seed(&store, "kp");
    let clock = ManualClock::new(t14());
    let setup = setup("a", &clock);
    let mut state = LoopState::default();
    loop_pass(&mut state, &store, &store, &setup).await.unwrap();
    let stored = store.verdicts("kp");
    assert!(dark_verdicts(&stored) > 0, "{stored:#?}");
    let params = &setup.settings.params;
    let (_, cmp) = replay::replay(&store, &kp("kp"), params, None, FIRST, FIRST + 14)
        .await
        .unwrap();
    assert!(cmp.identical(), "{cmp:#?}");
    assert_eq!(cmp.same.len(), stored.len());

    let forged = Verdict {
        id: 0,
        start_round: FIRST + 3,
        ..stored[0].clone()
    };
    store.write_verdicts(&[forged]).await.unwrap();
    let (_, cmp) = replay::replay(&store, &kp("kp"), params, None, FIRST, FIRST + 14)
        .await
        .unwrap();
    assert!(!cmp.identical());
    assert_eq!(cmp.only_stored.len(), 1, "{cmp:#?}");
    assert_eq!(cmp.only_stored[0].3, FIRST + 3);
}
