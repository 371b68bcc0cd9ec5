//! `darkwatch-loadgen`: hundreds of simulated agents posting to a collector
//! on loopback for a bounded time, then proof from the database that every
//! acknowledged report is stored exactly once.
//!
//! Glue over `darkwatch_tests::load`. Without `--url` it starts its own
//! `darkwatch-collector serve` on 127.0.0.1 (and samples its memory); with
//! `--pg BASE` it creates a fresh PostgreSQL database and drops it after.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use darkwatch_netlab::{announced_url, KillOnDrop};
use darkwatch_tests::fleet::{self, FleetConfig};
use darkwatch_tests::harness::{workspace_bin, Db};
use darkwatch_tests::load::{self, LoadConfig};

#[derive(Parser, Debug)]
#[command(
    name = "darkwatch-loadgen",
    about = "Load a collector on loopback and verify what it stored"
)]
struct Args {
    /// Database: a SQLite path or sqlite:// URL, or a postgres:// URL.
    #[arg(long, conflicts_with = "pg")]
    db: Option<String>,
    /// PostgreSQL server URL: a fresh database is created there and dropped afterwards.
    #[arg(long)]
    pg: Option<String>,
    /// A running collector (http://127.0.0.1:PORT); default: start one.
    #[arg(long)]
    url: Option<String>,
    /// Pid of the running collector given by --url, to sample its memory.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Simulated agents posting concurrently.
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// How long to post.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Block observations per batch.
    #[arg(long, default_value_t = 100)]
    obs_per_batch: usize,
    /// The collector binary (default: next to this one).
    #[arg(long)]
    collector_bin: Option<PathBuf>,
    /// Extra arguments for `serve` when the load generator starts it.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
    /// Print the summary and verification as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print one Markdown table row (for docs/reliability.md).
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// A fleet at its real rate instead of saturation: each agent posts one
    /// packed round of --blocks blocks per round, spread over the round,
    /// for --rounds rounds; then every agent drains --outage-rounds rounds
    /// at once (`darkwatch_tests::fleet`).
    #[arg(long)]
    fleet: bool,
    /// Fleet: blocks per agent per round.
    #[arg(long, default_value_t = 10_000)]
    blocks: usize,
    /// Fleet: the length of a compressed round (the campaign's interval).
    #[arg(long, default_value_t = 60)]
    round_secs: u64,
    /// Fleet: the real round it stands for.
    #[arg(long, default_value_t = 600)]
    real_round_secs: u64,
    /// Fleet: rounds of the steady phase.
    #[arg(long, default_value_t = 2)]
    rounds: u64,
    /// Fleet: agents of the real fleet the run stands for (CPU is scaled from
    /// the rate sent to this fleet's at --real-round-secs).
    #[arg(long, default_value_t = 5_000)]
    fleet_size: usize,
    /// Fleet: rounds spooled by every agent during the outage (6: an hour).
    #[arg(long, default_value_t = 6)]
    outage_rounds: u64,
}

fn start_collector(bin: &PathBuf, db: &str, extra: &[String]) -> Result<(KillOnDrop, String)> {
    let child = Command::new(bin)
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut served = KillOnDrop(child);
    let url = announced_url(&mut served.0, Duration::from_secs(60))?;
    Ok((served, url))
}

