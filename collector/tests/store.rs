//! The store against real databases (SQLite file, PostgreSQL when
//! configured): correlation queries, verdicts, faults, leases, migrations,
//! and concurrent ingestion of the same batch.

mod common;

use common::random_hex;
use darkwatch_collector::store::{Alerted, CampaignSpec, SqlStore, Store, Verdict, VpFault};
use darkwatch_collector::tokens;
use darkwatch_correlate::{Kind, Localization, Scope};
use darkwatch_schema::{BlockObservation, BlockState, ReportBatch};

const T0: i64 = 1_800_000_000_000;

fn obs(round: u64, block: &str, control: bool) -> BlockObservation {
    BlockObservation {
        campaign: "kp".into(),
        round,
        block: block.parse().expect("block"),
        state: BlockState::Uncertain,
        probes: 3,
        replies: 1,
        belief: 0.5,
        availability: 0.25,
        control,
        ts_ms: T0 + round as i64,
    }
}

fn batch(observations: Vec<BlockObservation>) -> ReportBatch {
    ReportBatch {
        batch_id: random_hex(8),
        created_ms: T0,
        observations,
        traces: vec![],
        coverage: Vec::new(),
        census: Vec::new(),
    }
}

async fn queries_split_rounds_and_control(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    // Opening again re-runs migrations: must be a no-op.
    SqlStore::open(db).await.expect("reopen").close().await;

    store
        .ingest(
            "a",
            &batch(vec![
                obs(10, "198.18.1.0/24", false),
                obs(10, "192.0.2.0/24", true),
            ]),
            T0,
        )
        .await
        .expect("ingest");
    store
        .ingest("a", &batch(vec![obs(11, "198.18.1.0/24", false)]), T0)
        .await
        .expect("ingest");
    store
        .ingest("b", &batch(vec![obs(12, "198.18.1.0/24", false)]), T0)
        .await
        .expect("ingest");

    let o = store.observations("kp", 10..=11).await.expect("query");
    assert_eq!(
        o.iter()
            .map(|x| (x.agent.as_str(), x.obs.round))
            .collect::<Vec<_>>(),
        [("a", 10), ("a", 11)]
    );
    assert!(o.iter().all(|x| !x.obs.control));
    let c = store
        .control_observations("kp", 0..=u64::MAX)
        .await
        .expect("query");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].obs, obs(10, "192.0.2.0/24", true));
    assert!(store
        .observations("other", 0..=u64::MAX)
        .await
        .expect("query")
        .is_empty());

    // Which agent reported which round, and the latest round, as the
    // correlation reads them.
    let r = store.round_agents("kp", 0..=u64::MAX).await.expect("query");
    let rounds_of = |agent: &str| {
        r.iter()
            .filter(|(_, a)| a == agent)
            .map(|(round, _)| *round)
            .collect::<Vec<_>>()
    };
    assert_eq!(rounds_of("a"), [10, 11]);
    assert_eq!(rounds_of("b"), [12]);
    assert_eq!(r.iter().map(|(round, _)| *round).max(), Some(12));
    let none = store
        .round_agents("none", 0..=u64::MAX)
        .await
        .expect("query");
    assert_eq!(none.iter().map(|(round, _)| *round).max(), None);
    store.close().await;
}

async fn concurrent_duplicates_store_once(db: &str) {
    let store = std::sync::Arc::new(SqlStore::open(db).await.expect("open"));
    let b = batch(
        (0..50u8)
            .map(|i| obs(7, &format!("198.18.{i}.0/24"), false))
            .collect(),
    );
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (s, b) = (store.clone(), b.clone());
            tokio::spawn(async move { s.ingest("a", &b, T0).await.expect("ingest") })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        let ack = t.await.expect("task");
        if !ack.duplicate {
            fresh += 1;
            assert_eq!(ack.observations_stored, 50);
        }
    }
    assert_eq!(
        fresh, 1,
        "exactly one of the concurrent posts stores the batch"
    );
    let c = store.counts(0).await.expect("counts");
    assert_eq!((c.batches, c.observations), (1, 50));
    store.close().await;
}

