//! The generic webhook over real HTTP: the collector's sender POSTs the
//! versioned body with its `X-Darkwatch-Signature`, which verifies over
//! the raw body; a receiver that keeps refusing is retried, then counted
//! as a failed delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use darkwatch_collector::alerts::{
    signature, AlertEvent, Alerts, AlertsConfig, Receiver, SIGNATURE_HEADER,
};
use darkwatch_collector::clock::SystemClock;
use darkwatch_collector::names::Names;
use darkwatch_collector::store::Verdict;
use darkwatch_correlate::{Kind, Scope};
use darkwatch_schema::inputs::asnames::AsNames;

type Seen = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

/// A receiver on a free loopback port answering `status`; returns its
/// URL and what it got.
async fn receiver(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let sig = headers
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            s.lock().unwrap().push((sig, body));
            status
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

fn verdict() -> Verdict {
    Verdict {
        id: 7,
        scope: Scope::Prefix,
        target: "198.18.0.0/22".into(),
        kind: Kind::Partial,
        campaign: "kp".into(),
        start_round: 10,
        end_round: None,
        start_ms: 1_700_000_000_000,
        end_ms: None,
        blocks_affected: 2,
        blocks_total: 4,
        prefixes: vec!["198.18.0.0/22".parse().expect("prefix")],
        vantage_points: vec!["vp1".into()],
        localization: None,
        updated_ms: 1_700_000_000_000,
        change: None,
        alerted: Default::default(),
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_body_verifies_and_refusals_count_as_failed() {
    let (url, seen) = receiver(StatusCode::NO_CONTENT).await;
    let alerts = Alerts::start(
        &AlertsConfig::webhook(url, 3),
        Some(b"s3cret".to_vec()),
        SystemClock::shared(),
        None,
        Names::default(),
    );
    let stats = alerts.stats();
    alerts.send(AlertEvent::open(&verdict()));
    wait_until("the delivery", || stats.delivered(Receiver::Webhook) == 1).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (sig, body) = &got[0];
    assert_eq!(sig.as_deref(), Some(signature(b"s3cret", body).as_str()));
    let j: serde_json::Value = serde_json::from_slice(body).expect("json");
    assert_eq!(
        (j["version"].as_u64(), j["event"].as_str()),
        (Some(1), Some("open"))
    );
    assert_eq!(j["verdict"]["id"], 7);

    // Unsigned without a secret; a receiver that keeps refusing gets every
    // attempt, then the delivery counts as failed.
    let (url, seen) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let alerts = Alerts::webhook(url, 2);
    let stats = alerts.stats();
    alerts.send(AlertEvent::open(&verdict()));
    wait_until("the failure", || stats.failed(Receiver::Webhook) == 1).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "two attempts");
    assert!(got.iter().all(|(sig, _)| sig.is_none()));
    assert_eq!(stats.delivered(Receiver::Webhook), 0);
}

/// The body names the verdict's target from the holder `serve` shares with
/// the API; a reload swapping the names is seen from the next alert on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_body_names_the_target_and_follows_a_reload() {
    let (url, seen) = receiver(StatusCode::NO_CONTENT).await;
    let names = Names::default();
    let alerts = Alerts::start(
        &AlertsConfig::webhook(url, 1),
        None,
        SystemClock::shared(),
        None,
        names.clone(),
    );
    let stats = alerts.stats();
    let mut v = verdict();
    v.scope = Scope::Asn;
    v.target = "AS131279".into();
    alerts.send(AlertEvent::open(&v));
    wait_until("the first delivery", || {
        stats.delivered(Receiver::Webhook) == 1
    })
    .await;
    names.replace(
        [(131279, "Star Joint Venture".to_string())]
            .into_iter()
            .collect::<AsNames>(),
    );
    alerts.send(AlertEvent::close(&v));
    wait_until("the second delivery", || {
        stats.delivered(Receiver::Webhook) == 2
    })
    .await;
    let got = seen.lock().unwrap().clone();
    let body = |i: usize| -> serde_json::Value { serde_json::from_slice(&got[i].1).expect("json") };
    assert!(body(0)["name"].is_null(), "{}", body(0));
    assert_eq!(body(1)["name"], "Star Joint Venture");
    assert_eq!(
        body(1)["summary"],
        "close partial asn AS131279 \"Star Joint Venture\" (2/4 blocks)"
    );
    assert_eq!(body(1)["verdict"]["target"], "AS131279");
}
