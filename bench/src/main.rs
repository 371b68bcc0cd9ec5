//! darkwatch-bench: runs darkwatch's benchmarks and prints one markdown
//! table (see `docs/benchmarks.md` for the method). Glue only: the sweep
//! lab is in `netlab`, the peers' runners in `sweep`, pure helpers in
//! `stats`, the steady-state model in `steady`, the agent at 4.2M blocks
//! in `agent_scale`, the collector under a synthetic fleet in
//! `collector_scale`, a real agent and collector on 127/8 in `agent_e2e`
//! (these two start their collector with `collector`). Needs root
//! (namespaces, raw sockets); `bench/run.sh` installs the peers and builds
//! everything.

mod agent_e2e;
mod agent_scale;
mod collector;
mod collector_scale;
mod inputs;
mod netlab;
mod stats;
mod steady;
mod sweep;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use darkwatch_agent::belief::BlockTracker;
use darkwatch_netlab::workspace_bin;
use ipnet::{IpNet, Ipv4Net};

use crate::sweep::{SweepConfig, Tool};

/// Counts live heap bytes, to measure memory per tracked block.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Highest `LIVE` since the last [`reset_peak`].
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn add_live(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged and only
// keeps a byte count on the side.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add_live(l.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add_live(new as isize - l.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Debug, Parser)]
#[command(about = "darkwatch benchmarks against fping, zmap and scamper; prints a markdown table")]
struct Args {
    /// Repetitions of each sweep per tool (medians are reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Sections to run (comma-separated): sweep16, sweep15, steady, memory,
    /// correlation, ingest, latency, agent-scale (4.2M blocks in one agent,
    /// no network), scale (the collector under a synthetic fleet),
    /// agent-e2e (a real agent and collector on 127.0.0.0/8 in a namespace),
    /// inputs (real-size NRO, pfx2as and hitlist files loaded and seeded).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sweep16,sweep15,steady,memory,correlation,ingest,latency"
    )]
    only: Vec<String>,
    /// Echo timeout of every sweep tool, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// darkwatch-agent's packet-rate cap in sweeps (0: unlimited).
    #[arg(long, default_value_t = 0)]
    dw_pps: u32,
    /// Sweep tools (comma-separated): darkwatch, zmap, fping, scamper.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "darkwatch,zmap,fping,scamper"
    )]
    tools: Vec<String>,
    /// Seconds of ingest load per database.
    #[arg(long, default_value_t = 10.0)]
    ingest_seconds: f64,
    /// Scale section: blocks per VP and round, one run each
    /// (comma-separated, at most 1,048,576).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<u64>,
    /// Scale section: VPs (agents).
    #[arg(long, default_value_t = 10)]
    scale_vps: usize,
    /// Scale section: 10-minute rounds of history stored before the
    /// measured round (144: one day).
    #[arg(long, default_value_t = 144)]
    scale_rounds: u64,
    /// Scale section: longest wait, in seconds, for a correlation pass.
    #[arg(long, default_value_t = 240.0)]
    scale_cap_secs: f64,
    /// Scale section: databases (comma-separated: sqlite, postgres; the
    /// PostgreSQL runs make a database on the server of DARKWATCH_TEST_PG).
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    scale_db: Vec<String>,
    /// Scale section: the collector is killed past this RSS (MiB).
    #[arg(long, default_value_t = 5120.0)]
    scale_rss_cap_mib: f64,
    /// Blackout/repair cycles for verdict latency.
    #[arg(long, default_value_t = 2)]
    latency_reps: usize,
    /// Blocks of the `agent-scale` section.
    #[arg(long, default_value_t = 4_194_304)]
    agent_scale_blocks: u32,
    /// Rounds of the `agent-scale` section (the first, which settles, is
    /// not counted in the CPU figures).
    #[arg(long, default_value_t = 3)]
    agent_scale_rounds: u32,
    /// `agent-e2e`: rounds counted once a round holds every block.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// `agent-e2e`: seconds per round.
    #[arg(long, default_value_t = 60)]
    round_secs: u64,
    /// `agent-e2e`: the campaign (inside 127.0.0.0/8; e.g. 127.0.0.0/12
    /// for a quick run).
    #[arg(long, default_value = "127.0.0.0/8")]
    e2e_space: Ipv4Net,
    /// `agent-e2e`: the agent's packet-rate cap (half goes to discovery).
    #[arg(long, default_value_t = 200_000)]
    e2e_pps: u32,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One row of the final table.
