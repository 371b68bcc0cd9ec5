//! The command line: `probe` (discovery, then one round, one line per block)
//! and `trace` (one traceroute). Errors become one line on stderr and a
//! sysexits-style exit code: 64 usage, 65 bad data, 66 missing input,
//! 77 missing privileges, 1 anything else (`darkwatch_schema::exitcode`, shared
//! with the collector).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use darkwatch_schema::{BlockState, SkipReason, Skipped};
use ipnet::IpNet;
use serde::Serialize;

use crate::belief::{BlockTracker, BELIEF_MIN};
use crate::icmp::{IcmpError, Pinger, SurgePinger};
use crate::ratelimit::{RateLimiter, DEFAULT_BURST};
use crate::targets::{self, TargetError, TargetSet, TargetSpec};
use crate::trace::{TraceOptions, TraceResult};
use crate::{discovery, icmp, round, ProbeSettings};
use darkwatch_schema::inputs::{self, addrlist, delegated, InputError, Parsed};
use darkwatch_schema::logging::LogFormat;

/// The exit codes, shared with the collector.
pub use darkwatch_schema::exitcode as exit;
pub use darkwatch_schema::exitcode::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "darkwatch-agent",
    version,
    about = "darkwatch vantage-point agent: ICMP reachability of a country's address space"
)]
pub struct Cli {
    /// Log format on stderr: `text` (coloured only on a terminal) or `json`
    /// (one object per line, with `level` and `message`).
    #[arg(long, global = true, env = "DARKWATCH_LOG_FORMAT", default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands. (`run`, the daemon, is added next to these.)
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover responsive addresses, run one probing round, print one line per block.
    #[command(long_about = PROBE_ABOUT)]
    Probe(ProbeArgs),
    /// Traceroute (ICMP) to one address.
    Trace(TraceArgs),
    /// Run as a vantage point: pull campaigns from the collector, probe them
    /// every round, spool and report the results.
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),
    /// Check a config file and exit (0 if valid).
    ValidateConfig {
        /// Path of agent.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

const RUN_ABOUT: &str = "\
Run as a vantage point: pull the campaigns assigned to this agent from the \
collector (and follow their changes without restart), sweep each campaign's \
space once to find responsive addresses, then at every round boundary judge \
each block up/down/uncertain, traceroute a few targets, and report. Every \
batch is written to the spool directory before it is sent and removed only \
once the collector acknowledged it, so collector outages, restarts and \
kill -9 lose nothing already spooled.

The agent enforces its own limits whatever the collector asks: `pps`, \
`max_targets`, `exclude_file`, and the reserved ranges unless `allow` carves \
them back in. See deploy/config/agent.toml for every option. Logs go to \
stderr (RUST_LOG, default info; --log-format json for one JSON object per \
line). Needs CAP_NET_RAW.";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Path of agent.toml.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Cron mode: run the current round of every campaign (unless already
    /// done), try once to send the spool, and exit.
    #[arg(long)]
    pub once: bool,
}

const PROBE_ABOUT: &str = "\
Discover the responsive addresses of every target block (IPv4 /24, IPv6 /48) by \
probing every target address once, then run one Trinocular-style round: probe \
known-responsive addresses of each block until one answers (up), the belief \
falls to 0.1 or below (down), or --max-probes is spent (uncertain). Prints one \
line per block: block, state, probes, replies, belief, availability, responsive.

A block where discovery found no responsive address cannot be probed further; \
it is reported as `down` judged from the sweep itself: probes = addresses swept, \
replies = 0, belief = 0.01, availability = 0, responsive = 0. An outage and \
never-used space look alike there; `responsive = 0` tells them apart from \
blocks that went dark after answering.

