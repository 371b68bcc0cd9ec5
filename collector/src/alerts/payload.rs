//! What goes on the wire, built without I/O: the generic webhook's
//! versioned JSON body and its HMAC-SHA256 signature, and the alerts
//! Alertmanager's `/api/v2/alerts` takes (the format Prometheus sends).
//! `docs/alerts.md` documents both; the tests here pin them.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::AlertEvent;
use crate::store::Verdict;
use crate::views::label;
use darkwatch_correlate::{Kind, Scope};

/// Version of the webhook body; bumped on any change a receiver could
/// trip on (fields are only added within a version).
pub const WEBHOOK_VERSION: u32 = 1;

/// The header carrying the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "X-Darkwatch-Signature";

/// A firing alert is held by Alertmanager this many re-send periods
/// (its `endsAt`), so three lost re-sends in a row do not resolve it.
pub const HOLD_RESENDS: i64 = 4;

/// The generic webhook's body.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    pub version: u32,
    /// `open` or `close`.
    pub event: &'a str,
    pub summary: String,
    /// What people call the verdict's target (`crate::names`), null when
    /// unknown.
    pub name: Option<&'a str>,
    /// The verdict on the dashboard, when `external_url` is set.
    pub url: Option<String>,
    pub verdict: &'a Verdict,
}

/// The body POSTed to the webhook for `e`, whose target is called `name`.
pub fn webhook_body(e: &AlertEvent, name: Option<&str>, external_url: Option<&str>) -> Vec<u8> {
    let body = WebhookBody {
        version: WEBHOOK_VERSION,
        event: e.event,
        summary: e.summary_named(name),
        name,
        url: verdict_url(external_url, &e.verdict),
        verdict: &e.verdict,
    };
    serde_json::to_vec(&body).expect("a verdict serializes")
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, the signature header's value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The dashboard page of `v`.
pub fn verdict_url(external_url: Option<&str>, v: &Verdict) -> Option<String> {
    external_url.map(|base| format!("{}/verdict/{}", base.trim_end_matches('/'), v.id))
}

/// One alert as Alertmanager's API v2 (and Prometheus) spell it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// The `alertname` of a verdict kind.
pub fn alertname(k: Kind) -> &'static str {
    match k {
        Kind::Blackout => "DarkwatchBlackout",
        Kind::Partial => "DarkwatchPartialOutage",
        Kind::Instability => "DarkwatchInstability",
        Kind::Degradation => "DarkwatchDegradation",
    }
}

