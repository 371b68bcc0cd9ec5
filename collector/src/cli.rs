//! Command line of `darkwatch-collector`: serve, agents, campaign.
//!
//! Parses arguments (clap derive), runs the command, and maps every failure
//! to one line on stderr and a sysexits code: 64 usage, 65 bad data,
//! 66 unreadable input file, 69 database (or listening socket) unavailable,
//! 78 bad config file (`check-config`); the table is `darkwatch_schema::exitcode`,
//! shared with the agent.
//! New subcommands (outages, status, timeline) slot into [`Command`].

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Args, Parser, Subcommand};
use darkwatch_schema::valid_name;
use ipnet::IpNet;

use crate::config::{self, FileConfig, ServeFlags, DEFAULT_DB};
use crate::report_cli;
use crate::store::{CampaignSpec, SqlStore, Store, StoreError};
use crate::{server, tokens};
use darkwatch_schema::inputs::{self, delegated, pfx2as::Pfx2As, InputError, LineError};

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
    },
    /// Per round, the share of blocks up: overall (consensus of healthy VPs)
    /// and per vantage point.
    Timeline(TimelineArgs),
    /// Check a collector.toml (syntax, unknown keys, semantic checks) and
    /// exit: 0 if `serve --config FILE` would accept it, 78 if not. Opens no
    /// database and binds no socket.
    CheckConfig {
        /// Path of collector.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct OutagesArgs {
    /// Only verdicts of campaigns watching this country (ISO code).
    #[arg(long)]
    pub country: Option<String>,
    /// Only verdicts still open.
    #[arg(long)]
    pub ongoing: bool,
    /// Only verdicts open at or after this time: RFC 3339, Unix seconds, or an
    /// age such as 90m, 6h, 2d.
    #[arg(long)]
    pub since: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// Country (ISO code) whose campaigns to show; all campaigns if omitted.
    #[arg(long)]
    pub country: Option<String>,
    /// Collector config file whose [correlation] settings to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
    /// Remove a campaign (its stored observations stay).
    Remove { name: String },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["delegated", "prefixes"])))]