Special-purpose ranges (RFC 1918, documentation, benchmarking 198.18.0.0/15, \
multicast, ...) are excluded unless --allow carves them back in, and IPv6 \
prefixes wider than /120 cannot be swept: such parts are skipped with one \
line on stderr each and the rest is probed (an error only if nothing is \
left). Needs CAP_NET_RAW.";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read targets (addresses or CIDRs, one per line, `#` comments) from a
    /// file; unparseable lines are skipped with a warning naming file:line.
    #[arg(long, value_name = "F")]
    pub file: Vec<PathBuf>,
    /// Read targets from an RIR delegated-stats file (needs --country): the
    /// country's allocated and assigned IPv4 space (IPv6 allocations are too
    /// large to sweep and are skipped with a warning).
    #[arg(long, value_name = "F", requires = "country")]
    pub delegated: Option<PathBuf>,
    /// ISO 3166 alpha-2 country code to take from --delegated.
    #[arg(long, value_name = "CC", requires = "delegated")]
    pub country: Option<String>,
    /// Exclude the addresses and CIDRs listed in this file (wins over --allow);
    /// the file must parse completely.
    #[arg(long, value_name = "F")]
    pub exclude: Vec<PathBuf>,
    /// Carve this CIDR back out of the default special-purpose exclusions (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,
    /// Global cap on packets per second (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub pps: u32,
    /// How long to wait for each echo reply, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Most probes per block in the round.
    #[arg(long, value_name = "N", default_value_t = crate::belief::DEFAULT_MAX_PROBES, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_probes: u32,
    /// Most discovery probes in flight at once.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub concurrency: u64,
    /// Refuse target sets with more addresses than this.
    #[arg(long, value_name = "N", default_value_t = targets::DEFAULT_MAX_TARGETS)]
    pub max_targets: u64,
    /// Target addresses or CIDRs (IPv4 or IPv6; IPv6 prefixes wider than /120 are skipped).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Highest TTL to probe.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub max_ttl: u8,
    /// Rounds of probes to send.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: u64,
    /// How long each round waits for silent hops, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub timeout_ms: u64,
    /// Address to trace.
    #[arg(value_name = "ADDR")]
    pub addr: IpAddr,
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    targets::parse_target(s)
}

impl From<TargetError> for CliError {
    fn from(e: TargetError) -> Self {
        let code = match &e {
            e if e.is_usage() => exit::USAGE,
            TargetError::Input(InputError::Io { .. }) => exit::NOINPUT,
            _ => exit::DATAERR,
        };
        CliError::new(code, e.to_string())
    }
}

impl From<IcmpError> for CliError {
    fn from(e: IcmpError) -> Self {
        let code = match e {
            IcmpError::NoPrivilege => exit::NOPERM,
            IcmpError::Socket { .. } => exit::FAILURE,
        };
        CliError::new(code, e.to_string())
    }
}

/// A failure of the daemon, with its chain of causes on one line.
fn failure(e: anyhow::Error) -> CliError {
    CliError::new(exit::FAILURE, format!("{e:#}"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The daemon reports its rounds at info; one-shot commands stay quiet.
    let default = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    let format = cli.log_format;
    darkwatch_schema::logging::init(format, default);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            darkwatch_schema::logging::fatal(format, "darkwatch-agent", &e.message);
            ExitCode::from(e.code)
        }
    }
}

/// A small runtime: probing is I/O-bound, and few workers keep replies from
/// queueing behind busy threads on small machines.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!("cannot start the async runtime: {e}"),
            )
        })
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Probe(args) => probe(args),
        Command::Trace(args) => trace(args),
        Command::Run(args) => run_agent(args),
        Command::ValidateConfig { config } => {
            crate::config::Config::load(&config)
                .map_err(|e| CliError::new(exit::CONFIG, e.to_string()))?;
            println!("{}: ok", config.display());
            Ok(())
        }
    }
}

fn run_agent(args: RunArgs) -> Result<(), CliError> {
    let cfg = crate::config::Config::load(&args.config)
        .map_err(|e| CliError::new(exit::CONFIG, e.to_string()))?;
    icmp::check_privileges()?;
    let rt = runtime()?;
    rt.block_on(async {
        let pinger: Arc<dyn Pinger> = Arc::new(SurgePinger::new()?);
        let agent = Arc::new(crate::daemon::Agent::new(
            cfg,
            pinger,
            Arc::new(crate::trace::TrippyTracer),
            Arc::new(crate::clock::SystemClock),
        )?);
        if args.once {
            agent.run_once().await
        } else {
            agent.run().await
        }
    })
    .map_err(failure)
}

