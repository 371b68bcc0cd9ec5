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