pub struct CampaignAddArgs {
    pub name: String,
    /// ISO 3166 alpha-2 country code.
    #[arg(long)]
    pub country: Option<String>,
    /// RIR delegated-stats file (standard or extended, any RIR) to take the
    /// country's allocated and assigned prefixes from; unparseable lines are
    /// skipped and counted.
    #[arg(long, requires = "country")]
    pub delegated: Option<PathBuf>,
    /// Prefix to watch (repeatable).
    #[arg(long = "prefix", num_args = 1..)]
    pub prefixes: Vec<IpNet>,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,
    /// Agents that run the campaign (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Control target prefix, outside the watched space (repeatable).
    #[arg(long, num_args = 1..)]
    pub control: Vec<IpNet>,
    /// Change the campaign if it exists (bumps its generation).
    #[arg(long)]
    pub replace: bool,
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("darkwatch-collector: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OSERR);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darkwatch-collector: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "collector".into())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn read_input(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            exit::NOINPUT,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

async fn open(db: &str) -> Result<SqlStore, CliError> {
    Ok(SqlStore::open(db).await?)
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let db_flag = cli.db;
    let db = || db_flag.clone().unwrap_or_else(|| DEFAULT_DB.to_string());
    match cli.command {
        Command::Serve(args) => serve(db_flag.clone(), args).await,
        Command::Agents(cmd) => {
            let store = open(&db()).await?;
            agents(&store, cmd).await
        }
        Command::Campaign(cmd) => {
            let store = open(&db()).await?;
            campaign(&store, cmd).await
        }
        Command::Outages(args) => {
            let store = open(&db()).await?;
            let since_ms = match &args.since {
                Some(s) => Some(
                    report_cli::parse_since(s, now_ms())
                        .map_err(|e| CliError::new(exit::USAGE, e))?,
                ),
                None => None,
            };
            let filter = report_cli::OutageFilter {
                country: args.country,
                ongoing: args.ongoing,
                since_ms,
            };
            let rows = report_cli::outages(&store, &filter).await?;
            if args.json {
                print_json(&rows)
            } else {
                print_out(&report_cli::outages_table(&rows, now_ms()))
            }
        }
        Command::Status { json } => {
            let store = open(&db()).await?;
            let st = report_cli::status(&store, now_ms()).await?;
            if json {
                print_json(&st)
            } else {
                print_out(&report_cli::status_text(&st, now_ms()))
            }
        }
        Command::CheckConfig { config } => {
            let notes = check_config(&config)?;
            print_out(&format!("{}: ok\n{notes}", config.display()))
        }
        Command::Timeline(args) => {
            let file = match &args.config {
                Some(p) => FileConfig::parse(&read_input(p, "config file")?)
                    .map_err(|e| CliError::new(exit::DATAERR, format!("{}: {e}", p.display())))?,
                None => FileConfig::default(),
            };
            let pfx2as = match &file.correlation.pfx2as {
                Some(p) => {
                    let (m, skipped) =
                        Pfx2As::load(p).map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?;
                    warn_skipped(&skipped);
                    Some(m)
                }
                None => None,
            };
            let store = open(&db()).await?;
            let t = report_cli::timeline(
                &store,
                args.country.as_deref(),
                &file.correlation,
                pfx2as.as_ref(),
                now_ms(),
            )
            .await?;
            if args.json {
                print_json(&t)
            } else {
                print_out(&report_cli::timeline_text(&t))
            }
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

async fn serve(db: Option<String>, args: ServeArgs) -> Result<(), CliError> {
    let file = match &args.config {
        Some(p) => FileConfig::parse(&read_input(p, "config file")?)
            .map_err(|e| CliError::new(exit::DATAERR, format!("{}: {e}", p.display())))?,
        None => FileConfig::default(),
    };
    let flags = ServeFlags {
        db,
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        max_body: args.max_body,
    };
    let cfg = config::merge(flags, file).map_err(|e| CliError::new(exit::USAGE, e.to_string()))?;
    let store = Arc::new(open(&cfg.db).await?);
    let alerts = match &cfg.alerts {
        Some(a) => crate::alerts::Alerts::webhook(a.webhook.clone(), a.max_attempts),
        None => crate::alerts::Alerts::disabled(),
    };
    // Several collectors may share one database: each has its own holder id
    // and only the holder of the lease correlates.
    let holder = format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    );
    let correlator = tokio::spawn(crate::correlation::run(
        store.clone(),
        cfg.correlation.clone(),
        holder,
        alerts,
    ));
    let result = server::serve(
        &cfg,
        store.clone(),
        |addr, tls| {
            let scheme = if tls { "https" } else { "http" };
            tracing::info!(%addr, tls, "listening");
            // Printed on stdout so scripts (and tests) can learn a port-0 address.
            println!("darkwatch-collector listening on {scheme}://{addr}");
            let _ = std::io::stdout().flush();
        },
        server::shutdown_signal(),
    )
    .await;
    correlator.abort();
    store.close().await;
    result.map_err(|e| {
        let code = match e {
            server::ServeError::Tls(_) => exit::DATAERR,
            _ => exit::UNAVAILABLE,
        };
        CliError::new(code, e.to_string())
    })
}

/// Logs skipped input lines on stderr (the first few, then a count).
fn warn_skipped(skipped: &[LineError]) {
    inputs::report_skipped(skipped, |m| tracing::warn!("{m}"));
}

/// What `serve --config` checks before touching the database: the file
/// parses, merges with no flags, and its prefix-to-AS file (if any) has
/// usable lines. Returns notes for stdout: what the prefix-to-AS file holds
/// and how many of its lines were skipped (each one is logged).
fn check_config(path: &Path) -> Result<String, CliError> {
    let bad = |e: String| CliError::new(exit::CONFIG, format!("{}: {e}", path.display()));
    let file =
        FileConfig::parse(&read_input(path, "config file")?).map_err(|e| bad(e.to_string()))?;
    let cfg = config::merge(ServeFlags::default(), file).map_err(|e| bad(e.to_string()))?;
    let mut notes = String::new();
    if let Some(p) = &cfg.correlation.pfx2as {
        let (m, skipped) = Pfx2As::load(p).map_err(|e| bad(e.to_string()))?;
        warn_skipped(&skipped);
        notes = format!(
            "pfx2as {}: {} prefixes, {} unparseable line(s) skipped\n",
            p.display(),
            m.len(),
            skipped.len()
        );
    }
    Ok(notes)
}

fn check_name(kind: &str, name: &str) -> Result<(), CliError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(CliError::new(
            exit::DATAERR,
            format!("{kind} name {name:?} is invalid (1..=64 chars of A-Z a-z 0-9 . _ -)"),
        ))
    }
}

async fn agents<S: Store>(store: &S, cmd: AgentsCmd) -> Result<(), CliError> {
    match cmd {
        AgentsCmd::Add { name } => {
            check_name("agent", &name)?;
            let token = tokens::generate();
            store
                .add_agent(&name, &tokens::hash(&token), now_ms())
                .await?;
            eprintln!("agent {name} added; its token is shown once, store it on the agent:");
            println!("{token}");
        }
        AgentsCmd::List { json } => {
            let list = store.list_agents().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list)
                        .map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?
                );
            } else {
                println!(
                    "{:<24} {:<20} {:<20} REVOKED",
                    "NAME", "CREATED", "LAST SEEN"
                );
                for a in list {
                    println!(
                        "{:<24} {:<20} {:<20} {}",
                        a.name,
                        fmt_ms(a.created_ms),
                        a.last_seen_ms.map(fmt_ms).unwrap_or_else(|| "never".into()),
                        if a.revoked { "yes" } else { "no" }
                    );
                }
            }
        }
        AgentsCmd::Revoke { name } => {
            store.revoke_agent(&name).await?;
            eprintln!("agent {name} revoked");
        }
    }
    Ok(())
}

