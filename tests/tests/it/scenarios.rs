//! End-to-end scenarios: the lab, the real collector and three real agents,
//! faults injected at the border, and the collector's JSON verdicts checked
//! against ground truth. Scenarios run one at a time (each starts four
//! processes probing every round; two at once would starve a 2-core machine).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use darkwatch_tests::harness::{
    self, current_round, verdicts, wait_for, Db, Deployment, Timing, COUNTRY,
};
use darkwatch_tests::webhook::WebhookSink;
use darkwatch_tests::{lab_or_skip, Lab, LabConfig, Node};
use serde_json::Value;

/// Builds the lab and a deployment, runs `body`, and on failure prints the
/// tail of every log so that CI output says what went wrong.
fn scenario(name: &str, body: impl FnOnce(&Lab, &mut Deployment) -> Result<()>) {
    scenario_with(name, false, body)
}

/// A scenario whose collector groups prefixes by AS (see
/// [`Deployment::start_with`]) when `pfx2as` is set.
fn scenario_with(name: &str, pfx2as: bool, body: impl FnOnce(&Lab, &mut Deployment) -> Result<()>) {
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(LabConfig::default()) else {
        return;
    };
    let dir = harness::run_dir(name).expect("run dir");
    let db = Db::sqlite(dir.path());
    let result = Deployment::start_with(&lab, &db.url, dir.path(), Timing::default(), pfx2as)
        .and_then(|mut d| {
            d.wait_reporting(Duration::from_secs(60))?;
            let r = body(&lab, &mut d);
            if r.is_err() {
                if let Ok(o) = d.outages() {
                    eprintln!(
                        "verdicts at failure: {}",
                        serde_json::to_string_pretty(&o).unwrap_or_default()
                    );
                }
            }
            r
        });
    if let Err(e) = result {
        harness::dump_logs(dir.path(), 40);
        drop(db);
        // Keep the run's logs and database for a post-mortem.
        let kept = dir.keep();
        panic!("scenario {name} failed (logs in {}): {e:#}", kept.display());
    }
}

fn interval(d: &Deployment) -> u64 {
    d.timing.interval_secs
}

/// Waits for a verdict matching `pred`.
fn wait_verdict(
    d: &Deployment,
    what: &str,
    rounds: u32,
    pred: impl Fn(&[Value]) -> Option<Value>,
) -> Result<Value> {
    wait_for(what, d.interval() * rounds, || Ok(pred(&d.outages()?)))
}

fn country_blackout(all: &[Value]) -> Option<Value> {
    verdicts(all, "blackout", "country", Some(COUNTRY))
        .first()
        .map(|v| (*v).clone())
}

/// No verdict of any kind during `rounds` rounds.
fn expect_quiet(d: &Deployment, rounds: u32) -> Result<()> {
    for _ in 0..rounds {
        d.rounds(1);
        let all = d.outages()?;
        ensure!(
            all.is_empty(),
            "expected no verdict, got {}",
            serde_json::to_string_pretty(&all)?
        );
    }
    Ok(())
}

/// Blackout of the whole country, then restoration: checks onset, end and
/// localization. Shared by scenario 1 and the restart scenario (7).
fn blackout_and_restore(lab: &Lab, d: &mut Deployment, restart_collector: bool) -> Result<()> {
    d.rounds(2);
    let fault_round = current_round(interval(d));
    for p in lab.country_prefixes() {
        lab.withdraw(p)?;
    }
    if restart_collector {
        d.rounds(1);
        d.collector.stop(true)?;
        d.rounds(2);
        d.collector.start()?;
    }
    let v = wait_verdict(d, "a country blackout", 10, country_blackout)?;
    let start = v["start_round"].as_u64().context("start_round")?;
    ensure!(
        start >= fault_round && start <= fault_round + 2,
        "onset {start} not within 2 rounds of the fault at round {fault_round}"
    );
    ensure!(v["end"].is_null(), "blackout should be ongoing: {v}");
    ensure!(
        v["blocks_affected"] == v["blocks_total"] && v["blocks_total"].as_u64() == Some(6),
        "all 6 blocks down: {v}"
    );
    ensure!(
        v["vantage_points"].as_array().map_or(0, |a| a.len()) >= 2,
        "seen by several VPs: {v}"
    );
    let border = lab
        .router_hop_addr(Node::Border)
        .context("border hop")?
        .to_string();
    let v = wait_verdict(d, "localization at the border", 4, |all| {
        country_blackout(all).filter(|v| v["localization"]["last_hop"] == border.as_str())
    })?;
    ensure!(
        v["localization"]["inside_target"] == false,
        "border is upstream of the country: {v}"
    );

    let restore_round = current_round(interval(d));
    for p in lab.country_prefixes() {
        lab.announce(p)?;
    }
    let v = wait_verdict(d, "the blackout to end", 8, |all| {
        country_blackout(all).filter(|v| !v["end"].is_null())
    })?;
    let end = v["end_round"].as_u64().context("end_round")?;
    ensure!(
        end >= restore_round && end <= restore_round + 2,
        "end {end} not within 2 rounds of the repair at {restore_round}"
    );
    let all = d.outages()?;
    ensure!(
        verdicts(&all, "blackout", "country", None).len() == 1,
        "exactly one country blackout: {all:?}"
    );
    ensure!(
        verdicts(&all, "blackout", "prefix", None).is_empty(),
        "prefix blackouts are explained by the country's: {all:?}"
    );
    ensure!(
        verdicts(&all, "partial", "country", None).is_empty(),
        "no partial: {all:?}"
    );
    Ok(())
}

