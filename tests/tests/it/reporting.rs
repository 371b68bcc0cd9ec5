//! The reporting pipeline end to end, in the lab: three agents report to one
//! collector; the collector is stopped for several rounds and comes back;
//! one agent is killed with SIGKILL while it holds a spool; forged and
//! revoked tokens are refused. Run against SQLite and, when
//! `DARKWATCH_TEST_PG` names a server, PostgreSQL (CI always sets it).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use darkwatch_tests::harness::{
    self, current_round, db_query, stored_rounds, wait_for, Db, Deployment, Timing, STORED_BLOCKS,
};
use darkwatch_tests::{lab_or_skip, Lab, LabConfig, Node};

/// Observations per round and agent: the lab's 6 country blocks plus the
/// control block.
const PER_ROUND: u64 = 7;

fn run(name: &str, db: Db) {
    let _serial = crate::serial();
    let Some(lab) = lab_or_skip(LabConfig::default()) else {
        return;
    };
    let dir = harness::run_dir(name).expect("run dir");
    let result = Deployment::start(&lab, &db.url, dir.path(), Timing::default())
        .and_then(|mut d| pipeline(&lab, &mut d));
    if let Err(e) = result {
        drop(db);
        let kept = dir.keep();
        panic!("{name} failed (logs in {}): {e:#}", kept.display());
    }
}

/// Batch ids of the committed batch files in an agent's spool outbox (a
/// write the kill interrupted was never spooled).
fn spooled_batch_ids(agent_dir: &Path) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for e in std::fs::read_dir(agent_dir.join("spool/outbox"))? {
        let p = e?.path();
        if harness::is_spooled_batch(&p) {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)?;
            ids.insert(v["batch_id"].as_str().context("batch_id")?.to_string());
        }
    }
    Ok(ids)
}

/// HTTP status of a POST /v1/reports with `token`, sent from VP 1.
fn post_status(lab: &Lab, url: &str, token: &str) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let body = format!(
        r#"{{"batch_id":"{:032x}","created_ms":{now},"observations":[],"traces":[]}}"#,
        rand::random::<u128>()
    );
    let out = lab
        .command(Node::Vp(1), "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "5",
            "-X",
            "POST",
        ])
        .args([
            "-H",
            "content-type: application/json",
            "-H",
            &format!("authorization: Bearer {token}"),
        ])
        .args(["--data", &body, &format!("{url}/v1/reports")])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn token_of(config: &Path) -> Result<String> {
    let text = std::fs::read_to_string(config)?;
    let t: toml::Value = toml::from_str(&text)?;
    Ok(t["token"].as_str().context("token")?.to_string())
}

/// Rounds missing between the first and last stored round, and rounds
/// whose observation count is not [`PER_ROUND`] once discovery is done.
fn check_rounds(
    agent: &str,
    r: &std::collections::BTreeMap<u64, u64>,
    allowed_gap: &[u64],
) -> Result<()> {
    let (first, last) = (
        *r.keys().next().context("no rounds")?,
        *r.keys().last().context("no rounds")?,
    );
    let missing: Vec<u64> = (first..=last)
        .filter(|x| !r.contains_key(x) && !allowed_gap.contains(x))
        .collect();
    ensure!(
        missing.is_empty(),
        "{agent} lost rounds {missing:?} (stored {r:?})"
    );
    // Rounds do not wait for discovery: the first ones hold the blocks
    // found so far (or none), every later one all of them.
    let odd: Vec<_> = r
        .iter()
        .skip_while(|(_, c)| **c < PER_ROUND)
        .filter(|(_, c)| **c != PER_ROUND)
        .collect();
    ensure!(
        odd.is_empty(),
        "{agent}: rounds with other than {PER_ROUND} observations: {odd:?}"
    );
    Ok(())
}

