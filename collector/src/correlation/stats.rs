//! What the loop counts, in a plain struct that `crate::metrics` reads at
//! scrape time: correlation records here and never calls metrics back.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters of the correlation loop, shared with the metrics renderer.
#[derive(Debug, Default)]
pub struct CorrelationStats {
    panics: Mutex<BTreeMap<String, u64>>,
    /// Per input file and outcome (`loaded`, `refused`): changed files read.
    reloads: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl CorrelationStats {
    /// Records a correlation pass over `campaign` that panicked (the loop
    /// caught it and goes on).
    pub fn panicked(&self, campaign: &str) {
        // A poisoned lock only means another thread panicked mid-increment;
        // the map is still usable.
        let mut m = self.panics.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(campaign.to_string()).or_default() += 1;
    }

    /// Panics caught so far in `campaign`'s passes.
    pub fn panics(&self, campaign: &str) -> u64 {
        self.all_panics().get(campaign).copied().unwrap_or(0)
    }

    /// Counts what a check of input file `what` did (see
    /// [`crate::reload::Reloading::check`]); an unchanged file counts nothing.
    pub fn reload_checked(&self, what: &str, outcome: &crate::reload::Outcome) {
        use crate::reload::Outcome;
        match outcome {
            Outcome::Loaded { .. } => self.input_reloaded(what, true),
            Outcome::Kept { .. } => self.input_reloaded(what, false),
            Outcome::Unchanged => {}
        }
    }

    /// Records a changed input file `what` read again: `loaded`, or
    /// refused (the data before is kept).
    pub fn input_reloaded(&self, what: &str, loaded: bool) {
        let outcome = if loaded { "loaded" } else { "refused" };
        let mut m = self.reloads.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((what.to_string(), outcome)).or_default() += 1;
    }

    /// Changed input files read, by input and outcome.
    pub fn all_reloads(&self) -> BTreeMap<(String, &'static str), u64> {
        self.reloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Panics caught so far, by campaign.
    pub fn all_panics(&self) -> BTreeMap<String, u64> {
        self.panics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
