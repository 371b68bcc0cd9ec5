//! BGP scenarios with real routers: FRR's `bgpd` in the country and its
//! upstream, the upstream streaming BMP to the real collector (issue 30).
//!
//! "Session down": the country announces its four prefixes, the collector
//! sees them announced by the upstream's one peer, and the upstream's
//! forwarding follows BGP (zebra); the country's `bgpd` stops, the
//! collector's open round and its stored country signal show every prefix
//! withdrawn by 1 of 1 peers, and since the upstream no longer routes to
//! the country, the agents' probes fail and a country blackout opens.
//! (Verdicts carrying the BGP cause are checked where they are made.)

use std::fs;
use std::io::Write;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use darkwatch_tests::harness::{
    self, verdicts, wait_for, Agent, AgentOpts, Collector, Db, Deployment, Timing, COUNTRY,
};
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

fn session_down(lab: &Lab, d: &Deployment, bgp: &mut LabBgp) -> Result<()> {
    let (c, timing) = (&d.collector, &d.timing);
    let n = lab.country_prefixes().len();
    let prefixes = |cur: &Value| cur["prefixes"].as_array().cloned().unwrap_or_default();
    let v = until_current(lab, c, "the country's prefixes announced", |cur| {
        cur["peers_up"] == 1
            && prefixes(cur).len() == n
            && prefixes(cur).iter().all(|p| p["announced_by"] == 1)
    })?;
    // The router's own view agrees: vtysh on border sees the session.
    let summary = bgp.vtysh(Node::Border, &["show bgp ipv4 unicast summary"])?;
    ensure!(
        summary.contains(&COUNTRY_ASN.to_string()),
        "border's summary names the country's AS: {summary}"
    );
    for p in prefixes(&v["current"]) {
        ensure!(
            p["origins"] == serde_json::json!([COUNTRY_ASN]),
            "origin is the country's AS: {p}"
        );
    }
    wait_for(
        "a stored round with every prefix announced",
        Duration::from_secs(60),
        || {
            let r = country_signal(c, timing)?;
            Ok(r.iter()
                .any(|r| r["prefixes"] == n && r["announced"] == n)
                .then_some(()))
        },
    )?;
    // Forwarding hangs on BGP alone, and the country still answers.
    d.wait_reporting(Duration::from_secs(60))?;
    d.rounds(2);
    ensure!(
        blackout(&d.outages()?).is_none(),
        "no blackout while the session is up: {:#}",
        serde_json::Value::from(d.outages()?)
    );

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
    // The data plane followed: the probes see the country go dark.
    wait_for("a country blackout", d.interval() * 10, || {
        Ok(blackout(&d.outages()?))
    })?;
    Ok(())
}

fn blackout(all: &[Value]) -> Option<Value> {
    verdicts(all, "blackout", "country", Some(COUNTRY))
        .first()
        .map(|v| (*v).clone())
}

/// The collector with a `[bgp]` BMP listener, the lab campaign and one
/// agent per VP (what [`Deployment::start`] does, plus `[bgp]`).
fn deploy<'a>(lab: &'a Lab, db: &Db, dir: &std::path::Path) -> Result<Deployment<'a>> {
    let timing = Timing::default();
    let mut c = Collector::new_at(lab, &db.url, &dir.join("collector"), &timing, 8080, "")?;
    let mut cfg = fs::OpenOptions::new()
        .append(true)
        .open(c.dir.join("collector.toml"))?;
    write!(
        cfg,
        "\n[bgp]\nbmp_listen = \"{COLLECTOR_ADDR}:{BMP_PORT}\"\nround_secs = {}\n",
        timing.interval_secs
    )?;
    c.start()?;
    c.add_lab_campaign(dir, &timing)?;
    let mut agents = Vec::new();
    for vp in 1..=lab.vps().len() as u8 {
        let token = c.add_agent(&format!("vp{vp}"))?;
        let mut a = Agent::new(
            lab,
            vp,
            &c.url(),
            &token,
            &dir.join(format!("vp{vp}")),
            &AgentOpts::default(),
        )?;
        a.start()?;
        agents.push(a);
    }
    Ok(Deployment {
        lab,
        collector: c,
        agents,
        timing,
        dir: dir.to_path_buf(),
    })
}

#[test]
fn bgp_session_down_withdraws_every_country_prefix_by_1_of_1_peers_and_the_country_goes_dark() {
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(LabConfig::default()) else {
        return;
    };
    let dir = harness::run_dir("bgp_session_down").expect("run dir");
    let db = Db::sqlite(dir.path());
    let mut bgp = lab.start_bgp(dir.path(), BMP_PORT).expect("bgpd");
    let result = bgp
        .follow_bgp(Duration::from_secs(60))
        .map_err(anyhow::Error::from)
        .and_then(|()| deploy(&lab, &db, dir.path()))
        .and_then(|d| {
            let r = session_down(&lab, &d, &mut bgp);
            if r.is_err() {
                if let Ok(v) = bgp_state(&lab, &d.collector) {
                    eprintln!("/v1/bgp at failure: {v:#}");
                }
                if let Ok(o) = d.outages() {
                    eprintln!("verdicts at failure: {:#}", Value::from(o));
                }
            }
            r
        });
    if let Err(e) = result {
        eprintln!("{}", bgp.logs(30));
        harness::dump_logs(dir.path(), 40);
        drop(db);
        let kept = dir.keep();
        panic!(
            "bgp session down failed (logs in {}): {e:#}",
            kept.display()
        );
    }
}
