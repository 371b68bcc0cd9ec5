//! `bgp import`: MRT update files through the BGP core, per-round
//! per-prefix state out as JSON lines; and `signals --source bgp`, the
//! stored BGP rounds of a scope.
//!
//! Every file is read, even after a bad one: a malformed or truncated file
//! keeps the records before the bad one, says which record broke, and
//! makes the command exit 65 once all the state is printed.

use std::path::PathBuf;

use clap::Args;

use super::{exit, print_out, CliError, SignalsArgs, SignalsFormat};
use crate::bgp::read::{bgp_signal, BgpQuery};
use crate::bgp::{mrt, replay, state::BgpCore};
use crate::clock::Clock;
use crate::store::SqlStore;

#[derive(Debug, Args)]
pub struct BgpImportArgs {
    /// MRT files (BGP4MP updates or TABLE_DUMP_V2 RIBs; plain, gzip, bzip2,
    /// xz or zstd), in any order: their records are merged by time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Round length in seconds (the campaigns' interval).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub round_secs: u64,
    /// Name of the route collector the files come from (keys its peers).
    #[arg(long, default_value = "mrt")]
    pub source: String,
}

pub(super) fn import(args: BgpImportArgs) -> Result<(), CliError> {
    let mut decoded = Vec::new();
    let mut problems = Vec::new();
    for path in &args.files {
        let bytes = std::fs::read(path).map_err(|e| {
            CliError::new(
                exit::NOINPUT,
                format!("cannot read MRT file {}: {e}", path.display()),
            )
        })?;
        let d = mrt::decode(bytes, &args.source);
        tracing::info!(file = %path.display(), records = d.records, events = d.events.len(), "MRT file read");
        if let Some(e) = &d.error {
            problems.push(format!("{}: {e}", path.display()));
        }
        decoded.push(d);
    }
    let mut core = BgpCore::new();
    let mut rounds = replay::feed(&mut core, replay::merged(decoded), args.round_secs);
    rounds.extend(core.snapshot());
    let mut out = String::new();
    for r in &rounds {
        let line =
            serde_json::to_string(r).map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
        out.push_str(&line);
        out.push('\n');
    }
    print_out(&out)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(exit::DATAERR, problems.join("; ")))
    }
}

/// `signals --source bgp`: the scope's BGP signal over `--from`..`--until`.
pub(super) async fn signals(
    store: &SqlStore,
    args: SignalsArgs,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let mut pairs = vec![
        ("scope".to_string(), args.scope),
        ("target".to_string(), args.target),
        ("round_secs".to_string(), args.round_secs.to_string()),
    ];
    pairs.extend(
        [("from", args.from), ("until", args.until)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?))),
    );
    if !args.vp.is_empty() || args.campaign.is_some() {
        return Err(CliError::new(
            exit::USAGE,
            "--vp and --campaign are for --source probes".to_string(),
        ));
    }
    let q = BgpQuery::from_pairs(&pairs, clock.now_ms()).map_err(|e| {
        CliError::new(
            exit::USAGE,
            e.replace("query parameter ", "--")
                .replace("round_secs", "round-secs"),
        )
    })?;
    let s = bgp_signal(store, &q).await.map_err(CliError::from)?;
    let mut out = String::new();
    match args.format {
        SignalsFormat::Csv => {
            out.push_str("scope,target,round,start_ms,start,prefixes,announced,announced_by_all,peer_routes,withdrawn_routes,announcements,withdrawals,cycles\n");
            for row in &s.rounds {
                let r = &row.signal;
                let start = chrono::DateTime::from_timestamp_millis(row.start_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{},{},{},{},{start},{},{},{},{},{},{},{},{}\n",
                    s.scope,
                    s.target,
                    r.round,
                    row.start_ms,
                    r.prefixes,
                    r.announced,
                    r.announced_by_all,
                    r.peer_routes,
                    r.withdrawn_routes,
                    r.announcements,
                    r.withdrawals,
                    r.cycles
                ));
            }
        }
        SignalsFormat::Jsonl => {
            for row in &s.rounds {
                let line = serde_json::to_string(row)
                    .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    print_out(&out)
}
