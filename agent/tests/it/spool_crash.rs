//! kill -9 of the agent while it spools, torn spool files, and a full spool.
//!
//! The spool promises: a write is whole or absent (temporary file, fsync,
//! rename), a file that does not parse is moved to `corrupt/` with a log line
//! and never blocks the rest, and everything readable is sent once a
//! collector is up. The real agent and the real collector run in a network
//! namespace of our own whose only interface is loopback (the campaign's
//! /24 answers through a `local` route there), so no probe can leave it.
//! When the spool is full the documented policy is to drop the oldest
//! batches first.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::loopback::{cli, collector_bin, collector_in, Killed, Netns};

use darkwatch_agent::spool::Spool;
use darkwatch_schema::{round_of, BlockObservation, BlockState, ReportBatch};

/// Port the collector listens on inside the namespace (the agent's config
/// names it, and it must stay the same across collector restarts).
const PORT: u16 = 18471;

fn start_collector(ns: &Netns, bin: &Path, db: &str) -> Killed {
    collector_in(ns, bin, db, &format!("127.0.0.1:{PORT}")).0
}

fn stored_batch_ids(db_path: &Path) -> Vec<String> {
    crate::common::sqlite_rows(db_path, "SELECT batch_id FROM batches")
}

fn outbox_ids(spool: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(spool.join("outbox"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
                .filter_map(|n| {
                    n.trim_end_matches(".json")
                        .split_once('-')
                        .map(|(_, id)| id.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn batch(id: &str, block: &str, now: i64) -> ReportBatch {
    ReportBatch {
        observations: vec![BlockObservation {
            campaign: "kp".into(),
            round: round_of(now, 1),
            block: block.parse().expect("block"),
            state: BlockState::Up,
            probes: 2,
            replies: 1,
            belief: 0.9,
            availability: 0.5,
            control: false,
            rtt_min_ms: None,
            rtt_median_ms: None,
            ts_ms: now,
        }],
        ..ReportBatch::new(id, now)
    }
}

struct Setup {
    ns: Netns,
    collector_bin: PathBuf,
    dir: tempfile::TempDir,
    db: String,
    cfg: PathBuf,
}

fn setup(tag: &str) -> Option<Setup> {
    let collector_bin = collector_bin()?;
    let ns = Netns::or_skip(tag)?;
    ns.run(
        "ip",
        &["route", "add", "local", "198.18.5.0/24", "dev", "lo"],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("c.sqlite").display());
    let token = cli(&collector_bin, &db, &["agents", "add", "vp1"])
        .trim()
        .to_string();
    cli(
        &collector_bin,
        &db,
        &[
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.5.0/24",
            "--interval",
            "1",
        ],
    );
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector = \"http://127.0.0.1:{PORT}\"\ntoken = \"{token}\"\nspool_dir = \"spool\"\n\
             pps = 2000\nallow = [\"198.18.0.0/15\"]\n[probe]\ntimeout_ms = 200\nmax_probes = 2\n\
             [trace]\nper_round = 0\n[report]\npoll_secs = 1\nretry_max_secs = 1\nhttp_timeout_secs = 2\n"
        ),
    )
    .expect("config");
    Some(Setup {
        ns,
        collector_bin,
        dir,
        db,
        cfg,
    })
}

impl Setup {
    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("c.sqlite")
    }

    fn agent(&self, once: bool) -> Child {
        let mut c = self.ns.cmd(env!("CARGO_BIN_EXE_darkwatch-agent"));
        c.arg("run");
        if once {
            c.arg("--once");
        }
        c.arg("--config")
            .arg(&self.cfg)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent")
    }

    fn agent_once(&self) -> Output {
        let mut child = self.agent(true);
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("agent run --once did not finish");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().expect("output")
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        // A guard against a hang, not a timing assertion.
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn torn_and_interrupted_spool_files_are_skipped_and_the_rest_sent() {
    let Some(s) = setup("spt") else { return };
    let now = chrono_now();
    {
        let spool = Spool::open(&s.spool(), 1 << 20).expect("spool");
        spool
            .push(&batch("aaaa0001", "198.18.5.0/24", now - 2000))
            .expect("push");
        spool
            .push(&batch("aaaa0002", "198.18.5.0/24", now - 1000))
            .expect("push");
    }
    let outbox = s.spool().join("outbox");
    // What kill -9 leaves behind: a temporary file never renamed, and (on a
    // storage fault) a file cut short.
    std::fs::write(
        outbox.join(".tmp-000000000000001-bbbb0001.json"),
        b"{\"batch_id\":\"bb",
    )
    .expect("tmp");
    let whole = serde_json::to_vec(&batch("cccc0001", "198.18.5.0/24", now - 1500)).expect("json");
    let torn = format!("{:015}-cccc0001.json", now - 1500);
    std::fs::write(outbox.join(&torn), &whole[..whole.len() / 2]).expect("torn");

    let _collector = start_collector(&s.ns, &s.collector_bin, &s.db);
    let out = s.agent_once();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "agent failed:\n{log}");
    assert!(
        log.contains("unreadable spool file moved to corrupt/"),
        "no log line for the torn file:\n{log}"
    );
    assert!(
        log.contains("removing a spool write interrupted by a crash"),
        "no log line for the tmp file:\n{log}"
    );
    let stored = stored_batch_ids(&s.db_path());
    for id in ["aaaa0001", "aaaa0002"] {
        assert!(
            stored.iter().any(|b| b == id),
            "spooled batch {id} not sent: {stored:?}\n{log}"
        );
    }
    assert!(
        !stored.iter().any(|b| b == "cccc0001"),
        "a torn batch must not be sent"
    );
    assert!(
        s.spool().join("corrupt").join(&torn).is_file(),
        "torn file kept in corrupt/"
    );
    assert!(
        outbox_ids(&s.spool()).is_empty(),
        "outbox drained: {:?}",
        outbox_ids(&s.spool())
    );
}

#[test]
fn kill_9_while_spooling_loses_nothing_spooled() {
    let Some(s) = setup("spk") else { return };
    let mut collector = start_collector(&s.ns, &s.collector_bin, &s.db);
    let mut agent = Killed(s.agent(false));
    // The agent works end to end (and caches its assignments).
    wait_until("a first report", Duration::from_secs(60), || {
        !stored_batch_ids(&s.db_path()).is_empty()
    });
    // Collector gone: rounds pile up in the spool.
    let _ = collector.0.kill();
    let _ = collector.0.wait();
    let before_outage = stored_batch_ids(&s.db_path());
    wait_until(
        "batches to pile up in the spool",
        Duration::from_secs(60),
        || outbox_ids(&s.spool()).len() >= 3,
    );
    // kill -9 at whatever point the agent is in (probing, writing, renaming).
    let _ = agent.0.kill();
    let _ = agent.0.wait();
    let spooled = outbox_ids(&s.spool());
    let corrupt_before = std::fs::read_dir(s.spool().join("corrupt"))
        .map(|d| d.count())
        .unwrap_or(0);

    let _collector = start_collector(&s.ns, &s.collector_bin, &s.db);
    let out = s.agent_once();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "agent failed:\n{log}");
    // Killed mid-round, it resumes from its saved state: no new sweep.
    assert!(!log.contains("discovery starts"), "rediscovered:\n{log}");
    let stored = stored_batch_ids(&s.db_path());
    for id in &spooled {
        assert!(
            stored.contains(id),
            "spooled batch {id} lost after kill -9: {stored:?}\n{log}"
        );
    }
    // Each batch once: ids are the primary key, and nothing was lost or doubled.
    assert!(
        stored.len() >= before_outage.len() + spooled.len(),
        "{stored:?}"
    );
    let corrupt = std::fs::read_dir(s.spool().join("corrupt"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        corrupt, corrupt_before,
        "an atomic spool write must never leave a torn file"
    );
    eprintln!(
        "kill -9 while spooling: {} batches spooled, all sent after restart",
        spooled.len()
    );
}

#[test]
fn full_spool_drops_the_oldest_batches() {
    let dir = tempfile::tempdir().expect("dir");
    let now = chrono_now();
    let one = serde_json::to_vec(&batch("dddd0000", "198.18.5.0/24", now))
        .expect("json")
        .len() as u64;
    // Room for three batches.
    let spool = Spool::open(dir.path(), one * 3 + one / 2).expect("spool");
    let mut dropped = 0;
    for i in 0..6 {
        dropped += spool
            .push(&batch(&format!("dddd{i:04}"), "198.18.5.0/24", now + i))
            .expect("push");
    }
    assert_eq!(dropped, 3);
    assert_eq!(
        outbox_ids(dir.path()),
        vec!["dddd0003", "dddd0004", "dddd0005"],
        "newest kept"
    );
    // A batch bigger than the whole spool is refused, and nothing is dropped for it.
    let tiny = Spool::open(&dir.path().join("tiny"), one / 2).expect("spool");
    assert!(tiny.push(&batch("eeee0000", "198.18.5.0/24", now)).is_err());
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
