//! An IPv6 hitlist campaign judged end to end in a two-namespace lab:
//!
//! ```text
//! vp: collector + agent (2001:db8:ff::1) ── (2001:db8:ff::2) cc: 2001:db8:1800::/48, 2001:db8:1801::/48
//! ```
//!
//! The country namespace answers for two /48s through `local` routes; the
//! VP's only route beyond its link is those two /48s, so nothing can leave
//! the lab. The campaign is made from a hitlist alone (`campaign add
//! --hitlist`), so the agent must judge both /48 blocks from its first round
//! with the addresses the census hands out (a /48 is far too wide to sweep).
//! One /48 then goes dark (a blackhole route instead of its local route): a
//! blackout of that prefix must open while the other stays up, and close
//! once it answers again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use darkwatch_netlab::{Error, Namespaces};
use serde_json::Value;

use crate::loopback::{cli, collector_bin, Killed};

const LIVE: &str = "2001:db8:1800::/48";
const DARK: &str = "2001:db8:1801::/48";

/// The VP and country namespaces, joined by one veth pair.
fn lab() -> Result<Namespaces, Error> {
    let mut ns = Namespaces::new();
    ns.add(&["vp", "cc"])?;
    ns.veth(("vp", "v0"), ("cc", "c0"))?;
    // Without DAD the link addresses are usable at once.
    ns.ip(
        "vp",
        &["addr", "add", "2001:db8:ff::1/64", "dev", "v0", "nodad"],
    )?;
    ns.ip(
        "cc",
        &["addr", "add", "2001:db8:ff::2/64", "dev", "c0", "nodad"],
    )?;
    ns.ip(
        "vp",
        &[
            "route",
            "add",
            "2001:db8:1800::/47",
            "via",
            "2001:db8:ff::2",
        ],
    )?;
    for p in [LIVE, DARK] {
        ns.ip("cc", &["route", "add", "local", p, "dev", "lo"])?;
    }
    Ok(ns)
}

/// Runs the collector CLI on `db`; returns stdout and stderr, asserting success.
fn cli_both(bin: &Path, db: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(bin)
        .args(args)
        .args(["--db", db])
        .env_remove("DARKWATCH_DB")
        .output()
        .expect("collector CLI");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// Polls `check` until it returns `Some`; `what` and the last state explain
/// a timeout. The limit guards against a hung lab, it is not a timing check.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(state) if started.elapsed() > Duration::from_secs(120) => {
                panic!("timed out waiting for {what}; last state:\n{state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// `(round, block, state)` of every stored observation of the campaign.
fn observations(db_path: &Path) -> Vec<(u64, String, String)> {
    crate::common::sqlite_rows(
        db_path,
        "SELECT round, block, state FROM observations WHERE campaign = 'v6' ORDER BY round, block",
    )
    .iter()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f.len(), 3, "bad row {l:?}");
        (f[0].parse().expect("round"), f[1].into(), f[2].into())
    })
    .collect()
}

