//! Packed rounds end to end: a round larger than one batch reaches the
//! collector whole, and a spooled round packed against a block list the
//! collector no longer has is resent as plain observations, not lost.
//!
//! The real agent (`run --once`) and the real collector run in a namespace of
//! our own whose only interface is loopback; the campaign's /20 answers
//! through a `local` route there, so no probe can leave it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use darkwatch_agent::spool::Spool;
use darkwatch_schema::packed::{pack_chunks, BlockSpace, PackedBlock};
use darkwatch_schema::{round_of, BlockState, ReportBatch};
use ipnet::IpNet;

use crate::common::sqlite_rows;
use crate::loopback::{cli, collector_bin, collector_in, Netns};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A batch holding one packed round of every block of `prefixes`, all up,
/// as an agent spooled it before the campaign changed.
fn stale_batch(prefixes: &[IpNet], now: i64) -> ReportBatch {
    let space = BlockSpace::new(prefixes);
    let ts = now - 60_000;
    let blocks = (0..space.len())
        .map(|index| PackedBlock {
            index,
            state: BlockState::Up,
            probes: 1,
            replies: 1,
            belief: 250,
            availability: 200,
            rtt: darkwatch_schema::rtt::Rtt::NONE,
        })
        .collect();
    ReportBatch {
        packed: pack_chunks("kp", round_of(ts, 60), &space, ts, blocks, 1000).expect("pack"),
        ..ReportBatch::new("feed0000feed0000", ts)
    }
}

#[test]
fn large_rounds_arrive_whole_and_stale_packed_rounds_are_resent_plain() {
    let Some(collector_bin) = collector_bin() else {
        return;
    };
    let Some(ns) = Netns::or_skip("pkd") else {
        return;
    };
    ns.run(
        "ip",
        &["route", "add", "local", "198.18.0.0/20", "dev", "lo"],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("c.sqlite");
    let db = format!("sqlite://{}", db_path.display());
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
            "198.18.0.0/20",
            "--interval",
            "60",
        ],
    );
    let (_collector, url) = collector_in(&ns, &collector_bin, &db, "127.0.0.1:0");

    // Spooled while the campaign was a /21: 8 blocks the collector's
    // current block list (16 blocks) numbers differently.
    let spool_dir = dir.path().join("spool");
    let old: Vec<IpNet> = vec!["198.18.0.0/21".parse().expect("prefix")];
    {
        let spool = Spool::open(&spool_dir, 64 << 20).expect("spool");
        spool.remember_space(&old).expect("space");
        spool.push(&stale_batch(&old, now_ms())).expect("push");
    }

    // Five blocks per chunk: the round of 16 blocks needs four batches.
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector = \"{url}\"\ntoken = \"{token}\"\nspool_dir = \"{}\"\n\
             pps = 5000\nallow = [\"198.18.0.0/15\"]\n[probe]\ntimeout_ms = 300\nmax_probes = 4\n\
             [trace]\nper_round = 0\n[report]\nhttp_timeout_secs = 10\nmax_blocks_per_batch = 5\n",
            spool_dir.display()
        ),
    )
    .expect("config");
    let mut child = ns
        .cmd(env!("CARGO_BIN_EXE_darkwatch-agent"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agent");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        // A guard against a hang, not a timing assertion.
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("agent run --once did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("agent output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");

    let outbox = std::fs::read_dir(spool_dir.join("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(outbox, 0, "everything sent: {log}");
    let rejected = std::fs::read_dir(spool_dir.join("rejected"))
        .expect("rejected")
        .count();
    assert_eq!(rejected, 0, "nothing set aside: {log}");

    // The stale round: refused packed, resent plain under derived ids.
    assert!(log.contains("resending it as plain observations"), "{log}");
    let stale = sqlite_rows(
        &db_path,
        "SELECT sum(observations) FROM batches WHERE batch_id LIKE 'feed0000feed0000%'",
    );
    assert_eq!(stale, ["8"], "{log}");
    // The agent's own round: 16 blocks in at least four batches.
    let own = sqlite_rows(
        &db_path,
        "SELECT count(*) || ' ' || sum(observations) FROM batches \
         WHERE batch_id NOT LIKE 'feed0000feed0000%' AND observations > 0",
    );
    let own: Vec<u64> = own[0]
        .split(' ')
        .map(|n| n.parse().expect("number"))
        .collect();
    assert!(own[0] >= 4, "batches of the round: {own:?}\n{log}");
    assert_eq!(own[1], 16, "every block of the round stored\n{log}");
}
