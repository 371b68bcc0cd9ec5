//! End-to-end scenarios: the lab, the real collector and three real agents,
//! faults injected at the border, and the collector's JSON verdicts checked
//! against ground truth. Scenarios run one at a time (each starts four
//! processes probing every round; two at once would starve a 2-core machine).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use darkwatch_tests::harness::{
    self, current_round, db_query, verdicts, wait_for, Db, Deployment, Timing, COUNTRY, PFX2AS_FILE,
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
    scenario_in(name, LabConfig::default(), Timing::default(), pfx2as, body)
}

/// A scenario in a lab of `cfg` with collector timing `timing`.
fn scenario_in(
    name: &str,
    cfg: LabConfig,
    timing: Timing,
    pfx2as: bool,
    body: impl FnOnce(&Lab, &mut Deployment) -> Result<()>,
) {
    let file = |lab: &Lab| pfx2as.then(|| (PFX2AS_FILE.to_string(), lab.pfx2as().into_bytes()));
    scenario_files(name, cfg, timing, file, body)
}

/// A scenario whose collector reads the prefix-to-AS file `pfx2as` makes
/// for the lab (file name and bytes as published), if any.
fn scenario_files(
    name: &str,
    cfg: LabConfig,
    timing: Timing,
    pfx2as: impl FnOnce(&Lab) -> Option<(String, Vec<u8>)>,
    body: impl FnOnce(&Lab, &mut Deployment) -> Result<()>,
) {
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(cfg) else {
        return;
    };
    let dir = harness::run_dir(name).expect("run dir");
    let db = Db::sqlite(dir.path());
    let file = pfx2as(&lab);
    let file = file.as_ref().map(|(n, b)| (n.as_str(), b.as_slice()));
    let result =
        Deployment::start_with_pfx2as(&lab, &db.url, dir.path(), timing, file).and_then(|mut d| {
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

/// Sleeps until the middle of a round: of the current one if that is still
/// ahead, else of the next. The agents probe at the start of each round, so
/// a fault changed here holds over exactly one round's probes; changed at
/// any time, a one-round flap can fall between two rounds' probes and never
/// be seen (the scenario would then test nothing).
fn to_mid_round(d: &Deployment) {
    to_phase(d, 50);
}

/// Sleeps until the next time `percent` of a round has passed.
fn to_phase(d: &Deployment, percent: u64) {
    let round_ms = interval(d) * 1000;
    let at = round_ms * percent / 100;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as u64);
    let phase = now_ms % round_ms;
    let wait = if phase < at {
        at - phase
    } else {
        round_ms + at - phase
    };
    std::thread::sleep(Duration::from_millis(wait));
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
    let got = wait_verdict(d, "localization at the border", 4, |all| {
        country_blackout(all).filter(|v| v["localization"]["last_hop"] == border.as_str())
    });
    if got.is_err() {
        print_evidence(&d.collector.db_url, &d.outages()?)?;
    }
    let v = got?;
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
    // A fault inside a round darkens some prefixes a round before the whole
    // country: their blackouts may then be out before the country's, which
    // contains them. Either way the country's is the one headline.
    let country = country_blackout(&all).context("the country's blackout")?;
    let nested = |v: &Value| {
        v["explained_by"]
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["id"] == country["id"])
            && v["end_round"] == country["end_round"]
    };
    ensure!(
        verdicts(&all, "blackout", "prefix", None)
            .into_iter()
            .all(nested),
        "prefix blackouts are explained by the country's, and end with it: {all:?}"
    );
    ensure!(
        verdicts(&all, "partial", "country", None).is_empty(),
        "no partial: {all:?}"
    );
    let name = if restart_collector { "s7" } else { "s1" };
    measure(name, "outages_naming_border", naming_border(lab, &all)?);
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
        measure("s2", "outages_naming_border", naming_border(lab, &all)?);
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

/// The routed AS of three of [`kp_22`]'s /24s, and of the fourth.
const AS_THREE: &str = "AS64510";
const AS_ONE: &str = "AS64511";

/// A country whose one allocation, a /22, is announced as four /24s.
fn kp_22() -> LabConfig {
    LabConfig {
        vps: 3,
        country_prefixes: [
            "198.18.4.0/24",
            "198.18.5.0/24",
            "198.18.6.0/24",
            "198.18.7.0/24",
        ]
        .iter()
        .map(|p| p.parse().expect("prefix"))
        .collect(),
        ..LabConfig::default()
    }
}

/// `routeviews-rv2-*.pfx2as.gz` as CAIDA publishes it: the /22's first
/// three /24s originated by AS64510, the fourth by AS64511, and a route
/// outside the country; gzip-compressed.
fn kp_22_pfx2as(lab: &Lab) -> Option<(String, Vec<u8>)> {
    use std::io::Write;
    let p = lab.country_prefixes();
    let mut text = String::new();
    for (i, net) in p.iter().enumerate() {
        let asn = if i < 3 { AS_THREE } else { AS_ONE };
        text += &format!("{}\t{}\t{}\n", net.network(), net.prefix_len(), &asn[2..]);
    }
    text += "198.18.200.0\t24\t64999\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).ok()?;
    Some((
        "routeviews-rv2-20141222-1200.pfx2as.gz".into(),
        gz.finish().ok()?,
    ))
}

#[test]
fn s20_an_allocation_announced_as_four_24s_by_two_ases_makes_routed_verdicts() {
    // The 2014 North Korea event as the world counted it: one /22
    // allocation, four routed /24s. Withdrawing the three of one AS is a
    // blackout of that AS holding the three prefixes, a partial of the
    // country, and nothing of the other AS.
    scenario_files(
        "s20-routed",
        kp_22(),
        Timing::default(),
        kp_22_pfx2as,
        |lab, d| {
            d.rounds(2);
            let p = lab.country_prefixes();
            to_mid_round(d);
            for dark in &p[..3] {
                lab.withdraw(*dark)?;
            }
            let dark: Vec<String> = p[..3].iter().map(|n| n.to_string()).collect();
            let asv = wait_verdict(d, "a blackout of the AS", 10, |all| {
                verdicts(all, "blackout", "asn", Some(AS_THREE))
                    .first()
                    .map(|v| (*v).clone())
            })?;
            ensure!(
                asv["prefixes"] == serde_json::json!(dark),
                "the AS blackout holds its three routed /24s, not the /22: {asv}"
            );
            let country = wait_verdict(d, "a partial of the country", 3, |all| {
                verdicts(all, "partial", "country", Some(COUNTRY))
                    .first()
                    .map(|v| (*v).clone())
            })?;
            let blocks = |prefixes: &[ipnet::Ipv4Net]| {
                lab.blocks()
                    .iter()
                    .filter(|b| prefixes.iter().any(|p| p.contains(*b)))
                    .count() as u64
            };
            ensure!(
                country["blocks_affected"].as_u64() == Some(blocks(&p[..3]))
                    && country["blocks_total"].as_u64() == Some(blocks(&p)),
                "the country partial counts the routed blocks: {country}"
            );
            d.rounds(2);
            let all = d.outages()?;
            // Each /24 is a prefix scope nested under the AS: a prefix
            // blackout, where the edge of a round makes one, is explained
            // by the AS's (the AS's blackout stands for the three).
            for v in verdicts(&all, "blackout", "prefix", None) {
                ensure!(
                    dark.iter().any(|d| v["target"] == d.as_str())
                        && v["explained_by"]
                            .as_array()
                            .is_some_and(|e| e.iter().any(|c| c["id"] == asv["id"])),
                    "a prefix blackout is one of the three, under the AS: {v}"
                );
            }
            ensure!(
                all.iter().all(|v| v["target"] != AS_ONE
                    && v["target"] != p[3].to_string().as_str()
                    && v["scope"] != "unrouted"),
                "nothing for {AS_ONE}, its /24 or unrouted space: {all:?}"
            );
            ensure!(
                country_blackout(&all).is_none()
                    && verdicts(&all, "blackout", "prefix", Some("198.18.4.0/22")).is_empty(),
                "no country blackout, no /22 scope: {all:?}"
            );
            for dark in &p[..3] {
                lab.announce(*dark)?;
            }
            Ok(())
        },
    );
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
            to_mid_round(d);
            lab.netem(Node::Border, Node::Ctry, 50.0, 0)?;
            lab.withdraw(prefixes[i % prefixes.len()])?;
            to_mid_round(d);
            lab.announce(prefixes[i % prefixes.len()])?;
            lab.clear_netem(Node::Border, Node::Ctry)?;
        }
        d.rounds(1);
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
        // The agents' own traceroutes now cross t2, never t1. Routers keep
        // the kernel's ICMP rate limits, so one trace may miss a hop's
        // answer: a few tries until one shows t2.
        let target = lab.responsive_hosts(lab.blocks()[0])[0];
        let t2 = lab.router_hop_addr(Node::T2).context("t2")?.to_string();
        let t1 = lab.router_hop_addr(Node::T1).context("t1")?.to_string();
        let mut seen_t2 = false;
        for _ in 0..5 {
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
            ensure!(!hops.contains(&t1), "path avoids t1: {hops:?}");
            ensure!(t["reached"] == true, "target reached: {t}");
            if hops.contains(&t2) {
                seen_t2 = true;
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        ensure!(seen_t2, "no trace through t2 in five tries");
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
            stored.iter().all(|r| !r.join("|").contains(&t1))
                && stored.iter().any(|r| r.join("|").contains(&t2)),
            "stored traces cross t2, never t1: {stored:?}"
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

/// A country of four /24s (North Korea's whole space in 2014) watched by
/// two VPs.
fn four_blocks() -> LabConfig {
    LabConfig {
        vps: 2,
        country_prefixes: [
            "198.18.0.0/24",
            "198.18.2.0/24",
            "198.18.4.0/24",
            "198.18.6.0/24",
        ]
        .iter()
        .map(|p| p.parse().expect("prefix"))
        .collect(),
        ..LabConfig::default()
    }
}

/// Prints one measured figure as a `DWMEASURE scenario key=value` line, which
/// `scripts/verdicts.sh` collects into its table.
fn measure(scenario: &str, key: &str, value: impl std::fmt::Display) {
    println!("DWMEASURE {scenario} {key}={value}");
}

/// Localization's figure: of the outage verdicts (blackouts and partials)
/// in `all`, as stored, how many name the border (the hop that drops the
/// packets of a withdrawn prefix), as `named/outages`.
fn naming_border(lab: &Lab, all: &[Value]) -> Result<String> {
    let border = lab
        .router_hop_addr(Node::Border)
        .context("border hop")?
        .to_string();
    let outages: Vec<&Value> = all.iter().filter(|v| v["kind"] != "instability").collect();
    let named = outages
        .iter()
        .filter(|v| v["localization"]["last_hop"] == border.as_str())
        .count();
    Ok(format!("{named}/{}", outages.len()))
}

/// Prints each outage verdict with its localization, and every stored
/// traceroute (`reached` 1 or 0) and router's errors to probes (`DWEVIDENCE` lines, not
/// collected by `scripts/verdicts.sh`): when a verdict names another hop than
/// the border, the run's log says which evidence it had.
fn print_evidence(db_url: &str, all: &[Value]) -> Result<()> {
    for v in all.iter().filter(|v| v["kind"] != "instability") {
        println!(
            "DWEVIDENCE verdict kind={} scope={} target={} rounds={}..{} localization={}",
            v["kind"], v["scope"], v["target"], v["start_round"], v["end_round"], v["localization"]
        );
    }
    for r in db_query(
        db_url,
        "SELECT round, agent, target, reached, hops FROM traces ORDER BY round, agent",
    )? {
        println!("DWEVIDENCE trace {}", r.join(" "));
    }
    for r in db_query(
        db_url,
        "SELECT round, agent, source, blocks, errors FROM probe_errors ORDER BY round, agent",
    )? {
        println!("DWEVIDENCE probe_error {}", r.join(" "));
    }
    Ok(())
}

/// Blackout verdicts of any scope.
fn blackouts(all: &[Value]) -> Vec<&Value> {
    all.iter().filter(|v| v["kind"] == "blackout").collect()
}

fn instability(all: &[Value]) -> Option<Value> {
    all.iter().find(|v| v["kind"] == "instability").cloned()
}

#[test]
fn s9_single_prefix_flapping_every_round_is_instability() {
    scenario_in(
        "s9-flap",
        four_blocks(),
        Timing::default(),
        false,
        |lab, d| {
            d.rounds(2);
            let flapping = lab.country_prefixes()[2];
            let mut first = 0;
            for i in 0..12 {
                to_mid_round(d);
                if i % 2 == 0 {
                    lab.withdraw(flapping)?;
                } else {
                    lab.announce(flapping)?;
                }
                if i == 0 {
                    // The first round whose probes see it withdrawn.
                    first = current_round(interval(d)) + 1;
                }
                let all = d.outages()?;
                ensure!(
                    country_blackout(&all).is_none(),
                    "no country blackout for one flapping prefix: {all:?}"
                );
            }
            lab.announce(flapping)?;
            let v = wait_verdict(d, "an instability verdict", 4, instability)?;
            let onset = v["start_round"].as_u64().context("start_round")?;
            measure("s9", "instability_scope", &v["scope"]);
            measure(
                "s9",
                "instability_onset_rounds",
                onset.saturating_sub(first),
            );
            let all = d.outages()?;
            measure("s9", "blackouts", blackouts(&all).len());
            ensure!(
                country_blackout(&all).is_none(),
                "no country blackout: {all:?}"
            );
            Ok(())
        },
    );
}

/// Loss on the border link in both directions, `pct` percent each way.
fn border_loss(lab: &Lab, pct: f64) -> Result<()> {
    lab.netem(Node::Border, Node::Ctry, pct, 0)?;
    lab.netem(Node::Ctry, Node::Border, pct, 0)?;
    Ok(())
}

fn clear_border_loss(lab: &Lab) -> Result<()> {
    lab.clear_netem(Node::Border, Node::Ctry)?;
    lab.clear_netem(Node::Ctry, Node::Border)?;
    Ok(())
}

#[test]
fn s10_heavy_random_loss_makes_no_blackout() {
    scenario_in(
        "s10-heavy-loss",
        four_blocks(),
        Timing::default(),
        false,
        |lab, d| {
            d.rounds(2);
            // 30 % each way: half of all echo exchanges are lost.
            border_loss(lab, 30.0)?;
            let mut seen_instability = None;
            let mut found_after = None;
            for i in 0..10 {
                d.rounds(1);
                let all = d.outages()?;
                ensure!(
                    blackouts(&all).is_empty(),
                    "no blackout of any scope under random loss: {all:?}"
                );
                if seen_instability.is_none() {
                    seen_instability = instability(&all);
                    found_after = seen_instability.as_ref().map(|_| i + 1);
                }
            }
            // Rounds of loss until the verdict was first listed.
            measure(
                "s10",
                "instability_after_rounds",
                found_after.map_or("none".to_string(), |n| n.to_string()),
            );
            clear_border_loss(lab)?;
            let all = d.outages()?;
            measure("s10", "blackouts", blackouts(&all).len());
            measure(
                "s10",
                "partials",
                all.iter().filter(|v| v["kind"] == "partial").count(),
            );
            measure("s10", "instability", seen_instability.is_some());
            // Loss far beyond the baseline is also a degradation (issue 31).
            measure(
                "s10",
                "degradations",
                all.iter().filter(|v| v["kind"] == "degradation").count(),
            );
            Ok(())
        },
    );
}

#[test]
fn s11_heavy_loss_and_one_flapping_prefix() {
    scenario_in(
        "s11-loss-flap",
        four_blocks(),
        Timing::default(),
        false,
        |lab, d| {
            d.rounds(2);
            let prefixes = lab.country_prefixes();
            let flapping = prefixes[1];
            border_loss(lab, 30.0)?;
            for i in 0..12 {
                to_mid_round(d);
                if i % 2 == 0 {
                    lab.withdraw(flapping)?;
                } else {
                    lab.announce(flapping)?;
                }
            }
            to_mid_round(d);
            lab.announce(flapping)?;
            clear_border_loss(lab)?;
            let v = wait_verdict(d, "an instability verdict", 4, instability)?;
            measure("s11", "instability_scope", &v["scope"]);
            let all = d.outages()?;
            let flap = flapping.to_string();
            // Only the flapping prefix was ever withdrawn: a blackout of the
            // country or of any other prefix is false.
            let false_blackouts: Vec<&Value> = blackouts(&all)
                .into_iter()
                .filter(|v| !(v["scope"] == "prefix" && v["target"] == flap.as_str()))
                .collect();
            measure("s11", "false_blackouts", false_blackouts.len());
            measure(
                "s11",
                "flapping_prefix_blackouts",
                verdicts(&all, "blackout", "prefix", Some(&flap)).len(),
            );
            ensure!(
                false_blackouts.is_empty(),
                "no blackout beyond the flapping prefix: {false_blackouts:?}"
            );
            Ok(())
        },
    );
}

/// A country of one /24 with four responsive hosts, watched by two VPs: the
/// smallest and sparsest country the goals of the verdicts cover.
fn one_block() -> LabConfig {
    LabConfig {
        vps: 2,
        country_prefixes: vec!["198.18.0.0/24".parse().expect("prefix")],
        responsive_per_block: vec![4],
    }
}

#[test]
fn s14_one_block_country_under_heavy_loss_is_instability_not_blackout() {
    scenario_in(
        "s14-one-block-loss",
        one_block(),
        Timing::default(),
        false,
        |lab, d| {
            d.rounds(2);
            // 30 % each way: about half of the echo exchanges are lost.
            border_loss(lab, 30.0)?;
            let mut found_after = None;
            for i in 0..8 {
                d.rounds(1);
                let all = d.outages()?;
                ensure!(
                    blackouts(&all).is_empty(),
                    "no blackout of a lossy one-block country: {all:?}"
                );
                if found_after.is_none() && instability(&all).is_some() {
                    found_after = Some(i + 1);
                }
            }
            measure(
                "s14",
                "instability_after_rounds",
                found_after.map_or("none".to_string(), |n| n.to_string()),
            );
            clear_border_loss(lab)?;
            let all = d.outages()?;
            measure("s14", "blackouts", blackouts(&all).len());
            measure(
                "s14",
                "partials",
                all.iter().filter(|v| v["kind"] == "partial").count(),
            );
            ensure!(
                found_after.is_some(),
                "instability within 8 rounds of loss: {all:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn s15_one_block_country_flapping_every_round_is_instability() {
    scenario_in(
        "s15-one-block-flap",
        one_block(),
        Timing::default(),
        false,
        |lab, d| {
            d.rounds(2);
            // The country's only block, withdrawn and announced in turn
            // just before each round starts: dark for one whole round at a
            // time, shorter than a blackout (`open_after` is 2 rounds). Not
            // at mid-round as in s9: a block's probes start in the first
            // 1.2 s of the lab's 4-s rounds and a silent block's take 2.4 s,
            // so a change at mid-round falls among them and the block,
            // answering before or after it, is up in every round. (At
            // 11-minute rounds and 45 s of probes such a straddle is rare;
            // the lab compresses the round, not the probes.)
            let only = lab.country_prefixes()[0];
            for i in 0..12 {
                to_phase(d, 95);
                if i % 2 == 0 {
                    lab.withdraw(only)?;
                } else {
                    lab.announce(only)?;
                }
            }
            to_phase(d, 95);
            lab.announce(only)?;
            let v = wait_verdict(d, "an instability verdict", 4, instability)?;
            measure("s15", "instability_scope", &v["scope"]);
            let all = d.outages()?;
            measure("s15", "blackouts", blackouts(&all).len());
            Ok(())
        },
    );
}

#[test]
fn s12_blackout_behind_a_strictly_rate_limited_border_is_localized_there() {
    scenario_in(
        "s12-ratelimit",
        four_blocks(),
        Timing::default(),
        false,
        |lab, d| {
            // One ICMP error per 2 s per VP and 2 a second in all: most of the
            // border's unreachables (and time-exceeded) are never sent.
            lab.icmp_limits(Node::Border, 2000, 2, 2)?;
            d.rounds(2);
            let fault_round = current_round(interval(d));
            for p in lab.country_prefixes() {
                lab.withdraw(p)?;
            }
            let v = wait_verdict(d, "a country blackout", 10, country_blackout)?;
            let start = v["start_round"].as_u64().context("start_round")?;
            measure("s12", "onset_rounds", start.saturating_sub(fault_round));
            ensure!(
                start >= fault_round && start <= fault_round + 2,
                "onset {start} not within 2 rounds of the fault at round {fault_round}"
            );
            // The border answers few traces: its answers accumulate over the
            // verdict's rounds until the localization names it.
            let border = lab
                .router_hop_addr(Node::Border)
                .context("border hop")?
                .to_string();
            let got = wait_verdict(d, "localization at the border", 15, |all| {
                country_blackout(all).filter(|v| v["localization"]["last_hop"] == border.as_str())
            });
            let v = country_blackout(&d.outages()?).context("blackout still there")?;
            let loc = &v["localization"];
            measure("s12", "last_hop", &loc["last_hop"]);
            measure(
                "s12",
                "localized_after_rounds",
                current_round(interval(d)).saturating_sub(start),
            );
            measure("s12", "traces", &loc["traces"]);
            measure("s12", "agreeing", &loc["agreeing"]);
            measure("s12", "probe_errors", &loc["probe_errors"]);
            measure(
                "s12",
                "probe_errors_agreeing",
                &loc["probe_errors_agreeing"],
            );
            measure("s12", "working_paths", &loc["working_paths"]);
            if got.is_err() {
                print_evidence(&d.collector.db_url, &d.outages()?)?;
            }
            let v = got?;
            let loc = &v["localization"];
            // The evidence: failing traces and the routers' errors to the
            // probes, or working paths that went on to the border from
            // where the failing ones stop; some of it names the border,
            // never more than there is.
            let n = |k: &str| loc[k].as_u64().unwrap_or(0);
            ensure!(
                n("traces") >= 2
                    && n("agreeing") <= n("traces")
                    && n("probe_errors_agreeing") <= n("probe_errors")
                    && n("agreeing") + n("probe_errors_agreeing") + n("working_paths") >= 1,
                "evidence counts: {loc}"
            );
            let restore_round = current_round(interval(d));
            for p in lab.country_prefixes() {
                lab.announce(p)?;
            }
            let v = wait_verdict(d, "the blackout to end", 8, |all| {
                country_blackout(all).filter(|v| !v["end"].is_null())
            })?;
            let end = v["end_round"].as_u64().context("end_round")?;
            measure("s12", "end_rounds", end.saturating_sub(restore_round));
            // The verdicts as finally stored, every trace of their rounds in.
            d.rounds(1);
            let all = d.outages()?;
            measure("s12", "outages_naming_border", naming_border(lab, &all)?);
            print_evidence(&d.collector.db_url, &all)?;
            if let Some(v) = country_blackout(&all) {
                let loc = &v["localization"];
                for k in [
                    "traces",
                    "agreeing",
                    "probe_errors",
                    "probe_errors_agreeing",
                    "working_paths",
                ] {
                    measure("s12", &format!("final_{k}"), &loc[k]);
                }
            }
            // Where the border's errors went: traces it answered, and
            // (agent, round) pairs whose probes it answered.
            let count = |sql: &str| -> Result<String> {
                Ok(db_query(&d.collector.db_url, sql)?
                    .first()
                    .and_then(|r| r.first().cloned())
                    .unwrap_or_default())
            };
            measure(
                "s12",
                "traces_answered_by_border",
                count(&format!(
                    "SELECT COUNT(*) FROM traces WHERE last_responding = '{border}'"
                ))?,
            );
            measure(
                "s12",
                "rounds_with_border_errors",
                count(&format!(
                    "SELECT COUNT(*) FROM probe_errors WHERE source = '{border}'"
                ))?,
            );
            ensure!(
                end >= restore_round && end <= restore_round + 2,
                "end {end} not within 2 rounds of the repair at {restore_round}"
            );
            Ok(())
        },
    );
}

#[test]
fn s13_each_verdict_alerts_once_open_once_close_over_many_passes() {
    // Correlation every quarter second: some sixteen passes a round.
    let timing = Timing {
        correlate_every_secs: 0.25,
        ..Timing::default()
    };
    scenario_in("s13-alerts", four_blocks(), timing, false, |lab, d| {
        let hook = WebhookSink::start(&lab.namespace(Node::Hub), "192.0.2.1:9099".parse()?, 0)?;
        let cfg = d.collector.dir.join("collector.toml");
        let mut text = std::fs::read_to_string(&cfg)?;
        text.push_str(&format!(
            "\n[alerts]\nwebhook = \"{}\"\nmax_attempts = 5\n",
            hook.url
        ));
        std::fs::write(&cfg, text)?;
        d.collector.stop(false)?;
        d.collector.start()?;
        d.rounds(2);
        let dark = lab.country_prefixes()[3];
        lab.withdraw(dark)?;
        wait_verdict(d, "a prefix blackout", 10, |all| {
            verdicts(all, "blackout", "prefix", Some(&dark.to_string()))
                .first()
                .map(|v| (*v).clone())
        })?;
        d.rounds(4);
        lab.announce(dark)?;
        wait_verdict(d, "every verdict to end", 8, |all| {
            (!all.is_empty() && all.iter().all(|v| !v["end"].is_null())).then(|| all[0].clone())
        })?;
        // Deliveries of the last passes arrive, and no more come later.
        d.rounds(3);
        let all = d.outages()?;
        let r = hook.received();
        // Alerts carry the stored verdict (its id); `outages --json` names a
        // verdict by kind, scope, target and start round.
        let key = |v: &Value| {
            format!(
                "{} {} {} from round {}",
                v["kind"], v["scope"], v["target"], v["start_round"]
            )
        };
        let mut by_id: std::collections::BTreeMap<i64, (String, usize, usize)> = Default::default();
        for e in &r.accepted {
            let id = e["verdict"]["id"].as_i64().context("alert without id")?;
            let entry = by_id
                .entry(id)
                .or_insert_with(|| (key(&e["verdict"]), 0, 0));
            match e["event"].as_str() {
                Some("open") => entry.1 += 1,
                Some("close") => entry.2 += 1,
                other => anyhow::bail!("unknown alert event {other:?}"),
            }
        }
        let opens: usize = by_id.values().map(|x| x.1).sum();
        let closes: usize = by_id.values().map(|x| x.2).sum();
        measure("s13", "verdicts", all.len());
        measure("s13", "open_alerts", opens);
        measure("s13", "close_alerts", closes);
        measure("s13", "outages_naming_border", naming_border(lab, &all)?);
        print_evidence(&d.collector.db_url, &all)?;
        for (id, (k, o, c)) in &by_id {
            ensure!(
                *o == 1 && *c == 1,
                "verdict {id} ({k}) gave {o} open and {c} close alerts"
            );
        }
        let mut alerted: Vec<&String> = by_id.values().map(|x| &x.0).collect();
        let mut listed: Vec<String> = all.iter().map(key).collect();
        alerted.sort();
        listed.sort();
        ensure!(
            alerted
                .iter()
                .map(|s| s.as_str())
                .eq(listed.iter().map(|s| s.as_str())),
            "alerts name exactly the listed verdicts: alerted {alerted:?}, listed {listed:?}"
        );
        Ok(())
    });
}

/// s21 (issue 31): the border throttles the country (a token bucket below
/// its traffic, with a queue: replies 150 ms slower and about a third of
/// the probes lost, every block still answering). A `degradation` of the
/// country opens within 3 rounds of the change, with its size, and closes
/// once the shaping ends; no blackout of any scope.
#[test]
fn s21_a_throttled_border_is_a_degradation_that_opens_and_closes() {
    scenario_in(
        "s21-throttled",
        four_blocks(),
        Timing::default(),
        false,
        |lab, d| {
            // Calm rounds for the baseline.
            d.rounds(5);
            to_phase(d, 80);
            let shaped_round = current_round(interval(d)) + 1;
            // ~830 kbit/s of load into 500 kbit/s with 150 ms of queue.
            let mut load = lab.load(Node::Border, Node::Ctry, 1000, 10)?;
            lab.shape(Node::Border, Node::Ctry, 500, 150)?;
            let found = (|| -> Result<Value> {
                let found = wait_verdict(d, "country degradation", 6, |all| {
                    verdicts(all, "degradation", "country", Some(COUNTRY))
                        .first()
                        .map(|v| (*v).clone())
                })?;
                ensure!(
                    blackouts(&d.outages()?).is_empty(),
                    "no blackout under throttling"
                );
                Ok(found)
            })();
            let _ = load.kill();
            let _ = load.wait();
            lab.clear_shape(Node::Border, Node::Ctry)?;
            let found = found?;
            let start = found["start_round"].as_u64().context("start_round")?;
            measure(
                "s21",
                "opened_after_rounds",
                start.saturating_sub(shaped_round),
            );
            measure(
                "s21",
                "change",
                found["change"].as_str().unwrap_or("-").replace(' ', "_"),
            );
            ensure!(
                start >= shaped_round && start <= shaped_round + 3,
                "opens within 3 rounds of round {shaped_round}: {found}"
            );
            ensure!(
                found["change"]
                    .as_str()
                    .is_some_and(|c| c.contains("baseline")),
                "carries its change: {found}"
            );
            let id = found["id"].clone();
            wait_verdict(d, "the degradation closed", 8, |all| {
                all.iter()
                    .find(|v| v["id"] == id && !v["end_round"].is_null())
                    .cloned()
            })?;
            ensure!(
                blackouts(&d.outages()?).is_empty(),
                "no blackout after throttling"
            );
            Ok(())
        },
    );
}
