//! `serve` and `check-config`: the HTTP API, the correlation loop and the
//! BGP input (`[bgp]`), and the offline check of the config file that
//! `serve --config` reads.
//!
//! Both read the configured input files the same way ([`check_inputs`]):
//! a prefix-to-AS or AS names file that cannot be used (missing,
//! unreadable, corrupt compression, not one usable line) stops `serve`
//! before it binds, rather than letting it run with AS grouping or names
//! silently off, and fails `check-config` with the same message.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{exit, open, read_input, warn_skipped, CliError, ServeArgs};
use crate::bgp::{hub::BgpHub, listen, settings::BgpSettings};
use crate::clock::SharedClock;
use crate::config::{self, FileConfig, ServeFlags};
use crate::correlation::CorrelationSettings;
use crate::names::Names;
use crate::reload::Reloading;
use crate::server;
use darkwatch_schema::inputs::asnames::AsNames;
use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::inputs::InputError;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "collector".into())
}

pub(super) async fn serve(
    db: Option<String>,
    args: ServeArgs,
    clock: SharedClock,
) -> Result<(), CliError> {
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
    // Checked here, before the database and the socket; the correlation
    // loop loads the file again when it starts.
    let inputs = check_inputs(&cfg.correlation).map_err(|(e, code)| CliError::new(code, e))?;
    // One holder for the API and the alerts, so that a reload of the file
    // reaches both.
    let names = Names::new(inputs.as_names);
    let names_file = match &cfg.correlation.as_names {
        Some(p) => Some(
            Reloading::open(p, "as_names", crate::inputs::parse_as_names)
                .map_err(|e| CliError::new(exit::DATAERR, e))?,
        ),
        None => None,
    };
    let store = Arc::new(open(&cfg.db, clock.as_ref()).await?);
    let alerts =
        crate::alerts::Alerts::from_config(cfg.alerts.as_ref(), Some(store.clone()), names.clone())
            .map_err(|e| CliError::new(exit::DATAERR, e))?;
    // Several collectors may share one database: each has its own holder id
    // and correlates the campaigns whose leases it holds.
    let holder = format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    );
    let metrics = Arc::new(crate::metrics::Metrics::default());
    metrics.attach_alerts(alerts.stats());
    let bgp_tasks = match &cfg.bgp {
        Some(b) => start_bgp(b, &cfg, &store, &metrics, &clock).await?,
        None => Vec::new(),
    };
    // The prefix-to-AS file is read in the loop's task, as before the
    // split: a large file does not hold up listening.
    let setup = crate::correlation::LoopSetup {
        settings: cfg.correlation.clone(),
        retention: cfg.retention.clone(),
        holder,
        pfx2as: None,
        alerts,
        stats: metrics.correlation_stats(),
        clock: clock.clone(),
    };
    let loop_store = store.clone();
    let correlator = tokio::spawn(async move {
        let pfx2as = setup.settings.pfx2as.as_deref();
        let pfx2as = pfx2as.and_then(|p| crate::inputs::open_pfx2as(p, "correlating"));
        crate::correlation::run(
            loop_store,
            crate::correlation::LoopSetup { pfx2as, ..setup },
        )
        .await
    });
    // AS names are republished like pfx2as: the file is checked every
    // minute (a changed file is parsed on a runtime worker: well under a
    // second at real size, about once a day).
    let names_task = names_file.map(|file| {
        let (names, stats) = (names.clone(), metrics.correlation_stats());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                stats.reload_checked(file.what, &names.follow(&file));
            }
        })
    });
    let result = server::serve(
        &cfg,
        store.clone(),
        metrics,
        clock,
        names,
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
    if let Some(t) = names_task {
        t.abort();
    }
    bgp_tasks.iter().for_each(|t| t.abort());
    store.close().await;
    result.map_err(|e| {
        let code = match e {
            server::ServeError::Tls(_) => exit::DATAERR,
            _ => exit::UNAVAILABLE,
        };
        CliError::new(code, e.to_string())
    })
}

