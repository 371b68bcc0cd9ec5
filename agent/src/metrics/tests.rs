use super::*;
use crate::belief::RoundOutcome;
use darkwatch_schema::{BlockState, RoundInfo, SkipReason};
use std::time::Duration;

fn outcome(probes: u32, replies: u32) -> RoundOutcome {
    RoundOutcome {
        block: "198.18.0.0/24".parse().unwrap(),
        state: if replies > 0 {
            BlockState::Up
        } else {
            BlockState::Down
        },
        probes,
        replies,
        belief: 0.5,
        availability: 0.5,
        rtt: Default::default(),
    }
}

fn results(
    outcomes: Vec<RoundOutcome>,
    controls: Vec<RoundOutcome>,
    on_time: bool,
) -> RoundResults {
    RoundResults {
        outcomes,
        controls,
        traces: vec![],
        errors: vec![],
        found: BTreeMap::new(),
        info: Some(RoundInfo {
            campaign: "kp".into(),
            round: 10,
            started_ms: 600_000,
            ended_ms: 661_000,
            on_time,
            blocks: 2,
            probes: 6,
        }),
        report_errors: false,
    }
}

#[test]
fn round_stats_sum_blocks_and_controls_and_keep_skips_by_reason() {
    let r = results(
        vec![outcome(3, 0), outcome(1, 1)],
        vec![outcome(2, 2)],
        false,
    );
    let skipped = [Skipped {
        reason: SkipReason::Reserved,
        addresses: 256,
        examples: vec![],
    }];
    let s = RoundStats::of(&r, &skipped, 0);
    assert_eq!(
        (s.probes, s.replies, s.late, s.finished_ms),
        (6, 3, true, 661_000)
    );
    assert_eq!(s.skipped, BTreeMap::from([("reserved".to_string(), 256)]));
    let on_time = RoundStats::of(&results(vec![], vec![], true), &[], 0);
    assert!(!on_time.late);
    let no_info = RoundStats::of(
        &RoundResults {
            info: None,
            ..results(vec![], vec![], false)
        },
        &[],
        5,
    );
    assert_eq!((no_info.late, no_info.finished_ms), (false, 5));
}

#[test]
fn counters_accumulate_and_refusals_count_once_per_generation() {
    let mut c = Counters::default();
    let s = RoundStats {
        probes: 5,
        replies: 4,
        late: true,
        finished_ms: 1_500,
        skipped: BTreeMap::from([("excluded".to_string(), 10)]),
    };
    c.round_done("kp", &s);
    c.round_done(
        "kp",
        &RoundStats {
            late: false,
            skipped: BTreeMap::new(),
            finished_ms: 2_500,
            ..s.clone()
        },
    );
    let kp = &c.campaigns["kp"];
    assert_eq!(
        (kp.rounds, kp.rounds_late, kp.probes, kp.replies),
        (2, 1, 10, 8)
    );
    assert!(kp.skipped.is_empty(), "skips are the last round's");
    assert_eq!(kp.last_round_ms, 2_500);
    assert!(c.refused("bad", 1));
    assert!(!c.refused("bad", 1));
    assert!(c.refused("bad", 2));
    assert_eq!(c.assignments_refused, 2);
}

