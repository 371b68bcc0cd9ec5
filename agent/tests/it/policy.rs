//! A compromised collector cannot turn the agent into a weapon.
//!
//! The real collector (standing in for a compromised one: its database is
//! tampered with directly) assigns the agent a reserved range, space the
//! agent's local exclusion list forbids, more addresses than its
//! `max_targets` (the agent keeps the first `max_targets` and skips the
//! rest), and an absurd round interval. The real agent runs
//! `run --once` in a namespace of its own whose only interface is loopback
//! (so even a bug cannot leak a packet), with `local` routes that make every
//! assigned address answer. nftables counters on the namespace's output
//! count echo requests per destination: refused space must get none, the
//! legitimate campaign must get some, and the agent must log each refusal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::loopback::{cli, collector_bin, collector_in, Netns};

/// Echo requests counted per destination prefix by the namespace's nftables rules.
fn echo_counts(ns: &Netns) -> Vec<(String, u64)> {
    let out = ns.run("nft", &["list", "chain", "ip", "dwt", "out"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let prefix = l
                .strip_prefix("ip daddr ")?
                .split_whitespace()
                .next()?
                .to_string();
            let packets = l
                .split("packets ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((prefix, packets))
        })
        .collect()
}

#[test]
fn compromised_collector_cannot_widen_probing() {
    let Some(collector_bin) = collector_bin() else {
        return;
    };
    let Some(ns) = Netns::or_skip("pol") else {
        return;
    };
    // Every assigned address answers, so a wrongly sent probe would be
    // answered and counted, not silently lost on a missing route.
    for prefix in [
        "198.18.5.0/24",
        "198.18.6.0/23",
        "198.18.9.0/24",
        "198.19.0.0/16",
    ] {
        ns.run("ip", &["route", "add", "local", prefix, "dev", "lo"]);
    }
    ns.run("nft", &["add", "table", "ip", "dwt"]);
    ns.run(
        "nft",
        &[
            "add",
            "chain",
            "ip",
            "dwt",
            "out",
            "{ type filter hook output priority 0 ; }",
        ],
    );
    let watched = [
        "198.18.5.0/24",             // legitimate campaign: must be probed
        "198.18.6.0/24",             // allowed half of the partly excluded campaign
        "198.18.7.0/24",             // locally excluded
        "127.0.0.0/8",               // reserved, not allowed
        "198.19.0.0/21",             // the first max_targets addresses of a larger campaign
        "198.19.8.0-198.19.255.255", // the rest of it
        "198.18.9.0/24",             // campaign with an absurd interval
    ];
    for p in watched {
        ns.run(
            "nft",
            &[
                "add",
                "rule",
                "ip",
                "dwt",
                "out",
                "ip",
                "daddr",
                p,
                "icmp",
                "type",
                "echo-request",
                "counter",
            ],
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("c.sqlite").display());
    let token = cli(&collector_bin, &db, &["agents", "add", "vp1"])
        .trim()
        .to_string();
    for (name, prefix) in [
        ("good", "198.18.5.0/24"),
        ("excl", "198.18.6.0/23"),
        ("resv", "127.0.0.0/24"),
        ("huge", "198.19.0.0/16"),
        ("slow", "198.18.9.0/24"),
    ] {
        cli(
            &collector_bin,
            &db,
            &[
                "campaign",
                "add",
                name,
                "--prefix",
                prefix,
                "--interval",
                "60",
            ],
        );
    }
    // The compromise: an interval no operator tool would set.
    let path = dir.path().join("c.sqlite");
    let out = Command::new("sqlite3")
        .arg(&path)
        .arg("UPDATE campaigns SET interval_secs = 9000000000000 WHERE name = 'slow'")
        .output()
        .expect("sqlite3 (apt install sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_collector, url) = collector_in(&ns, &collector_bin, &db, "127.0.0.1:0");
    std::fs::write(
        dir.path().join("exclude.txt"),
        "# local policy\n198.18.7.0/24\n",
    )
    .expect("write");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector = \"{url}\"\ntoken = \"{token}\"\nspool_dir = \"spool\"\npps = 2000\n\
             max_targets = 2048\nallow = [\"198.18.0.0/15\"]\nexclude_file = \"exclude.txt\"\n\
             [probe]\ntimeout_ms = 300\nmax_probes = 4\n[trace]\nper_round = 0\n\
             [metrics]\ntextfile = \"darkwatch.prom\"\n"
        ),
    )
    .expect("write config");

    let mut agent = ns
        .cmd(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agent");
    let started = Instant::now();
    // A guard against a hung agent, not a timing assertion.
    while agent.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(180) {
            let _ = agent.kill();
            panic!("agent run --once did not finish");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = agent.wait_with_output().expect("agent output");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "agent failed:\n{log}");
    // stderr is a pipe: plain text, no colour codes.
    darkwatch_netlab::checks::assert_no_escapes(&log);

    let has = |campaign: &str, what: &str| {
        log.lines().any(|l| {
            l.contains(what)
                && (l.contains(&format!("campaign={campaign} "))
                    || l.contains(&format!("campaign=\"{campaign}\"")))
        })
    };
    let skipped = |campaign: &str, reason: &str| {
        log.lines().any(|l| {
            l.contains("skipping part of the campaign's space")
                && (l.contains(&format!("reason=\"{reason}\""))
                    || l.contains(&format!("reason={reason} ")))
                && (l.contains(&format!("campaign={campaign} "))
                    || l.contains(&format!("campaign=\"{campaign}\"")))
        })
    };
    assert!(
        skipped("resv", "reserved"),
        "reserved range refusal not logged:\n{log}"
    );
    assert!(
        skipped("huge", "over_max_targets"),
        "max_targets refusal not logged:\n{log}"
    );
    assert!(skipped("excl", "excluded"), "exclusion not logged:\n{log}");
    assert!(
        has("slow", "refusing an invalid campaign"),
        "absurd interval not refused:\n{log}"
    );

    let counts = echo_counts(&ns);
    let count = |p: &str| {
        counts
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no counter for {p}: {counts:?}"))
    };
    assert!(
        count("198.18.5.0/24") > 0,
        "the legitimate campaign was not probed: {counts:?}\n{log}"
    );
    assert!(
        count("198.18.6.0/24") > 0,
        "the allowed part was not probed: {counts:?}"
    );
    assert!(
        count("198.19.0.0/21") > 0,
        "the first max_targets addresses were not probed: {counts:?}"
    );
    for refused in [
        "198.18.7.0/24",
        "127.0.0.0/8",
        "198.19.8.0-198.19.255.255",
        "198.18.9.0/24",
    ] {
        assert_eq!(
            count(refused),
            0,
            "probes sent to refused space {refused}: {counts:?}"
        );
    }
    eprintln!("echo requests per destination: {counts:?}");

    // The textfile a cron user's node exporter reads says the same.
    let prom =
        std::fs::read_to_string(dir.path().join("darkwatch.prom")).expect("metrics textfile");
    let value = |line: &str| -> u64 {
        let found = prom
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '));
        found
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{prom}"))
    };
    assert_eq!(value("darkwatch_agent_rounds_total{campaign=\"good\"}"), 1);
    assert!(
        value("darkwatch_agent_probes_total{campaign=\"good\"}") > 0,
        "{prom}"
    );
    assert!(
        value("darkwatch_agent_replies_total{campaign=\"good\"}") > 0,
        "{prom}"
    );
    assert_eq!(
        value("darkwatch_agent_assignments_refused_total"),
        1,
        "slow"
    );
    assert!(!prom.contains("campaign=\"slow\""), "{prom}");
    for (campaign, reason, n) in [
        ("resv", "reserved", 256),
        ("excl", "excluded", 256),
        ("huge", "over_max_targets", 65536 - 2048),
    ] {
        assert_eq!(
            value(&format!(
                "darkwatch_agent_skipped_addresses{{campaign=\"{campaign}\",reason=\"{reason}\"}}"
            )),
            n
        );
    }
    if let Some(checked) = darkwatch_netlab::checks::promtool_check_metrics(&prom) {
        checked.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{prom}"));
    }
}
