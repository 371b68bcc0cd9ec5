//! The census that travels apart from the assignments (`GET
//! /v1/census/{campaign}`, see `docs/api.md`): fetched only when a
//! campaign's census tag changed, held compactly (`CensusSet`), and cached
//! on disk as received, beside the assignments, so that an agent started
//! while the collector is down still has it.

use std::path::PathBuf;

use darkwatch_schema::{Assignments, CensusSet};

use super::Agent;

impl Agent {
    pub(super) fn census_path(&self, campaign: &str) -> PathBuf {
        self.state_dir
            .join("census")
            .join(format!("{campaign}.zst"))
    }

    /// Fills in the census of each campaign of `a` that names it by tag:
    /// the one `previous` holds under the same tag, else fetched. A census
    /// that cannot be fetched keeps the previous one (or none) and its tag,
    /// and the next poll asks again.
    pub(super) async fn fill_census(&self, a: &mut Assignments, previous: Option<&Assignments>) {
        for c in &mut a.campaigns {
            let Some(tag) = c.census_tag.clone() else {
                continue;
            };
            let prev = previous.and_then(|p| p.campaigns.iter().find(|p| p.name == c.name));
            if let Some(p) = prev.filter(|p| p.census_tag.as_deref() == Some(tag.as_str())) {
                c.census = p.census.clone();
                continue;
            }
            match self.reporter.census(&c.name).await {
                Ok(f) => {
                    if darkwatch_schema::valid_name(&c.name) {
                        let path = self.census_path(&c.name);
                        let saved = path
                            .parent()
                            .map_or(Ok(()), std::fs::create_dir_all)
                            .and_then(|()| super::write_atomic(&path, &f.encoded));
                        if let Err(e) = saved {
                            tracing::warn!(campaign = %c.name, error = %e, "cannot cache the census");
                        }
                    }
                    tracing::info!(
                        campaign = %c.name,
                        blocks = f.set.block_count(),
                        addrs = f.set.addr_count(),
                        bytes = f.encoded.len(),
                        "census received"
                    );
                    c.census = f.set;
                    c.census_tag = f.tag.or(Some(tag));
                }
                Err(e) => {
                    tracing::warn!(campaign = %c.name, error = %e, "cannot fetch the census; keeping the one held");
                    c.census = prev.map(|p| p.census.clone()).unwrap_or_default();
                    c.census_tag = prev.and_then(|p| p.census_tag.clone());
                    self.reporter.forget_assignments_tag();
                }
            }
        }
    }

    /// Caches `a` on disk, without the census that travels apart (it has
    /// files of its own).
    pub(super) fn save_assignments(&self, a: &mut Assignments) {
        let apart: Vec<CensusSet> = a
            .campaigns
            .iter_mut()
            .map(|c| match c.census_tag {
                Some(_) => std::mem::take(&mut c.census),
                None => CensusSet::default(),
            })
            .collect();
        if let Err(e) = super::save_json(&self.assignments_path(), a) {
            tracing::warn!(error = %e, "cannot cache assignments");
        }
        for (c, census) in a.campaigns.iter_mut().zip(apart) {
            if c.census_tag.is_some() {
                c.census = census;
            }
        }
    }

    /// The census files of cached assignments `a` (written by
    /// [`Self::fill_census`] before the assignments were).
    pub(super) fn load_cached_census(&self, a: &mut Assignments) {
        for c in &mut a.campaigns {
            if c.census_tag.is_none() || !darkwatch_schema::valid_name(&c.name) {
                continue;
            }
            let path = self.census_path(&c.name);
            match std::fs::read(&path).map(|b| CensusSet::decode(&b)) {
                Ok(Ok(set)) => c.census = set,
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable census file")
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "no cached census")
                }
            }
        }
    }
}
