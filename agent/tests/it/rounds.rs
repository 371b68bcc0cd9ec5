//! Rounds beside discovery, with the real agent and the real collector in a
//! namespace of our own whose only interface is loopback (198.18.0.0/18
//! answers through a `local` route there). The campaign's 16,384 addresses
//! take tens of seconds to sweep at the agent's pps cap, against 4-s rounds:
//! while a rediscovery runs, every round still runs over every known block,
//! ends on time, and reaches the collector.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::loopback::{cli, collector_bin, collector_in, Killed, Netns};

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn a_round_is_not_delayed_by_a_rediscovery() {
    let Some(bin) = collector_bin() else { return };
    let Some(ns) = Netns::or_skip("rdi") else {
        return;
    };
    ns.run(
        "ip",
        &["route", "add", "local", "198.18.0.0/18", "dev", "lo"],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("c.sqlite");
    let db = format!("sqlite://{}", db_path.display());
    let token = cli(&bin, &db, &["agents", "add", "vp1"]).trim().to_string();
    cli(
        &bin,
        &db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/18",
            "--interval",
            "4",
        ],
    );
    let (_collector, url) = collector_in(&ns, &bin, &db, "127.0.0.1:0");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector = \"{url}\"\ntoken = \"{token}\"\nspool_dir = \"spool\"\n\
             pps = 1000\nmax_targets = 20000\nallow = [\"198.18.0.0/15\"]\n\
             [probe]\ntimeout_ms = 200\nmax_probes = 2\nrediscover_rounds = 5\n\
             rediscover_stale_after = 1\n\
             [trace]\nper_round = 0\n[report]\npoll_secs = 1\nretry_max_secs = 1\n"
        ),
    )
    .expect("config");
    let mut agent = Killed(
        ns.cmd(env!("CARGO_BIN_EXE_darkwatch-agent"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent"),
    );
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let stderr = agent.0.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    // Until a rediscovery (the second sweep; a full one, every block being
    // stale every time) has ended.
    let done = |l: &[String]| {
        let second = l
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("discovery starts"))
            .nth(1)
            .map(|(i, _)| i);
        second.is_some_and(|i| {
            l[i..]
                .iter()
                .any(|l| l.contains("background discovery done"))
        })
    };
    let started = Instant::now();
    while !done(&log.lock().unwrap()) {
        // A guard against a hang, not a timing assertion.
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no rediscovery ended:\n{}",
            log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = log.lock().unwrap().clone();
    let text = lines.join("\n");
    let second = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("discovery starts"))
        .nth(1)
        .map(|(i, _)| i)
        .expect("a rediscovery");
    let end = second
        + lines[second..]
            .iter()
            .position(|l| l.contains("background discovery done"))
            .expect("its end");
    // The rounds that ran while the rediscovery did.
    let during: Vec<&String> = lines[second..end]
        .iter()
        .filter(|l| l.contains("round done"))
        .collect();
    assert!(
        during.len() >= 3,
        "{} rounds during it:\n{text}",
        during.len()
    );
    for l in &during {
        assert_eq!(field(l, "on_time"), Some("true"), "{l}\n{text}");
        assert_eq!(field(l, "blocks"), Some("64"), "{l}");
        let round = field(l, "round").expect("round");
        // What it found reached the collector (the sender is not waited
        // for: give it a moment).
        // Blocks stored plain or in packed round records.
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM observations WHERE campaign = 'kp' AND round = {round}) \
             + (SELECT COALESCE(SUM(blocks), 0) FROM round_records \
                WHERE campaign = 'kp' AND round = {round})"
        );
        let t = Instant::now();
        while crate::common::sqlite_rows(&db_path, &sql) != ["64"] {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "round {round} not stored"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
