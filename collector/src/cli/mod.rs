//! Command line of `darkwatch-collector`: serve, agents, campaign,
//! outages, status, timeline, signals, replay, check-config, bgp import.
//!
//! Parses arguments (clap derive), runs the command, and maps every failure
//! to one line on stderr and a sysexits code: 64 usage, 65 bad data,
//! 66 unreadable input file, 69 database (or listening socket) unavailable,
//! 78 bad config file (`check-config`); the table is
//! `darkwatch_schema::exitcode`, shared with the agent. Each group of
//! subcommands runs in its own module: `serve`, `admin` (agents, campaigns),
//! `read` (outages, status, timeline, signals, replay) and `bgp` (MRT import).

mod admin;
mod bgp;
mod edit;
mod read;
mod serve;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::DEFAULT_DB;
use crate::store::{SqlStore, StoreError};
use darkwatch_schema::inputs::{self, LineError};
use darkwatch_schema::logging::{self, LogFormat};

/// The exit codes, shared with the agent.
pub use darkwatch_schema::exitcode as exit;
pub use darkwatch_schema::exitcode::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "darkwatch-collector",
    version,
    about = "Collects darkwatch agent reports and answers operators."
)]
pub struct Cli {
    /// Database: a SQLite path, sqlite://PATH or postgres://USER:PASS@HOST/DB.
    #[arg(long, global = true, env = "DARKWATCH_DB")]
    pub db: Option<String>,
    /// Log format on stderr: `text` (coloured only on a terminal) or `json`
    /// (one object per line, with `level` and `message`).
    #[arg(long, global = true, env = "DARKWATCH_LOG_FORMAT", default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Manage agents and their tokens.
    #[command(subcommand)]
    Agents(AgentsCmd),
    /// Manage measurement campaigns.
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Outage verdicts: which country, network or prefix went dark, when,
    /// how much of it, seen by which VPs, and where the paths now end.
    Outages(OutagesArgs),
    /// Agents (last seen, health), campaigns and open verdicts.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        names: NamesArgs,
    },
    /// Per round, the share of blocks up: overall (consensus of healthy VPs)
    /// and per vantage point.
    Timeline(TimelineArgs),
    /// Per-round signal of one scope (country, campaign, AS or prefix): blocks
    /// judged and up, share up, probes and replies, for the consensus and
    /// each VP, as CSV or JSON lines; the same data as `GET /v1/signals`,
    /// read from the summaries the correlation stores.
    Signals(SignalsArgs),
    /// Recompute a campaign's verdicts from its stored rounds and compare
    /// them with the stored ones (those starting from --from to --until):
    /// exit 0 if identical, 65 if not, with the differences listed.
    Replay(ReplayArgs),
    /// Check a collector.toml (syntax, unknown keys, semantic checks) and
    /// exit: 0 if `serve --config FILE` would accept it, 78 if not. Opens no
    /// database and binds no socket.
    CheckConfig {
        /// Path of collector.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// BGP input beside the probes.
    #[command(subcommand)]
    Bgp(BgpCmd),
}

#[derive(Debug, Subcommand)]
pub enum BgpCmd {
    /// Read MRT files (RouteViews/RIPE RIS layout, plain or compressed) and
    /// print the per-round state of every prefix as JSON lines: peers
    /// announcing it, peers that had, origin ASes, announcements,
    /// withdrawals and withdraw/announce cycles in the round. Exits 65 if a
    /// file is malformed or truncated (what came before it is kept).
    Import(bgp::BgpImportArgs),
}

#[derive(Debug, Args)]
pub struct OutagesArgs {
    /// Only verdicts of campaigns watching this country (ISO code).
    #[arg(long)]
    pub country: Option<String>,
    /// Only verdicts still open.
    #[arg(long)]
    pub ongoing: bool,
    /// Only verdicts open at or after this time: RFC 3339, Unix time with
    /// its unit (1419264000s, 1419264000000ms), or an age such as 90m, 6h,
    /// 2d, 1w.
    #[arg(long)]
    pub since: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub names: NamesArgs,
}