fn pipeline(lab: &Lab, d: &mut Deployment) -> Result<()> {
    d.wait_reporting(Duration::from_secs(60))?;
    d.rounds(1);
    let url = d.collector.url();

    // Forged tokens are refused; a real one is accepted.
    ensure!(
        post_status(lab, &url, &"ab".repeat(32))? == "401",
        "forged token accepted"
    );
    ensure!(
        post_status(lab, &url, "")? == "401",
        "missing token accepted"
    );
    let vp1_token = token_of(&d.agents[0].config)?;
    let ok = post_status(lab, &url, &vp1_token)?;
    ensure!(ok == "200" || ok == "201", "valid token refused: {ok}");

    // The collector goes away for several rounds: agents spool.
    d.collector.stop(false)?;
    let down_from = current_round(d.timing.interval_secs);
    d.rounds(2);
    for a in &d.agents {
        ensure!(
            a.spooled() > 0,
            "{} spooled nothing while the collector was down",
            a.name
        );
    }
    // SIGKILL one agent while it holds a spool; what it spooled must arrive.
    d.agents[1].stop(true)?;
    let killed_at = current_round(d.timing.interval_secs);
    let spooled = spooled_batch_ids(&d.agents[1].dir)?;
    ensure!(!spooled.is_empty(), "vp2 has nothing spooled");
    d.rounds(1);
    d.agents[1].start()?;
    let restarted_at = current_round(d.timing.interval_secs);
    d.rounds(1);
    d.collector.start()?;
    let up_at = current_round(d.timing.interval_secs);
    ensure!(
        up_at >= down_from + 3,
        "collector was down only {} rounds",
        up_at - down_from
    );

    wait_for("spools to drain", Duration::from_secs(60), || {
        Ok(d.agents.iter().all(|a| a.spooled() == 0).then_some(()))
    })?;
    for id in &spooled {
        let rows = db_query(
            &d.collector.db_url,
            &format!("SELECT COUNT(*) FROM batches WHERE batch_id = '{id}'"),
        )?;
        ensure!(
            rows == vec![vec!["1".to_string()]],
            "spooled batch {id} of the killed agent not stored once: {rows:?}"
        );
    }

    // A revoked agent is refused from then on, and its results stay spooled.
    d.rounds(1);
    let vp3_token = token_of(&d.agents[2].config)?;
    d.collector.cli_ok(&["agents", "revoke", "vp3"])?;
    let revoked_at = current_round(d.timing.interval_secs);
    ensure!(
        post_status(lab, &url, &vp3_token)? == "401",
        "revoked token accepted"
    );
    wait_for("vp3 to spool after revocation", d.interval() * 4, || {
        Ok((d.agents[2].spooled() > 0).then_some(()))
    })?;

    d.rounds(1);
    let rounds = stored_rounds(&d.collector.db_url)?;
    ensure!(
        rounds.len() == 3,
        "three agents stored: {:?}",
        rounds.keys()
    );
    for (agent, r) in &rounds {
        match agent.as_str() {
            // The rounds when vp2 was dead were never probed.
            "vp2" => {
                let gap: Vec<u64> = (killed_at..=restarted_at).collect();
                check_rounds(agent, r, &gap)?;
                ensure!(
                    r.keys().any(|x| *x >= down_from && *x < killed_at),
                    "vp2's rounds of the downtime stored: {r:?}"
                );
            }
            "vp3" => {
                check_rounds(agent, r, &[])?;
                let last = *r.keys().last().unwrap_or(&0);
                ensure!(
                    last <= revoked_at + 1,
                    "vp3 stored round {last} after its revocation at {revoked_at}"
                );
            }
            _ => {
                check_rounds(agent, r, &[])?;
                ensure!(
                    (down_from..up_at).all(|x| r.contains_key(&x)),
                    "{agent}: rounds of the downtime stored: {r:?}"
                );
            }
        }
    }
    // Agents follow a new campaign without restart, and only the agents it
    // names run it.
    d.collector.cli_ok(&[
        "campaign",
        "add",
        "extra",
        "--prefix",
        "198.18.2.0/24",
        "--interval",
        "4",
        "--agents",
        "vp1",
    ])?;
    let q = format!("SELECT DISTINCT agent FROM {STORED_BLOCKS} WHERE campaign = 'extra'");
    wait_for("vp1 to report the new campaign", d.interval() * 6, || {
        Ok((db_query(&d.collector.db_url, &q)? == vec![vec!["vp1".to_string()]]).then_some(()))
    })?;
    d.rounds(1);
    ensure!(
        db_query(&d.collector.db_url, &q)? == vec![vec!["vp1".to_string()]],
        "only vp1 runs the campaign"
    );
    for a in &mut d.agents {
        a.stop(false)?;
    }

    // Re-sent batches never count twice: the observation counts recorded
    // per acknowledged batch add up to the rows stored.
    let acked = db_query(
        &d.collector.db_url,
        "SELECT COALESCE(SUM(observations), 0) FROM batches",
    )?;
    let stored = db_query(
        &d.collector.db_url,
        &format!("SELECT COALESCE(SUM(n), 0) FROM {STORED_BLOCKS}"),
    )?;
    ensure!(
        acked == stored,
        "acknowledged observations {acked:?} != stored {stored:?}"
    );
    Ok(())
}

#[test]
fn three_agents_survive_collector_downtime_agent_kill_and_token_revocation_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The database lives in the run dir so failures keep it; this dir only
    // anchors the path for the `Db` value.
    let db = Db::sqlite(dir.path());
    run("reporting-sqlite", db);
}

#[test]
fn three_agents_survive_collector_downtime_agent_kill_and_token_revocation_postgres() {
    let Some(base) = harness::pg_or_skip() else {
        return;
    };
    run(
        "reporting-postgres",
        Db::postgres(&base).expect("postgres database"),
    );
}
