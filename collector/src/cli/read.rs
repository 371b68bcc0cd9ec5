//! `outages`, `status` and `timeline`: the read model of `crate::views`,
//! printed as tables or JSON.

use super::{exit, open, print_json, print_out, read_input, warn_skipped};
use super::{CliError, OutagesArgs, TimelineArgs};
use crate::clock::Clock;
use crate::config::FileConfig;
use crate::store::Store;
use crate::views;
use darkwatch_schema::inputs::pfx2as::Pfx2As;

pub(super) async fn outages<S: Store>(
    store: &S,
    args: OutagesArgs,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let since_ms = match &args.since {
        Some(s) => {
            Some(views::parse_since(s, clock.now_ms()).map_err(|e| CliError::new(exit::USAGE, e))?)
        }
        None => None,
    };
    let filter = views::OutageFilter {
        country: args.country,
        ongoing: args.ongoing,
        since_ms,
    };
    let rows = views::outages(store, &filter).await?;
    if args.json {
        print_json(&rows)
    } else {
        print_out(&views::outages_table(&rows, clock.now_ms()))
    }
}

pub(super) async fn status<S: Store>(
    store: &S,
    json: bool,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let st = views::status(store, clock.now_ms()).await?;
    if json {
        print_json(&st)
    } else {
        print_out(&views::status_text(&st, clock.now_ms()))
    }
}

/// Reads the config (if given) before opening the database, so that a bad
/// file is reported as such.
pub(super) async fn timeline(
    db: &str,
    args: TimelineArgs,
    clock: &dyn Clock,
) -> Result<(), CliError> {
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
    let store = open(db, clock).await?;
    let t = views::timeline(
        &store,
        args.country.as_deref(),
        &file.correlation,
        pfx2as.as_ref(),
        clock.now_ms(),
    )
    .await?;
    if args.json {
        print_json(&t)
    } else {
        print_out(&views::timeline_text(&t))
    }
}