/// Where AS names come from, for the commands that show verdicts' targets
/// (countries are named from ISO 3166 without a file).
#[derive(Debug, Clone, Default, Args)]
pub struct NamesArgs {
    /// AS names file to name AS scopes with: CAIDA's as-org2info
    /// (YYYYMMDD.as-org2info.txt, .gz as published) or `ASN name` lines;
    /// the file `serve` reads as [correlation] as_names.
    #[arg(long, env = "DARKWATCH_AS_NAMES", value_name = "FILE")]
    pub as_names: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The campaign.
    #[arg(long)]
    pub campaign: String,
    /// First round (Unix time / interval, as stored).
    #[arg(long)]
    pub from: u64,
    /// Last round.
    #[arg(long)]
    pub until: u64,
    /// Collector config file whose [correlation] params and pfx2as to use
    /// (the ones the verdicts were stored with).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Country (ISO code) whose campaigns to show; all campaigns if omitted.
    #[arg(long)]
    pub country: Option<String>,
    /// Collector config file whose [correlation] window_rounds to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SignalsArgs {
    /// country, campaign, asn, unrouted or prefix.
    #[arg(long)]
    pub scope: String,
    /// Country code, campaign name, AS number (AS64500) or prefix.
    #[arg(long)]
    pub target: String,
    /// Campaign, when several watch the target.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Start: RFC 3339, Unix time with its unit (1419264000s,
    /// 1419264000000ms), or an age such as 6h [default: 24 hours before
    /// --until].
    #[arg(long)]
    pub from: Option<String>,
    /// End, in the syntax of --from [default: now].
    #[arg(long)]
    pub until: Option<String>,
    /// Only these VPs in the per-VP rows (repeatable or comma-separated).
    #[arg(long)]
    pub vp: Vec<String>,
    /// csv: one line per round and VP, the consensus first with an empty
    /// vp (header: campaign,scope,target,round,start_ms,start,vp,
    /// blocks_judged,blocks_up,share_up,probes,replies,name, the last the
    /// target's name when it has one); jsonl: one JSON
    /// object per round, as in the API's `rounds`.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: SignalsFormat,
    #[command(flatten)]
    pub names: NamesArgs,
    /// probes: the share of blocks up, as above. bgp: per round, the scope's
    /// routed prefixes (country: those overlapping its campaigns' space;
    /// asn: those it originated; prefix: inside or covering it), how many
    /// are announced, the (prefix, peer) routes withdrawn, and the
    /// announcements, withdrawals and withdraw/announce cycles, from the
    /// rounds `serve` stores with [bgp] (csv header: scope,target,round,
    /// start_ms,start,prefixes,announced,announced_by_all,peer_routes,
    /// withdrawn_routes,announcements,withdrawals,cycles).
    #[arg(long, value_enum, default_value = "probes")]
    pub source: SignalSource,
    /// With --source bgp: the BGP round length ([bgp] round_secs).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub round_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignalSource {
    Probes,
    Bgp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignalsFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain; enables HTTPS together with --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 16 MiB].
    #[arg(long)]
    pub max_body: Option<usize>,
    /// TOML file with the same settings (db, listen, tls_cert, tls_key, max_body); flags win.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// Register an agent and print its token (shown only once).
    Add { name: String },
    /// List agents.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke an agent's token.
    Revoke { name: String },
    /// Issue a new token for an agent and print it (shown only once); the
    /// old token stops working at once. Reinstates a revoked agent.
    Rotate { name: String },
    /// Delete an agent. Refused while a campaign names it (change the
    /// campaign with `campaign add NAME --replace --agents ...` first); its
    /// stored reports stay.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CampaignCmd {
    /// Create (or with --replace, change) a campaign.
    Add(CampaignAddArgs),
    /// List campaigns.
    List {
        #[arg(long)]
        json: bool,
    },
    /// What a saved campaign holds: IPv4 /24s, IPv6 /48s (tracked and
    /// allocated), prefixes, census addresses, addresses an agent targets
    /// and, with --pfx2as, routed prefixes and origin ASes.
    Show {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        figures: FiguresArgs,
    },
    /// Remove a campaign (its stored observations stay).
    Remove { name: String },
}

