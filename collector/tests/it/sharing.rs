//! Correlation shared by two collectors on one PostgreSQL database: each
//! campaign has its own lease, the live collectors split the campaigns
//! evenly, and when one dies (its loop stops without releasing anything,
//! like SIGKILL) the other takes its campaigns once their leases expire.
//! The verdicts are those one collector alone reaches on the same data.
//!
//! The two correlation loops run in this process against the same
//! database through separate pools, on one manual clock (which makes lease
//! expiry and round completion explicit steps of the test).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use darkwatch_collector::alerts::Alerts;
use darkwatch_collector::clock::{ManualClock, SharedClock};
use darkwatch_collector::correlation::{self, CorrelationSettings, RetentionSettings};
use darkwatch_collector::store::{CampaignSpec, SqlStore, Store, Verdict};
use darkwatch_schema::packed::pack_chunks;
use darkwatch_schema::{round_of, BlockSpace, BlockState, PackedBlock, ReportBatch};

use crate::common::{random_hex, Db};

const CAMPAIGNS: usize = 4;
/// A round start plus 30 s: the clock of the first phase.
const T0: i64 = 1_800_000_000_000 / 60_000 * 60_000 + 30_000;

fn r0() -> u64 {
    round_of(T0, 60)
}

fn name(i: usize) -> String {
    format!("c{i}")
}

async fn add_campaigns(store: &SqlStore) {
    for i in 0..CAMPAIGNS {
        let spec = CampaignSpec {
            name: name(i),
            country: None,
            interval_secs: 60,
            prefixes: vec![format!("198.18.{}.0/22", i * 4).parse().expect("prefix")],
            control: vec![],
            agents: vec![],
        };
        store
            .put_campaign(&spec, false, T0)
            .await
            .expect("campaign");
    }
}

/// Agent `agent`'s packed rounds of every campaign: campaign i is dark
/// from round r0 - 8 + i while `rounds` lasts, up before and after.
fn reports(rounds: std::ops::RangeInclusive<u64>, dark_until: u64) -> ReportBatch {
    let mut packed = Vec::new();
    for i in 0..CAMPAIGNS {
        let prefixes = vec![format!("198.18.{}.0/22", i * 4).parse().expect("prefix")];
        let space = BlockSpace::new(&prefixes);
        for round in rounds.clone() {
            let down = round >= r0() - 8 + i as u64 && round <= dark_until;
            let blocks = (0..space.len())
                .map(|index| PackedBlock {
                    index,
                    state: if down {
                        BlockState::Down
                    } else {
                        BlockState::Up
                    },
                    probes: if down { 8 } else { 2 },
                    replies: u32::from(!down) * 2,
                    belief: if down { 0 } else { 255 },
                    availability: 200,
                    rtt: darkwatch_schema::rtt::Rtt::NONE,
                })
                .collect();
            let ts = round as i64 * 60_000 + 50_000;
            packed.extend(pack_chunks(&name(i), round, &space, ts, blocks, 100).expect("pack"));
        }
    }
    ReportBatch {
        packed,
        ..ReportBatch::new(random_hex(8), T0)
    }
}

/// Phase 1: 20 rounds with an ongoing blackout; phase 2: 3 rounds of
/// recovery, seen at a clock 3 rounds later.
async fn seed(store: &SqlStore, phase: u8) {
    let rounds = if phase == 1 {
        r0() - 20..=r0() - 1
    } else {
        r0()..=r0() + 2
    };
    for agent in ["a", "b"] {
        store
            .ingest(agent, &reports(rounds.clone(), r0() - 1), T0)
            .await
            .expect("ingest");
    }
}

/// What identifies a verdict's outcome, store ids and times aside.
fn outcome(vs: &[Verdict]) -> Vec<String> {
    let mut v: Vec<String> = vs
        .iter()
        .map(|v| {
            format!(
                "{} {:?} {} {:?} {}..{:?} {}/{}",
                v.campaign,
                v.scope,
                v.target,
                v.kind,
                v.start_round,
                v.end_round,
                v.blocks_affected,
                v.blocks_total
            )
        })
        .collect();
    v.sort();
    v
}

