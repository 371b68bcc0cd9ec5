//! darkwatch-bench: runs darkwatch's benchmarks and prints one markdown
//! table (see `docs/benchmarks.md` for the method). Glue only: the sweep
//! lab is in `netlab`, the peers' runners in `sweep`, pure helpers in
//! `stats`, the steady-state model in `steady`, the agent at 4.2M blocks
//! in `agent_scale`, the collector under a synthetic fleet in
//! `collector_scale`, a real agent and collector on 127/8 in `agent_e2e`
//! (these two start their collector with `collector`). `sections` turns
//! each section's results into rows of the table; `alloc` counts the heap.
//! Needs root (namespaces, raw sockets); `bench/run.sh` installs the peers
//! and builds everything.

mod agent_e2e;
mod agent_scale;
mod alloc;
mod bgp;
mod collector;
mod collector_scale;
mod inputs;
mod netlab;
mod sections;
mod stats;
mod steady;
mod sweep;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ipnet::Ipv4Net;

use crate::sections::{
    agent_e2e_rows, agent_scale_rows, correlation_rows, ingest_rows, latency_rows, memory_rows,
    scale_rows, sim_rows, steady_rows, sweep_rows,
};

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
    /// inputs (real-size NRO, pfx2as, as-org2info and hitlist files loaded
    /// and seeded), sim (a simulated week scored against ground truth,
    /// `darkwatch-sim`), bgp (the BMP listener: a full table of 1M routes,
    /// then 50 updates/s).
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
    /// `sim`: blocks of the simulated Internet.
    #[arg(long, default_value_t = 1_000_000)]
    sim_blocks: u32,
    /// `sim`: VPs.
    #[arg(long, default_value_t = 10)]
    sim_vps: u32,
    /// `sim`: 10-minute rounds (1,008: a week).
    #[arg(long, default_value_t = 1008)]
    sim_rounds: u64,
    /// `sim`: the seed of the world and its events.
    #[arg(long, default_value_t = 29)]
    sim_seed: u64,
    /// `bgp`: routes of the full table the BMP router sends.
    #[arg(long, default_value_t = 1_000_000)]
    bgp_routes: u32,
    /// `agent-e2e`: the sparse variant: only this many addresses per /24
    /// answer, the rest stay silent (0: every address answers).
    #[arg(long, default_value_t = 0)]
    e2e_sparse: u8,
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
            "sim" => sim_rows(&args, &mut rows, &mut detail),
            "bgp" => bgp::rows(&mut rows, args.bgp_routes),
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
