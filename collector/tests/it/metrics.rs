//! The collector's `/metrics` after a correlated campaign (the dashboard's
//! fixture: three VPs, a blackout still open) passes `promtool check
//! metrics`, so that every family it exports, per-scope gauges included,
//! scrapes cleanly into Prometheus.

use darkwatch_netlab::checks::promtool_check_metrics;

use crate::common::Server;
use crate::dashboard::{Fixture, DARK_ONGOING};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_correlated_campaign_pass_promtool() {
    let fx = Fixture::build(DARK_ONGOING).await;
    let server = Server::start(&fx.db.url, &[]);
    let resp = reqwest::get(server.url("/metrics")).await.expect("GET");
    assert!(resp.status().is_success());
    let text = resp.text().await.expect("body");
    let open: f64 = text
        .lines()
        .filter(|l| l.starts_with("darkwatch_verdicts_open"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(open >= 1.0, "the open blackout is not counted:\n{text}");
    if let Some(checked) = promtool_check_metrics(&text) {
        checked.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
    }
}

/// Every known agent and every campaign has series from the start, so an
/// alert rule can fire on a VP that never reports or a campaign without
/// data (a dead VP's series used to disappear); the build and the process
/// are described too.
#[tokio::test]
async fn every_agent_and_campaign_has_series_from_the_start() {
    use crate::common::cli_ok;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dw.sqlite");
    let db = db.to_str().expect("utf-8 path");
    cli_ok(db, &["agents", "add", "vp-a"]);
    cli_ok(db, &["agents", "add", "vp-gone"]);
    cli_ok(db, &["agents", "revoke", "vp-gone"]);
    cli_ok(
        db,
        &[
            "campaign",
            "add",
            "kp",
            "--country",
            "KP",
            "--prefix",
            "198.18.0.0/24",
        ],
    );
    cli_ok(db, &["campaign", "add", "lab", "--prefix", "198.18.1.0/24"]);
    let server = Server::start(db, &[]);
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    for line in [
        "darkwatch_agent_up{agent=\"vp-a\",campaign=\"kp\"} 0",
        "darkwatch_agent_up{agent=\"vp-a\",campaign=\"lab\"} 0",
        "darkwatch_agent_last_report_timestamp_seconds{agent=\"vp-a\"} 0",
        "darkwatch_scope_blocks_judged{campaign=\"kp\",scope=\"country\",target=\"KP\"} 0",
        "darkwatch_scope_blocks_judged{campaign=\"lab\",scope=\"campaign\",target=\"lab\"} 0",
        "darkwatch_build_info{version=\"",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        !text.contains("vp-gone"),
        "a revoked agent runs nothing:\n{text}"
    );
    if let Some(checked) = promtool_check_metrics(&text) {
        checked.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
    }
}
