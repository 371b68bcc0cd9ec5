//! Compact round storage against real databases: packed rounds stored as
//! they came and read back merged with plain rows, older block-space
//! generations, the bytes a typical round costs on disk, retention, and
//! the upgrade of a database made before compact storage.

use crate::store::{batch, obs, T0};
use darkwatch_collector::correlation::{self, RetentionSettings};
use darkwatch_collector::store::{
    Alerted, CampaignSpec, ScopeSummary, SqlStore, Store, SummaryRound, Verdict,
};
use darkwatch_correlate::{Kind, Scope};
use darkwatch_schema::packed::pack_chunks;
use darkwatch_schema::{BlockSpace, BlockState, PackedBlock, ReportBatch, TraceObservation};
use ipnet::IpNet;

fn spec(prefixes: &[&str]) -> CampaignSpec {
    CampaignSpec {
        name: "kp".into(),
        country: Some("KP".into()),
        interval_secs: 60,
        prefixes: prefixes
            .iter()
            .map(|p| p.parse().expect("prefix"))
            .collect(),
        control: vec![],
        agents: vec![],
    }
}

fn typical_round(space: &BlockSpace, round: u64) -> Vec<PackedBlock> {
    darkwatch_schema::packed::typical_round(space.len(), round)
}

fn packed_batch(
    space: &BlockSpace,
    round: u64,
    blocks: Vec<PackedBlock>,
    chunk: usize,
) -> ReportBatch {
    let mut b = batch(vec![]);
    b.packed = pack_chunks("kp", round, space, T0 + round as i64, blocks, chunk).expect("pack");
    b
}

async fn packed_rounds_are_stored_packed(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c1 = store
        .put_campaign(&spec(&["198.18.0.0/16"]), false, T0)
        .await
        .expect("campaign");
    let s1 = BlockSpace::new(&c1.prefixes);
    let blocks: Vec<PackedBlock> = typical_round(&s1, 10)
        .into_iter()
        .filter(|b| b.index % 5 != 0)
        .collect();
    let b = packed_batch(&s1, 10, blocks.clone(), 100);
    assert_eq!(blocks.len(), 204);
    assert_eq!(b.packed.len(), 3);
    let ack = store.ingest("a", &b, T0).await.expect("ingest");
    assert!(!ack.duplicate);
    assert_eq!(ack.observations_stored, blocks.len() as u64);
    // The same batch again, and the same chunks under another batch id,
    // store nothing more.
    assert!(store.ingest("a", &b, T0).await.expect("again").duplicate);
    let mut resent = b.clone();
    resent.batch_id = crate::common::random_hex(8);
    let ack = store.ingest("a", &resent, T0).await.expect("resent");
    assert_eq!(ack.observations_stored, 0);

    // Stored as records, not rows; read back merged with an old agent's rows.
    let records = store.round_records("kp", 0..=100).await.expect("records");
    assert_eq!(records.len(), 3);
    assert!(store
        .row_observations("kp", 0..=100)
        .await
        .expect("rows")
        .is_empty());
    store
        .ingest("old", &batch(vec![obs(10, "198.18.1.0/24", false)]), T0)
        .await
        .expect("plain");
    let merged = store.observations("kp", 10..=10).await.expect("merged");
    assert_eq!(merged.len(), blocks.len() + 1);
    let from_a: Vec<(IpNet, BlockState, u32)> = merged
        .iter()
        .filter(|o| o.agent == "a")
        .map(|o| (o.obs.block, o.obs.state, o.obs.probes))
        .collect();
    let want: Vec<(IpNet, BlockState, u32)> = blocks
        .iter()
        .map(|b| (s1.block_at(b.index).expect("block"), b.state, b.probes))
        .collect();
    assert_eq!(from_a, want);
    assert_eq!(
        store.round_agents("kp", 9..=11).await.expect("agents"),
        [(10, "a".to_string()), (10, "old".to_string())]
    );
    assert!(store
        .observations("kp", 11..=20)
        .await
        .expect("q")
        .is_empty());
    let counts = store.counts(0).await.expect("counts");
    assert_eq!(counts.observations, blocks.len() as u64 + 1);

    // The campaign grows: both generations are known, and rounds packed
    // against either decode.
    let c2 = store
        .put_campaign(&spec(&["198.18.0.0/16", "198.19.4.0/24"]), true, T0)
        .await
        .expect("replace");
    let s2 = BlockSpace::new(&c2.prefixes);
    let digests: Vec<String> = store
        .block_spaces("kp")
        .await
        .expect("spaces")
        .into_iter()
        .map(|s| s.digest)
        .collect();
    assert_eq!(digests.len(), 2);
    assert!(digests.contains(&s1.digest()) && digests.contains(&s2.digest()));
    store
        .ingest(
            "a",
            &packed_batch(&s2, 11, typical_round(&s2, 11), 1000),
            T0,
        )
        .await
        .expect("new space");
    let r11 = store.observations("kp", 11..=11).await.expect("r11");
    assert_eq!(r11.len() as u64, s2.len());
    assert!(r11
        .iter()
        .any(|o| o.obs.block.to_string() == "198.19.4.0/24"));
    store.close().await;
}

