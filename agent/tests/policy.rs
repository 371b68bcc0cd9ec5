//! A compromised collector cannot turn the agent into a weapon.
//!
//! The real collector (standing in for a compromised one: its database is
//! tampered with directly) assigns the agent a reserved range, space the
//! agent's local exclusion list forbids, more addresses than its
//! `max_targets`, and an absurd round interval. The real agent runs
//! `run --once` in a namespace of its own whose only interface is loopback
//! (so even a bug cannot leak a packet), with `local` routes that make every
//! assigned address answer. nftables counters on the namespace's output
//! count echo requests per destination: refused space must get none, the
//! legitimate campaign must get some, and the agent must log each refusal.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A network namespace with only `lo`, removed on drop.
struct Netns(String);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("dwt{}{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace, or None (skip) outside CI when it cannot be made.
    fn or_skip(tag: &str) -> Option<Netns> {
        match Netns::new(tag) {
            Ok(ns) => Some(ns),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("cannot create a network namespace in CI: {e}")
            }
            Err(e) => {
                eprintln!("skipping: cannot create a network namespace (needs root): {e}");
                None
            }
        }
    }

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self
            .cmd(program)
            .args(args)
            .output()
            .expect("run in namespace");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.0]) {
            eprintln!("cannot remove namespace {}: {e}", self.0);
        }
    }
}

/// A workspace binary next to this test's executable.
fn workspace_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the collector in `ns` on 127.0.0.1 and returns it with its URL.
fn collector_in(ns: &Netns, bin: &PathBuf, db: &str) -> (Killed, String) {
    let mut child = ns
        .cmd(bin)
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start collector");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("darkwatch-collector listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("collector address");
    (Killed(child), url)
}

fn cli(bin: &PathBuf, db: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .args(["--db", db])
        .env_remove("DARKWATCH_DB")
        .output()
        .expect("collector CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

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
    let Some(collector_bin) = workspace_bin("darkwatch-collector") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "darkwatch-collector must be built before the agent tests in CI"
        );
        eprintln!("skipping: darkwatch-collector is not built (cargo build --workspace)");
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
        "198.18.5.0/24", // legitimate campaign: must be probed
        "198.18.6.0/24", // allowed half of the partly excluded campaign
        "198.18.7.0/24", // locally excluded
        "127.0.0.0/8",   // reserved, not allowed
        "198.19.0.0/16", // more than max_targets
        "198.18.9.0/24", // campaign with an absurd interval
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

    let (_collector, url) = collector_in(&ns, &collector_bin, &db);
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
             [probe]\ntimeout_ms = 300\nmax_probes = 4\n[trace]\nper_round = 0\n"
        ),
    )
    .expect("write config");

    let mut agent = ns
        .cmd(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
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

    let has = |campaign: &str, what: &str| {
        log.lines().any(|l| {
            l.contains(what)
                && (l.contains(&format!("campaign={campaign} "))
                    || l.contains(&format!("campaign=\"{campaign}\"")))
        })
    };
    assert!(
        has("resv", "refusing the campaign's targets"),
        "reserved range refusal not logged:\n{log}"
    );
    assert!(
        has("huge", "refusing the campaign's targets"),
        "max_targets refusal not logged:\n{log}"
    );
    assert!(
        has("excl", "refused part of the assigned space"),
        "exclusion not logged:\n{log}"
    );
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
    for refused in [
        "198.18.7.0/24",
        "127.0.0.0/8",
        "198.19.0.0/16",
        "198.18.9.0/24",
    ] {
        assert_eq!(
            count(refused),
            0,
            "probes sent to refused space {refused}: {counts:?}"
        );
    }
    eprintln!("echo requests per destination: {counts:?}");
}