#[test]
fn s1_full_blackout_is_one_country_verdict_localized_at_the_border() {
    scenario("s1-blackout", |lab, d| {
        // Alerts go to a webhook in the collector's namespace that refuses
        // the first delivery, so the open alert must be retried.
        let hook = WebhookSink::start(&lab.namespace(Node::Hub), "192.0.2.1:9099".parse()?, 1)?;
        let cfg = d.collector.dir.join("collector.toml");
        let mut text = std::fs::read_to_string(&cfg)?;
        text.push_str(&format!(
            "\n[alerts]\nwebhook = \"{}\"\nmax_attempts = 5\n",
            hook.url
        ));
        std::fs::write(&cfg, text)?;
        d.collector.stop(false)?;
        d.collector.start()?;

        blackout_and_restore(lab, d, false)?;

        let is = |e: &Value, event: &str| {
            e["event"] == event
                && e["verdict"]["kind"] == "blackout"
                && e["verdict"]["scope"] == "country"
                && e["verdict"]["target"] == COUNTRY
        };
        let got = wait_for("open and close alerts", d.interval() * 3, || {
            let r = hook.received();
            let open = r.accepted.iter().position(|e| is(e, "open"));
            let close = r.accepted.iter().position(|e| is(e, "close"));
            Ok(match (open, close) {
                (Some(o), Some(c)) => Some((o, c, r)),
                _ => None,
            })
        })?;
        let (open, close, r) = got;
        ensure!(open < close, "open alert before close: {:?}", r.accepted);
        ensure!(r.refused == 1, "the refused delivery was retried: {r:?}");
        let opens = r.accepted.iter().filter(|e| is(e, "open")).count();
        ensure!(
            opens == 1,
            "one open alert for the blackout, got {opens}: {:?}",
            r.accepted
        );
        Ok(())
    });
}

#[test]
fn s2_one_prefix_of_four_withdrawn_is_partial_not_blackout() {
    scenario("s2-partial", |lab, d| {
        d.rounds(2);
        let dark = lab.country_prefixes()[1];
        lab.withdraw(dark)?;
        let v = wait_verdict(d, "a country partial", 10, |all| {
            verdicts(all, "partial", "country", Some(COUNTRY))
                .first()
                .map(|v| (*v).clone())
        })?;
        ensure!(
            v["prefixes"] == serde_json::json!([dark.to_string()]),
            "partial names the dark prefix: {v}"
        );
        let dark_blocks = lab.blocks().iter().filter(|b| dark.contains(*b)).count() as u64;
        ensure!(
            v["blocks_affected"].as_u64() == Some(dark_blocks),
            "affected = the prefix's blocks: {v}"
        );
        wait_verdict(d, "a prefix blackout", 3, |all| {
            verdicts(all, "blackout", "prefix", Some(&dark.to_string()))
                .first()
                .map(|v| (*v).clone())
        })?;
        d.rounds(2);
        let all = d.outages()?;
        ensure!(
            country_blackout(&all).is_none(),
            "no country blackout: {all:?}"
        );
        lab.announce(dark)?;
        Ok(())
    });
}

#[test]
fn s8_prefixes_grouped_by_a_published_pfx2as_file_make_as_verdicts() {
    // The collector groups prefixes by AS from a file in CAIDA's format
    // (`Lab::pfx2as`): prefix 1 has two origins (`64500_64501`), prefix 2
    // an AS set (`{64502,64503}`).
    scenario_with("s8-pfx2as", true, |lab, d| {
        d.rounds(2);
        let dark = lab.country_prefixes()[1];
        lab.withdraw(dark)?;
        // A multi-origin prefix counts under each of its origins: AS64501
        // announces nothing else, so its blackout names the prefix (and
        // explains the prefix's own); AS64500 also announces prefix 0.
        let v = wait_verdict(d, "a blackout of AS64501", 10, |all| {
            verdicts(all, "blackout", "asn", Some("AS64501"))
                .first()
                .map(|v| (*v).clone())
        })?;
        ensure!(
            v["prefixes"] == serde_json::json!([dark.to_string()]),
            "the AS blackout names the dark prefix: {v}"
        );
        wait_verdict(d, "a partial outage of AS64500", 3, |all| {
            verdicts(all, "partial", "asn", Some("AS64500"))
                .first()
                .map(|v| (*v).clone())
        })?;
        let all = d.outages()?;
        ensure!(
            verdicts(&all, "blackout", "asn", Some("AS64502")).is_empty()
                && verdicts(&all, "blackout", "asn", Some("AS64503")).is_empty(),
            "the AS set's origins stay up: {all:?}"
        );
        lab.announce(dark)?;
        Ok(())
    });
}

