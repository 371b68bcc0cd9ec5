//! The [`Correlator`]: per campaign this collector holds, a
//! [`core::Incremental`] engine fed (`super::feed`) with only the rounds
//! whose stored reports changed since the last pass
//! ([`RoundSource::round_fingerprints`]: raw rows are only ever added, so a
//! changed count is a changed round). Its output equals the batch
//! `correlate` over the window (the correlate crate's equivalence test), so
//! a fresh `Correlator` over the same store reaches the same verdicts: a
//! restarted collector, or one handed a campaign, rebuilds with one load.
//!
//! Verdicts are recomputed from stored observations on every pass, so late
//! reports (an agent's spool draining after a collector outage) refine them.
//! Which recomputed verdict continues which stored one, and which alerts
//! that gives, is decided by the pure `crate::reconcile`; [`apply`] writes
//! what it decides through the [`VerdictSink`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use darkwatch_correlate as core;
use darkwatch_schema::inputs::pfx2as::Pfx2As;
use darkwatch_schema::round_of;

use super::config::CorrelationSettings;
use super::edges::{RoundSource, SummaryWrite, VerdictSink};
use super::feed::{campaign_key, CampaignEngine};
use super::rounds::{last_complete_round, last_round_to_correlate};
use crate::alerts::AlertEvent;
use crate::reconcile::{reconcile, EventKind, Window};
use crate::store::{Campaign, Spaces, StoreError, Verdict};

/// Rounds loaded per read when a pass reloads rounds: bounds the memory of
/// a restarted collector's first pass (one full load, a few rounds at a
/// time) and of a long backfill.
pub const LOAD_ROUNDS: u64 = 4;

/// What one incremental pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Rounds read from the store (new, late or changed).
    pub rounds_loaded: usize,
    /// Rounds whose per-round stage was recomputed.
    pub rounds_recomputed: usize,
    /// True if the campaign's state was (re)built from scratch.
    pub rebuilt: bool,
}

/// The correlation state of the campaigns this collector holds: each pass
/// reads only the rounds whose stored reports changed since the last one
/// (new rounds, a late agent's spool, a purge) and re-judges. A collector
/// that gains a campaign (a lease taken over, or a restart) builds its
/// state with one full load; one that loses it drops the state.
#[derive(Default)]
pub struct Correlator {
    states: HashMap<String, CampaignEngine>,
    /// Test hook ([`Correlator::panic_once`]).
    panic_once: BTreeSet<String>,
}

/// Writes one pass's verdicts and VP faults over `window` as [`reconcile`]
/// decides, and returns the alert events (after the write, so an event
/// always names a stored verdict).
pub async fn apply<R: RoundSource, W: VerdictSink>(
    source: &R,
    sink: &W,
    campaign: &Campaign,
    window: Window,
    out: &core::Output,
    now_ms: i64,
) -> Result<Vec<AlertEvent>, StoreError> {
    let stored = source.stored_verdicts(&campaign.name).await?;
    let faults = source.stored_vp_faults(&campaign.name).await?;
    let (changes, events) = reconcile(campaign, &stored, &faults, out, window, now_ms);
    let ids = sink.write_verdicts(&changes.verdicts).await?;
    sink.write_vp_faults(&changes.faults).await?;
    Ok(events
        .iter()
        .map(|e| {
            let verdict = Verdict {
                id: ids[e.change],
                ..changes.verdicts[e.change].clone()
            };
            match e.kind {
                EventKind::Open => AlertEvent::open(&verdict),
                EventKind::Close => AlertEvent::close(&verdict),
            }
        })
        .collect())
}

/// The last round a pass over `campaign` judges now, if any.
async fn last_round_now<R: RoundSource>(
    source: &R,
    campaign: &Campaign,
    now_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let by_time = last_complete_round(now_ms, campaign.interval_secs);
    let current = round_of(now_ms, campaign.interval_secs);
    let reported = source
        .reporting_agents(&campaign.name, current.saturating_sub(2)..=current)
        .await?;
    Ok(last_round_to_correlate(by_time, current, &reported))
}

/// Contiguous runs of `changed` (sorted), each at most [`LOAD_ROUNDS`] long.
fn runs(changed: &[u64]) -> Vec<std::ops::RangeInclusive<u64>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i];
        let mut end = start;
        while i + 1 < changed.len() && changed[i + 1] == end + 1 && end - start + 1 < LOAD_ROUNDS {
            i += 1;
            end = changed[i];
        }
        i += 1;
        out.push(start..=end);
    }
    out
}

impl Correlator {
    /// Drops the state of every campaign not in `held` (leases handed back
    /// or lost: another collector may change them meanwhile).
    pub fn retain(&mut self, held: &BTreeSet<String>) {
        self.states.retain(|name, _| held.contains(name));
    }

