//! The correlation loop of `serve`: every `every_secs`, share the campaigns
//! among the collectors on the database (`super::sharing`), run a pass over
//! each campaign this collector holds, then delete those campaigns' raw
//! rounds past the retention. It reads and writes only through its edges
//! (`super::edges`) and takes time from the [`crate::clock::Clock`] it is
//! given, so unit tests drive it pass by pass over the in-memory store.
//!
//! A pass that fails or panics stops neither the loop nor the other
//! campaigns ([`correlate_campaigns`]): it is logged, a panic is counted in
//! [`CorrelationStats`] (`darkwatch_correlation_panics_total`), and the
//! campaign's state is rebuilt from the store at its next pass.
//!
//! Each turn first checks the prefix-to-AS file (`crate::reload`): a
//! changed file that parses replaces the routes and every engine is
//! rebuilt with the new prefix scopes; one that does not is counted and
//! the routes before are kept. The parse runs in the loop's task, as the
//! first load does (a few seconds for a full file, once a day).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use darkwatch_schema::inputs::pfx2as::Pfx2As;
use futures::FutureExt;

use crate::reload::Reloading;

use super::config::CorrelationSettings;
use super::correlator::{Correlator, PassStats};
use super::edges::{RoundSource, VerdictSink};
use super::retention::{purge_old_rounds, RetentionSettings};
use super::sharing::share_campaigns;
use super::stats::CorrelationStats;
use crate::alerts::Alerts;
use crate::clock::SharedClock;
use crate::store::{Campaign, StoreError};

/// What the loop runs with, apart from its edges.
pub struct LoopSetup {
    pub settings: CorrelationSettings,
    pub retention: RetentionSettings,
    /// This collector's lease holder id (unique per process).
    pub holder: String,
    /// Routed prefixes and their origin ASes (`crate::inputs::open_pfx2as`),
    /// read again when the file changes.
    pub pfx2as: Option<Arc<Reloading<Pfx2As>>>,
    pub alerts: Alerts,
    /// Read by `crate::metrics` at scrape time.
    pub stats: Arc<CorrelationStats>,
    pub clock: SharedClock,
}

/// The loop's state between passes: the campaigns held and their engines.
#[derive(Default)]
pub struct LoopState {
    pub held: BTreeSet<String>,
    pub correlator: Correlator,
    /// Generation of the prefix-to-AS data the engines were built with.
    pub pfx2as_generation: u64,
}

/// How one campaign's pass in the loop ended ([`correlate_campaigns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOutcome {
    Done(PassStats),
    /// The store (or a stored record) failed: logged, retried next pass.
    Failed,
    /// The pass panicked: caught, logged, counted in
    /// `darkwatch_correlation_panics_total`, retried next pass.
    Panicked,
}

/// One pass of the loop over `campaigns`, each on its own: a pass that
/// fails or panics (a bug in the correlation core must not stop the loop,
/// nor the other campaigns) is logged at error level, the campaign's state
/// is dropped (the next pass rebuilds it from the store) and the loop goes
/// on. A panic is counted in `setup.stats`; events go to `setup.alerts`.
pub async fn correlate_campaigns<R: RoundSource, W: VerdictSink>(
    correlator: &mut Correlator,
    source: &R,
    sink: &W,
    campaigns: &[Campaign],
    setup: &LoopSetup,
) -> Vec<PassOutcome> {
    let mut outcomes = Vec::with_capacity(campaigns.len());
    let pfx2as = setup.pfx2as.as_ref().map(|r| r.current().0);
    for c in campaigns {
        let now_ms = setup.clock.now_ms();
        let pass = correlator.pass(source, sink, c, &setup.settings, pfx2as.as_deref(), now_ms);
        let outcome = match std::panic::AssertUnwindSafe(pass).catch_unwind().await {
            Ok(Ok((_, events, stats))) => {
                if stats.rounds_loaded > 0 {
                    tracing::debug!(campaign = %c.name, loaded = stats.rounds_loaded, recomputed = stats.rounds_recomputed, rebuilt = stats.rebuilt, "incremental pass");
                }
                for e in events {
                    tracing::info!(event = %e.summary(), "verdict");
                    setup.alerts.send(e);
                }
                PassOutcome::Done(stats)
            }
            Ok(Err(e)) => {
                // Start this campaign over from the store: the pass may
                // have stopped between loading rounds.
                correlator.forget(&c.name);
                tracing::error!(campaign = %c.name, error = %e, "correlation pass failed");
                PassOutcome::Failed
            }
            Err(panic) => {
                correlator.forget(&c.name);
                setup.stats.panicked(&c.name);
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(campaign = %c.name, panic = %why, "correlation pass panicked; the campaign is rebuilt from the store at the next pass");
                PassOutcome::Panicked
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// One turn of the loop: share the campaigns, correlate the ones held,
/// purge their old raw rounds. Returns each held campaign's outcome, or
/// the error that kept this collector from sharing (nothing was judged).
pub async fn loop_pass<R: RoundSource, W: VerdictSink>(
    state: &mut LoopState,
    source: &R,
    sink: &W,
    setup: &LoopSetup,
) -> Result<Vec<(String, PassOutcome)>, StoreError> {
    let was_correlating = !state.held.is_empty();
    let ttl_ms = setup.settings.lease_ttl_ms();
    let now_ms = setup.clock.now_ms();
    let mine =
        share_campaigns(source, sink, &setup.holder, &mut state.held, now_ms, ttl_ms).await?;
    state.correlator.retain(&state.held);
    if !was_correlating && !mine.is_empty() {
        tracing::info!(holder = %setup.holder, campaigns = mine.len(), "this collector now runs the correlation");
    } else if was_correlating && mine.is_empty() {
        tracing::warn!("lost the correlator lease to another collector");
    }
    if let Some(r) = &setup.pfx2as {
        reload(state, r, &setup.stats);
    }
    let outcomes = correlate_campaigns(&mut state.correlator, source, sink, &mine, setup).await;
    for c in &mine {
        match purge_old_rounds(sink, c, &setup.retention, setup.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(campaign = %c.name, rows = n, "deleted raw rounds past the retention")
            }
            Err(e) => tracing::error!(campaign = %c.name, error = %e, "retention failed"),
        }
    }
    Ok(mine.into_iter().map(|c| c.name).zip(outcomes).collect())
}

/// Reads the prefix-to-AS file again if it changed (a bad new file keeps
/// the data and is counted); new data rebuilds every campaign's engine,
/// whose prefix scopes come from it.
fn reload(state: &mut LoopState, r: &Reloading<Pfx2As>, stats: &CorrelationStats) {
    stats.reload_checked(r.what, &r.check());
    let (_, generation) = r.current();
    if generation != state.pfx2as_generation {
        state.correlator.forget_all();
        state.pfx2as_generation = generation;
    }
}

/// The correlation loop of `serve` ([`loop_pass`] every `every_secs`),
/// over a store that is both edges.
pub async fn run<S: RoundSource + VerdictSink + 'static>(store: Arc<S>, setup: LoopSetup) {
    let every = Duration::from_secs_f64(setup.settings.every_secs.max(0.1));
    let mut state = LoopState::default();
    loop {
        if let Err(e) = loop_pass(&mut state, store.as_ref(), store.as_ref(), &setup).await {
            tracing::error!(error = %e, "cannot share the campaigns' correlation");
        }
        tokio::time::sleep(every).await;
    }
}
