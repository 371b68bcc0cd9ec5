//! Alerts reach a real Alertmanager: the test starts
//! `/usr/bin/prometheus-alertmanager` (Debian's `prometheus-alertmanager`)
//! on a free loopback port with its own config and storage, points the
//! collector's correlation loop at it through `[alerts]`, and reads
//! Alertmanager's `GET /api/v2/alerts`: the verdict's alert fires with its
//! labels, stays firing as it is re-sent, and is gone (resolved) once the
//! verdict closes. Without Alertmanager the test skips, unless `CI=true`.
//!
//! The correlation loop runs in this process on a manual clock an hour in
//! the past (so round completion is a step of the test, and the verdict's
//! end is in Alertmanager's past); the alert sender keeps the real clock,
//! which Alertmanager judges `endsAt` by.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use darkwatch_collector::alerts::{Alerts, Receiver};
use darkwatch_collector::clock::{ManualClock, SharedClock, SystemClock};
use darkwatch_collector::config::{self, FileConfig, ServeFlags};
use darkwatch_collector::correlation::{self, CorrelationSettings, RetentionSettings};
use darkwatch_collector::metrics::Metrics;
use darkwatch_collector::store::{CampaignSpec, SqlStore, Store};
use darkwatch_schema::packed::pack_chunks;
use darkwatch_schema::{round_of, BlockSpace, BlockState, PackedBlock, ReportBatch};
use serde_json::Value;

