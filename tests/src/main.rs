//! `darkwatch-lab`: bring the network-namespace lab up by hand, remove stale
//! labs, or print the topology. Glue over `darkwatch_tests::lab`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use darkwatch_tests::{clean_all, clean_stale, Lab, LabConfig, Plan};
use ipnet::Ipv4Net;
use nix::sys::signal::{SigSet, Signal};

#[derive(Parser)]
#[command(
    name = "darkwatch-lab",
    version,
    about = "The darkwatch network-namespace lab"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab, print it, wait for Ctrl-C or SIGTERM, tear it down.
    Up(Shape),
    /// Remove labs whose creating process is dead.
    Clean {
        /// Also remove labs of live processes.
        #[arg(long)]
        all: bool,
    },
    /// Print the plan without building anything.
    Topology(Shape),
}

#[derive(Args)]
struct Shape {
    /// Number of vantage points (1..=8).
    #[arg(long, default_value_t = LabConfig::default().vps)]
    vps: u8,
    /// Country prefix (repeatable); default: four prefixes, six /24 blocks.
    #[arg(long = "prefix", value_name = "CIDR")]
    prefixes: Vec<Ipv4Net>,
    /// Responsive hosts per block, cycled over the blocks.
    #[arg(long, value_delimiter = ',', value_name = "N,N,..")]
    responsive: Vec<u8>,
}

impl Shape {
    fn config(&self) -> LabConfig {
        let d = LabConfig::default();
        LabConfig {
            vps: self.vps,
            country_prefixes: if self.prefixes.is_empty() {
                d.country_prefixes
            } else {
                self.prefixes.clone()
            },
            responsive_per_block: if self.responsive.is_empty() {
                d.responsive_per_block
            } else {
                self.responsive.clone()
            },
        }
    }
}

fn up(shape: &Shape) -> anyhow::Result<()> {
    // Block the signals before building so one arriving mid-build is not
    // lost: it is taken by `wait` below and the lab is torn down.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().context("blocking signals")?;
    let lab = Lab::build(shape.config()).context("building the lab")?;
    print!("{}", lab.describe());
    println!(
        "ready: lab {} is up; Ctrl-C or SIGTERM tears it down",
        lab.prefix()
    );
    let sig = signals.wait().context("waiting for a signal")?;
    eprintln!("{sig}: tearing down lab {}", lab.prefix());
    lab.teardown().context("tearing down the lab")?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Up(shape) => up(&shape),
        Cmd::Clean { all } => {
            let removed = if all { clean_all() } else { clean_stale() }.context("cleaning labs")?;
            for n in &removed {
                println!("removed {n}");
            }
            println!("{} namespace(s) removed", removed.len());
            Ok(())
        }
        Cmd::Topology(shape) => {
            let plan = Plan::new(shape.config())?;
            print!("{}", plan.describe(&|n| format!("<prefix>-{n}")));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darkwatch-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