/// Builds the campaign definition from the command line (reads the
/// delegated file if given). Also returns the delegated file's skipped lines.
fn campaign_spec(args: &CampaignAddArgs) -> Result<(CampaignSpec, Vec<LineError>), CliError> {
    check_name("campaign", &args.name)?;
    let country = match &args.country {
        Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(cc.to_ascii_uppercase())
        }
        Some(cc) => {
            return Err(CliError::new(
                exit::USAGE,
                format!("--country {cc:?} is not a two-letter code"),
            ))
        }
        None => None,
    };
    let mut prefixes = args.prefixes.clone();
    let mut skipped = Vec::new();
    if let (Some(path), Some(cc)) = (&args.delegated, &country) {
        let parsed = delegated::read(path, cc).map_err(|e| match e {
            InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("delegated file: {e}")),
            InputError::NothingUsable { .. } => CliError::new(exit::DATAERR, e.to_string()),
        })?;
        let found = parsed.items;
        skipped = parsed.skipped;
        if found.is_empty() {
            return Err(CliError::new(
                exit::DATAERR,
                format!("{}: no allocated prefixes for {cc}", path.display()),
            ));
        }
        prefixes.extend(found);
    }
    for p in prefixes.iter().chain(&args.control) {
        if p.trunc() != *p {
            return Err(CliError::new(
                exit::DATAERR,
                format!("prefix {p} has host bits set (did you mean {}?)", p.trunc()),
            ));
        }
    }
    for a in &args.agents {
        check_name("agent", a)?;
    }
    let spec = CampaignSpec {
        name: args.name.clone(),
        country,
        interval_secs: args.interval,
        prefixes,
        control: args.control.clone(),
        agents: args.agents.clone(),
    };
    Ok((spec, skipped))
}

async fn campaign<S: Store>(store: &S, cmd: CampaignCmd) -> Result<(), CliError> {
    match cmd {
        CampaignCmd::Add(args) => {
            let (spec, skipped) = campaign_spec(&args)?;
            warn_skipped(&skipped);
            let c = store.put_campaign(&spec, args.replace, now_ms()).await?;
            let skipped = match (&args.delegated, skipped.len()) {
                (Some(p), n) if n > 0 => {
                    format!(" ({n} unparseable line(s) of {} skipped)", p.display())
                }
                _ => String::new(),
            };
            eprintln!(
                "campaign {} saved: {} prefixes, every {} s, generation {}{skipped}",
                c.name,
                c.prefixes.len(),
                c.interval_secs,
                c.generation
            );
        }
        CampaignCmd::List { json } => {
            let list = store.list_campaigns().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list)
                        .map_err(|e| CliError::new(exit::DATAERR, e.to_string()))?
                );
            } else {
                println!(
                    "{:<20} {:<7} {:>8} {:>8} {:>7} {:<20} GEN",
                    "NAME", "COUNTRY", "INTERVAL", "PREFIXES", "CONTROL", "AGENTS"
                );
                for c in list {
                    let agents = if c.agents.is_empty() {
                        "all".to_string()
                    } else {
                        c.agents.join(",")
                    };
                    println!(
                        "{:<20} {:<7} {:>8} {:>8} {:>7} {:<20} {}",
                        c.name,
                        c.country.as_deref().unwrap_or("-"),
                        c.interval_secs,
                        c.prefixes.len(),
                        c.control.len(),
                        agents,
                        c.generation
                    );
                }
            }
        }
        CampaignCmd::Remove { name } => {
            store.remove_campaign(&name).await?;
            eprintln!("campaign {name} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn campaign_needs_a_source_and_valid_fields() {
        assert!(Cli::try_parse_from(["dc", "campaign", "add", "kp"]).is_err());
        assert!(Cli::try_parse_from(["dc", "campaign", "add", "kp", "--delegated", "f"]).is_err());
        let cli = Cli::try_parse_from([
            "dc",
            "campaign",
            "add",
            "kp",
            "--prefix",
            "198.18.0.0/16",
            "--agents",
            "a,b",
            "--interval",
            "60",
        ])
        .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        let (spec, skipped) = campaign_spec(&args).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(spec.agents, ["a", "b"]);
        assert_eq!(spec.interval_secs, 60);

        let cli = Cli::try_parse_from(["dc", "campaign", "add", "kp", "--prefix", "198.18.0.1/16"])
            .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(campaign_spec(&args).unwrap_err().code, exit::DATAERR);

        let cli =
            Cli::try_parse_from(["dc", "campaign", "add", "../x", "--prefix", "198.18.0.0/16"])
                .unwrap();
        let Command::Campaign(CampaignCmd::Add(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(campaign_spec(&args).unwrap_err().code, exit::DATAERR);
    }
}