/// Bytes on disk per observation for a typical round: the growth of the
/// SQLite file (pages in use) or of the PostgreSQL table with its index and
/// TOAST, over 3 agents x 20 rounds of 16,384 blocks. The goal is at most
/// one byte.
async fn a_typical_round_costs_under_a_byte_per_observation(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c = store
        .put_campaign(&spec(&["10.0.0.0/10"]), false, T0)
        .await
        .expect("campaign");
    let space = BlockSpace::new(&c.prefixes);
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    let size_sql = if sqlx_url.starts_with("sqlite") {
        "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
    } else {
        // Partitioned (migration 7): the parent holds nothing itself.
        "SELECT COALESCE(SUM(pg_total_relation_size(inhrelid)), 0)::BIGINT FROM pg_inherits
         WHERE inhparent = 'round_records'::regclass"
    };
    let before: i64 = sqlx::query_scalar(size_sql)
        .fetch_one(&mut conn)
        .await
        .expect("size");
    let mut stored = 0u64;
    for round in 100..120u64 {
        for agent in ["a", "b", "c"] {
            let b = packed_batch(&space, round, typical_round(&space, round), 1 << 20);
            stored += store
                .ingest(agent, &b, T0)
                .await
                .expect("ingest")
                .observations_stored;
        }
    }
    assert_eq!(stored, 3 * 20 * space.len());
    let after: i64 = sqlx::query_scalar(size_sql)
        .fetch_one(&mut conn)
        .await
        .expect("size");
    let grown = after - before;
    let per_obs = grown as f64 / stored as f64;
    eprintln!("{sqlx_url}: {grown} bytes for {stored} observations: {per_obs:.3} B each");
    assert!(per_obs < 1.0, "{per_obs} bytes per observation");
    sqlx::Connection::close(conn).await.expect("close");
    store.close().await;
}

