//! The store against real databases (SQLite file, PostgreSQL when
//! configured): correlation queries, verdicts, faults, leases, coverage and
//! census, migrations (also from the first schema), and concurrent ingestion
//! of the same batch.

use crate::common::random_hex;
use darkwatch_collector::store::{Alerted, CampaignSpec, SqlStore, Store, Verdict, VpFault};
use darkwatch_collector::tokens;
use darkwatch_correlate::{Kind, Localization, Scope};
use darkwatch_schema::{BlockObservation, BlockState, ReportBatch};

pub(crate) const T0: i64 = 1_800_000_000_000;

pub(crate) fn obs(round: u64, block: &str, control: bool) -> BlockObservation {
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
        rtt_min_ms: None,
        rtt_median_ms: None,
        ts_ms: T0 + round as i64,
    }
}

pub(crate) fn batch(observations: Vec<BlockObservation>) -> ReportBatch {
    ReportBatch {
        observations,
        ..ReportBatch::new(random_hex(8), T0)
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
                BlockObservation {
                    rtt_min_ms: Some(12.0),
                    rtt_median_ms: Some(150.0),
                    ..obs(10, "198.18.1.0/24", false)
                },
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
    // Reply times come back within their 5 % scale; none where none came.
    let near = |t: Option<f64>, want: f64| t.is_some_and(|t| (t / want - 1.0).abs() < 0.03);
    assert!(near(o[0].obs.rtt_min_ms, 12.0), "{:?}", o[0].obs);
    assert!(near(o[0].obs.rtt_median_ms, 150.0), "{:?}", o[0].obs);
    assert_eq!((o[1].obs.rtt_min_ms, o[1].obs.rtt_median_ms), (None, None));
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

    // Routers' errors to the probes are stored per record, read back by
    // round range, stored once per batch, and purged with the raw rounds.
    let errors = |round: u64, first: u8| darkwatch_schema::ProbeErrors {
        campaign: "kp".into(),
        round,
        from: "203.0.113.244".parse().expect("addr"),
        blocks: vec![
            format!("198.18.{first}.0/24").parse().expect("net"),
            format!("198.18.{}.0/24", first + 1).parse().expect("net"),
        ],
        errors: 5,
        ts_ms: T0 + round as i64,
    };
    let mut b = batch(vec![]);
    b.probe_errors = vec![errors(10, 0), errors(10, 4), errors(11, 0)];
    store.ingest("a", &b, T0).await.expect("ingest");
    store.ingest("a", &b, T0).await.expect("ingest again");
    let got = store.probe_errors("kp", 10..=10).await.expect("query");
    assert_eq!(
        got.iter().map(|p| p.errors.clone()).collect::<Vec<_>>(),
        [errors(10, 0), errors(10, 4)]
    );
    assert!(got.iter().all(|p| p.agent == "a"));
    store.purge_raw("kp", 11, 1000).await.expect("purge");
    assert!(store
        .probe_errors("kp", 0..=10)
        .await
        .expect("query")
        .is_empty());
    assert_eq!(
        store
            .probe_errors("kp", 11..=11)
            .await
            .expect("query")
            .len(),
        1
    );
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
            agreeing: 2,
            probe_errors: 3,
            probe_errors_agreeing: 1,
            working_paths: 0,
        }),
        updated_ms: T0,
        change: None,
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
    // A degradation keeps its change text (migration 14), and an update
    // rewrites it.
    let degraded = Verdict {
        id: 0,
        kind: Kind::Degradation,
        start_round: 200,
        localization: None,
        change: Some("median RTT 4.1× baseline, loss 38 % (baseline 2 %)".into()),
        ..v.clone()
    };
    let did = store
        .save_verdicts(std::slice::from_ref(&degraded))
        .await
        .expect("degradation")[0];
    let list = store.list_verdicts(Some("kp"), None).await.expect("list");
    assert_eq!(
        list[1],
        Verdict {
            id: did,
            ..degraded.clone()
        }
    );
    assert_eq!(list[0].change, None);
    store
        .save_verdicts(&[Verdict {
            id: did,
            change: None,
            ..degraded.clone()
        }])
        .await
        .expect("clear change");
    let list = store.list_verdicts(Some("kp"), None).await.expect("list");
    assert_eq!(list[1].change, None, "an update rewrites the change");

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
    use darkwatch_collector::reconcile::Window;
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
        change: None,
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
        let window = Window {
            first_round: last - 50,
            last_round: last,
        };
        let out = core::Output {
            verdicts,
            ..Default::default()
        };
        events.extend(
            apply(&store, &store, &campaign, window, &out, T0 + pass as i64)
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

async fn coverage_and_census_keep_the_latest(db: &str) {
    use darkwatch_schema::{CampaignCensus, CensusBlock, Coverage, SkipReason, Skipped};
    let store = SqlStore::open(db).await.expect("open");
    let coverage = |blocks: u64| Coverage {
        campaign: "kp".into(),
        generation: 7,
        blocks_tracked: blocks,
        addresses_targeted: 1024,
        skipped: vec![Skipped {
            reason: SkipReason::Ipv6TooLarge,
            addresses: u64::MAX,
            examples: vec!["2401:f00::/32".parse().expect("net")],
        }],
    };
    let census = |block: &str, addrs: &[&str]| CampaignCensus {
        campaign: "kp".into(),
        blocks: vec![CensusBlock {
            block: block.parse().expect("block"),
            addrs: addrs.iter().map(|a| a.parse().expect("addr")).collect(),
        }],
    };
    let mut b = batch(vec![]);
    b.coverage = vec![coverage(4)];
    b.census = vec![
        census("198.18.1.0/24", &["198.18.1.1", "198.18.1.2"]),
        census("2001:db8:1::/48", &["2001:db8:1::1"]),
    ];
    store.ingest("a", &b, T0).await.expect("ingest");
    // A later report replaces a block's set; an empty one leaves it as it was.
    let mut b = batch(vec![]);
    b.coverage = vec![coverage(5)];
    b.census = vec![
        census("198.18.1.0/24", &["198.18.1.9"]),
        census("2001:db8:1::/48", &[]),
    ];
    store.ingest("b", &b, T0 + 1).await.expect("ingest");
    // A batch made earlier but arriving later (replayed from a spool) does
    // not undo the newer reports.
    let mut b = batch(vec![]);
    b.created_ms = T0 - 60_000;
    b.coverage = vec![coverage(9)];
    b.census = vec![census("198.18.1.0/24", &["198.18.1.200"])];
    store.ingest("b", &b, T0 + 2).await.expect("ingest");

    let cov = store.list_coverage().await.expect("coverage");
    assert_eq!(
        cov.iter()
            .map(|c| (c.agent.as_str(), c.coverage.blocks_tracked, c.updated_ms))
            .collect::<Vec<_>>(),
        [("a", 4, T0), ("b", 5, T0 + 1)]
    );
    assert_eq!(
        cov[0].coverage,
        coverage(4),
        "u64::MAX survives the round trip"
    );
    let got = store.census("kp").await.expect("census");
    assert_eq!(
        got,
        [
            census("198.18.1.0/24", &["198.18.1.9"]).blocks,
            census("2001:db8:1::/48", &["2001:db8:1::1"]).blocks
        ]
        .concat()
    );

    // Seeding (hitlists) replaces per block too; other campaigns are apart.
    store
        .put_census(
            "kp",
            &census("198.18.2.0/24", &["198.18.2.1"]).blocks,
            T0 + 2,
        )
        .await
        .expect("put");
    assert_eq!(store.census("kp").await.expect("census").len(), 3);
    assert!(store.census("cu").await.expect("census").is_empty());
    store.clear_census("kp").await.expect("clear");
    assert!(store.census("kp").await.expect("census").is_empty());
    store.close().await;
}

/// A database made by the first schema (migrations 1 and 2) upgrades in
/// order: migration 3 gives its verdicts alert flags and lifts the unique
/// natural keys, migration 4 adds the coverage and census tables. The old
/// database is rebuilt from a current one by undoing 3 and 4 by hand.
async fn first_schema_upgrades_in_order(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let verdict = |start_round: u64, end_round: Option<u64>| Verdict {
        id: 0,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round,
        end_round,
        start_ms: T0,
        end_ms: end_round.map(|_| T0 + 60_000),
        blocks_affected: 4,
        blocks_total: 4,
        prefixes: vec![],
        vantage_points: vec!["a".into()],
        localization: None,
        updated_ms: T0,
        change: None,
        alerted: Alerted::default(),
    };
    let ids = store
        .save_verdicts(&[verdict(100, None), verdict(50, Some(60))])
        .await
        .expect("save");
    store.close().await;

    sqlx::any::install_default_drivers();
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    for stmt in [
        "DROP TABLE coverage",
        "DROP TABLE census",
        "DROP INDEX verdicts_by_key",
        "DROP INDEX vp_faults_by_key",
        "ALTER TABLE verdicts DROP COLUMN alerts",
        "ALTER TABLE verdicts DROP COLUMN change_text",
        "CREATE UNIQUE INDEX verdicts_key ON verdicts (campaign, scope, target, kind, start_round)",
        "CREATE UNIQUE INDEX vp_faults_key ON vp_faults (agent, campaign, kind, start_round)",
        "DROP TABLE scope_summaries",
        "DROP TABLE summary_rounds",
        "DROP TABLE summary_scopes",
        "DELETE FROM schema_migrations WHERE version > 2",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.expect(stmt);
    }
    sqlx::Connection::close(conn).await.expect("close");

    let store = SqlStore::open(db).await.expect("upgrade");
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("versions");
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]);
    sqlx::Connection::close(conn).await.expect("close");

    // Verdicts stored before were alerted as they stand.
    let mut got = store.list_verdicts(Some("kp"), None).await.expect("list");
    got.sort_by_key(|v| v.id);
    assert_eq!(
        got.iter().map(|v| (v.id, v.alerted)).collect::<Vec<_>>(),
        [
            (
                ids[0],
                Alerted {
                    open: true,
                    close: false
                }
            ),
            (
                ids[1],
                Alerted {
                    open: true,
                    close: true
                }
            ),
        ]
    );
    // The natural key is only an index now.
    store
        .save_verdicts(&[verdict(100, None)])
        .await
        .expect("a second row with the same start");
    // Coverage and census are stored.
    let mut b = batch(vec![]);
    b.census = vec![darkwatch_schema::CampaignCensus {
        campaign: "kp".into(),
        blocks: vec![darkwatch_schema::CensusBlock {
            block: "198.18.1.0/24".parse().expect("block"),
            addrs: vec!["198.18.1.1".parse().expect("addr")],
        }],
    }];
    store.ingest("a", &b, T0).await.expect("ingest");
    assert_eq!(
        store.census("kp").await.expect("census"),
        b.census[0].blocks
    );
    assert!(store.list_coverage().await.expect("coverage").is_empty());
    store.close().await;
}