#[test]
fn render_writes_every_family_with_escaped_labels() {
    let mut c = Counters::default();
    c.round_done(
        "k\"p",
        &RoundStats {
            probes: 7,
            replies: 3,
            late: false,
            finished_ms: 1_700_000_000_250,
            skipped: BTreeMap::from([("reserved".to_string(), 256)]),
        },
    );
    c.batches_rejected = 2;
    c.batches_partial = 1;
    c.drains_held = 4;
    c.clock_offset_ms = Some(-90_500);
    let text = render(
        &c,
        Some(SpoolUsage {
            bytes: 1234,
            batches: 3,
        }),
    );
    for line in [
        "darkwatch_agent_rounds_total{campaign=\"k\\\"p\"} 1",
        "darkwatch_agent_rounds_late_total{campaign=\"k\\\"p\"} 0",
        "darkwatch_agent_probes_total{campaign=\"k\\\"p\"} 7",
        "darkwatch_agent_replies_total{campaign=\"k\\\"p\"} 3",
        // The shortest exact float (prometheus-client's; was `.250`).
        "darkwatch_agent_last_round_timestamp_seconds{campaign=\"k\\\"p\"} 1700000000.25",
        "darkwatch_agent_skipped_addresses{campaign=\"k\\\"p\",reason=\"reserved\"} 256",
        "darkwatch_agent_batches_rejected_total 2",
        "darkwatch_agent_batches_partial_total 1",
        "darkwatch_agent_drains_held_total 4",
        "darkwatch_agent_clock_offset_seconds -90.5",
        "darkwatch_agent_assignments_refused_total 0",
        "darkwatch_agent_spool_bytes 1234",
        "darkwatch_agent_spool_batches 3",
        "# TYPE darkwatch_agent_spool_bytes gauge",
        "# TYPE darkwatch_agent_rounds_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!render(&c, None).contains("spool_bytes"));
    let names = names();
    assert_eq!(names.len(), 15, "{names:?}");
    assert!(names.iter().all(|n| text.contains(&format!("# TYPE {n} "))));
}

/// Status and body of `method path` as the listener's app answers it.
async fn answer(method: &str, path: &str, m: Arc<Metrics>) -> (u16, String) {
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = http::router(m).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn http_answers_metrics_only_at_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
    let m = Arc::new(Metrics::open(&MetricsConfig::default(), dir.path(), spool).unwrap());
    assert_eq!(
        answer("GET", "/metrics", m.clone()).await,
        (200, m.render())
    );
    assert_eq!(answer("GET", "/metrics?a=b", m.clone()).await.0, 200);
    assert_eq!(answer("GET", "/", m.clone()).await.0, 404);
    assert_eq!(answer("POST", "/metrics", m.clone()).await.0, 405);
    assert_eq!(answer("POST", "/", m.clone()).await.0, 405);
}

#[test]
fn counters_persist_and_the_textfile_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), 1 << 20).unwrap());
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = MetricsConfig {
        listen: None,
        textfile: Some(dir.path().join("darkwatch.prom")),
    };
    let m = Metrics::open(&cfg, &state, spool.clone()).unwrap();
    let s = RoundStats::of(&results(vec![outcome(2, 1)], vec![], false), &[], 0);
    m.round_done("kp", &s);
    m.refused("bad", 3);
    m.drained(&Drained {
        rejected: 1,
        ..Drained::default()
    });
    drop(m);
    // A new process (cron's next run) goes on counting.
    let m = Metrics::open(&cfg, &state, spool).unwrap();
    m.round_done("kp", &s);
    let text = std::fs::read_to_string(dir.path().join("darkwatch.prom")).unwrap();
    assert_eq!(text, m.render());
    for line in [
        "darkwatch_agent_rounds_total{campaign=\"kp\"} 2",
        "darkwatch_agent_rounds_late_total{campaign=\"kp\"} 2",
        "darkwatch_agent_probes_total{campaign=\"kp\"} 4",
        "darkwatch_agent_assignments_refused_total 1",
        "darkwatch_agent_batches_rejected_total 1",
        "darkwatch_agent_spool_batches 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let missing_dir = MetricsConfig {
        listen: None,
        textfile: Some(dir.path().join("nope/darkwatch.prom")),
    };
    let e = Metrics::open(
        &missing_dir,
        &state,
        Arc::new(Spool::open(&dir.path().join("spool"), 1 << 20).unwrap()),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test]
async fn the_listener_serves_the_current_metrics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
    let cfg = MetricsConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        textfile: None,
    };
    let m = Arc::new(Metrics::open(&cfg, dir.path(), spool).unwrap());
    let addr = m.listen().unwrap().expect("listening");
    m.round_done(
        "kp",
        &RoundStats::of(&results(vec![], vec![], true), &[], 0),
    );
    let get = |path: &'static str| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    };
    let ok = get("/metrics").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
    assert!(
        ok.contains("\r\n\r\n# HELP darkwatch_agent_rounds_total"),
        "{ok}"
    );
    assert!(ok.contains("darkwatch_agent_rounds_total{campaign=\"kp\"} 1\n"));
    assert!(get("/").await.starts_with("HTTP/1.1 404"));
    // A connection that sends no request gets no metrics.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.shutdown().await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    assert!(!out.contains("darkwatch_agent"), "{out}");
    let off = Arc::new(
        Metrics::open(
            &MetricsConfig::default(),
            dir.path(),
            Arc::new(Spool::open(dir.path(), 1 << 20).unwrap()),
        )
        .unwrap(),
    );
    assert_eq!(off.listen().unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn the_listener_drops_a_request_whose_headers_never_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
    let cfg = MetricsConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        textfile: None,
    };
    let m = Arc::new(Metrics::open(&cfg, dir.path(), spool).unwrap());
    let addr = m.listen().unwrap().expect("listening");
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    // Paused time: the wait is virtual. The listener's header timeout
    // (10 s; hyper's default would be 30 s) ends it before this one.
    tokio::time::timeout(Duration::from_secs(20), c.read_to_string(&mut out))
        .await
        .expect("the connection is closed")
        .unwrap();
    assert!(!out.contains("darkwatch_agent"), "{out}");
}

#[test]
fn process_cpu_is_read_from_proc_stat() {
    // A command name with a space and a parenthesis, utime 250, stime 50.
    let line = "1234 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
    assert_eq!(cpu_of_stat(line), Some(3.0));
    assert_eq!(cpu_of_stat("garbage"), None);
    assert!(process_cpu_secs().is_some_and(|s| s >= 0.0));
}
