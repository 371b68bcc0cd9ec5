//! The SQL store as the loop's edges: every [`Store`] is a [`RoundSource`]
//! and a [`VerdictSink`]. Summaries are written as `crate::signals` lays
//! them out (the read side of the same rows).

use std::ops::RangeInclusive;

use super::edges::{RoundSource, StoredRounds, SummaryWrite, VerdictSink};
use crate::signals::{store_summary_rounds, MAX_ROWS_PER_PASS};
use crate::store::{Campaign, Store, StoreError, StoredSpace, Verdict, VpFault};

impl<S: Store> RoundSource for S {
    async fn read_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.list_campaigns().await
    }

    async fn reporting_agents(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.round_agents(campaign, rounds).await
    }

    async fn round_fingerprints(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        self.round_versions(campaign, rounds).await
    }

    async fn stored_rounds(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<StoredRounds, StoreError> {
        Ok(StoredRounds {
            rows: self.row_observations(campaign, rounds.clone()).await?,
            records: self.round_records(campaign, rounds.clone()).await?,
            control: self.control_observations(campaign, rounds.clone()).await?,
            traces: self.traces(campaign, rounds.clone()).await?,
            probe_errors: self.probe_errors(campaign, rounds).await?,
        })
    }

    async fn campaign_spaces(&self, campaign: &str) -> Result<Vec<StoredSpace>, StoreError> {
        self.block_spaces(campaign).await
    }

    async fn stored_verdicts(&self, campaign: &str) -> Result<Vec<Verdict>, StoreError> {
        self.list_verdicts(Some(campaign), None).await
    }

    async fn stored_vp_faults(&self, campaign: &str) -> Result<Vec<VpFault>, StoreError> {
        self.list_vp_faults(Some(campaign), None).await
    }
}

impl<S: Store> VerdictSink for S {
    async fn write_verdicts(&self, vs: &[Verdict]) -> Result<Vec<i64>, StoreError> {
        self.save_verdicts(vs).await
    }

    async fn write_vp_faults(&self, fs: &[VpFault]) -> Result<(), StoreError> {
        self.save_vp_faults(fs).await.map(|_| ())
    }

    async fn write_summaries(&self, s: SummaryWrite<'_>) -> Result<usize, StoreError> {
        store_summary_rounds(
            self,
            s.campaign,
            s.window,
            s.vps,
            s.digests,
            s.out,
            s.now_ms,
            MAX_ROWS_PER_PASS,
        )
        .await
    }

    async fn purge_raw_rounds(
        &self,
        campaign: &str,
        before_round: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.purge_raw(campaign, before_round, limit).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.try_lease(name, holder, now_ms, ttl_ms).await
    }

    async fn hand_back_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.release_lease(name, holder).await
    }

    async fn lease_holders(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.live_holders(prefix, now_ms).await
    }
}
