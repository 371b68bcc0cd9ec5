//! `outages`, `status`, `timeline` and `signals`: the read model of
//! `crate::views` and `crate::signals`, printed as tables, JSON or CSV;
//! `replay`, the stored verdicts checked against their stored rounds.

use super::{exit, open_existing, print_json, print_out, read_input, warn_skipped};
use super::{
    CliError, NamesArgs, OutagesArgs, ReplayArgs, SignalsArgs, SignalsFormat, TimelineArgs,
};
use crate::clock::Clock;
use crate::config::FileConfig;
use crate::signals::{self, SignalsQuery};
use crate::store::Store;
use crate::views;
use darkwatch_schema::inputs::asnames::AsNames;
use darkwatch_schema::inputs::InputError;

/// The `--as-names` file, or no AS names without one. A file that cannot
/// be used is an error, as it is for `serve`.
pub(super) fn load_as_names(args: &NamesArgs) -> Result<AsNames, CliError> {
    let Some(path) = &args.as_names else {
        return Ok(AsNames::default());
    };
    let (n, skipped) = AsNames::load(path).map_err(|e| match e {
        InputError::Io { .. } => CliError::new(exit::NOINPUT, format!("AS names file: {e}")),
        _ => CliError::new(exit::DATAERR, format!("AS names file: {e}")),
    })?;
    warn_skipped(&skipped);
    Ok(n)
}

pub(super) async fn outages<S: Store>(
    store: &S,
    args: OutagesArgs,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let since_ms = match &args.since {
        Some(s) => Some(
            crate::timespec::parse_time(s, clock.now_ms())
                .map_err(|e| CliError::new(exit::USAGE, e))?,
        ),
        None => None,
    };
    let as_names = load_as_names(&args.names)?;
    let filter = views::OutageFilter {
        country: args.country,
        ongoing: args.ongoing,
        since_ms,
    };
    let rows = views::outages(store, &filter, &as_names).await?;
    if args.json {
        print_json(&rows)
    } else {
        print_out(&views::outages_table(&rows, clock.now_ms()))
    }
}

pub(super) async fn status<S: Store>(
    store: &S,
    json: bool,
    as_names: &AsNames,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let st = views::status(store, clock.now_ms(), as_names).await?;
    if json {
        print_json(&st)
    } else {
        print_out(&views::status_text(&st, clock.now_ms()))
    }
}

/// Reads the config (if given, for its `window_rounds`) before opening the
/// database, so that a bad file is reported as such.
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
    let store = open_existing(db, clock).await?;
    let t = signals::timeline(
        &store,
        args.country.as_deref(),
        file.correlation.window_rounds,
        clock.now_ms(),
    )
    .await?;
    if args.json {
        print_json(&t)
    } else {
        print_out(&views::timeline_text(&t))
    }
}

/// The same query as `GET /v1/signals`, from flags.
pub(super) async fn signals<S: Store>(
    store: &S,
    args: SignalsArgs,
    clock: &dyn Clock,
) -> Result<(), CliError> {
    let mut pairs = vec![
        ("scope".to_string(), args.scope),
        ("target".to_string(), args.target),
    ];
    let optional = [
        ("campaign", args.campaign),
        ("from", args.from),
        ("until", args.until),
    ];
    pairs.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?))),
    );
    pairs.extend(args.vp.into_iter().map(|v| ("vp".to_string(), v)));
    let q = SignalsQuery::from_pairs(&pairs, clock.now_ms())
        .map_err(|e| CliError::new(exit::USAGE, e.replace("query parameter ", "--")))?;
    let as_names = load_as_names(&args.names)?;
    let s = signals::signals(store, &q, clock.now_ms(), &as_names)
        .await
        .map_err(CliError::from)?;
    match args.format {
        SignalsFormat::Csv => print_out(&signals::to_csv(&s)),
        SignalsFormat::Jsonl => print_out(
            &signals::to_jsonl(&s).map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?,
        ),
    }
}

/// `replay`: `crate::correlation::replay` over the database, printed.
pub(super) async fn replay(db: &str, args: ReplayArgs, clock: &dyn Clock) -> Result<(), CliError> {
    use crate::correlation::{replay, RoundSource};
    let file = match &args.config {
        Some(p) => FileConfig::parse(&read_input(p, "config file")?)
            .map_err(|e| CliError::new(exit::DATAERR, format!("{}: {e}", p.display())))?,
        None => FileConfig::default(),
    };
    if args.from > args.until {
        return Err(CliError::new(exit::USAGE, "--from is after --until"));
    }
    let store = open_existing(db, clock).await?;
    let campaign = store
        .read_campaigns()
        .await?
        .into_iter()
        .find(|c| c.name == args.campaign)
        .ok_or_else(|| {
            CliError::new(
                exit::DATAERR,
                format!("no campaign named {:?}", args.campaign),
            )
        })?;
    let settings = &file.correlation;
    // Replaying without the routes the verdicts were built with would
    // compare other scopes: a pfx2as that cannot be read is an error here.
    let pfx2as = settings
        .pfx2as
        .as_deref()
        .map(crate::inputs::parse_pfx2as)
        .transpose()
        .map_err(|e| CliError::new(exit::DATAERR, e))?;
    let (_, cmp) = replay::replay(
        &store,
        &campaign,
        &settings.params,
        pfx2as.as_ref(),
        args.from,
        args.until,
    )
    .await
    .map_err(|e| match e {
        replay::ReplayError::Store(e) => CliError::from(e),
        e => CliError::new(exit::DATAERR, e.to_string()),
    })?;
    let mut text = format!(
        "{}: rounds {}..={}: {} verdict(s) identical, {} only stored, {} only recomputed\n",
        campaign.name,
        args.from,
        args.until,
        cmp.same.len(),
        cmp.only_stored.len(),
        cmp.only_recomputed.len()
    );
    for (side, list) in [
        ("stored only", &cmp.only_stored),
        ("recomputed only", &cmp.only_recomputed),
    ] {
        for (scope, target, kind, start, end) in list {
            let end = end.map_or("ongoing".to_string(), |e| e.to_string());
            text.push_str(&format!(
                "{side}: {scope:?} {target} {kind:?} {start}..{end}\n"
            ));
        }
    }
    print_out(&text)?;
    if cmp.identical() {
        Ok(())
    } else {
        Err(CliError::new(
            exit::DATAERR,
            "the recomputed verdicts differ from the stored ones",
        ))
    }
}
