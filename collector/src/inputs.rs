//! Loading of the published input files the collector reads while it
//! runs (parsing is `darkwatch_schema::inputs`'): here, what `serve` does
//! with a file that fails or has bad lines. Files are held by
//! `crate::reload`, which reads them again when they change.

use std::path::Path;
use std::sync::Arc;

use darkwatch_schema::inputs::{self, asnames::AsNames, pfx2as::Pfx2As};

use crate::reload::Reloading;

/// Parses the prefix-to-AS file, logging each skipped line (up to
/// [`inputs::MAX_REPORTED_LINES`], then their count) and what was loaded.
pub fn parse_pfx2as(path: &Path) -> Result<Pfx2As, String> {
    let (m, skipped) = Pfx2As::load(path).map_err(|e| e.to_string())?;
    inputs::report_skipped(&skipped, |msg| tracing::warn!("{msg}"));
    tracing::info!(
        file = %path.display(),
        prefixes = m.len(),
        skipped_lines = skipped.len(),
        "loaded the prefix-to-AS file"
    );
    Ok(m)
}

/// The prefix-to-AS file for `serve`'s correlation, reloaded when it
/// changes. A file that does not load is logged and `what` (e.g.
/// "correlating") goes on without AS grouping (`serve` checks the file
/// before it starts, so this is a file that broke in between).
pub fn open_pfx2as(path: &Path, what: &str) -> Option<Arc<Reloading<Pfx2As>>> {
    match Reloading::open(path, "pfx2as", parse_pfx2as) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the prefix-to-AS file; {what} without AS grouping");
            None
        }
    }
}

/// Parses the AS names file, logging skipped lines like [`parse_pfx2as`].
pub fn parse_as_names(path: &Path) -> Result<AsNames, String> {
    let (n, skipped) = AsNames::load(path).map_err(|e| e.to_string())?;
    inputs::report_skipped(&skipped, |msg| tracing::warn!("{msg}"));
    tracing::info!(
        file = %path.display(),
        ases = n.len(),
        skipped_lines = skipped.len(),
        "loaded the AS names file"
    );
    Ok(n)
}