/// Retention deletes raw rounds (packed, plain, traces) before a round in
/// bounded steps and keeps verdicts.
async fn retention_deletes_raw_rounds_in_small_steps(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c = store
        .put_campaign(&spec(&["198.18.0.0/24"]), false, T0)
        .await
        .expect("campaign");
    let space = BlockSpace::new(&c.prefixes);
    for round in 1..=10u64 {
        let mut b = packed_batch(&space, round, typical_round(&space, round), 100);
        b.observations = vec![obs(round, "198.18.0.0/24", false)];
        b.traces = vec![TraceObservation {
            campaign: "kp".into(),
            round,
            target: "198.18.0.1".parse().expect("addr"),
            hops: vec![],
            reached: true,
            last_responding: None,
            ts_ms: T0,
        }];
        store.ingest("a", &b, T0).await.expect("ingest");
    }
    let verdict = Verdict {
        id: 0,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round: 2,
        end_round: Some(3),
        start_ms: T0,
        end_ms: Some(T0),
        blocks_affected: 1,
        blocks_total: 1,
        prefixes: vec![],
        vantage_points: vec!["a".into()],
        localization: None,
        updated_ms: T0,
        change: None,
        alerted: Alerted::default(),
    };
    store.save_verdicts(&[verdict]).await.expect("verdict");

    // Rounds 1..=6 go, two rows per table and statement: 6 records, 6
    // rows, 6 traces in three steps of up to 6 rows.
    let mut steps = Vec::new();
    loop {
        let n = store.purge_raw("kp", 7, 2).await.expect("purge");
        if n == 0 {
            break;
        }
        steps.push(n);
    }
    assert_eq!(steps, [6, 6, 6]);
    let rounds = |v: Vec<u64>| {
        let mut v = v;
        v.sort();
        v.dedup();
        v
    };
    let r = store.round_records("kp", 0..=100).await.expect("records");
    assert_eq!(
        rounds(r.iter().map(|x| x.round).collect()),
        (7..=10).collect::<Vec<_>>()
    );
    let o = store.observations("kp", 0..=100).await.expect("obs");
    assert_eq!(
        rounds(o.iter().map(|x| x.obs.round).collect()),
        (7..=10).collect::<Vec<_>>()
    );
    let t = store.traces("kp", 0..=100).await.expect("traces");
    assert_eq!(
        rounds(t.iter().map(|x| x.trace.round).collect()),
        (7..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .list_verdicts(Some("kp"), None)
            .await
            .expect("v")
            .len(),
        1
    );
    assert_eq!(store.purge_raw("other", 100, 10).await.expect("other"), 0);

    // Through the retention setting: with one day kept, a clock one day
    // and 8 rounds (60 s) after round 0 leaves rounds 8.. of those left.
    let retention = RetentionSettings { raw_days: 1 };
    let now = 86_400_000 + 8 * 60_000;
    let n = correlation::purge_old_rounds(&store, &c, &retention, now)
        .await
        .expect("purge");
    assert_eq!(n, 3);
    let r = store.round_records("kp", 0..=100).await.expect("records");
    assert_eq!(rounds(r.iter().map(|x| x.round).collect()), [8, 9, 10]);
    store.close().await;
}

/// A database made before compact storage (no `round_records`, no
/// `block_spaces`, version 6 not applied) upgrades in place: agents,
/// campaigns, verdicts and observations stay, the campaigns' current block
/// spaces are recorded, and packed rounds are accepted next to the old rows.
async fn a_database_from_before_compact_storage_upgrades(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    store.add_agent("a", "hash", T0).await.expect("agent");
    let c = store
        .put_campaign(&spec(&["198.18.0.0/24"]), false, T0)
        .await
        .expect("campaign");
    store
        .ingest("a", &batch(vec![obs(5, "198.18.0.0/24", false)]), T0)
        .await
        .expect("plain");
    let v = Verdict {
        id: 0,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Partial,
        campaign: "kp".into(),
        start_round: 5,
        end_round: None,
        start_ms: T0,
        end_ms: None,
        blocks_affected: 1,
        blocks_total: 1,
        prefixes: vec![],
        vantage_points: vec!["a".into()],
        localization: None,
        updated_ms: T0,
        change: None,
        alerted: Alerted::default(),
    };
    store.save_verdicts(&[v]).await.expect("verdict");
    store.close().await;

    sqlx::any::install_default_drivers();
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect");
    for stmt in [
        "DROP TABLE round_records",
        "DROP TABLE block_spaces",
        "ALTER TABLE verdicts DROP COLUMN change_text",
        "DELETE FROM schema_migrations WHERE version >= 6",
    ] {
        sqlx::query(stmt).execute(&mut conn).await.expect(stmt);
    }
    sqlx::Connection::close(conn).await.expect("close");

    let store = SqlStore::open(db).await.expect("upgrade");
    assert_eq!(store.list_agents().await.expect("agents").len(), 1);
    assert_eq!(
        store.list_campaigns().await.expect("campaigns"),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        store
            .list_verdicts(None, None)
            .await
            .expect("verdicts")
            .len(),
        1
    );
    assert_eq!(
        store.observations("kp", 0..=10).await.expect("obs").len(),
        1
    );
    let space = BlockSpace::new(&c.prefixes);
    assert_eq!(
        store.block_spaces("kp").await.expect("spaces")[0].digest,
        space.digest()
    );
    store
        .ingest(
            "a",
            &packed_batch(&space, 6, typical_round(&space, 6), 100),
            T0,
        )
        .await
        .expect("packed");
    assert_eq!(
        store.observations("kp", 0..=10).await.expect("obs").len(),
        2
    );
    store.close().await;
}

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// The "kp" campaign with 10-minute rounds.
fn spec_600(prefixes: &[&str]) -> CampaignSpec {
    CampaignSpec {
        interval_secs: 600,
        ..spec(prefixes)
    }
}

async fn raw_conn(db: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let sqlx_url = darkwatch_collector::store::resolve_url(db).expect("url").1;
    <sqlx::AnyConnection as sqlx::Connection>::connect(&sqlx_url)
        .await
        .expect("connect")
}

async fn count(conn: &mut sqlx::AnyConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut *conn)
        .await
        .expect(sql)
}

