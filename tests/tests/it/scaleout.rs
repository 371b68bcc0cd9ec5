//! Scale-out over PostgreSQL: two collectors share one database, agents are
//! spread across both, and the correlator lease moves when its holder dies.
//!
//! Collector A starts first and takes the lab campaign's correlation lease; B then
//! joins the same database. vp1 reports to A, vp2 and vp3 to B. The test
//! checks that both accept reports and only A correlates, then withdraws the
//! whole lab country and kills A with SIGKILL: B must take the lease within
//! its TTL and open the country blackout on its own, while vp1 spools. A is
//! restarted (and must not take the lease back), the country comes back, B
//! closes the verdict, vp1's spool drains into A, and every round of every
//! agent is stored exactly once with no gap.
//!
//! Needs `DARKWATCH_TEST_PG` (set by `.ci/run`); without it the test skips,
//! except with `CI=true`, where it fails.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use darkwatch_tests::harness::{
    self, current_round, db_query, verdicts, wait_for, Agent, AgentOpts, Collector, Db, Timing,
    COUNTRY,
};
use darkwatch_tests::{lab_or_skip, Lab, LabConfig};
use serde_json::Value;

/// Lease lifetime in the test: short, so that failover fits in a round.
const LEASE_TTL_SECS: u64 = 3;
/// Log line of the correlation loop when it takes the lease.
const TOOK_LEASE: &str = "this collector now runs the correlation";

#[test]
fn correlator_lease_fails_over_between_collectors_and_no_report_is_lost() {
    let Some(pg) = harness::pg_or_skip() else {
        return;
    };
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(LabConfig::default()) else {
        return;
    };
    let dir = harness::run_dir("scaleout").expect("run dir");
    let db = Db::postgres(&pg).expect("a fresh PostgreSQL database");
    if let Err(e) = scale_out(&lab, &db, dir.path()) {
        harness::dump_logs(dir.path(), 30);
        drop(db);
        let kept = dir.keep();
        panic!("scale-out failed (logs in {}): {e:#}", kept.display());
    }
}

/// Pid in a lease holder id (`HOST-PID-RANDOM`, see `serve`).
fn holder_pid(holder: &str) -> Option<i32> {
    holder.rsplit('-').nth(1)?.parse().ok()
}

/// Pid of the collector holding an unexpired correlation lease (the lab
/// has one campaign, so one `correlator:CAMPAIGN` lease), if any.
fn lease_holder(db_url: &str) -> Result<Option<i32>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let rows = db_query(
        db_url,
        &format!(
            "SELECT holder FROM leases WHERE name LIKE 'correlator:%' AND expires_ms >= {now}"
        ),
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|h| holder_pid(h)))
}

