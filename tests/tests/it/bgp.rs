//! BGP scenarios with real routers: FRR's `bgpd` in the country and its
//! upstream, the upstream streaming BMP to the real collector (issue 30).
//!
//! "Session down": the country announces its four prefixes, the collector
//! sees them announced by the upstream's one peer; the country's `bgpd`
//! stops, and the collector's open round and its stored country signal
//! show every prefix withdrawn by 1 of 1 peers. The daemons install no
//! routes (no zebra), so the probes' data plane does not follow and no
//! verdict is expected here; verdicts carrying the BGP cause are checked
//! where they are made.

use std::fs;
use std::io::Write;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use darkwatch_tests::harness::{self, wait_for, Collector, Db, Timing, COUNTRY};
use darkwatch_tests::lab::{LabBgp, COUNTRY_ASN};
use darkwatch_tests::{lab_or_skip, Lab, LabConfig, Node, COLLECTOR_ADDR};
use serde_json::Value;

const BMP_PORT: u16 = 11019;

/// `/v1/bgp` for the country's space, fetched inside the lab.
fn bgp_state(lab: &Lab, c: &Collector) -> Result<Value> {
    let url = format!("{}/v1/bgp?prefix=198.18.0.0/16", c.url());
    let out = lab
        .command(Node::Hub, "curl")
        .args(["-sf", "-m", "2", &url])
        .output()?;
    ensure!(out.status.success(), "GET {url} failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The country's stored BGP signal rounds.
fn country_signal(c: &Collector, timing: &Timing) -> Result<Vec<Value>> {
    let out = c.cli_ok(&[
        "signals",
        "--source",
        "bgp",
        "--scope",
        "country",
        "--target",
        COUNTRY,
        "--round-secs",
        &timing.interval_secs.to_string(),
        "--from",
        "10m",
        "--format",
        "jsonl",
    ])?;
    out.lines()
        .map(|l| serde_json::from_str(l).context("signal line"))
        .collect()
}

/// Polls until `done` holds of the open round; a guard against a hang, not
/// a timing assertion.
fn until_current(
    lab: &Lab,
    c: &Collector,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_for(what, Duration::from_secs(60), || {
        let v = bgp_state(lab, c)?;
        Ok(done(&v["current"]).then_some(v))
    })
}

fn session_down(lab: &Lab, c: &Collector, bgp: &mut LabBgp, timing: &Timing) -> Result<()> {
    let n = lab.country_prefixes().len();
    let prefixes = |cur: &Value| cur["prefixes"].as_array().cloned().unwrap_or_default();
    let v = until_current(lab, c, "the country's prefixes announced", |cur| {
        cur["peers_up"] == 1
            && prefixes(cur).len() == n
            && prefixes(cur).iter().all(|p| p["announced_by"] == 1)
    })?;
    for p in prefixes(&v["current"]) {
        ensure!(
            p["origins"] == serde_json::json!([COUNTRY_ASN]),
            "origin is the country's AS: {p}"
        );
    }
    let stored = wait_for(
        "a stored round with every prefix announced",
        Duration::from_secs(60),
        || {
            let r = country_signal(c, timing)?;
            Ok(r.iter()
                .any(|r| r["prefixes"] == n && r["announced"] == n)
                .then_some(()))
        },
    );
    stored?;

    bgp.stop(Node::Ctry)?;
    until_current(lab, c, "every prefix withdrawn by 1 of 1 peers", |cur| {
        cur["peers_up"] == 0
            && prefixes(cur).len() == n
            && prefixes(cur)
                .iter()
                .all(|p| p["announced_by"] == 0 && p["known_peers"] == 1)
    })?;
    wait_for(
        "a stored round with every prefix withdrawn",
        Duration::from_secs(60),
        || {
            let r = country_signal(c, timing)?;
            Ok(r.last()
                .filter(|r| {
                    r["announced"] == 0 && r["withdrawn_routes"] == n && r["peer_routes"] == n
                })
                .map(|_| ()))
        },
    )?;
    Ok(())
}

#[test]
fn bgp_session_down_withdraws_every_country_prefix_by_1_of_1_peers() {
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(LabConfig::default()) else {
        return;
    };
    let dir = harness::run_dir("bgp_session_down").expect("run dir");
    let db = Db::sqlite(dir.path());
    let timing = Timing::default();
    let result = (|| -> Result<()> {
        let mut c = Collector::new_at(
            &lab,
            &db.url,
            &dir.path().join("collector"),
            &timing,
            8080,
            "",
        )?;
        let mut cfg = fs::OpenOptions::new()
            .append(true)
            .open(c.dir.join("collector.toml"))?;
        write!(
            cfg,
            "\n[bgp]\nbmp_listen = \"{COLLECTOR_ADDR}:{BMP_PORT}\"\nround_secs = {}\n",
            timing.interval_secs
        )?;
        c.start()?;
        c.add_lab_campaign(dir.path(), &timing)?;
        let mut bgp = lab.start_bgp(dir.path(), BMP_PORT)?;
        let r = session_down(&lab, &c, &mut bgp, &timing);
        if r.is_err() {
            eprintln!("{}", bgp.logs(30));
            if let Ok(v) = bgp_state(&lab, &c) {
                eprintln!("/v1/bgp at failure: {v:#}");
            }
        }
        r
    })();
    if let Err(e) = result {
        harness::dump_logs(dir.path(), 40);
        drop(db);
        let kept = dir.keep();
        panic!(
            "bgp session down failed (logs in {}): {e:#}",
            kept.display()
        );
    }
}