/// A database of version 6 (raw tables without `round_ms`, unpartitioned
/// on PostgreSQL) upgrades in place: every raw row stays readable, on
/// PostgreSQL each lands in the day partition of its round (the default
/// partition is left empty), and a round resent after the upgrade (same
/// chunks or rows under another batch id) is still stored once.
async fn a_database_from_before_time_partitions_upgrades(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c = store
        .put_campaign(&spec_600(&["198.18.0.0/24", "198.18.1.0/24"]), false, T0)
        .await
        .expect("campaign");
    let postgres = store.backend() == darkwatch_collector::store::Backend::Postgres;
    store.close().await;
    let space = BlockSpace::new(&c.prefixes);
    let now = now_ms();
    let rounds = [
        ((now - 10 * DAY_MS) / 600_000) as u64,
        ((now - 2 * DAY_MS) / 600_000) as u64,
    ];

    // Back to version 6, holding rows of two days.
    let mut conn = raw_conn(db).await;
    let blob = if postgres { "BYTEA" } else { "BLOB" };
    let v6 = [
        "DROP TABLE round_records".to_string(),
        "DROP TABLE observations".to_string(),
        format!(
            "CREATE TABLE round_records (campaign TEXT NOT NULL, round BIGINT NOT NULL,
             agent TEXT NOT NULL, chunk BIGINT NOT NULL, chunks BIGINT NOT NULL, space TEXT NOT NULL,
             blocks BIGINT NOT NULL, ts_ms BIGINT NOT NULL, data {blob} NOT NULL,
             PRIMARY KEY (campaign, round, agent, chunk))"
        ),
        "CREATE TABLE observations (agent TEXT NOT NULL, campaign TEXT NOT NULL,
         round BIGINT NOT NULL, block TEXT NOT NULL, state TEXT NOT NULL, probes BIGINT NOT NULL,
         replies BIGINT NOT NULL, belief DOUBLE PRECISION NOT NULL,
         availability DOUBLE PRECISION NOT NULL, control BIGINT NOT NULL, ts_ms BIGINT NOT NULL,
         PRIMARY KEY (agent, campaign, round, block))"
            .to_string(),
        "CREATE INDEX observations_by_round ON observations (campaign, round)".to_string(),
        "DELETE FROM schema_migrations WHERE version = 7".to_string(),
    ];
    for stmt in &v6 {
        sqlx::query(stmt).execute(&mut conn).await.expect(stmt);
    }
    let mut resend = Vec::new();
    for round in rounds {
        let b = packed_batch(&space, round, typical_round(&space, round), 100);
        for p in &b.packed {
            sqlx::query(
                "INSERT INTO round_records (campaign, round, agent, chunk, chunks, space, blocks, ts_ms, data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&p.campaign)
            .bind(round as i64)
            .bind("a")
            .bind(i64::from(p.chunk))
            .bind(i64::from(p.chunks))
            .bind(&p.space)
            .bind(i64::from(p.blocks))
            .bind(p.ts_ms)
            .bind(p.compressed().expect("compress"))
            .execute(&mut conn)
            .await
            .expect("v6 record");
        }
        let o = obs(round, "198.18.0.0/24", false);
        sqlx::query(
            "INSERT INTO observations (agent, campaign, round, block, state, probes, replies,
             belief, availability, control, ts_ms) VALUES ('old', 'kp', $1, $2, 'uncertain', 3, 1, 0.5, 0.25, 0, $3)",
        )
        .bind(round as i64)
        .bind(o.block.to_string())
        .bind(o.ts_ms)
        .execute(&mut conn)
        .await
        .expect("v6 row");
        resend.push((b, o));
    }

    let store = SqlStore::open(db).await.expect("upgrade");
    let all = store
        .observations("kp", rounds[0]..=rounds[1])
        .await
        .expect("obs");
    assert_eq!(all.len() as u64, 2 * (space.len() + 1));
    for (b, o) in &resend {
        let mut again = b.clone();
        again.batch_id = crate::common::random_hex(8);
        again.observations = vec![o.clone()];
        let ack = store.ingest("a", &again, T0).await.expect("resend packed");
        // The packed chunks are held; the plain row is new for agent "a".
        assert_eq!(ack.observations_stored, 1);
        let mut plain = batch(vec![o.clone()]);
        plain.batch_id = crate::common::random_hex(8);
        let ack = store.ingest("old", &plain, T0).await.expect("resend plain");
        assert_eq!(
            ack.observations_stored, 0,
            "a v6 row resent is stored again"
        );
    }
    assert_eq!(
        store
            .observations("kp", rounds[0]..=rounds[1])
            .await
            .expect("obs")
            .len() as u64,
        2 * (space.len() + 2)
    );
    if postgres {
        let parts = store.raw_partitions().await.expect("partitions");
        for table in ["round_records", "observations"] {
            for round in rounds {
                let day = chrono::DateTime::from_timestamp_millis(round as i64 * 600_000)
                    .expect("day")
                    .format("%Y%m%d");
                let name = format!("{table}_{day}");
                assert!(parts.contains(&name), "{name} not in {parts:?}");
            }
            let n = count(&mut conn, &format!("SELECT COUNT(*) FROM {table}_default")).await;
            assert_eq!(n, 0, "{table}_default holds rows");
        }
    }
    sqlx::Connection::close(conn).await.expect("close");
    store.close().await;
}