/// Lines of a collector's log (`collector-N.log`) that contain `needle`.
fn log_count(collector: &Collector, start: u32, needle: &str) -> usize {
    std::fs::read_to_string(collector.dir.join(format!("collector-{start}.log")))
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

fn country_blackout(all: &[Value]) -> Option<Value> {
    verdicts(all, "blackout", "country", Some(COUNTRY))
        .first()
        .map(|v| (*v).clone())
}

fn scale_out(lab: &Lab, db: &Db, dir: &Path) -> Result<()> {
    let timing = Timing::default();
    let interval = Duration::from_secs(timing.interval_secs);
    let extra = format!("lease_ttl_secs = {LEASE_TTL_SECS}");

    // A first, alone, until it holds the lease.
    let mut a = Collector::new_at(
        lab,
        &db.url,
        &dir.join("collector-a"),
        &timing,
        8080,
        &extra,
    )?;
    a.start()?;
    let a_pid = a.pid().context("A's pid")?;
    // Leases are per campaign: A takes the campaign's once it exists.
    a.add_lab_campaign(dir, &timing)?;
    wait_for(
        "A to take the correlator lease",
        Duration::from_secs(15),
        || Ok((lease_holder(&db.url)? == Some(a_pid)).then_some(())),
    )?;
    // B joins the same database on another port of the hub.
    let mut b = Collector::new_at(
        lab,
        &db.url,
        &dir.join("collector-b"),
        &timing,
        8081,
        &extra,
    )?;
    b.start()?;
    let b_pid = b.pid().context("B's pid")?;

    // vp1 reports to A, vp2 and vp3 to B.
    let mut agents: Vec<Agent> = Vec::new();
    for vp in 1..=3u8 {
        let name = format!("vp{vp}");
        let token = a.add_agent(&name)?;
        let url = if vp == 1 { a.url() } else { b.url() };
        let mut agent = Agent::new(
            lab,
            vp,
            &url,
            &token,
            &dir.join(&name),
            &AgentOpts::default(),
        )?;
        agent.start()?;
        agents.push(agent);
    }
    wait_for(
        "every agent to report (to A or B)",
        Duration::from_secs(60),
        || {
            let seen = db_query(
                &db.url,
                "SELECT name FROM agents WHERE last_seen_ms IS NOT NULL",
            )?;
            Ok((seen.len() == 3).then_some(()))
        },
    )?;
    std::thread::sleep(interval * 2);
    ensure!(
        lease_holder(&db.url)? == Some(a_pid),
        "A keeps the lease while it lives"
    );
    ensure!(
        log_count(&b, 1, TOOK_LEASE) == 0,
        "B must not correlate while A holds the lease"
    );

    // The country goes dark and the correlator dies at the same moment.
    let fault_round = current_round(timing.interval_secs);
    for p in lab.country_prefixes() {
        lab.withdraw(p)?;
    }
    a.stop(true)?;
    let killed = std::time::Instant::now();
    wait_for(
        "B to take over the lease",
        Duration::from_secs(LEASE_TTL_SECS + 10),
        || Ok((lease_holder(&db.url)? == Some(b_pid)).then_some(())),
    )?;
    eprintln!(
        "lease handed over {:.1} s after A was killed (TTL {LEASE_TTL_SECS} s)",
        killed.elapsed().as_secs_f64()
    );
    ensure!(
        log_count(&b, 1, TOOK_LEASE) == 1,
        "B logs that it took over"
    );

    // B alone (A is dead) opens the blackout from vp2 and vp3.
    let v = wait_for("B to open the country blackout", interval * 10, || {
        Ok(country_blackout(&b.outages()?))
    })?;
    let start = v["start_round"].as_u64().context("start_round")?;
    ensure!(
        start >= fault_round && start <= fault_round + 2,
        "onset {start} not within 2 rounds of the fault at round {fault_round}: {v}"
    );
    ensure!(v["end"].is_null(), "blackout ongoing: {v}");
    ensure!(
        v["blocks_affected"] == v["blocks_total"],
        "every block down: {v}"
    );
    eprintln!(
        "blackout opened by B {:.1} s after the fault",
        killed.elapsed().as_secs_f64()
    );
    wait_for(
        "vp1 to spool while its collector is down",
        interval * 2,
        || Ok((agents[0].spooled() > 0).then_some(())),
    )?;

    // A comes back: it serves again but leaves the lease to B.
    a.start()?;
    let a_pid = a.pid().context("A's new pid")?;
    std::thread::sleep(Duration::from_secs(LEASE_TTL_SECS * 2));
    ensure!(
        lease_holder(&db.url)? == Some(b_pid),
        "the restarted A must not take the lease from B"
    );
    ensure!(
        log_count(&a, 2, TOOK_LEASE) == 0,
        "the restarted A does not correlate"
    );
    ensure!(a_pid != b_pid, "two distinct processes");

    // The country comes back; B closes the verdict, now also seen through vp1.
    let restore_round = current_round(timing.interval_secs);
    for p in lab.country_prefixes() {
        lab.announce(p)?;
    }
    let v = wait_for("B to close the blackout", interval * 8, || {
        Ok(country_blackout(&b.outages()?).filter(|v| !v["end"].is_null()))
    })?;
    let end = v["end_round"].as_u64().context("end_round")?;
    ensure!(
        end >= restore_round && end <= restore_round + 2,
        "end {end} not within 2 rounds of {restore_round}: {v}"
    );
    let vps = v["vantage_points"].as_array().map_or(0, |a| a.len());
    ensure!(
        vps == 3,
        "after vp1's spool drained, all three VPs saw the blackout: {v}"
    );
    wait_for("vp1's spool to drain into A", interval * 3, || {
        Ok((agents[0].spooled() == 0).then_some(()))
    })?;
    let all = b.outages()?;
    ensure!(
        verdicts(&all, "blackout", "country", None).len() == 1,
        "exactly one country blackout: {all:?}"
    );

    // Nothing lost, nothing twice: every agent has every round from its
    // first to its last, each with one observation per block.
    std::thread::sleep(interval);
    let blocks = lab.blocks().len() as u64;
    let now = current_round(timing.interval_secs);
    // Each block at most once per round: the observations' primary key
    // and the packed format (strictly increasing indices) both ensure it.
    let per_block = db_query(
        &db.url,
        &format!(
            "SELECT agent, round, SUM(n) FROM {} WHERE control = 0 \
             GROUP BY agent, round ORDER BY agent, round",
            harness::STORED_BLOCKS
        ),
    )?;
    // Rounds do not wait for discovery: an agent's first rounds hold the
    // blocks found so far (or none), every later one all of them.
    let full = blocks.to_string();
    let mut discovered = std::collections::BTreeSet::new();
    let mut after_discovery = Vec::new();
    for r in &per_block {
        if r.len() == 3 && r[2] == full {
            discovered.insert(r[0].clone());
        }
        if r.len() != 3 || discovered.contains(&r[0]) {
            after_discovery.push(r);
        }
    }
    ensure!(
        !after_discovery.is_empty() && after_discovery.iter().all(|r| r.len() == 3 && r[2] == full),
        "every stored round holds each of the {blocks} blocks once: {per_block:?}"
    );
    let rounds = harness::stored_rounds(&db.url)?;
    ensure!(
        rounds.len() == 3,
        "three agents stored: {:?}",
        rounds.keys()
    );
    for (agent, r) in &rounds {
        let first = *r
            .keys()
            .next()
            .ok_or_else(|| anyhow!("{agent}: no rounds"))?;
        let last = *r
            .keys()
            .last()
            .ok_or_else(|| anyhow!("{agent}: no rounds"))?;
        let missing: Vec<u64> = (first..=last).filter(|x| !r.contains_key(x)).collect();
        ensure!(missing.is_empty(), "{agent} lost rounds {missing:?}");
        ensure!(
            last + 2 >= now,
            "{agent} is still reporting (last round {last}, now {now})"
        );
        ensure!(
            first <= fault_round,
            "{agent} reported before the fault (first round {first})"
        );
    }
    for agent in &mut agents {
        agent.stop(false)?;
    }
    b.stop(false)?;
    a.stop(false)
}

#[test]
fn holder_ids_carry_the_pid() {
    assert_eq!(holder_pid("hub-host-4242-0badcafe"), Some(4242));
    assert_eq!(holder_pid("h-17-00000000"), Some(17));
    assert_eq!(holder_pid("garbage"), None);
}