/// Batch ids are each agent's own: another agent's batch with an id already
/// used is stored, not acknowledged as a duplicate and dropped. A database
/// from before (batches keyed by id alone) is upgraded with its rows.
async fn batch_ids_are_each_agents_own(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let a = batch(vec![obs(7, "198.18.0.0/24", false)]);
    assert!(!store.ingest("a", &a, T0).await.expect("ingest").duplicate);
    store.close().await;

    // The table as it was before migration 11.
    sqlx::any::install_default_drivers();
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    for stmt in [
        "ALTER TABLE batches RENAME TO batches_new",
        "CREATE TABLE batches (batch_id TEXT PRIMARY KEY, agent TEXT NOT NULL, \
         received_ms BIGINT NOT NULL, observations BIGINT NOT NULL, traces BIGINT NOT NULL)",
        "INSERT INTO batches SELECT batch_id, agent, received_ms, observations, traces FROM batches_new",
        "DROP TABLE batches_new",
        "DELETE FROM schema_migrations WHERE version = 11",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.expect(stmt);
    }
    sqlx::Connection::close(conn).await.expect("close");

    let store = SqlStore::open(db).await.expect("upgrade");
    // The same agent resending: a duplicate, as before.
    let again = store.ingest("a", &a, T0).await.expect("resend");
    assert!(again.duplicate);
    // Another agent, the same id, its own observations: stored.
    let mut b = batch(vec![obs(7, "198.18.1.0/24", false)]);
    b.batch_id = a.batch_id.clone();
    let ack = store.ingest("b", &b, T0).await.expect("ingest b");
    assert!(!ack.duplicate, "{ack:?}");
    assert_eq!(ack.observations_stored, 1);
    assert_eq!(
        (ack.observations_not_stored, ack.not_stored_reason),
        (0, None)
    );
    let c = store.counts(0).await.expect("counts");
    assert_eq!((c.batches, c.observations), (2, 2));

    // The same observations under a new id: a fresh batch whose rows were
    // stored before. The answer says how many were not stored, and why.
    let mut resent = batch(vec![
        obs(7, "198.18.1.0/24", false),
        obs(7, "198.18.2.0/24", false),
    ]);
    resent.batch_id = random_hex(8);
    let ack = store.ingest("b", &resent, T0).await.expect("resend b");
    assert!(!ack.duplicate);
    assert_eq!(
        (ack.observations_stored, ack.observations_not_stored),
        (1, 1)
    );
    assert!(
        ack.not_stored_reason
            .as_deref()
            .is_some_and(|r| r.contains("already stored")),
        "{ack:?}"
    );
    store.close().await;
}

db_tests!(
    batch_ids_are_each_agents_own,
    queries_split_rounds_and_control,
    concurrent_duplicates_store_once,
    verdicts_faults_and_leases,
    agents_and_campaigns,
    passes_keep_verdict_identity,
    coverage_and_census_keep_the_latest,
    first_schema_upgrades_in_order,
);