/// Logs the lines a parser skipped (on stderr: `probe` logs warnings) and
/// returns what it kept.
fn kept(list: Parsed<IpNet>) -> Vec<IpNet> {
    inputs::report_skipped(&list.skipped, |m| tracing::warn!("{m}"));
    list.items
}

/// Builds the target set a `probe` command line asks for. Unparseable lines
/// of target and delegated files are skipped with a warning; an exclusion
/// file must parse completely.
pub fn target_set(args: &ProbeArgs) -> Result<TargetSet, CliError> {
    let mut include = Vec::new();
    for t in &args.targets {
        include.push(targets::parse_target_arg(t)?);
    }
    for f in &args.file {
        include.extend(kept(addrlist::read(f).map_err(TargetError::from)?));
    }
    if let (Some(f), Some(cc)) = (&args.delegated, &args.country) {
        if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(CliError::new(
                exit::USAGE,
                format!("--country {cc:?} is not a two-letter country code"),
            ));
        }
        let nets = kept(delegated::read(f, cc).map_err(TargetError::from)?);
        // A country's IPv6 allocation cannot be swept address by address;
        // probe its IPv4 space rather than refuse the whole file.
        for n in nets {
            match n {
                IpNet::V6(v6) if v6.prefix_len() < targets::MIN_IPV6_SWEEP_PREFIX => {
                    tracing::warn!(
                        "skipping {n} from {}: IPv6 prefixes shorter than /{} cannot be swept",
                        f.display(),
                        targets::MIN_IPV6_SWEEP_PREFIX
                    )
                }
                _ => include.push(n),
            }
        }
    }
    let mut exclude = Vec::new();
    for f in &args.exclude {
        exclude.extend(targets::read_exclusions(f)?);
    }
    let spec = TargetSpec {
        include,
        exclude,
        allow: args.allow.clone(),
        exclude_reserved: true,
        max_targets: args.max_targets,
    };
    let (set, skipped) = TargetSet::build_strict(&spec)?;
    for s in &skipped {
        eprintln!("darkwatch-agent: {}", skip_line(s));
    }
    Ok(set)
}

/// One line saying what was skipped and why, with a few examples.
pub fn skip_line(s: &Skipped) -> String {
    let why = match s.reason {
        SkipReason::Reserved => "reserved (special-purpose) space; --allow carves it back in",
        SkipReason::Excluded => "excluded",
        SkipReason::Ipv6TooLarge => "IPv6 prefixes wider than /120 cannot be swept",
        SkipReason::OverMaxTargets => "beyond --max-targets",
        SkipReason::OutsideCampaign => "outside the targets",
    };
    let examples: Vec<String> = s.examples.iter().map(ToString::to_string).collect();
    format!(
        "skipping {} addresses ({why}), e.g. {}",
        s.addresses,
        examples.join(" ")
    )
}

/// One output line of `probe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockReport {
    pub block: IpNet,
    pub state: BlockState,
    pub probes: u32,
    pub replies: u32,
    pub belief: f64,
    pub availability: f64,
    pub responsive: usize,
}

fn probe(args: ProbeArgs) -> Result<(), CliError> {
    let set = target_set(&args)?;
    icmp::check_privileges()?;
    let settings = ProbeSettings {
        timeout: Duration::from_millis(args.timeout_ms),
        max_probes: args.max_probes,
        pps: args.pps,
        concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
        ..ProbeSettings::default()
    };
    let rt = runtime()?;
    let reports = rt.block_on(async {
        let pinger: Arc<dyn Pinger> = Arc::new(SurgePinger::new()?);
        let limiter = Arc::new(RateLimiter::new(settings.pps, DEFAULT_BURST));
        let found = discovery::sweep(pinger.clone(), limiter.clone(), &set, &settings).await;
        let mut trackers = found
            .iter()
            .filter(|(_, addrs)| !addrs.is_empty())
            .map(|(b, addrs)| (*b, BlockTracker::from_discovery(*b, addrs.clone())))
            .collect();
        let outcomes =
            round::run_round(&mut trackers, pinger, limiter, &settings, rand::random()).await;
        Ok::<_, CliError>(block_reports(&set, &found, &outcomes))
    })?;
    print_reports(&reports, args.json)
}