fn outages(bin: &Path, db: &str) -> Vec<Value> {
    let text = cli(bin, db, &["outages", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("outages --json: {e}: {text}"))
}

fn names(v: &Value, net: &str) -> bool {
    v["target"].as_str() == Some(net)
        || v["prefixes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x.as_str() == Some(net)))
}

#[test]
fn ipv6_hitlist_campaign_is_judged_end_to_end() {
    let Some(collector_bin) = collector_bin() else {
        return;
    };
    let Some(mut ns) =
        darkwatch_netlab::or_skip("the IPv6 namespace lab (needs root and `ip netns`)", lab())
    else {
        return;
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("c.sqlite");
    let db = format!("sqlite://{}", db_path.display());
    let hitlist = dir.path().join("v6.txt");
    std::fs::write(
        &hitlist,
        "# known-responsive hosts of two /48s\n\
         2001:db8:1800::1\n\
         2001:db8:1800::53\n\
         2001:db8:1800:7::80\n\
         2001:db8:1801::1\n\
         2001:db8:1801::25\n\
         2001:db8:1801::zz\n\
         2001:db8:1801:a::443\n",
    )
    .expect("write hitlist");
    let hitlist_arg = hitlist.display().to_string();
    let (out, err) = cli_both(
        &collector_bin,
        &db,
        &[
            "campaign",
            "add",
            "v6",
            "--hitlist",
            &hitlist_arg,
            "--interval",
            "2",
            // Documentation space, as every lab address here.
            "--allow-special-purpose",
        ],
    );
    let said = format!("{out}{err}");
    assert!(
        said.contains(&format!("{hitlist_arg}:7")) && said.contains("1 lines skipped"),
        "the broken line is not reported and counted:\n{said}"
    );
    assert!(
        said.contains("6 addresses in 2 blocks"),
        "the hitlist's addresses do not seed two blocks:\n{said}"
    );
    let token = cli(&collector_bin, &db, &["agents", "add", "vp1"])
        .trim()
        .to_string();

    std::fs::write(
        dir.path().join("collector.toml"),
        "[correlation]\nevery_secs = 0.5\n",
    )
    .expect("write collector config");
    let collector = ns
        .command("vp", &collector_bin)
        .args(["serve", "--db", &db, "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("collector.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start collector");
    let mut collector = Killed(collector);
    let url = darkwatch_netlab::announced_url(&mut collector.0, Duration::from_secs(60))
        .expect("collector address");

    // Plain reports: the test reads the collector's per-block rows, and so
    // covers the plain wire end to end (`packed` covers the packed one).
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector = \"{url}\"\ntoken = \"{token}\"\nspool_dir = \"{}\"\npps = 200\n\
             allow = [\"2001:db8::/32\"]\n[probe]\ntimeout_ms = 300\nmax_probes = 4\n\
             [trace]\nper_round = 0\n[report]\npoll_secs = 1\npacked = false\n",
            dir.path().join("spool").display()
        ),
    )
    .expect("write agent config");
    let agent = Killed(
        ns.command("vp", env!("CARGO_BIN_EXE_darkwatch-agent"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start agent"),
    );

    // The agent's first round already judges both /48s up: the hitlist
    // seeded the census, no sweep came first.
    let first = wait_for("the agent's first round", || {
        let obs = observations(&db_path);
        let Some(r) = obs.first().map(|o| o.0) else {
            return Err("no observations".into());
        };
        let round: Vec<_> = obs.into_iter().filter(|o| o.0 == r).collect();
        if round.len() < 2 {
            return Err(format!("{round:?}"));
        }
        Ok(round)
    });
    let blocks: Vec<(&str, &str)> = first
        .iter()
        .map(|(_, b, s)| (b.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [(LIVE, "up"), (DARK, "up")],
        "first round: {first:?}"
    );

    let status = wait_for("the agent's coverage in status --json", || {
        let text = cli(&collector_bin, &db, &["status", "--json"]);
        let s: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let cov = s["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["name"] == "vp1"))
            .and_then(|a| a["coverage"].as_array())
            .and_then(|c| c.iter().find(|c| c["campaign"] == "v6"))
            .cloned();
        cov.ok_or(text)
    });
    assert_eq!(status["blocks_tracked"], 2, "coverage: {status}");
    assert_eq!(status["addresses_targeted"], 6, "coverage: {status}");
    // What it cannot watch is the rest of each /48, which no one can sweep.
    let skipped = status["skipped"].as_array().expect("skipped");
    assert!(
        skipped.iter().all(|s| s["reason"] == "ipv6_too_large"),
        "coverage: {status}"
    );

    // One /48 goes dark: its packets are silently dropped.
    ns.ip("cc", &["route", "del", "local", DARK, "dev", "lo"])
        .expect("remove the local route");
    ns.ip("cc", &["route", "add", "blackhole", DARK])
        .expect("add the blackhole");
    let verdict = wait_for("a blackout of the dark /48", || {
        let all = outages(&collector_bin, &db);
        all.iter()
            .find(|v| {
                v["scope"] == "prefix"
                    && v["target"] == DARK
                    && v["kind"] == "blackout"
                    && v["end"].is_null()
            })
            .cloned()
            .ok_or_else(|| format!("{all:#?}"))
    });
    assert_eq!(verdict["campaign"], "v6", "{verdict}");
    assert_eq!(verdict["vantage_points"][0], "vp1", "{verdict}");
    assert_eq!(verdict["blocks_affected"], 1, "{verdict}");
    assert_eq!(verdict["blocks_total"], 1, "{verdict}");
    let all = outages(&collector_bin, &db);
    assert!(
        !all.iter().any(|v| names(v, LIVE)),
        "a verdict names the /48 that still answers: {all:#?}"
    );
    let obs = observations(&db_path);
    let last = obs.last().expect("observations").0;
    assert!(
        obs.iter()
            .any(|o| o.0 == last && o.1 == LIVE && o.2 == "up"),
        "the live /48 is not up in the latest round: {obs:?}"
    );
    assert!(
        obs.iter().any(|o| o.1 == DARK && o.2 == "down"),
        "the dark /48 was never observed down: {obs:?}"
    );

    // It answers again: the verdict closes.
    ns.ip("cc", &["route", "del", "blackhole", DARK])
        .expect("remove the blackhole");
    ns.ip("cc", &["route", "add", "local", DARK, "dev", "lo"])
        .expect("restore the local route");
    let start = verdict["start_round"].clone();
    wait_for("the blackout to close", || {
        let all = outages(&collector_bin, &db);
        all.iter()
            .find(|v| {
                v["scope"] == "prefix"
                    && v["target"] == DARK
                    && v["start_round"] == start
                    && !v["end"].is_null()
            })
            .cloned()
            .ok_or_else(|| format!("{all:#?}"))
    });

    drop(agent);
    drop(collector);
    ns.teardown().expect("tear down the lab");
}