#[test]
fn s3_isolated_vantage_point_is_flagged_and_makes_no_outage() {
    scenario("s3-vp-isolated", |lab, d| {
        d.rounds(2);
        lab.isolate_vp(1)?;
        expect_quiet(d, 6)?;
        let st = d.collector.status()?;
        let vp1 = st["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["name"] == "vp1"))
            .cloned();
        ensure!(
            vp1.as_ref().is_some_and(|a| a["health"] == "faulty"),
            "vp1 flagged faulty: {st}"
        );
        let others_ok = st["agents"].as_array().is_some_and(|a| {
            a.iter()
                .filter(|a| a["name"] != "vp1")
                .all(|a| a["health"] == "ok")
        });
        ensure!(others_ok, "other VPs healthy: {st}");
        lab.reconnect_vp(1)?;
        Ok(())
    });
}

#[test]
fn s4_ten_percent_loss_on_the_border_makes_no_verdict() {
    scenario("s4-loss", |lab, d| {
        lab.netem(Node::Border, Node::Ctry, 10.0, 0)?;
        lab.netem(Node::Ctry, Node::Border, 10.0, 0)?;
        expect_quiet(d, 12)?;
        lab.clear_netem(Node::Border, Node::Ctry)?;
        lab.clear_netem(Node::Ctry, Node::Border)?;
        Ok(())
    });
}

#[test]
fn s5_flapping_and_loss_bursts_are_instability_not_blackout() {
    scenario("s5-instability", |lab, d| {
        d.rounds(1);
        let prefixes = lab.country_prefixes();
        for i in 0..5 {
            lab.netem(Node::Border, Node::Ctry, 50.0, 0)?;
            lab.withdraw(prefixes[i % prefixes.len()])?;
            d.rounds(1);
            lab.announce(prefixes[i % prefixes.len()])?;
            lab.clear_netem(Node::Border, Node::Ctry)?;
            d.rounds(1);
        }
        let v = wait_verdict(d, "an instability verdict", 4, |all| {
            verdicts(all, "instability", "country", Some(COUNTRY))
                .first()
                .map(|v| (*v).clone())
        })?;
        ensure!(
            !v["vantage_points"].as_array().is_none_or(|a| a.is_empty()),
            "instability names VPs: {v}"
        );
        let all = d.outages()?;
        ensure!(
            verdicts(&all, "blackout", "country", None).is_empty(),
            "no country blackout: {all:?}"
        );
        Ok(())
    });
}

#[test]
fn s6_one_transit_cut_reroutes_without_outage() {
    scenario("s6-reroute", |lab, d| {
        d.rounds(1);
        lab.link_down(Node::Edge, Node::T1)?;
        expect_quiet(d, 5)?;
        // The agents' own traceroutes now cross t2.
        let target = lab.responsive_hosts(lab.blocks()[0])[0];
        let out = lab
            .command(Node::Vp(2), harness::workspace_bin("darkwatch-agent")?)
            .args(["trace", "--json", "--max-ttl", "8", &target.to_string()])
            .output()?;
        ensure!(
            out.status.success(),
            "trace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t: Value = serde_json::from_slice(&out.stdout)?;
        let hops: Vec<String> = t["hops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["addr"].as_str().map(String::from))
            .collect();
        let t2 = lab.router_hop_addr(Node::T2).context("t2")?.to_string();
        let t1 = lab.router_hop_addr(Node::T1).context("t1")?.to_string();
        ensure!(
            hops.contains(&t2) && !hops.contains(&t1),
            "path goes through t2, not t1: {hops:?}"
        );
        ensure!(t["reached"] == true, "target reached: {t}");
        // And the traces the collector stored since the cut show it too.
        let stored = harness::db_query(
            &d.collector.db_url,
            &format!(
                "SELECT hops FROM traces WHERE round >= {} AND reached = 1",
                current_round(interval(d)) - 2
            ),
        )?;
        ensure!(!stored.is_empty(), "recent traces stored");
        ensure!(
            stored.iter().all(|r| r.join("|").contains(&t2)),
            "stored traces cross t2: {stored:?}"
        );
        lab.link_up(Node::Edge, Node::T1)?;
        Ok(())
    });
}

#[test]
fn s7_collector_crash_mid_blackout_same_verdict_nothing_lost() {
    scenario("s7-restart", |lab, d| {
        blackout_and_restore(lab, d, true)?;
        // Every round of every agent, from its first to its last, is stored.
        d.rounds(1);
        let rounds = harness::stored_rounds(&d.collector.db_url)?;
        ensure!(
            rounds.len() == 3,
            "three agents stored: {:?}",
            rounds.keys()
        );
        for (agent, r) in &rounds {
            let (first, last) = (*r.keys().next().unwrap(), *r.keys().last().unwrap());
            let missing: Vec<u64> = (first..=last).filter(|x| !r.contains_key(x)).collect();
            ensure!(missing.is_empty(), "{agent} lost rounds {missing:?}");
        }
        Ok(())
    });
}
