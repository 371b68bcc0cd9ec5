//! `bgp import`: MRT update files through the BGP core, per-round
//! per-prefix state out as JSON lines.
//!
//! Every file is read, even after a bad one: a malformed or truncated file
//! keeps the records before the bad one, says which record broke, and
//! makes the command exit 65 once all the state is printed.

use std::path::PathBuf;

use clap::Args;

use super::{exit, print_out, CliError};
use crate::bgp::{mrt, replay, state::BgpCore};

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