/// `--fleet`: set up, run both phases, verify, print the table.
fn fleet_main(args: &Args, collector_bin: &PathBuf, db_url: &str, run_id: u32) -> Result<()> {
    if args.round_secs == 0 || args.real_round_secs < args.round_secs {
        bail!("--round-secs must be positive and at most --real-round-secs");
    }
    let agents = fleet::setup(collector_bin, db_url, args.agents, run_id, args.round_secs)?;
    let (served, base_url) = start_collector(collector_bin, db_url, &args.serve_arg)?;
    let cfg = FleetConfig {
        base_url,
        agents,
        blocks: args.blocks,
        round_secs: args.round_secs,
        real_round_secs: args.real_round_secs,
        fleet_size: args.fleet_size,
        rounds: args.rounds,
        outage_rounds: args.outage_rounds,
        run_id,
        collector_pid: Some(served.0.id()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (steady, burst) = rt.block_on(fleet::run(&cfg))?;
    drop(served);
    let acked: Vec<_> = steady.acked.iter().chain(&burst.acked).cloned().collect();
    let v = load::verify(&acked, &load::read_stored(db_url)?);
    // Lost: sent but never acknowledged (given up), or acknowledged and absent.
    let expected = args.agents as u64 * (args.rounds + args.outage_rounds);
    let lost = expected - acked.len() as u64 + v.missing.len() as u64 + v.wrong.len() as u64;
    let (s, b) = (steady.summary(), burst.summary());
    println!(
        "{} agents, {} blocks a round, a {} s round standing for {} s ({:.1}x the request rate of {} agents), {} rounds, then {} spooled rounds each",
        args.agents,
        args.blocks,
        args.round_secs,
        args.real_round_secs,
        fleet::rate_factor(&cfg),
        args.fleet_size,
        args.rounds,
        args.outage_rounds
    );
    println!();
    println!("| phase | batches | blocks | seconds | p50 | p99 | max | failed tries | collector CPU (of a core) | lost |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, p) in [("steady", &s), ("burst", &b)] {
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} | {} |",
            p.batches,
            p.blocks,
            p.seconds,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.failed_requests,
            p.cpu_core_share
                .map_or("n/a".into(), |c| format!("{:.1} %", c * 100.0)),
            if name == "steady" {
                lost.to_string()
            } else {
                "(above)".into()
            },
        );
    }
    println!();
    for line in fleet::verdicts(&s, &b, &cfg, lost) {
        println!("- {line}");
    }
    if !steady.failures.is_empty() || !burst.failures.is_empty() {
        println!(
            "- failed tries: steady {:?}, burst {:?}",
            steady.failures, burst.failures
        );
    }
    if lost > 0 || !v.ok() {
        bail!(
            "reports lost: {lost} ({} missing, {} wrong, {:?})",
            v.missing.len(),
            v.wrong.len(),
            v.row_mismatch
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.agents == 0 || args.obs_per_batch == 0 {
        bail!("--agents and --obs-per-batch must be positive");
    }
    let collector_bin = match &args.collector_bin {
        Some(p) => p.clone(),
        None => workspace_bin("darkwatch-collector")?,
    };
    let tmp = tempfile::tempdir()?;
    let pg_db;
    let db_url = match (&args.db, &args.pg) {
        (Some(db), _) => db.clone(),
        (None, Some(base)) => {
            pg_db = Db::postgres(base)?;
            pg_db.url.clone()
        }
        (None, None) => Db::sqlite(tmp.path()).url.clone(),
    };
    let run_id: u32 = rand::random();
    if args.fleet {
        return fleet_main(&args, &collector_bin, &db_url, run_id);
    }
    let agents = load::setup(&collector_bin, &db_url, args.agents, run_id)?;

    let (served, base_url, pid) = match &args.url {
        Some(u) => (None, u.clone(), args.pid),
        None => {
            let (s, u) = start_collector(&collector_bin, &db_url, &args.serve_arg)?;
            let pid = s.0.id();
            (Some(s), u, Some(pid))
        }
    };
    load::check_loopback(&base_url)?;
    let cfg = LoadConfig {
        base_url,
        agents,
        duration: Duration::from_secs_f64(args.seconds),
        obs_per_batch: args.obs_per_batch,
        run_id,
        collector_pid: pid,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(load::run(&cfg, Arc::new(AtomicBool::new(false))))?;
    drop(served);
    let summary = outcome.summary(args.agents);
    let verification = load::verify(&outcome.acked, &load::read_stored(&db_url)?);
    if args.json {
        let v = serde_json::json!({
            "backend": if db_url.starts_with("postgres") { "postgresql" } else { "sqlite" },
            "obs_per_batch": args.obs_per_batch,
            "summary": summary,
            "failures": outcome.failures,
            "verification": {
                "ok": verification.ok(),
                "acked": verification.acked,
                "missing": verification.missing.len(),
                "wrong": verification.wrong.len(),
                "row_mismatch": verification.row_mismatch,
                "unacked_stored": verification.unacked_stored,
            },
        });
        println!("{v}");
    } else if args.markdown {
        // | backend | agents | obs/batch | seconds | batches/s | obs/s | p50 | p99 | RSS | failed | acked | lost | dup/partial |
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {} | {} | {} | {} | {} |",
            if db_url.starts_with("postgres") { "PostgreSQL" } else { "SQLite" },
            summary.agents,
            args.obs_per_batch,
            summary.seconds,
            summary.batches_per_sec,
            summary.observations_per_sec,
            summary.p50_ms,
            summary.p99_ms,
            summary.max_rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0} MiB")),
            summary.failed_requests,
            verification.acked,
            verification.missing.len(),
            verification.wrong.len() + verification.row_mismatch.len(),
        );
    } else {
        println!(
            "{} agents, {:.1} s: {} batches acked ({:.0}/s), {} observations ({:.0}/s)",
            summary.agents,
            summary.seconds,
            summary.batches_acked,
            summary.batches_per_sec,
            summary.observations_acked,
            summary.observations_per_sec
        );
        println!(
            "latency p50 {:.1} ms, p99 {:.1} ms; failed requests {} {:?}; collector max RSS {}",
            summary.p50_ms,
            summary.p99_ms,
            summary.failed_requests,
            outcome.failures,
            summary
                .max_rss_mib
                .map_or("n/a".to_string(), |m| format!("{m:.1} MiB"))
        );
        println!(
            "verification: {} acked, {} missing, {} wrong, {} row mismatches, {} stored without ack",
            verification.acked,
            verification.missing.len(),
            verification.wrong.len(),
            verification.row_mismatch.len(),
            verification.unacked_stored
        );
    }
    if !verification.ok() {
        bail!("verification failed: acknowledged reports are missing or duplicated");
    }
    Ok(())
}