struct Row {
    what: String,
    darkwatch: String,
    peers: String,
    goal: String,
    met: String,
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "**no**" }.into()
}

fn f(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn tool_of(s: &str) -> Result<Tool> {
    Ok(match s {
        "darkwatch" => Tool::Darkwatch,
        "zmap" => Tool::Zmap,
        "fping" => Tool::Fping,
        "scamper" => Tool::Scamper,
        _ => bail!("unknown tool {s:?}"),
    })
}

fn sweep_rows(args: &Args, space: &str, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    let space: Ipv4Net = space.parse()?;
    let cfg = SweepConfig {
        space,
        silent_share: 0.2,
        reps: args.reps,
        timeout_ms: args.timeout_ms,
        agent: workspace_bin("darkwatch-agent")?,
        tools: args
            .tools
            .iter()
            .map(|t| tool_of(t))
            .collect::<Result<_>>()?,
        dw_pps: args.dw_pps,
    };
    eprintln!("sweep of {space} ({} reps, 20% of /24s silent)", args.reps);
    let sums = sweep::bench(&cfg)?;
    let zmap = sums.iter().find(|s| s.tool == Tool::Zmap).cloned();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let table: Vec<Vec<String>> = sums
        .iter()
        .map(|s| {
            vec![
                s.tool.name().into(),
                f(s.wall_s, 2),
                f(s.cpu_s, 2),
                f(s.pps.map(|p| p / 1000.0), 1),
                f(s.share.map(|x| x * 100.0), 2),
                s.false_positives.to_string(),
                s.completed.clone(),
                ratio(s.wall_s, zmap.as_ref().and_then(|z| z.wall_s)),
                ratio(s.cpu_s, zmap.as_ref().and_then(|z| z.cpu_s)),
                s.note.clone(),
            ]
        })
        .collect();
    detail.push_str(&format!(
        "\nSweep of {space}, 20% of /24s silent, {} ms timeout, median of {} runs:\n\n",
        args.timeout_ms, args.reps
    ));
    detail.push_str(&stats::markdown_table(
        &[
            "tool",
            "wall s",
            "CPU s",
            "kpps",
            "found %",
            "false +",
            "completed",
            "wall/zmap",
            "CPU/zmap",
            "note",
        ],
        &table,
    ));
    if let Some(dw) = sums.iter().find(|s| s.tool == Tool::Darkwatch) {
        let zw = zmap.as_ref().and_then(|z| z.wall_s);
        let zc = zmap.as_ref().and_then(|z| z.cpu_s);
        rows.push(Row {
            what: format!("sweep {space}: wall s / CPU s / found %"),
            darkwatch: format!(
                "{} / {} / {}",
                f(dw.wall_s, 2),
                f(dw.cpu_s, 2),
                f(dw.share.map(|x| x * 100.0), 2)
            ),
            peers: sums
                .iter()
                .filter(|s| s.tool != Tool::Darkwatch)
                .map(|s| {
                    format!(
                        "{} {} / {} / {}",
                        s.tool.name(),
                        f(s.wall_s, 2),
                        f(s.cpu_s, 2),
                        f(s.share.map(|x| x * 100.0), 2)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            goal: "wall ≤ zmap, CPU ≤ zmap, 100 %, completes".into(),
            met: yes(dw.completed.starts_with(&args.reps.to_string())
                && dw.share.is_some_and(|s| s >= 1.0)
                && match (dw.wall_s, zw, dw.cpu_s, zc) {
                    (Some(w), Some(zw), Some(c), Some(zc)) => w <= zw && c <= zc,
                    _ => zmap.is_none(),
                }),
        });
    }
    Ok(())
}

fn steady_rows(rows: &mut Vec<Row>) {
    for (label, avail) in [("A = 1 (lab)", (1.0, 1.0)), ("A ∈ [0.5, 1]", (0.5, 1.0))] {
        let m = steady::Model {
            blocks: 20_000,
            rounds: 20,
            availability: avail,
            outage_share: 0.2,
        };
        let r = steady::simulate(&m, 42);
        rows.push(Row {
            what: format!("steady rounds, {label}: probes/block/round up / down"),
            darkwatch: format!(
                "{:.2} / {:.2} (false down {:.3} %, false up {:.3} %)",
                r.up_mean(),
                r.down_mean(),
                100.0 * r.false_down as f64 / r.up_rounds.max(1) as f64,
                100.0 * r.false_up as f64 / r.down_rounds.max(1) as f64
            ),
            peers: "Trinocular ≈ 1 for up blocks".into(),
            goal: "≤ 1.5 for up blocks".into(),
            met: yes(r.up_mean() <= 1.5),
        });
    }
}

fn memory_rows(rows: &mut Vec<Row>) {
    const N: u32 = 100_000;
    for hosts in [1u32, 16, 256] {
        let before = LIVE.load(Ordering::Relaxed);
        let map: BTreeMap<IpNet, BlockTracker> = (0..N)
            .map(|b| {
                let base = (0x0a00_0000 + b) << 8;
                let block =
                    IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::from(base), 24).expect("a /24"));
                let addrs: Vec<IpAddr> =
                    (0..hosts).map(|h| IpAddr::V4((base + h).into())).collect();
                (block, BlockTracker::from_discovery(block, addrs))
            })
            .collect();
        let per = (LIVE.load(Ordering::Relaxed) - before) as f64 / f64::from(N);
        drop(map);
        rows.push(Row {
            what: format!("memory per tracked block, 100k blocks, {hosts} responsive each"),
            darkwatch: format!("{per:.0} B"),
            peers: "–".into(),
            goal: "≤ 200 B".into(),
            met: yes(per <= 200.0),
        });
    }
}

fn agent_scale_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    eprintln!(
        "agent-scale: {} blocks, {} rounds",
        args.agent_scale_blocks, args.agent_scale_rounds
    );
    let r = agent_scale::run(
        args.agent_scale_blocks,
        args.agent_scale_rounds,
        live,
        peak,
        reset_peak,
    )?;
    let n = format!("{:.1}M blocks", r.blocks as f64 / 1e6);
    let mut row = |what: String, got: String, goal: &str, met: bool| {
        rows.push(Row {
            what: format!("agent at {n}: {what}"),
            darkwatch: got,
            peers: "–".into(),
            goal: goal.into(),
            met: yes(met),
        })
    };
    row(
        "heap per block, held / peak in a round".into(),
        format!("{:.0} B / {:.0} B", r.held_per_block, r.peak_per_block),
        "≤ 200 B",
        r.peak_per_block <= 200.0,
    );
    row(
        "CPU per round: probing (no kernel send) / packing / saving state".into(),
        format!(
            "{:.2} s / {:.2} s / {:.2} s ({} probes)",
            r.cpu_round_s, r.cpu_pack_s, r.cpu_save_s, r.probes_per_round
        ),
        "≤ 5 s in all",
        r.cpu_round_s + r.cpu_pack_s + r.cpu_save_s <= 5.0,
    );
    row(
        "state on disk per block: sets / beliefs (uniform random sets)".into(),
        format!("{:.1} B / {:.2} B", r.sets_per_block, r.belief_per_block),
        "≤ 16 B",
        r.sets_per_block + r.belief_per_block <= 16.0,
    );
    row(
        "state on disk per block: sets / beliefs (clustered sets)".into(),
        format!(
            "{:.1} B / {:.2} B",
            r.sets_clustered_per_block, r.belief_per_block
        ),
        "≤ 16 B",
        r.sets_clustered_per_block + r.belief_per_block <= 16.0,
    );
    row(
        "wire bytes per block per round (packed)".into(),
        format!("{:.3} B", r.wire_per_block),
        "≤ 1 B",
        r.wire_per_block <= 1.0,
    );
    Ok(())
}

fn correlation_rows(rows: &mut Vec<Row>) -> Result<()> {
    let perf = workspace_bin("examples/perf")
        .context("cargo build --release -p darkwatch-correlate --example perf")?;
    let out = Command::new(&perf)
        .env("PERF_BLOCKS", "100000")
        .env("PERF_VPS", "10")
        .env("PERF_ROUNDS", "100")
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (cargo build --release -p darkwatch-correlate --example perf)",
                perf.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok());
    rows.push(Row {
        what: "correlation 100k blocks × 10 VPs × 100 rounds".into(),
        darkwatch: format!("{} s", f(secs, 2)),
        peers: "–".into(),
        goal: "< 2 s".into(),
        met: yes(secs.is_some_and(|s| s < 2.0)),
    });
    Ok(())
}

