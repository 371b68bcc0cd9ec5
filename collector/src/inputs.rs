//! Loading of the published input files the collector reads at start-up
//! (parsing is `darkwatch_schema::inputs`'): here, what `serve` does with
//! a file that fails or has bad lines.

use darkwatch_schema::inputs::{self, pfx2as::Pfx2As};

/// Loads the prefix-to-AS file for `serve`, logging each skipped line (up to
/// [`inputs::MAX_REPORTED_LINES`], then their count) and what was loaded. A
/// file that does not load is logged and ignored: `what` (e.g. "correlating")
/// then goes on without AS grouping.
pub fn load_pfx2as(path: &std::path::Path, what: &str) -> Option<Pfx2As> {
    match Pfx2As::load(path) {
        Ok((m, skipped)) => {
            inputs::report_skipped(&skipped, |msg| tracing::warn!("{msg}"));
            tracing::info!(
                file = %path.display(),
                prefixes = m.len(),
                skipped_lines = skipped.len(),
                "{what} with the prefix-to-AS file"
            );
            Some(m)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot load the prefix-to-AS file; {what} without AS grouping");
            None
        }
    }
}