/// Starts the BGP input of `[bgp]`: the BMP listener (bound here, so a
/// taken port stops `serve`; its address is printed like the HTTP one),
/// the MRT directory watcher and the round timer, all feeding one hub that
/// `metrics` exposes and whose closed rounds go to the store, kept as long
/// as the raw rounds (`[retention] raw_days`).
async fn start_bgp(
    b: &BgpSettings,
    cfg: &config::ServeConfig,
    store: &Arc<crate::store::SqlStore>,
    metrics: &crate::metrics::Metrics,
    clock: &SharedClock,
) -> Result<Vec<tokio::task::JoinHandle<()>>, CliError> {
    let hub = Arc::new(BgpHub::new(b.round_secs).persist());
    metrics.attach_bgp(hub.clone());
    let mut tasks = Vec::new();
    if let Some(addr) = b.bmp_listen {
        let listener = listen::bind_bmp(addr).await.map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("cannot listen for BMP on {addr}: {e}"),
            )
        })?;
        if let Ok(local) = listener.local_addr() {
            tracing::info!(%local, "BMP listening");
            println!("darkwatch-collector BMP listening on {local}");
        }
        tasks.push(tokio::spawn(listen::serve_bmp(
            listener,
            hub.clone(),
            clock.clone(),
        )));
    }
    if let Some(dir) = &b.mrt_dir {
        tasks.push(tokio::spawn(listen::watch_mrt(
            dir.clone(),
            Duration::from_secs_f64(b.mrt_scan_secs),
            hub.clone(),
        )));
    }
    tasks.push(tokio::spawn(listen::persist(
        hub.clone(),
        store.clone(),
        b.round_secs,
        u64::from(cfg.retention.raw_days),
        clock.clone(),
    )));
    tasks.push(tokio::spawn(listen::tick(hub, clock.clone(), b.round_secs)));
    Ok(tasks)
}

/// What `serve --config` checks before touching the database: the file
/// parses, merges with no flags, and its prefix-to-AS file (if any) has
/// usable lines. Returns notes for stdout: what the prefix-to-AS file holds
/// and how many of its lines were skipped (each one is logged).
pub(super) fn check_config(path: &Path) -> Result<String, CliError> {
    let bad = |e: String| CliError::new(exit::CONFIG, format!("{}: {e}", path.display()));
    let file =
        FileConfig::parse(&read_input(path, "config file")?).map_err(|e| bad(e.to_string()))?;
    let cfg = config::merge(ServeFlags::default(), file).map_err(|e| bad(e.to_string()))?;
    let mut notes = check_inputs(&cfg.correlation)
        .map(|i| i.notes)
        .map_err(|(e, _)| bad(e))?;
    if let Some(dir) = cfg.bgp.as_ref().and_then(|b| b.mrt_dir.as_ref()) {
        let n = std::fs::read_dir(dir)
            .map_err(|e| bad(format!("[bgp] mrt_dir {}: {e}", dir.display())))?
            .count();
        notes.push_str(&format!("bgp mrt_dir {}: {n} entries\n", dir.display()));
    }
    Ok(notes)
}

/// What [`check_inputs`] loaded: notes for stdout, and the AS names (empty
/// without a file), which `serve` keeps.
struct Inputs {
    notes: String,
    as_names: AsNames,
}

/// The message and exit code of an input file that cannot be used.
fn refused(what: &str, e: InputError) -> (String, u8) {
    let code = match e {
        InputError::Io { .. } => exit::NOINPUT,
        _ => exit::DATAERR,
    };
    (format!("{what}: {e}"), code)
}

/// Loads the input files `settings` names, to check that they can be used.
/// Returns notes for stdout (what each holds, how many lines were skipped;
/// each skipped line is logged), or the message and exit code of `serve`.
fn check_inputs(settings: &CorrelationSettings) -> Result<Inputs, (String, u8)> {
    let mut notes = String::new();
    if let Some(p) = &settings.pfx2as {
        let (m, skipped) =
            Pfx2As::load(p).map_err(|e| refused("prefix-to-AS file (correlation.pfx2as)", e))?;
        warn_skipped(&skipped);
        notes = format!(
            "pfx2as {}: {} prefixes, {} unparseable line(s) skipped\n",
            p.display(),
            m.len(),
            skipped.len()
        );
    }
    let mut as_names = AsNames::default();
    if let Some(p) = &settings.as_names {
        let (n, skipped) =
            AsNames::load(p).map_err(|e| refused("AS names file (correlation.as_names)", e))?;
        warn_skipped(&skipped);
        tracing::info!(file = %p.display(), ases = n.len(), skipped_lines = skipped.len(), "AS names loaded");
        notes.push_str(&format!(
            "as_names {}: {} ASes named, {} unparseable line(s) skipped\n",
            p.display(),
            n.len(),
            skipped.len()
        ));
        as_names = n;
    }
    Ok(Inputs { notes, as_names })
}
