//! Replay: re-derive a stored campaign's verdicts from its stored rounds
//! (issue 29), so that any verdict can be checked against its evidence. A
//! fresh engine ([`CampaignEngine`], the one the loop uses) is fed rounds
//! `from..=until` as stored, and its verdicts are compared with the stored
//! ones that start in that range ([`compare`], pure).
//!
//! What is compared is a verdict's identity and extent: scope, target,
//! kind, first round and first good round (none while ongoing). The
//! stored verdicts were computed over the loop's sliding window, so a
//! replay that starts later than `window_rounds` before a verdict, or ends
//! before it closed, can differ at the edges: choose `from` at least a
//! window (and a verdict's baseline) before the verdicts to check.

use std::collections::BTreeSet;

use darkwatch_correlate as core;
use darkwatch_schema::inputs::pfx2as::Pfx2As;

use super::edges::RoundSource;
use super::feed::CampaignEngine;
use super::LOAD_ROUNDS;
use crate::store::{Campaign, Spaces, StoreError, Verdict};

/// What identifies a verdict for replay: scope, target, kind, first round,
/// first good round.
pub type VerdictKey = (core::Scope, String, core::Kind, u64, Option<u64>);

/// Stored and recomputed verdicts, side by side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// In both.
    pub same: Vec<VerdictKey>,
    /// Stored, not recomputed.
    pub only_stored: Vec<VerdictKey>,
    /// Recomputed, not stored.
    pub only_recomputed: Vec<VerdictKey>,
}

impl Comparison {
    pub fn identical(&self) -> bool {
        self.only_stored.is_empty() && self.only_recomputed.is_empty()
    }
}

/// Compares the verdicts starting in `from..=until` of both sides. A
/// recomputed verdict ongoing at `until` matches a stored one that ended
/// after `until` (the replay cannot see that end).
pub fn compare(
    stored: &[Verdict],
    recomputed: &[core::Verdict],
    from: u64,
    until: u64,
) -> Comparison {
    let inside = |start: u64| (from..=until).contains(&start);
    let cut = |end: Option<u64>| end.filter(|&e| e <= until);
    let a: BTreeSet<VerdictKey> = stored
        .iter()
        .filter(|v| inside(v.start_round))
        .map(|v| {
            (
                v.scope,
                v.target.clone(),
                v.kind,
                v.start_round,
                cut(v.end_round),
            )
        })
        .collect();
    let b: BTreeSet<VerdictKey> = recomputed
        .iter()
        .filter(|v| inside(v.start_round))
        .map(|v| {
            (
                v.scope,
                v.target.clone(),
                v.kind,
                v.start_round,
                cut(v.end_round),
            )
        })
        .collect();
    Comparison {
        same: a.intersection(&b).cloned().collect(),
        only_stored: a.difference(&b).cloned().collect(),
        only_recomputed: b.difference(&a).cloned().collect(),
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot replay {campaign}: {why}")]
    Engine {
        campaign: String,
        why: core::CorrelateError,
    },
}

/// Recomputes `campaign`'s verdicts over `from..=until` from `source`'s
/// stored rounds and compares them with its stored verdicts.
pub async fn replay<R: RoundSource>(
    source: &R,
    campaign: &Campaign,
    params: &core::Params,
    pfx2as: Option<&Pfx2As>,
    from: u64,
    until: u64,
) -> Result<(core::Output, Comparison), ReplayError> {
    let invalid = |why| ReplayError::Engine {
        campaign: campaign.name.clone(),
        why,
    };
    let mut st = CampaignEngine::new(campaign, params, pfx2as).map_err(invalid)?;
    st.engine_mut().set_window(from, until).map_err(invalid)?;
    st.set_spaces(Spaces::new(&source.campaign_spaces(&campaign.name).await?));
    let mut r = from;
    while r <= until {
        let end = (r + LOAD_ROUNDS - 1).min(until);
        let raw = source.stored_rounds(&campaign.name, r..=end).await?;
        for round in r..=end {
            st.feed_round(&raw, round)?;
        }
        r = end + 1;
    }
    let out = st.engine_mut().output();
    let stored = source.stored_verdicts(&campaign.name).await?;
    let cmp = compare(&stored, &out.verdicts, from, until);
    Ok((out, cmp))
}
