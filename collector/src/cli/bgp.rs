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
use crate::bgp::signal::{self, BgpScope};
use crate::bgp::{compact, listen::keyframe_rounds, mrt, replay, state::BgpCore};
use crate::clock::Clock;
use crate::store::{SqlStore, Store};
use crate::timespec::parse_time;

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
    let usage = |m: String| CliError::new(exit::USAGE, m);
    let now = clock.now_ms();
    let until = match &args.until {
        Some(t) => parse_time(t, now).map_err(|e| usage(format!("--until: {e}")))?,
        None => now,
    };
    let from = match &args.from {
        Some(t) => parse_time(t, now).map_err(|e| usage(format!("--from: {e}")))?,
        None => until - 86_400_000,
    };
    if from > until {
        return Err(usage("--from is after --until".into()));
    }
    let scope = match args.scope.as_str() {
        "prefix" => BgpScope::Prefix(
            args.target
                .parse()
                .map_err(|_| usage(format!("--target {} is not a prefix", args.target)))?,
        ),
        "asn" => BgpScope::Asn(
            args.target
                .trim_start_matches("AS")
                .trim_start_matches("as")
                .parse()
                .map_err(|_| usage(format!("--target {} is not an AS number", args.target)))?,
        ),
        "country" => {
            let code = args.target.to_ascii_uppercase();
            let prefixes: Vec<_> = store
                .list_campaigns()
                .await?
                .into_iter()
                .filter(|c| c.country.as_deref().map(str::to_ascii_uppercase) == Some(code.clone()))
                .flat_map(|c| c.prefixes)
                .collect();
            if prefixes.is_empty() {
                return Err(CliError::new(
                    exit::DATAERR,
                    format!("no campaign watches country {code}"),
                ));
            }
            BgpScope::Prefixes(prefixes)
        }
        other => {
            return Err(usage(format!(
                "--scope {other}: BGP signals have country, asn and prefix scopes"
            )))
        }
    };
    let secs = args.round_secs;
    let (first, last) = (
        darkwatch_schema::round_of(from, secs),
        darkwatch_schema::round_of(until, secs),
    );
    let since = first.saturating_sub(2 * keyframe_rounds(secs));
    let rows = store.bgp_rows(secs, since, last).await?;
    let rounds = compact::expand(&rows, first, last);
    let sig = signal::signal(&scope, &rounds);
    let mut out = String::new();
    match args.format {
        SignalsFormat::Csv => {
            out.push_str("scope,target,round,start_ms,start,prefixes,announced,announced_by_all,peer_routes,withdrawn_routes,announcements,withdrawals,cycles\n");
            for r in &sig {
                let start_ms = darkwatch_schema::round_start_ms(r.round, secs);
                let start = chrono::DateTime::from_timestamp_millis(start_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{},{},{},{start_ms},{start},{},{},{},{},{},{},{},{}\n",
                    args.scope,
                    args.target,
                    r.round,
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
            for r in &sig {
                let line = serde_json::to_string(r)
                    .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    print_out(&out)
}