/// Holder of each campaign's lease (expired or not).
async fn lease_holders(url: &str) -> BTreeMap<String, String> {
    let sqlx_url = darkwatch_collector::store::resolve_url(url).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, holder FROM leases WHERE name LIKE 'correlator:%'")
            .fetch_all(&mut conn)
            .await
            .expect("leases");
    sqlx::Connection::close(conn).await.expect("close");
    rows.into_iter().collect()
}

/// Polls `check` until it gives a value: a guard against a hung loop, not
/// a timing assertion.
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    for _ in 0..600 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn collector(store: SqlStore, holder: &str, clock: &ManualClock) -> tokio::task::JoinHandle<()> {
    let settings = CorrelationSettings {
        every_secs: 0.1,
        lease_ttl_secs: Some(1.0),
        ..CorrelationSettings::default()
    };
    let clock: SharedClock = Arc::new(clock.clone());
    tokio::spawn(correlation::run(
        Arc::new(store),
        correlation::LoopSetup {
            settings,
            retention: RetentionSettings::default(),
            holder: holder.to_string(),
            pfx2as: None,
            alerts: Alerts::disabled(),
            stats: Arc::default(),
            clock,
        },
    ))
}

/// One collector alone, pass by pass: the reference verdicts.
async fn reference() -> Vec<String> {
    let db = Db::sqlite();
    let store = SqlStore::open(&db.url).await.expect("open");
    add_campaigns(&store).await;
    let settings = CorrelationSettings::default();
    for (phase, now) in [(1, T0), (2, T0 + 180_000)] {
        seed(&store, phase).await;
        for c in store.list_campaigns().await.expect("campaigns") {
            correlation::Correlator::default()
                .pass(&store, &store, &c, &settings, None, now)
                .await
                .expect("pass");
        }
    }
    let v = outcome(&store.list_verdicts(None, None).await.expect("verdicts"));
    store.close().await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_share_campaigns_and_take_over_from_a_dead_one() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let expected = reference().await;
    assert_eq!(expected.len(), CAMPAIGNS, "{expected:?}");
    assert!(
        expected.iter().all(|v| v.contains("Blackout")),
        "{expected:?}"
    );

    let setup = SqlStore::open(&db.url).await.expect("open");
    add_campaigns(&setup).await;
    let clock = ManualClock::new(T0);
    let a = collector(
        SqlStore::open(&db.url).await.expect("a"),
        "collector-a",
        &clock,
    );
    let b = collector(
        SqlStore::open(&db.url).await.expect("b"),
        "collector-b",
        &clock,
    );

    // Both live: two campaigns each.
    let split = wait_for("the campaigns to be split 2 / 2", || async {
        let h = lease_holders(&db.url).await;
        let a_count = h.values().filter(|x| *x == "collector-a").count();
        (h.len() == CAMPAIGNS && a_count == CAMPAIGNS / 2).then_some(h)
    })
    .await;

    // Each correlates its own: every campaign's blackout opens, and no
    // campaign changed hands while both lived.
    seed(&setup, 1).await;
    wait_for("every campaign's blackout to open", || async {
        let v = setup.list_verdicts(None, None).await.expect("verdicts");
        (v.len() == CAMPAIGNS).then_some(())
    })
    .await;
    assert_eq!(lease_holders(&db.url).await, split);

    // A dies without handing anything back. Recovery data arrives and the
    // clock moves 3 rounds on, past every lease of A.
    a.abort();
    let _ = a.await;
    seed(&setup, 2).await;
    clock.set(T0 + 180_000);
    wait_for("B to hold every campaign", || async {
        let h = lease_holders(&db.url).await;
        (h.len() == CAMPAIGNS && h.values().all(|x| x == "collector-b")).then_some(())
    })
    .await;
    let got = wait_for("every blackout to close", || async {
        let v = setup.list_verdicts(None, None).await.expect("verdicts");
        (v.len() == CAMPAIGNS && v.iter().all(|v| v.end_round.is_some())).then_some(v)
    })
    .await;
    assert_eq!(outcome(&got), expected);
    b.abort();
    let _ = b.await;
    setup.close().await;
}