fn severity(k: Kind) -> &'static str {
    match k {
        Kind::Blackout => "critical",
        Kind::Partial => "warning",
        Kind::Instability => "info",
        Kind::Degradation => "warning",
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `v` as an Alertmanager alert at `now_ms`. Open (`end_ms` unset): firing
/// until `now_ms + hold_ms`, which the sender keeps pushing forward by
/// re-sending. Closed: resolved at its end, never later than `now_ms`
/// (Alertmanager takes an `endsAt` in the future as still firing).
/// The target's `name` is an annotation, not a label: labels are the
/// alert's identity, and a reloaded AS names file must not turn one
/// firing alert into two.
pub fn am_alert(
    v: &Verdict,
    name: Option<&str>,
    now_ms: i64,
    hold_ms: i64,
    external_url: Option<&str>,
) -> AmAlert {
    let ends = match v.end_ms {
        None => now_ms + hold_ms,
        Some(end) => end.min(now_ms),
    };
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, val: String| {
        labels.insert(k.to_string(), val);
    };
    put("alertname", alertname(v.kind).into());
    put("kind", label(&v.kind));
    put("scope", label(&v.scope));
    put("target", v.target.clone());
    put("campaign", v.campaign.clone());
    put("severity", severity(v.kind).into());
    if v.scope == Scope::Country {
        put("country", v.target.clone());
    }
    let url = verdict_url(external_url, v);
    let mut annotations = BTreeMap::new();
    let summary = format!(
        "{} of {} {} ({}/{} blocks)",
        label(&v.kind),
        label(&v.scope),
        super::target_text(&v.target, name),
        v.blocks_affected,
        v.blocks_total
    );
    annotations.insert("summary".to_string(), summary);
    if let Some(n) = name {
        annotations.insert("name".to_string(), n.to_string());
    }
    annotations.insert("verdict_id".to_string(), v.id.to_string());
    if let Some(u) = &url {
        annotations.insert("verdict_url".to_string(), u.clone());
    }
    AmAlert {
        labels,
        annotations,
        starts_at: rfc3339(v.start_ms),
        // Alertmanager refuses an alert that ends before it starts.
        ends_at: rfc3339(ends.max(v.start_ms)),
        generator_url: url,
    }
}

/// A closed or open country blackout, for tests.
#[cfg(test)]
pub(super) fn sample_verdict(end_ms: Option<i64>) -> Verdict {
    Verdict {
        id: 42,
        scope: Scope::Country,
        target: "KP".into(),
        kind: Kind::Blackout,
        campaign: "kp".into(),
        start_round: 10,
        end_round: end_ms.map(|_| 12),
        start_ms: 1_700_000_000_000,
        end_ms,
        blocks_affected: 8,
        blocks_total: 8,
        prefixes: vec!["198.18.0.0/22".parse().unwrap()],
        vantage_points: vec!["vp1".into()],
        localization: None,
        updated_ms: 1_700_000_060_000,
        change: None,
        alerted: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(end_ms: Option<i64>) -> Verdict {
        sample_verdict(end_ms)
    }

    #[test]
    fn webhook_body_is_versioned_and_carries_the_verdict() {
        let v = verdict(None);
        let body = webhook_body(&AlertEvent::open(&v), None, Some("https://dw.example/"));
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["version"], 1);
        assert_eq!(j["event"], "open");
        assert_eq!(j["url"], "https://dw.example/verdict/42");
        assert_eq!(j["summary"], "open blackout country KP (8/8 blocks)");
        assert_eq!(j["verdict"]["id"], 42);
        assert_eq!(j["verdict"]["kind"], "blackout");
        assert_eq!(j["verdict"]["end_ms"], serde_json::Value::Null);
        let j: serde_json::Value =
            serde_json::from_slice(&webhook_body(&AlertEvent::close(&v), None, None)).unwrap();
        assert_eq!(j["event"], "close");
        assert_eq!(j["url"], serde_json::Value::Null);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature(b"Jefe", b"what do ya want for nothing!"),
            signature(b"Jefe", b"what do ya want for nothing?")
        );
    }

    #[test]
    fn open_verdict_fires_until_the_hold_and_closed_one_resolves() {
        let now = 1_700_000_100_000;
        let a = am_alert(&verdict(None), None, now, 240_000, Some("http://c:8080"));
        assert_eq!(a.labels["alertname"], "DarkwatchBlackout");
        assert_eq!(a.labels["kind"], "blackout");
        assert_eq!(a.labels["scope"], "country");
        assert_eq!(a.labels["country"], "KP");
        assert_eq!(a.labels["target"], "KP");
        assert_eq!(a.labels["campaign"], "kp");
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.starts_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(a.ends_at, "2023-11-14T22:19:00.000Z");
        assert_eq!(a.generator_url.as_deref(), Some("http://c:8080/verdict/42"));
        assert_eq!(a.annotations["verdict_url"], "http://c:8080/verdict/42");
        assert_eq!(
            a.annotations["summary"],
            "blackout of country KP (8/8 blocks)"
        );
        let j = serde_json::to_value(&a).unwrap();
        assert!(j.get("startsAt").is_some() && j.get("generatorURL").is_some());

        // Closed: ends at its end; an end ahead of now is clamped to now.
        let c = am_alert(&verdict(Some(now - 30_000)), None, now, 240_000, None);
        assert_eq!(c.ends_at, "2023-11-14T22:14:30.000Z");
        assert_eq!(c.labels, a.labels, "the same alert, resolved");
        assert!(serde_json::to_value(&c)
            .unwrap()
            .get("generatorURL")
            .is_none());
        let c = am_alert(&verdict(Some(now + 30_000)), None, now, 240_000, None);
        assert_eq!(c.ends_at, "2023-11-14T22:15:00.000Z");
    }

    #[test]
    fn names_by_kind_and_no_country_label_outside_country_scope() {
        let mut v = verdict(None);
        v.kind = Kind::Partial;
        v.scope = Scope::Prefix;
        v.target = "198.18.0.0/22".into();
        let a = am_alert(&v, None, 0, 1, None);
        assert_eq!(a.labels["alertname"], "DarkwatchPartialOutage");
        assert_eq!(a.labels["severity"], "warning");
        assert!(!a.labels.contains_key("country"));
        assert_eq!(alertname(Kind::Instability), "DarkwatchInstability");
        assert_eq!(alertname(Kind::Degradation), "DarkwatchDegradation");
        assert_eq!(severity(Kind::Degradation), "warning");
        // Never ends before it starts.
        let a = am_alert(&v, None, v.start_ms - 10, 1, None);
        assert_eq!(a.ends_at, a.starts_at);
    }

    /// The examples in docs/alerts.md are what this code sends.
    #[test]
    fn docs_examples_are_the_real_payloads() {
        let doc = include_str!("../../../docs/alerts.md");
        let blocks: Vec<serde_json::Value> = doc
            .split("```json\n")
            .skip(1)
            .map(|b| serde_json::from_str(&b[..b.find("```").unwrap()]).unwrap())
            .collect();
        let base = Some("https://darkwatch.example.org");
        let v = verdict(None);
        // As the senders name it.
        let name = crate::names::name_of(&Default::default(), v.scope, &v.target);
        let name = name.as_deref();
        let am = am_alert(&v, name, 1_700_000_100_000, 240_000, base);
        assert_eq!(blocks[0], serde_json::to_value([am]).unwrap());
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_body(&AlertEvent::open(&v), name, base)).unwrap();
        assert_eq!(blocks[1], body);
    }

    #[test]
    fn named_targets_carry_their_name_in_both_payloads() {
        let mut v = verdict(None);
        v.scope = Scope::Asn;
        v.target = "AS131279".into();
        let name = Some("Star Joint Venture");
        let a = am_alert(&v, name, 1_700_000_100_000, 240_000, None);
        assert_eq!(a.annotations["name"], "Star Joint Venture");
        assert_eq!(
            a.annotations["summary"],
            "blackout of asn AS131279 \"Star Joint Venture\" (8/8 blocks)"
        );
        // Not a label: the alert's identity does not change with a name.
        assert!(a.labels.values().all(|l| !l.contains("Star")));
        assert_eq!(a.labels, am_alert(&v, None, 0, 1, None).labels);
        let j: serde_json::Value =
            serde_json::from_slice(&webhook_body(&AlertEvent::open(&v), name, None)).unwrap();
        assert_eq!(j["name"], "Star Joint Venture");
        assert_eq!(
            j["summary"],
            "open blackout asn AS131279 \"Star Joint Venture\" (8/8 blocks)"
        );
        let j: serde_json::Value =
            serde_json::from_slice(&webhook_body(&AlertEvent::open(&v), None, None)).unwrap();
        assert!(j["name"].is_null());
        assert!(a.annotations.contains_key("name"));
        assert!(!am_alert(&v, None, 0, 1, None)
            .annotations
            .contains_key("name"));
    }
}