/// Options of the figures `campaign add` and `campaign show` print.
#[derive(Debug, Args)]
pub struct FiguresArgs {
    /// CAIDA prefix-to-AS file (plain or compressed): also count the routed
    /// prefixes that overlap the campaign and their origin ASes.
    #[arg(long, value_name = "FILE")]
    pub pfx2as: Option<PathBuf>,
    /// The agents' max_targets (addresses an agent watches per campaign);
    /// default the agent's own default, 2^24.
    #[arg(long, value_name = "N", default_value_t = crate::space::AGENT_DEFAULT_MAX_TARGETS)]
    pub agent_max_targets: u64,
    /// Warn when the campaign needs more than this share (percent) of the
    /// agents' max_targets.
    #[arg(long, value_name = "PERCENT", default_value_t = 100.0)]
    pub warn_share: f64,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["delegated", "prefixes", "hitlists", "replace"])))]
pub struct CampaignAddArgs {
    pub name: String,
    /// ISO 3166 alpha-2 country code.
    #[arg(long)]
    pub country: Option<String>,
    /// RIR delegated-stats file (standard or extended, any RIR; plain or
    /// compressed) to take the country's allocated and assigned prefixes
    /// from; unparseable lines are skipped and counted, and a record that
    /// brings in special-purpose space refuses the campaign.
    #[arg(long, requires = "country")]
    pub delegated: Option<PathBuf>,
    /// Prefix to watch (repeatable).
    #[arg(long = "prefix", num_args = 1..)]
    pub prefixes: Vec<IpNet>,
    /// File of known-responsive addresses (repeatable): one IPv4 or IPv6
    /// address per line, `#` comments. They seed the campaign's census,
    /// which agents receive with their assignment and judge from their
    /// first round, without a discovery sweep (the only way to watch IPv6
    /// space, too large to sweep). An address outside the campaign's
    /// prefixes is skipped and counted, never added; a campaign of hitlists
    /// alone takes the /24 (IPv4) or /48 (IPv6) of each address.
    /// Special-purpose addresses outside the prefixes are skipped unless
    /// --allow-special-purpose. At most 256 addresses per /24 and 1024 per
    /// /48 are kept. Unreadable lines are reported as FILE:LINE and
    /// skipped; a file with no usable address is refused. Files may be
    /// compressed (gzip, bzip2, xz, zstd).
    #[arg(long = "hitlist", value_name = "FILE")]
    pub hitlists: Vec<PathBuf>,
    /// Seconds between rounds [default: 600 for a new campaign].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: Option<u64>,
    /// Agents that run the campaign (comma-separated, registered names);
    /// default all.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Every agent runs the campaign (with --replace: undoes --agents).
    #[arg(long, conflicts_with = "agents")]
    pub all_agents: bool,
    /// Control target prefix, outside the watched space (repeatable).
    #[arg(long, num_args = 1..)]
    pub control: Vec<IpNet>,
    /// Change the campaign if it exists (bumps its generation): what is
    /// given here replaces the saved value (country, space from --prefix,
    /// --delegated or --hitlist, interval, agents, controls); the rest stays
    /// as saved.
    #[arg(long)]
    pub replace: bool,
    /// Accept special-purpose space (RFC 6890: private, shared, loopback,
    /// documentation, benchmarking, ...) from --delegated and --hitlist
    /// files, which is otherwise refused (delegated) or skipped (hitlist)
    /// as a mistake; for labs in 198.18.0.0/15 or documentation space.
    /// Space given with --prefix is always accepted.
    #[arg(long)]
    pub allow_special_purpose: bool,
    #[command(flatten)]
    pub figures: FiguresArgs,
}