fn ingest_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    let loadgen = ["darkwatch-loadgen", "loadgen"]
        .iter()
        .find_map(|n| workspace_bin(n).ok());
    let Some(loadgen) = loadgen else {
        rows.push(Row {
            what: "collector ingest, obs/s".into(),
            darkwatch: "not run: darkwatch-loadgen not built (see docs/reliability.md)".into(),
            peers: "–".into(),
            goal: "50k/s SQLite".into(),
            met: "–".into(),
        });
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut dbs = vec![(
        "SQLite",
        vec![
            "--db".to_string(),
            dir.path().join("ingest.db").display().to_string(),
        ],
    )];
    if let Ok(pg) = std::env::var("DARKWATCH_TEST_PG") {
        dbs.push(("PostgreSQL", vec!["--pg".into(), pg]));
    }
    for (name, db) in dbs {
        let secs = args.ingest_seconds.to_string();
        let out = Command::new(&loadgen)
            .args(&db)
            .args(["--seconds", &secs, "--json"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Option<serde_json::Value> = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok());
        let rate = v.as_ref().and_then(find_rate);
        rows.push(Row {
            what: format!("collector ingest into {name}, obs/s stored (loadgen, 200 agents)"),
            darkwatch: match rate {
                Some(r) => format!("{r:.0}"),
                None => format!(
                    "failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            },
            peers: "–".into(),
            goal: if name == "SQLite" {
                "≥ 50 000/s".into()
            } else {
                "–".into()
            },
            met: if name == "SQLite" {
                yes(rate.is_some_and(|r| r >= 50_000.0))
            } else {
                "–".into()
            },
        });
    }
    Ok(())
}

/// The first `observations_per_sec` anywhere in the load generator's JSON.
fn find_rate(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Object(m) => m
            .get("observations_per_sec")
            .and_then(|x| x.as_f64())
            .or_else(|| m.values().find_map(find_rate)),
        serde_json::Value::Array(a) => a.iter().find_map(find_rate),
        _ => None,
    }
}

fn latency_rows(args: &Args, rows: &mut Vec<Row>) -> Result<()> {
    use darkwatch_tests::harness::{self, verdicts, Db, Deployment, Timing, COUNTRY};
    let lab = darkwatch_tests::Lab::build(darkwatch_tests::LabConfig::default())?;
    let dir = tempfile::tempdir()?;
    let db = Db::sqlite(dir.path());
    let mut d = Deployment::start(&lab, &db.url, dir.path(), Timing::default())?;
    d.wait_reporting(Duration::from_secs(90))?;
    d.rounds(2);
    let interval = d.interval().as_secs_f64();
    let blackout = |all: &[serde_json::Value]| {
        verdicts(all, "blackout", "country", Some(COUNTRY))
            .first()
            .map(|v| (*v).clone())
    };
    let (mut opens, mut closes) = (Vec::new(), Vec::new());
    for rep in 0..args.latency_reps {
        let t0 = Instant::now();
        for p in lab.country_prefixes() {
            lab.withdraw(p)?;
        }
        harness::wait_for("a country blackout", d.interval() * 12, || {
            Ok(d.outages()?
                .iter()
                .any(|v| blackout(std::slice::from_ref(v)).is_some() && v["end"].is_null())
                .then_some(()))
        })?;
        opens.push(t0.elapsed().as_secs_f64() / interval);
        let t1 = Instant::now();
        for p in lab.country_prefixes() {
            lab.announce(p)?;
        }
        harness::wait_for("the blackout to end", d.interval() * 12, || {
            let all = d.outages()?;
            let open = verdicts(&all, "blackout", "country", Some(COUNTRY))
                .iter()
                .any(|v| v["end"].is_null());
            Ok((!open).then_some(()))
        })?;
        closes.push(t1.elapsed().as_secs_f64() / interval);
        eprintln!(
            "  latency rep {}: open {:.2} rounds, close {:.2} rounds",
            rep + 1,
            opens[rep],
            closes[rep]
        );
        d.rounds(2);
    }
    d.stop()?;
    let max = |v: &[f64]| {
        v.iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    rows.push(Row {
        what: format!("verdict latency, country blackout ({}-s rounds, {} reps): open / close, rounds (median, max)", interval, opens.len()),
        darkwatch: format!(
            "{} ({}) / {} ({})",
            f(stats::median(&opens), 2),
            f(max(&opens), 2),
            f(stats::median(&closes), 2),
            f(max(&closes), 2)
        ),
        peers: "–".into(),
        goal: "≤ 2 each".into(),
        met: yes(max(&opens).is_some_and(|x| x <= 2.0) && max(&closes).is_some_and(|x| x <= 2.0)),
    });
    Ok(())
}

fn scale_rows(args: &Args, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    for backend in &args.scale_db {
        let (label, postgres) = match backend.as_str() {
            "sqlite" => ("SQLite", None),
            "postgres" => (
                "PostgreSQL",
                Some(
                    std::env::var("DARKWATCH_TEST_PG")
                        .context("--scale-db postgres needs DARKWATCH_TEST_PG")?,
                ),
            ),
            other => bail!("unknown --scale-db {other:?} (sqlite, postgres)"),
        };
        let mut results = Vec::new();
        for &blocks in &args.sizes {
            let cfg = collector_scale::ScaleConfig {
                blocks,
                vps: args.scale_vps,
                rounds: args.scale_rounds,
                cap: Duration::from_secs_f64(args.scale_cap_secs),
                rss_cap_mib: args.scale_rss_cap_mib,
                postgres: postgres.clone(),
            };
            eprintln!(
                "scale, {label}: {blocks} blocks × {} VPs × {} rounds",
                cfg.vps, cfg.rounds
            );
            let r = collector_scale::run(&cfg)?;
            let what = |m: &str| format!("scale, {label}, {blocks} blocks × {} VPs: {m}", cfg.vps);
            let round_cpu = r.round.map(|w| w.cpu_text()).unwrap_or_else(|| {
                format!("{} in the first pass, unfinished", r.first_pass.cpu_text())
            });
            let row = |what: String, value: String, goal: &str, met: String| Row {
                what,
                darkwatch: value,
                peers: "–".into(),
                goal: goal.into(),
                met,
            };
            if blocks == 1_000_000 {
                rows.push(row(
                    what("CPU-seconds per 10-minute round (ingest + correlation)"),
                    round_cpu.clone(),
                    "≤ 2",
                    yes(r
                        .round
                        // Counted from before the posts: ingest included.
                        .is_some_and(|w| w.done() && w.cpu() <= 2.0)),
                ));
                rows.push(row(
                    what("collector peak RSS, MiB"),
                    r.peak_text(),
                    "≤ 2048",
                    yes(r.peak_rss_mib <= 2048.0 && r.first_pass.done()),
                ));
            }
            rows.push(row(
                what("bytes on disk per stored observation"),
                format!("{:.3}", r.bytes_per_obs),
                "≤ 1",
                yes(r.bytes_per_obs <= 1.0),
            ));
            results.push(r);
        }
        let f = |x: f64| {
            if x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        };
        let table_rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    format!("{} × {}", r.blocks, r.vps),
                    format!(
                        "{:.1} M ({:.0} s)",
                        r.history_observations as f64 / 1e6,
                        r.seed_secs
                    ),
                    format!("{:.3}", r.bytes_per_obs),
                    format!("{:.0}", r.ingest_per_sec),
                    f(r.ingest_cpu),
                    r.round
                        .map(|w| w.cpu_text())
                        .unwrap_or_else(|| "not measured".into()),
                    r.idle_cpu_per_pass.map_or("–".into(), f),
                    format!("{:.2}", r.ready_secs),
                    format!("{} / {}", r.first_pass.secs_text(), r.first_pass.cpu_text()),
                    r.peak_text(),
                ]
            })
            .collect();
        detail.push_str(&format!(
            "\nCollector at scale, {label}, {} rounds of {}-minute history, {} s passes \
         (release build when run from target/release):\n\n",
            args.scale_rounds,
            collector_scale::INTERVAL_SECS / 60,
            collector_scale::EVERY_SECS
        ));
        detail.push_str(&stats::markdown_table(
            &[
                "blocks × VPs",
                "history obs (seeded in)",
                "bytes/obs",
                "ingest obs/s",
                "ingest CPU s/round",
                "ingest + correlation CPU s/round",
                "idle CPU s/pass",
                "ready s",
                "first pass s / CPU s",
                "peak RSS MiB",
            ],
            &table_rows,
        ));
        // Ratios between successive sizes: how each figure grows with N.
        let mut ratios = Vec::new();
        for w in results.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let cpu =
                |r: &collector_scale::ScaleResult| r.round.filter(|w| w.done()).map(|w| w.cpu());
            let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) if x > 0.0 => format!("× {:.1}", y / x),
                _ => "–".into(),
            };
            ratios.push(vec![
                format!("{} → {}", a.blocks, b.blocks),
                format!("× {:.1}", b.blocks as f64 / a.blocks as f64),
                ratio(cpu(a), cpu(b)),
                ratio(Some(a.ingest_cpu), Some(b.ingest_cpu)),
                ratio(
                    a.killed_at_mib.is_none().then_some(a.peak_rss_mib),
                    b.killed_at_mib.is_none().then_some(b.peak_rss_mib),
                ),
                ratio(Some(a.bytes_per_obs), Some(b.bytes_per_obs)),
            ]);
        }
        if !ratios.is_empty() {
            detail.push('\n');
            detail.push_str(&stats::markdown_table(
                &[
                    "sizes",
                    "blocks",
                    "correlation CPU/round",
                    "ingest CPU/round",
                    "peak RSS",
                    "bytes/obs",
                ],
                &ratios,
            ));
        }
    }
    Ok(())
}