    /// Drops one campaign's state: its next pass rebuilds it from the
    /// store (after a pass that failed or panicked half-way).
    pub fn forget(&mut self, campaign: &str) {
        self.states.remove(campaign);
    }

    /// Drops every campaign's state (their inputs changed: each is rebuilt
    /// from the store at its next pass).
    pub fn forget_all(&mut self) {
        self.states.clear();
    }

    /// Test hook: the next pass over `campaign` panics once, after it fed
    /// the changed rounds to the engine and before it judges (as a bug in
    /// the correlation core would).
    #[doc(hidden)]
    pub fn panic_once(&mut self, campaign: &str) {
        self.panic_once.insert(campaign.to_string());
    }

    /// Campaigns with a state.
    pub fn campaigns(&self) -> Vec<String> {
        let mut v: Vec<String> = self.states.keys().cloned().collect();
        v.sort();
        v
    }

    /// One incremental pass over `campaign`, reading only the rounds that
    /// changed, writing verdicts, faults and summaries through `sink`.
    pub async fn pass<R: RoundSource, W: VerdictSink>(
        &mut self,
        source: &R,
        sink: &W,
        campaign: &Campaign,
        settings: &CorrelationSettings,
        pfx2as: Option<&Pfx2As>,
        now_ms: i64,
    ) -> Result<(core::Output, Vec<AlertEvent>, PassStats), StoreError> {
        let mut stats = PassStats::default();
        let Some(last) = last_round_now(source, campaign, now_ms).await? else {
            return Ok((core::Output::default(), Vec::new(), stats));
        };
        let first = last.saturating_sub(settings.window_rounds.max(1) - 1);
        if self
            .states
            .get(&campaign.name)
            .is_none_or(|s| s.key != campaign_key(campaign))
        {
            self.states.remove(&campaign.name);
            let state = match CampaignEngine::new(campaign, &settings.params, pfx2as) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(campaign = %campaign.name, error = %e, "cannot correlate");
                    return Ok((core::Output::default(), Vec::new(), stats));
                }
            };
            stats.rebuilt = true;
            self.states.insert(campaign.name.clone(), state);
        }
        let st = self.states.get_mut(&campaign.name).expect("state");
        if let Err(e) = st.engine.set_window(first, last) {
            tracing::error!(campaign = %campaign.name, error = %e, "cannot correlate");
            return Ok((core::Output::default(), Vec::new(), stats));
        }
        let now: BTreeMap<u64, u64> = source
            .round_fingerprints(&campaign.name, first..=last)
            .await?
            .into_iter()
            .collect();
        st.versions = st.versions.split_off(&first);
        let mut changed: Vec<u64> = now
            .iter()
            .filter(|(r, v)| st.versions.get(r) != Some(v))
            .map(|(r, _)| *r)
            .chain(st.versions.keys().filter(|r| !now.contains_key(r)).copied())
            .filter(|&r| r <= last)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        // Contiguous runs of changed rounds, read a few rounds at a time
        // and decoded round by round straight into the engine.
        for rounds in runs(&changed) {
            let raw = source.stored_rounds(&campaign.name, rounds.clone()).await?;
            if raw
                .records
                .iter()
                .any(|r| st.spaces.get(&r.space).is_none())
            {
                st.spaces = Spaces::new(&source.campaign_spaces(&campaign.name).await?);
            }
            stats.rounds_loaded += (rounds.end() - rounds.start() + 1) as usize;
            for r in rounds {
                st.feed_round(&raw, r)?;
                match now.get(&r) {
                    Some(&v) => st.versions.insert(r, v),
                    None => st.versions.remove(&r),
                };
            }
        }
        if self.panic_once.remove(&campaign.name) {
            panic!("test hook: correlation of {} panics", campaign.name);
        }
        let out = st.engine.output();
        stats.rounds_recomputed = st.engine.recomputed();
        let window = Window {
            first_round: first,
            last_round: last,
        };
        let events = apply(source, sink, campaign, window, &out, now_ms).await?;
        sink.write_summaries(SummaryWrite {
            campaign,
            window: first..=last,
            vps: &st.engine.vps(),
            digests: &st.engine.round_digests(),
            out: &out,
            now_ms,
        })
        .await?;
        Ok((out, events, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_rounds_are_read_in_short_contiguous_runs() {
        assert_eq!(runs(&[]), Vec::<std::ops::RangeInclusive<u64>>::new());
        assert_eq!(
            runs(&[3, 4, 5, 6, 7, 9, 11, 12]),
            [3..=6, 7..=7, 9..=9, 11..=12]
        );
    }
}
