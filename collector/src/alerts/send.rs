//! Delivery: one task per receiver, each retrying a delivery with
//! exponential backoff (a receiver briefly down still gets every event, in
//! order) and logging one line per outcome. HTTP goes through [`Post`], so
//! the retry logic is tested with an in-memory receiver.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::payload::{am_alert, signature, webhook_body, HOLD_RESENDS, SIGNATURE_HEADER};
use super::{AlertEvent, DeliveryStats, Receiver};
use crate::clock::SharedClock;
use crate::names::{name_of, Names};
use crate::store::{Store, Verdict};

/// The status of an answered POST, or why there was no answer.
pub type PostResult = Result<u16, String>;

/// Extra request headers: name and value.
pub type Headers = [(&'static str, String)];

/// POSTs a JSON body with extra headers.
pub trait Post: Send + Sync + 'static {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = PostResult> + Send + 'a>>;
}

impl Post for reqwest::Client {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a Headers,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = PostResult> + Send + 'a>> {
        Box::pin(async move {
            let mut req = reqwest::Client::post(self, url)
                .header("Content-Type", "application/json")
                .body(body);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            match req.send().await {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Where the Alertmanager sender reads which verdicts to re-send: the
/// store, so that a restarted collector, or one that took a campaign over,
/// re-sends verdicts it never saw open.
pub trait VerdictSource: Send + Sync + 'static {
    /// Verdicts still open or ended at or after `since_ms`.
    fn verdicts_since(
        &self,
        since_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Verdict>, String>> + Send + '_>>;
}

impl<S: Store> VerdictSource for S {
    fn verdicts_since(
        &self,
        since_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Verdict>, String>> + Send + '_>> {
        Box::pin(async move {
            self.list_verdicts(None, Some(since_ms))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Backoff between attempts: doubling from `first`, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

/// How one receiver is reached.
pub struct Target {
    pub receiver: Receiver,
    pub url: String,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub stats: Arc<DeliveryStats>,
    /// Names the verdicts' targets in the payloads.
    pub names: Names,
}

impl Target {
    /// Delivers `body` (described by `what` in the log) with retries;
    /// true when the receiver took it (2xx).
    pub async fn deliver(
        &self,
        http: &dyn Post,
        headers: &Headers,
        body: Vec<u8>,
        what: &str,
    ) -> bool {
        let receiver = self.receiver.name();
        let attempts = self.max_attempts.max(1);
        let mut backoff = self.backoff.first;
        for attempt in 1..=attempts {
            match http.post(&self.url, headers, body.clone()).await {
                Ok(s) if (200..300).contains(&s) => {
                    tracing::info!(receiver, alert = %what, attempt, "alert delivered");
                    self.stats.count(self.receiver, true);
                    return true;
                }
                Ok(s) => {
                    tracing::warn!(receiver, alert = %what, status = s, attempt, "alert receiver refused a delivery")
                }
                Err(e) => {
                    tracing::warn!(receiver, alert = %what, error = %e, attempt, "alert receiver unreachable")
                }
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.backoff.max);
            }
        }
        tracing::error!(receiver, alert = %what, attempts, "alert delivery failed; giving up");
        self.stats.count(self.receiver, false);
        false
    }
}

/// The generic webhook: one signed POST per event.
pub async fn webhook_task(
    http: Arc<dyn Post>,
    target: Target,
    secret: Option<Vec<u8>>,
    external_url: Option<String>,
    mut rx: mpsc::Receiver<AlertEvent>,
) {
    while let Some(e) = rx.recv().await {
        let name = target.names.of(e.verdict.scope, &e.verdict.target);
        let body = webhook_body(&e, name.as_deref(), external_url.as_deref());
        let headers: Vec<(&'static str, String)> = secret
            .iter()
            .map(|s| (SIGNATURE_HEADER, signature(s, &body)))
            .collect();
        target
            .deliver(http.as_ref(), &headers, body, &e.summary())
            .await;
    }
}

/// The verdicts Alertmanager must be told are firing: opened and not yet
/// closed, by verdict id. Pure; the task below does the sending.
#[derive(Debug, Default)]
pub struct Firing(BTreeMap<i64, Verdict>);

impl Firing {
    /// Records `e`; returns the verdict to send now (as it stands).
    pub fn apply(&mut self, e: &AlertEvent) -> Verdict {
        if e.verdict.end_ms.is_none() && e.event == "open" {
            self.0.insert(e.verdict.id, e.verdict.clone());
        } else {
            self.0.remove(&e.verdict.id);
        }
        e.verdict.clone()
    }

    pub fn verdicts(&self) -> Vec<Verdict> {
        self.0.values().cloned().collect()
    }
}

/// Alertmanager: each event at once, and every `resend` all open verdicts
/// again with `endsAt` pushed to `HOLD_RESENDS` periods ahead (as
/// Prometheus does), so an open verdict stays firing however Alertmanager's
/// `resolve_timeout` is set, and resolves on its own if darkwatch stops.
/// With a `source` (the store), a re-send is every verdict open or closed
/// within the hold (closed ones as resolved again, which undoes a firing
/// re-send another collector raced with the close); without one, or when
/// it fails, the verdicts this task saw open and not closed.
pub async fn alertmanager_task(
    http: Arc<dyn Post>,
    target: Target,
    resend: Duration,
    external_url: Option<String>,
    clock: SharedClock,
    source: Option<Arc<dyn VerdictSource>>,
    mut rx: mpsc::Receiver<AlertEvent>,
) {
    let hold_ms = i64::try_from(resend.as_millis())
        .unwrap_or(i64::MAX / 8)
        .saturating_mul(HOLD_RESENDS);
    let mut firing = Firing::default();
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let (verdicts, what) = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => (vec![firing.apply(&e)], e.summary()),
                None => return,
            },
            _ = tick.tick() => {
                let v = match &source {
                    Some(s) => match s.verdicts_since(clock.now_ms() - hold_ms).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the verdicts to re-send; re-sending those this collector saw open");
                            firing.verdicts()
                        }
                    },
                    None => firing.verdicts(),
                };
                if v.is_empty() {
                    continue;
                }
                let what = format!("re-send of {} verdicts", v.len());
                (v, what)
            }
        };
        let now = clock.now_ms();
        let names = target.names.snapshot();
        let alerts: Vec<_> = verdicts
            .iter()
            .map(|v| {
                let name = name_of(&names, v.scope, &v.target);
                am_alert(v, name.as_deref(), now, hold_ms, external_url.as_deref())
            })
            .collect();
        let body = serde_json::to_vec(&alerts).expect("alerts serialize");
        target.deliver(http.as_ref(), &[], body, &what).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers each POST with the next scripted result (then 200), and
    /// records what it got.
    #[derive(Default)]
    struct Script {
        answers: Mutex<Vec<PostResult>>,
        got: Mutex<Vec<(<Headers as ToOwned>::Owned, Vec<u8>)>>,
    }

    impl Post for Script {
        fn post<'a>(
            &'a self,
            _url: &'a str,
            headers: &'a Headers,
            body: Vec<u8>,
        ) -> Pin<Box<dyn Future<Output = PostResult> + Send + 'a>> {
            self.got.lock().unwrap().push((headers.to_vec(), body));
            let mut a = self.answers.lock().unwrap();
            let r = if a.is_empty() { Ok(200) } else { a.remove(0) };
            Box::pin(async move { r })
        }
    }

    fn target(stats: &Arc<DeliveryStats>, attempts: u32) -> Target {
        Target {
            receiver: Receiver::Webhook,
            url: "http://x".into(),
            max_attempts: attempts,
            backoff: Backoff {
                first: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            stats: stats.clone(),
            names: Names::default(),
        }
    }

    #[tokio::test]
    async fn retries_until_taken_and_counts_outcomes() {
        let stats = Arc::new(DeliveryStats::default());
        let http = Script::default();
        *http.answers.lock().unwrap() = vec![Ok(503), Err("refused".into())];
        assert!(
            target(&stats, 3)
                .deliver(&http, &[], b"{}".to_vec(), "x")
                .await
        );
        assert_eq!(http.got.lock().unwrap().len(), 3);
        assert_eq!(
            (
                stats.delivered(Receiver::Webhook),
                stats.failed(Receiver::Webhook)
            ),
            (1, 0)
        );

        *http.answers.lock().unwrap() = vec![Ok(500), Ok(400)];
        assert!(
            !target(&stats, 2)
                .deliver(&http, &[], b"{}".to_vec(), "x")
                .await
        );
        assert_eq!(
            (
                stats.delivered(Receiver::Webhook),
                stats.failed(Receiver::Webhook)
            ),
            (1, 1)
        );
        assert_eq!(stats.failed(Receiver::Alertmanager), 0);
    }

    #[tokio::test]
    async fn webhook_bodies_are_signed_when_a_secret_is_set() {
        let stats = Arc::new(DeliveryStats::default());
        let http = Arc::new(Script::default());
        let (tx, rx) = mpsc::channel(4);
        let v = super::super::payload::sample_verdict(None);
        tx.send(AlertEvent::open(&v)).await.unwrap();
        drop(tx);
        webhook_task(
            http.clone(),
            target(&stats, 1),
            Some(b"k".to_vec()),
            None,
            rx,
        )
        .await;
        let got = http.got.lock().unwrap();
        let (headers, body) = &got[0];
        assert_eq!(headers, &[(SIGNATURE_HEADER, signature(b"k", body))]);
        assert_eq!(stats.delivered(Receiver::Webhook), 1);
    }

    #[test]
    fn firing_keeps_open_verdicts_until_closed() {
        let mut v = super::super::payload::sample_verdict(None);
        let mut f = Firing::default();
        f.apply(&AlertEvent::open(&v));
        assert_eq!(f.verdicts().len(), 1);
        v.end_ms = Some(v.start_ms + 1);
        f.apply(&AlertEvent::close(&v));
        assert!(f.verdicts().is_empty());
    }

    struct Stored(Vec<Verdict>);

    impl VerdictSource for Stored {
        fn verdicts_since(
            &self,
            _since_ms: i64,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<Verdict>, String>> + Send + '_>> {
            Box::pin(async move { Ok(self.0.clone()) })
        }
    }

    /// A collector that never saw a verdict open (restarted, or took the
    /// campaign over) re-sends it from the store, and the store's recently
    /// closed ones as resolved.
    #[tokio::test]
    async fn resends_what_the_store_says_is_open() {
        let stats = Arc::new(DeliveryStats::default());
        let http = Arc::new(Script::default());
        let open = super::super::payload::sample_verdict(None);
        let mut closed = super::super::payload::sample_verdict(Some(1_700_000_030_000));
        closed.id = 7;
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(alertmanager_task(
            http.clone(),
            Target {
                receiver: Receiver::Alertmanager,
                ..target(&stats, 1)
            },
            Duration::from_millis(20),
            None,
            Arc::new(crate::clock::ManualClock::new(1_700_000_100_000)),
            Some(Arc::new(Stored(vec![open, closed]))),
            rx,
        ));
        while http.got.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(tx);
        task.await.unwrap();
        let got = http.got.lock().unwrap();
        let alerts: Vec<super::super::AmAlert> = serde_json::from_slice(&got[0].1).unwrap();
        let ends: Vec<&str> = alerts.iter().map(|a| a.ends_at.as_str()).collect();
        // Open: held 4 periods past now; closed: resolved at its end.
        assert_eq!(
            ends,
            ["2023-11-14T22:15:00.080Z", "2023-11-14T22:13:50.000Z"]
        );
        assert_eq!(stats.delivered(Receiver::Alertmanager), 1);
    }
}