/// Retention by time: rounds older than `raw_days` go (on PostgreSQL by
/// dropping their day partitions, whose names disappear; on SQLite in
/// batches), recent rounds stay, and scope summaries and verdicts are kept.
async fn retention_drops_old_days_and_keeps_summaries(db: &str) {
    let store = SqlStore::open(db).await.expect("open");
    let c = store
        .put_campaign(&spec_600(&["198.18.0.0/24"]), false, T0)
        .await
        .expect("campaign");
    let space = BlockSpace::new(&c.prefixes);
    let now = now_ms();
    let old = [
        ((now - 40 * DAY_MS) / 600_000) as u64,
        ((now - 35 * DAY_MS) / 600_000) as u64,
    ];
    let recent = ((now - 3_600_000) / 600_000) as u64;
    // Partitions are made ready around "now": here also around the old days.
    for round in old {
        store
            .ensure_partitions(round as i64 * 600_000)
            .await
            .expect("partitions");
    }
    for round in old.into_iter().chain([recent]) {
        let mut b = packed_batch(&space, round, typical_round(&space, round), 100);
        b.observations = vec![obs(round, "198.18.0.0/24", false)];
        store.ingest("a", &b, T0).await.expect("ingest");
        let summary = ScopeSummary {
            campaign: "kp".into(),
            scope: Scope::Campaign,
            target: "kp".into(),
            round,
            vp: String::new(),
            blocks_judged: 1,
            blocks_up: 1,
            probes: 1,
            replies: 1,
        };
        let written = SummaryRound {
            round,
            interval_secs: 600,
            digest: 1,
            updated_ms: T0,
        };
        store
            .replace_summaries("kp", round..=round, round..=round, &[written], &[summary])
            .await
            .expect("summaries");
    }
    let verdict = Verdict {
        id: 0,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round: old[0],
        end_round: Some(old[0] + 1),
        start_ms: T0,
        end_ms: Some(T0),
        blocks_affected: 1,
        blocks_total: 1,
        prefixes: vec![],
        vantage_points: vec!["a".into()],
        localization: None,
        updated_ms: T0,
        change: None,
        alerted: Alerted::default(),
    };
    store.save_verdicts(&[verdict]).await.expect("verdict");
    let parts_before = store.raw_partitions().await.expect("partitions");

    let retention = RetentionSettings { raw_days: 30 };
    let n = correlation::purge_old_rounds(&store, &c, &retention, now)
        .await
        .expect("purge");
    assert!(n > 0);
    let left: Vec<u64> = store
        .observations("kp", 0..=recent + 10)
        .await
        .expect("obs")
        .iter()
        .map(|o| o.obs.round)
        .collect();
    assert!(
        !left.is_empty() && left.iter().all(|r| *r == recent),
        "{left:?}"
    );
    assert!(store
        .round_records("kp", 0..=recent + 10)
        .await
        .expect("records")
        .iter()
        .all(|r| r.round == recent));
    for round in old.into_iter().chain([recent]) {
        let kept = store
            .scope_summaries("kp", Scope::Campaign, "kp", round..=round)
            .await
            .expect("summaries");
        assert_eq!(kept.len(), 1, "summary of round {round}");
    }
    assert_eq!(
        store
            .list_verdicts(Some("kp"), None)
            .await
            .expect("v")
            .len(),
        1
    );
    if store.backend() == darkwatch_collector::store::Backend::Postgres {
        let parts = store.raw_partitions().await.expect("partitions");
        for round in old {
            let day = chrono::DateTime::from_timestamp_millis(round as i64 * 600_000)
                .expect("day")
                .format("%Y%m%d");
            let name = format!("round_records_{day}");
            assert!(parts_before.contains(&name), "{name} was not made");
            assert!(!parts.contains(&name), "{name} was not dropped");
        }
        // Days of the recent round remain; nothing went through the
        // default partitions.
        assert!(!parts.is_empty());
        let mut conn = raw_conn(db).await;
        for table in ["round_records_default", "observations_default"] {
            assert_eq!(
                count(&mut conn, &format!("SELECT COUNT(*) FROM {table}")).await,
                0
            );
        }
        sqlx::Connection::close(conn).await.expect("close");
    }
    store.close().await;
}

db_tests!(
    a_database_from_before_time_partitions_upgrades,
    retention_drops_old_days_and_keeps_summaries,
    packed_rounds_are_stored_packed,
    a_typical_round_costs_under_a_byte_per_observation,
    retention_deletes_raw_rounds_in_small_steps,
    a_database_from_before_compact_storage_upgrades,
);