/// Joins discovery and the round into one report per block; blocks where
/// discovery found nothing are judged down from the sweep (see `probe --help`).
pub fn block_reports(
    set: &TargetSet,
    found: &std::collections::BTreeMap<IpNet, Vec<IpAddr>>,
    outcomes: &[crate::belief::RoundOutcome],
) -> Vec<BlockReport> {
    found
        .iter()
        .map(
            |(block, addrs)| match outcomes.iter().find(|o| o.block == *block) {
                Some(o) if !addrs.is_empty() => BlockReport {
                    block: *block,
                    state: o.state,
                    probes: o.probes,
                    replies: o.replies,
                    belief: o.belief,
                    availability: o.availability,
                    responsive: addrs.len(),
                },
                _ => BlockReport {
                    block: *block,
                    state: BlockState::Down,
                    probes: u32::try_from(set.addresses_in(block).len()).unwrap_or(u32::MAX),
                    replies: 0,
                    belief: BELIEF_MIN,
                    availability: 0.0,
                    responsive: 0,
                },
            },
        )
        .collect()
}

/// Writes to stdout; a closed pipe (`| head`) ends output quietly.
fn emit(out: &mut impl Write, line: std::fmt::Arguments<'_>) -> Result<bool, CliError> {
    match out.write_fmt(line).and_then(|_| out.write_all(b"\n")) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn print_reports(reports: &[BlockReport], json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if !json
        && !emit(
            &mut out,
            format_args!(
                "{:<20} {:<10} {:>6} {:>7} {:>6} {:>6} {:>10}",
                "BLOCK", "STATE", "PROBES", "REPLIES", "BELIEF", "AVAIL", "RESPONSIVE"
            ),
        )?
    {
        return Ok(());
    }
    for r in reports {
        let more = if json {
            let line = serde_json::to_string(r)
                .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
            emit(&mut out, format_args!("{line}"))?
        } else {
            emit(
                &mut out,
                format_args!(
                    "{:<20} {:<10} {:>6} {:>7} {:>6.2} {:>6.2} {:>10}",
                    r.block.to_string(),
                    r.state.as_str(),
                    r.probes,
                    r.replies,
                    r.belief,
                    r.availability,
                    r.responsive
                ),
            )?
        };
        if !more {
            break;
        }
    }
    Ok(())
}

fn trace(args: TraceArgs) -> Result<(), CliError> {
    icmp::check_privileges()?;
    let opts = TraceOptions {
        max_ttl: args.max_ttl,
        rounds: usize::try_from(args.rounds).unwrap_or(3),
        max_round: Duration::from_millis(args.timeout_ms),
        ..TraceOptions::default()
    };
    let rt = runtime()?;
    let result = rt
        .block_on(crate::trace::trace(args.addr, &opts, None))
        .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    print_trace(&result, args.json)
}

/// traceroute's marks for an ICMP unreachable code (` !N` net, ` !H` host,
/// ` !P` protocol, ` !X` administratively prohibited, ` !<code>` otherwise).
fn unreachable_mark(code: u8) -> String {
    match code {
        0 => " !N".into(),
        1 => " !H".into(),
        2 => " !P".into(),
        9 | 10 | 13 => " !X".into(),
        c => format!(" !{c}"),
    }
}

fn print_trace(r: &TraceResult, json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if json {
        let line =
            serde_json::to_string(r).map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
        emit(&mut out, format_args!("{line}"))?;
        return Ok(());
    }
    for h in &r.hops {
        let addr = h.addr.map_or("*".to_string(), |a| a.to_string());
        let rtt = h.rtt_ms.map_or(String::new(), |ms| format!("{ms:.2} ms"));
        let mark = h.unreachable.map_or(String::new(), unreachable_mark);
        if !emit(
            &mut out,
            format_args!("{:>3}  {:<40} {}{}", h.ttl, addr, rtt, mark),
        )? {
            return Ok(());
        }
    }
    let last = r
        .last_responding
        .map_or("none".to_string(), |a| a.to_string());
    emit(
        &mut out,
        format_args!(
            "target {} {}; last responding hop: {}",
            r.target,
            if r.reached { "reached" } else { "not reached" },
            last
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