/// A signals request without an answer (probes' or BGP's): a bad query is
/// a usage error, a missing scope bad data.
impl From<crate::signals::SignalsError> for CliError {
    fn from(e: crate::signals::SignalsError) -> Self {
        use crate::signals::SignalsError;
        match e {
            SignalsError::BadRequest(m) => CliError::new(exit::USAGE, m),
            SignalsError::NotFound(m) => CliError::new(exit::DATAERR, m),
            SignalsError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::Url(_) => exit::USAGE,
            e if e.is_unavailable() => exit::UNAVAILABLE,
            _ => exit::DATAERR,
        };
        CliError::new(code, e.to_string())
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let format = cli.log_format;
    logging::init(format, default_level);
    let fatal = |message: &str| logging::fatal(format, "darkwatch-collector", message);

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fatal(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::OSERR);
        }
    };
    match rt.block_on(run(cli, SystemClock::shared())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(&e.message);
            ExitCode::from(e.code)
        }
    }
}

fn read_input(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            exit::NOINPUT,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

async fn open(db: &str, clock: &dyn Clock) -> Result<SqlStore, CliError> {
    Ok(SqlStore::open_with(db, clock).await?)
}

/// Opens the database for a command that only reads: a SQLite file that is
/// not there is an error, never a new empty database (which would answer
/// "no outages" and exit 0 in a directory where no collector ever ran).
async fn open_existing(db: &str, clock: &dyn Clock) -> Result<SqlStore, CliError> {
    if let Some(path) = crate::store::sqlite_file(db) {
        if !path.exists() {
            return Err(CliError::new(
                exit::NOINPUT,
                format!(
                    "no database at {}: give the collector's with --db (or DARKWATCH_DB)",
                    path.display()
                ),
            ));
        }
    }
    open(db, clock).await
}

/// Runs `cli` with `clock` as the time for everything it does.
pub async fn run(cli: Cli, shared: SharedClock) -> Result<(), CliError> {
    let clock = shared.as_ref();
    let db_flag = cli.db;
    let db = || db_flag.clone().unwrap_or_else(|| DEFAULT_DB.to_string());
    match cli.command {
        Command::Serve(args) => serve::serve(db_flag.clone(), args, shared.clone()).await,
        Command::Agents(cmd) => {
            let store = open(&db(), clock).await?;
            admin::agents(&store, cmd, clock).await
        }
        Command::Campaign(cmd) => {
            let store = open(&db(), clock).await?;
            admin::campaign(&store, cmd, clock).await
        }
        Command::Outages(args) => {
            read::outages(&open_existing(&db(), clock).await?, args, clock).await
        }
        Command::Status { json, names } => {
            let as_names = read::load_as_names(&names)?;
            read::status(&open_existing(&db(), clock).await?, json, &as_names, clock).await
        }
        Command::CheckConfig { config } => {
            let notes = serve::check_config(&config)?;
            print_out(&format!("{}: ok\n{notes}", config.display()))
        }
        Command::Bgp(BgpCmd::Import(args)) => bgp::import(args),
        Command::Timeline(args) => read::timeline(&db(), args, clock).await,
        Command::Signals(args) if args.source == SignalSource::Bgp => {
            bgp::signals(&open_existing(&db(), clock).await?, args, clock).await
        }
        Command::Replay(args) => read::replay(&db(), args, clock).await,
        Command::Signals(args) => {
            read::signals(&open_existing(&db(), clock).await?, args, clock).await
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    print_out(&format!("{text}\n"))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print_out(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::new(exit::FAILURE, e.to_string()))
        }
        _ => Ok(()),
    }
}

/// Logs skipped input lines on stderr (the first few, then a count).
fn warn_skipped(skipped: &[LineError]) {
    inputs::report_skipped(skipped, |m| tracing::warn!("{m}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