use crate::common::{random_hex, Db};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed on drop. It runs under
/// `setpriv --pdeathsig KILL`, so the kernel kills it too if the test
/// process dies without dropping it.
struct Alertmanager {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Option<Alertmanager> {
        let bin = darkwatch_netlab::or_skip(
            "Alertmanager",
            if Path::new(ALERTMANAGER).exists() {
                Ok(ALERTMANAGER)
            } else {
                Err("no /usr/bin/prometheus-alertmanager (apt-get install prometheus-alertmanager)")
            },
        )?;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_by: [alertname, country]\n  group_wait: 1s\n\
             receivers:\n  - name: blackhole\n",
        )
        .expect("write alertmanager.yml");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", bin])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: no gossip port, no peers.
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn alertmanager");
        Some(Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    async fn ready(&mut self) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(st) = self.child.try_wait().expect("alertmanager status") {
                panic!("alertmanager exited at start: {st}");
            }
            if let Ok(r) = http.get(format!("{}/-/ready", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("alertmanager not ready after 30 s");
    }

    /// The alerts Alertmanager holds as not resolved.
    async fn alerts(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.base))
            .await
            .expect("GET /api/v2/alerts")
            .json()
            .await
            .expect("alerts JSON")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A round start plus 30 s, an hour ago.
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    (now / 60_000 - 60) * 60_000 + 30_000
}

/// Packed rounds of campaign kp (198.18.0.0/22): dark from `dark_from`
/// through `dark_until`, up otherwise.
fn reports(rounds: std::ops::RangeInclusive<u64>, dark_from: u64, dark_until: u64) -> ReportBatch {
    let prefixes = vec!["198.18.0.0/22".parse().expect("prefix")];
    let space = BlockSpace::new(&prefixes);
    let mut packed = Vec::new();
    for round in rounds {
        let down = (dark_from..=dark_until).contains(&round);
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
        packed.extend(pack_chunks("kp", round, &space, ts, blocks, 100).expect("pack"));
    }
    ReportBatch {
        packed,
        ..ReportBatch::new(random_hex(8), 0)
    }
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

fn darkwatch_alerts(all: &[Value]) -> Vec<&Value> {
    all.iter()
        .filter(|a| {
            a["labels"]["alertname"]
                .as_str()
                .is_some_and(|n| n.starts_with("Darkwatch"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_alerts_fire_and_resolve_in_a_real_alertmanager() {
    let Some(mut am) = Alertmanager::start() else {
        return;
    };
    am.ready().await;

    let db = Db::sqlite();
    let store = SqlStore::open(&db.url).await.expect("open");
    let t0 = t0();
    let r0 = round_of(t0, 60);
    store
        .put_campaign(
            &CampaignSpec {
                name: "kp".into(),
                country: Some("KP".into()),
                interval_secs: 60,
                prefixes: vec!["198.18.0.0/22".parse().expect("prefix")],
                control: vec![],
                agents: vec![],
            },
            false,
            t0,
        )
        .await
        .expect("campaign");
    // 20 rounds, the last 8 dark: a blackout still going on at t0.
    for agent in ["a", "b"] {
        store
            .ingest(agent, &reports(r0 - 20..=r0 - 1, r0 - 8, r0), t0)
            .await
            .expect("ingest");
    }

    // The collector's [alerts], as collector.toml gives it.
    let file = FileConfig::parse(&format!(
        "[alerts]\nalertmanager = \"{}\"\nexternal_url = \"http://dw.example:8080\"\n\
         resend_secs = 2\nmax_attempts = 3\n",
        am.base
    ))
    .expect("config");
    let cfg = config::merge(ServeFlags::default(), file).expect("merge");
    let a = cfg.alerts.as_ref().expect("[alerts]");
    let store = Arc::new(store);
    let alerts = Alerts::start(
        a,
        None,
        SystemClock::shared(),
        Some(store.clone()),
        Default::default(),
    );
    let stats = alerts.stats();
    let metrics = Arc::new(Metrics::default());
    metrics.attach_alerts(alerts.stats());
    let clock = ManualClock::new(t0);
    let shared: SharedClock = Arc::new(clock.clone());
    let correlator = tokio::spawn(correlation::run(
        store.clone(),
        correlation::LoopSetup {
            settings: CorrelationSettings {
                every_secs: 0.1,
                ..CorrelationSettings::default()
            },
            retention: RetentionSettings::default(),
            holder: "test".into(),
            pfx2as: None,
            alerts,
            stats: metrics.correlation_stats(),
            clock: shared,
        },
    ));

    // The country blackout fires, with the labels routes and silences use.
    let country = wait_for("the country blackout in Alertmanager", || async {
        darkwatch_alerts(&am.alerts().await)
            .into_iter()
            .find(|a| a["labels"]["scope"] == "country" && a["status"]["state"] == "active")
            .cloned()
    })
    .await;
    let labels = &country["labels"];
    assert_eq!(labels["alertname"], "DarkwatchBlackout", "{country:#}");
    assert_eq!(labels["kind"], "blackout");
    assert_eq!(labels["country"], "KP");
    assert_eq!(labels["target"], "KP");
    assert_eq!(labels["campaign"], "kp");
    assert_eq!(labels["severity"], "critical");
    let url = country["generatorURL"].as_str().expect("generatorURL");
    assert!(url.starts_with("http://dw.example:8080/verdict/"), "{url}");
    assert_eq!(country["annotations"]["verdict_url"], url);
    assert!(
        country["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("blackout of country KP")),
        "{country:#}"
    );
    // Named (ISO 3166) in an annotation, not a label.
    assert_eq!(
        country["annotations"]["name"],
        "Korea (Democratic People's Republic of)"
    );
    assert!(labels.get("name").is_none(), "{country:#}");
    let starts =
        chrono::DateTime::parse_from_rfc3339(country["startsAt"].as_str().expect("startsAt"))
            .expect("startsAt parses");
    assert_eq!(
        starts.timestamp_millis(),
        darkwatch_schema::round_start_ms(r0 - 8, 60),
        "startsAt is the verdict's start"
    );

    // Re-sends push endsAt forward: the open verdict stays firing.
    let ends = |a: &Value| {
        chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().expect("endsAt"))
            .expect("endsAt parses")
    };
    let first_end = ends(&country);
    wait_for("a re-send moving endsAt forward", || async {
        darkwatch_alerts(&am.alerts().await)
            .into_iter()
            .find(|a| a["labels"]["scope"] == "country" && ends(a) > first_end)
            .map(|_| ())
    })
    .await;
    assert!(stats.delivered(Receiver::Alertmanager) >= 2);
    assert_eq!(stats.failed(Receiver::Alertmanager), 0);
    let text = metrics.render(None);
    assert!(
        text.lines().any(|l| l.starts_with(
            "darkwatch_alert_deliveries_total{receiver=\"alertmanager\",outcome=\"delivered\"} "
        ) && !l.ends_with(" 0")),
        "{text}"
    );

    // A silence on the country label holds the country's alert back.
    let silence = serde_json::json!({
        "matchers": [{"name": "country", "value": "KP", "isRegex": false, "isEqual": true}],
        "startsAt": chrono::Utc::now().to_rfc3339(),
        "endsAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "darkwatch test",
        "comment": "maintenance"
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/silences", am.base))
        .json(&silence)
        .send()
        .await
        .expect("POST silence");
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    wait_for("the country's alert silenced", || async {
        darkwatch_alerts(&am.alerts().await)
            .iter()
            .any(|a| a["labels"]["country"] == "KP" && a["status"]["state"] == "suppressed")
            .then_some(())
    })
    .await;

    // Three rounds up, seen three rounds later: every verdict closes, and
    // Alertmanager holds no darkwatch alert as unresolved any more.
    for agent in ["a", "b"] {
        store
            .ingest(agent, &reports(r0..=r0 + 2, r0 - 8, r0 - 1), t0)
            .await
            .expect("ingest");
    }
    // The hold the last re-send gave: the alert must resolve before it runs
    // out, by darkwatch's resolve and not by Alertmanager's timeout.
    let held_until = darkwatch_alerts(&am.alerts().await)
        .iter()
        .map(|a| ends(a))
        .max()
        .expect("the alert still firing");
    clock.set(t0 + 180_000);
    wait_for("every darkwatch alert resolved", || async {
        darkwatch_alerts(&am.alerts().await)
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        chrono::Utc::now() < held_until,
        "resolved only when its endsAt ran out ({held_until}), not by the close"
    );
    let open = store.list_verdicts(None, None).await.expect("verdicts");
    assert!(
        open.iter().all(|v| v.end_ms.is_some()),
        "every verdict closed: {open:#?}"
    );
    correlator.abort();
    let _ = correlator.await;
}

/// The example collector.toml documents every `[alerts]` option, and with
/// them all uncommented (but one of the two secrets) it is a valid config.
#[test]
fn example_config_documents_every_alerts_option() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/config/collector.toml"
    );
    let text = std::fs::read_to_string(path).expect("read collector.toml");
    let section = &text[text.find("# [alerts]").expect("an [alerts] section")..];
    let uncommented: String = section
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .filter(|l| !l.starts_with("secret_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = FileConfig::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    config::merge(ServeFlags::default(), file.clone()).expect("a valid config");
    // Exhaustive: a new option fails to compile until it is listed here.
    let darkwatch_collector::alerts::AlertsConfig {
        webhook,
        secret,
        secret_file: _,
        alertmanager,
        external_url,
        resend_secs: _,
        max_attempts: _,
    } = file.alerts.expect("[alerts]");
    assert!(
        webhook.is_some() && secret.is_some() && alertmanager.is_some() && external_url.is_some()
    );
    for key in ["secret_file", "resend_secs", "max_attempts"] {
        assert!(
            section.contains(&format!("# {key} = ")),
            "{key} undocumented"
        );
    }
}