fn agent_e2e_rows(args: &Args, rows: &mut Vec<Row>, detail: &mut String) -> Result<()> {
    let cfg = agent_e2e::E2eConfig {
        space: args.e2e_space,
        rounds: args.rounds,
        round_secs: args.round_secs,
        pps: args.e2e_pps,
        peer: true,
    };
    eprintln!(
        "agent-e2e: {} ({} rounds of {} s counted, pps {})",
        cfg.space, cfg.rounds, cfg.round_secs, cfg.pps
    );
    let r = agent_e2e::run(&cfg)?;
    let s = r.round_secs as f64;
    let n = r.blocks;
    let mut row = |what: String, got: String, peers: String, goal: &str, met: String| {
        rows.push(Row {
            what: format!("agent e2e, {n} blocks, {}-s rounds: {what}", r.round_secs),
            darkwatch: got,
            peers,
            goal: goal.into(),
            met,
        })
    };
    let secs_rounds =
        |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.0} s ({:.2} rounds)", x / s));
    row(
        "agent start to first stored round / to first round of every block / first sweep done"
            .into(),
        format!(
            "{} / {} / {}",
            secs_rounds(r.first_round_s),
            secs_rounds(r.first_full_s),
            secs_rounds(r.first_discovery_s)
        ),
        "–".into(),
        "first ≤ 2 rounds",
        yes(r.first_round_s.is_some_and(|x| x <= 2.0 * s)),
    );
    let share = agent_e2e::E2eResult::on_time_share(&r.counted, r.round_secs);
    let during = r.counted.iter().filter(|x| x.sweeping).count();
    let rediscovered = r
        .counted
        .iter()
        .any(|x| r.rediscovery_rounds.contains(&x.round));
    row(
        format!(
            "rounds reported on time, of {} counted ({} beside a sweep, rediscovery among them: {}); all rounds since start",
            r.counted.len(),
            during,
            if rediscovered { "yes" } else { "no" }
        ),
        format!(
            "{:.0} % ; {:.0} % of {} (the first, with no block yet, not counted)",
            share * 100.0,
            agent_e2e::E2eResult::on_time_share(&r.all_rounds, r.round_secs) * 100.0,
            r.all_rounds.iter().filter(|x| x.blocks > 0).count()
        ),
        "–".into(),
        "100 %, a rediscovery among them",
        yes(share >= 1.0 && rediscovered && r.counted.len() == args.rounds as usize),
    );
    row(
        "agent peak RSS".into(),
        format!(
            "{:.0} MiB ({:.0} B per block)",
            r.peak_rss_mib,
            r.peak_rss_mib * 1048576.0 / n as f64
        ),
        "–".into(),
        "–",
        "–".into(),
    );
    let (quiet, busy) = r.cpu_per_round();
    let peer_cpu = r.peer.as_ref().map(|p| p.cpu_s);
    let ratio = match (quiet, peer_cpu) {
        (Some(a), Some(b)) if b > 0.0 => format!(" ({:.1}× fping)", a / b),
        _ => String::new(),
    };
    row(
        "agent CPU-s per round: median without a sweep / most with one".into(),
        format!("{} / {}{ratio}", f(quiet, 2), f(busy, 2)),
        r.peer.as_ref().map_or("–".into(), |p| {
            format!(
                "fping, 1 address per /24 ({}): {:.2} CPU-s, {:.1} s wall, {} answered",
                p.addresses, p.cpu_s, p.wall_s, p.answered
            )
        }),
        "–",
        "–".into(),
    );
    let state = r.state_bytes as f64 / n as f64;
    row(
        "state on disk per block".into(),
        format!("{state:.1} B"),
        "–".into(),
        "≤ 16 B",
        yes(state <= 16.0),
    );
    let wire = r.wire_per_block();
    row(
        "wire bytes per block per round (packed columns, base64)".into(),
        format!("{} B", f(wire, 3)),
        "–".into(),
        "≤ 1 B",
        yes(wire.is_some_and(|w| w <= 1.0)),
    );
    detail.push_str(&format!(
        "\nagent-e2e rounds ({} blocks, {}-s rounds; stored = s from the round's start until the collector held every block):\n\n",
        n, r.round_secs
    ));
    let table: Vec<Vec<String>> = r
        .all_rounds
        .iter()
        .map(|x| {
            vec![
                x.round.to_string(),
                if r.counted.iter().any(|c| c.round == x.round) {
                    "yes"
                } else {
                    ""
                }
                .into(),
                x.blocks.to_string(),
                x.probes.to_string(),
                format!("{:.1}", x.took_s),
                x.on_time.to_string(),
                f(x.stored_after_s, 1),
                f(x.cpu_s, 2),
                if r.rediscovery_rounds.contains(&x.round) {
                    "rediscovery".into()
                } else if x.sweeping {
                    "first sweep".into()
                } else {
                    String::new()
                },
                x.packed_bytes.to_string(),
                x.drops.map_or("–".into(), |d| d.to_string()),
                f(x.rss_mib, 0),
            ]
        })
        .collect();
    detail.push_str(&stats::markdown_table(
        &[
            "round", "counted", "blocks", "probes", "took s", "on time", "stored s", "CPU s",
            "sweep", "packed B", "drops", "RSS MiB",
        ],
        &table,
    ));
    detail.push_str(&format!(
        "\nagent CPU in all: {:.1} s; state files {} B; the collector's `status`: {}\n",
        r.cpu_total_s,
        r.state_bytes,
        r.status_line.as_deref().unwrap_or("–")
    ));
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !nix::unistd::Uid::effective().is_root()
        && args
            .only
            .iter()
            .any(|s| s.starts_with("sweep") || s == "latency" || s == "agent-e2e")
    {
        bail!("the sweep, latency and agent-e2e benchmarks need root (network namespaces, raw sockets)");
    }
    let mut rows = Vec::new();
    let mut detail = String::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for section in &args.only {
        let r = match section.as_str() {
            "sweep16" => sweep_rows(&args, "198.18.0.0/16", &mut rows, &mut detail),
            "sweep15" => sweep_rows(&args, "198.18.0.0/15", &mut rows, &mut detail),
            "steady" => {
                steady_rows(&mut rows);
                Ok(())
            }
            "memory" => {
                memory_rows(&mut rows);
                Ok(())
            }
            "correlation" => correlation_rows(&mut rows),
            "ingest" => ingest_rows(&args, &mut rows),
            "latency" => latency_rows(&args, &mut rows),
            "agent-scale" => agent_scale_rows(&args, &mut rows),
            "scale" => scale_rows(&args, &mut rows, &mut detail),
            "agent-e2e" => agent_e2e_rows(&args, &mut rows, &mut detail),
            "inputs" => inputs::rows(&mut rows),
            other => Err(anyhow::anyhow!("unknown section {other:?}")),
        };
        if let Err(e) = r {
            eprintln!("section {section} failed: {e:#}");
            failures.push(format!("{section}: {e:#}"));
        }
    }
    let table = stats::markdown_table(
        &["benchmark", "darkwatch", "peers", "goal", "met"],
        &rows
            .iter()
            .map(|r| {
                vec![
                    r.what.clone(),
                    r.darkwatch.clone(),
                    r.peers.clone(),
                    r.goal.clone(),
                    r.met.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let mut text = format!("{table}{detail}");
    for fl in &failures {
        text.push_str(&format!("\nFAILED {fl}\n"));
    }
    text.push_str(&format!(
        "\n({} cores, bench took {:.0} s)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    ));
    print!("{text}");
    if let Some(p) = &args.out {
        write_out(p, &text)?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{} section(s) failed", failures.len())
    }
}

fn write_out(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))
}
