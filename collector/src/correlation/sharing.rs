//! Correlation sharing among the collectors on one database: a lease per
//! campaign and a membership lease per live collector. Each collector takes
//! up to its fair share of campaigns and hands back the last ones by name,
//! so collectors agree without talking. Leases are read and written through
//! the [`VerdictSink`], the campaigns read through the [`RoundSource`].

use std::collections::BTreeSet;

use super::edges::{RoundSource, VerdictSink};
use crate::store::{Campaign, StoreError};

/// Prefix of the per-campaign correlation leases (`correlator:CAMPAIGN`).
pub const LEASE: &str = "correlator";

/// Prefix of the leases that say which collectors are running.
pub const MEMBER_LEASE: &str = "member:";

/// Lease of one campaign's correlation.
pub fn campaign_lease(campaign: &str) -> String {
    format!("{LEASE}:{campaign}")
}

/// How many campaigns each of `members` live collectors correlates: an
/// even share, rounded up so that every campaign has room.
pub fn fair_share(campaigns: usize, members: usize) -> usize {
    campaigns.div_ceil(members.max(1))
}

/// Which campaigns to hand back so that `held` fits `share`: the last ones
/// by name, so that collectors agree without talking.
pub fn surplus(held: &BTreeSet<String>, share: usize) -> Vec<String> {
    held.iter().skip(share).cloned().collect()
}

/// Takes, keeps and hands back per-campaign leases for one pass: this
/// collector renews its membership, keeps the campaigns it holds up to its
/// fair share among live collectors, and takes free (or expired) ones up to
/// that share. A lease is never taken from a live holder, so a campaign
/// moves only when its holder hands it back or dies. Returns the campaigns
/// to correlate in this pass.
pub async fn share_campaigns<R: RoundSource, W: VerdictSink>(
    source: &R,
    sink: &W,
    holder: &str,
    held: &mut BTreeSet<String>,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Vec<Campaign>, StoreError> {
    sink.take_lease(&format!("{MEMBER_LEASE}{holder}"), holder, now_ms, ttl_ms)
        .await?;
    let members = sink.lease_holders(MEMBER_LEASE, now_ms).await?.len();
    let campaigns = source.read_campaigns().await?;
    let names: BTreeSet<&str> = campaigns.iter().map(|c| c.name.as_str()).collect();
    let share = fair_share(campaigns.len(), members);
    let gone: Vec<String> = held
        .iter()
        .filter(|c| !names.contains(c.as_str()))
        .cloned()
        .collect();
    for c in gone.into_iter().chain(surplus(held, share)) {
        sink.hand_back_lease(&campaign_lease(&c), holder).await?;
        held.remove(&c);
    }
    for c in held.clone() {
        if !sink
            .take_lease(&campaign_lease(&c), holder, now_ms, ttl_ms)
            .await?
        {
            tracing::warn!(campaign = %c, "lost a campaign's correlation lease");
            held.remove(&c);
        }
    }
    for c in &names {
        if held.len() >= share {
            break;
        }
        if !held.contains(*c)
            && sink
                .take_lease(&campaign_lease(c), holder, now_ms, ttl_ms)
                .await?
        {
            held.insert(c.to_string());
        }
    }
    Ok(campaigns
        .into_iter()
        .filter(|c| held.contains(&c.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaigns_are_shared_evenly_and_handed_back_by_name() {
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(1, 2), 1);
        assert_eq!(fair_share(3, 0), 3);
        assert_eq!(fair_share(0, 3), 0);
        let held: BTreeSet<String> = ["d", "a", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(surplus(&held, 1), ["c", "d"]);
        assert!(surplus(&held, 3).is_empty());
    }
}