async fn verdicts_faults_and_leases(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let mut v = Verdict {
        id: 0,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round: 100,
        end_round: None,
        start_ms: T0,
        end_ms: None,
        blocks_affected: 10,
        blocks_total: 12,
        prefixes: vec!["175.45.176.0/22".parse().expect("net")],
        vantage_points: vec!["a".into(), "b".into()],
        localization: Some(Localization {
            last_hop: Some("192.0.2.1".parse().expect("addr")),
            inside_target: false,
            vantage_points: vec!["a".into()],
            traces: 2,
        }),
        updated_ms: T0,
        alerted: Alerted {
            open: true,
            close: false,
        },
    };
    let id = store
        .save_verdicts(std::slice::from_ref(&v))
        .await
        .expect("insert")[0];
    assert!(id > 0);
    v.id = id;
    v.end_round = Some(157);
    v.end_ms = Some(T0 + 34_200_000);
    v.blocks_affected = 12;
    v.updated_ms = T0 + 1;
    v.alerted.close = true;
    assert_eq!(
        store
            .save_verdicts(std::slice::from_ref(&v))
            .await
            .expect("update"),
        [id],
        "same id updates in place"
    );
    let list = store.list_verdicts(Some("kp"), None).await.expect("list");
    assert_eq!(list, [Verdict { id, ..v.clone() }]);
    assert!(store
        .list_verdicts(Some("kp"), Some(T0 + 34_200_001))
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .list_verdicts(None, Some(T0))
            .await
            .expect("list")
            .len(),
        1
    );
    // Updating a verdict that is not there is an error, not an insert.
    assert!(store
        .save_verdicts(&[Verdict {
            id: id + 100,
            ..v.clone()
        }])
        .await
        .is_err());
    assert_eq!(
        store.list_verdicts(None, None).await.expect("list").len(),
        1
    );

    let f = VpFault {
        id: 0,
        agent: "a".into(),
        campaign: "kp".into(),
        start_round: 5,
        end_round: None,
        start_ms: T0,
        end_ms: None,
        reason: "control targets unreachable".into(),
        updated_ms: T0,
    };
    let fid = store
        .save_vp_faults(std::slice::from_ref(&f))
        .await
        .expect("fault")[0];
    assert_eq!(
        store.list_vp_faults(None, None).await.expect("list"),
        [VpFault { id: fid, ..f }]
    );

    assert!(store
        .try_lease("correlator", "c1", T0, 1000)
        .await
        .expect("lease"));
    assert!(
        !store
            .try_lease("correlator", "c2", T0 + 500, 1000)
            .await
            .expect("lease"),
        "held by c1"
    );
    assert!(
        store
            .try_lease("correlator", "c1", T0 + 500, 1000)
            .await
            .expect("lease"),
        "renewal"
    );
    assert!(
        store
            .try_lease("correlator", "c2", T0 + 1501, 1000)
            .await
            .expect("lease"),
        "expired"
    );
    store
        .release_lease("correlator", "c1")
        .await
        .expect("release of someone else's lease is a no-op");
    assert!(!store
        .try_lease("correlator", "c1", T0 + 1600, 1000)
        .await
        .expect("lease"));
    store
        .release_lease("correlator", "c2")
        .await
        .expect("release");
    assert!(store
        .try_lease("correlator", "c1", T0 + 1600, 1000)
        .await
        .expect("lease"));
    store.close().await;
}

async fn agents_and_campaigns(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let token = tokens::generate();
    store
        .add_agent("a", &tokens::hash(&token), T0)
        .await
        .expect("add");
    store
        .add_agent("b", &tokens::hash(&tokens::generate()), T0)
        .await
        .expect("add");
    use darkwatch_collector::store::AuthOutcome;
    assert_eq!(
        store
            .authenticate(&tokens::hash(&token))
            .await
            .expect("auth"),
        AuthOutcome::Agent("a".into())
    );
    assert_eq!(
        store
            .authenticate(&tokens::hash("nope"))
            .await
            .expect("auth"),
        AuthOutcome::Unknown
    );
    store.revoke_agent("a").await.expect("revoke");
    assert_eq!(
        store
            .authenticate(&tokens::hash(&token))
            .await
            .expect("auth"),
        AuthOutcome::Revoked("a".into())
    );

    let spec = CampaignSpec {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: 600,
        prefixes: vec!["175.45.176.0/22".parse().expect("net")],
        control: vec![],
        agents: vec!["b".into()],
    };
    let c = store.put_campaign(&spec, false, T0).await.expect("put");
    assert_eq!(c.created_ms, T0);
    assert!(store
        .campaigns_for_agent("a")
        .await
        .expect("for")
        .is_empty());
    assert_eq!(store.campaigns_for_agent("b").await.expect("for").len(), 1);
    let c2 = store
        .put_campaign(
            &CampaignSpec {
                agents: vec![],
                ..spec
            },
            true,
            T0 + 1,
        )
        .await
        .expect("replace");
    assert!(c2.generation > c.generation);
    assert_eq!(c2.created_ms, T0, "replacing keeps the creation time");
    assert_eq!(store.campaigns_for_agent("a").await.expect("for").len(), 1);
    store.close().await;
}

/// Correlation passes written through the real store: two recomputed runs
/// over one stored verdict (issue 17's alert storm) each keep their own row,
/// and every verdict gives one open and one close over many passes.
async fn passes_keep_verdict_identity(db: &str) {
    use darkwatch_collector::correlation::apply;
    use darkwatch_correlate as core;

    let store = SqlStore::open(db).await.expect("open");
    let campaign = store
        .put_campaign(
            &CampaignSpec {
                name: "kp".into(),
                country: Some("KP".into()),
                interval_secs: 60,
                prefixes: vec!["198.18.0.0/22".parse().expect("net")],
                control: vec![],
                agents: vec![],
            },
            false,
            T0,
        )
        .await
        .expect("campaign");
    let blackout = |start, end| core::Verdict {
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        start_round: start,
        end_round: end,
        blocks_affected: 4,
        blocks_total: 4,
        prefixes: vec![],
        vantage_points: vec!["a".into(), "b".into()],
        localization: None,
    };
    let mut events = Vec::new();
    for pass in 0..12u64 {
        let last = 110 + pass;
        let verdicts = match pass {
            0 => vec![blackout(100, None)],
            11 => vec![blackout(100, Some(103)), blackout(104, Some(120))],
            p if p % 2 == 1 => vec![blackout(100, Some(103)), blackout(104, None)],
            _ => vec![blackout(100, None)],
        };
        let input = core::Input {
            first_round: last - 50,
            last_round: last,
            ..Default::default()
        };
        let out = core::Output {
            verdicts,
            ..Default::default()
        };
        events.extend(
            apply(&store, &campaign, &input, &out, T0 + pass as i64)
                .await
                .expect("apply"),
        );
    }
    let rows = store.list_verdicts(Some("kp"), None).await.expect("list");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for r in &rows {
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e.verdict.id == r.id && e.event == kind)
                .count()
        };
        assert_eq!((of("open"), of("close")), (1, 1), "verdict {}", r.id);
        assert!(r.end_round.is_some());
    }
    assert_eq!(events.len(), 4);
    store.close().await;
}

db_tests!(
    queries_split_rounds_and_control,
    concurrent_duplicates_store_once,
    verdicts_faults_and_leases,
    agents_and_campaigns,
    passes_keep_verdict_identity
);
