//! Opening a [`SqlStore`] and the [`Store`] trait over it: each method
//! goes to the topic module that holds its SQL (`agents`, `observations`,
//! `rounds`, `census`, `summaries`, `verdicts`, `leases`, `timing`,
//! `purge`); the schema is in `migrations`, row encoding in `codec`, batch
//! writes and the SQLite group commit in `ingest`.
//!
//! This module is the top of `store/`: it uses every topic module and none
//! uses it, so the topic modules depend only on `sql` (the connection) and
//! on lower helpers, never back through the dispatch.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use darkwatch_correlate::Scope;
use darkwatch_schema::{BatchAck, CensusBlock, ReportBatch};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use tokio::sync::mpsc;

use super::codec::unavailable;
use super::ingest::{group_writer, GROUP_QUEUE};
use super::sql::SqlStore;
use super::url::{resolve_url, Backend};
use super::{
    agents, census, leases, migrations, observations, purge, rounds, summaries, timing, verdicts,
    AgentCoverage, AgentInfo, AgentObservation, AgentProbeErrors, AgentTrace, AuthOutcome,
    Campaign, CampaignSpec, ReportedTiming, RoundRecord, ScopeSummary, Store, StoreCounts,
    StoreError, StoredSpace, SummaryKey, SummaryRound, Verdict, VpFault,
};
use crate::clock::{Clock, SystemClock};

impl SqlStore {
    /// Connects to the database named by `url` (see [`resolve_url`]) and
    /// applies pending migrations, timestamped by the system clock.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &SystemClock).await
    }

    /// [`SqlStore::open`], with the clock that timestamps migrations.
    pub async fn open_with(url: &str, clock: &dyn Clock) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = resolve_url(url)?;
        let opts = AnyConnectOptions::from_str(&url).map_err(|_| StoreError::Url(url.clone()))?;
        let pool = AnyPoolOptions::new()
            // SQLite has a single writer anyway; a few readers are enough.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            "PRAGMA synchronous=FULL",
                            "PRAGMA busy_timeout=10000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(unavailable)?;
        let writer = (backend == Backend::Sqlite).then(|| {
            let (tx, rx) = mpsc::channel(GROUP_QUEUE);
            tokio::spawn(group_writer(pool.clone(), rx));
            tx
        });
        let store = SqlStore {
            pool,
            backend,
            writer,
            touched: Arc::new(Mutex::new(HashMap::new())),
            partitions_day: Arc::new(AtomicI64::new(i64::MIN)),
        };
        migrations::migrate(&store.pool, store.backend, clock.now_ms()).await?;
        if let Err(e) = store.ensure_partitions(clock.now_ms()).await {
            // Rows land in the default partition meanwhile; retention
            // tries again.
            tracing::warn!(error = %e, "cannot create the raw tables' day partitions yet");
        }
        let campaigns = agents::list_campaigns(&store).await?;
        rounds::record_current_spaces(&store, &campaigns, clock.now_ms()).await?;
        Ok(store)
    }
}

impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn add_agent(&self, name: &str, token_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        agents::add_agent(self, name, token_hash, now_ms).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>, StoreError> {
        agents::list_agents(self).await
    }

    async fn revoke_agent(&self, name: &str) -> Result<(), StoreError> {
        agents::revoke_agent(self, name).await
    }

    async fn rotate_agent(&self, name: &str, token_hash: &str) -> Result<(), StoreError> {
        agents::rotate_agent(self, name, token_hash).await
    }

    async fn remove_agent(&self, name: &str) -> Result<(), StoreError> {
        agents::remove_agent(self, name).await
    }

    async fn authenticate(&self, token_hash: &str) -> Result<AuthOutcome, StoreError> {
        agents::authenticate(self, token_hash).await
    }

    async fn touch_agent(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        agents::touch_agent(self, name, now_ms).await
    }

    async fn put_campaign(
        &self,
        spec: &CampaignSpec,
        replace: bool,
        now_ms: i64,
    ) -> Result<Campaign, StoreError> {
        agents::put_campaign(self, spec, replace, now_ms).await
    }

    async fn list_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        agents::list_campaigns(self).await
    }

    async fn remove_campaign(&self, name: &str) -> Result<(), StoreError> {
        agents::remove_campaign(self, name).await
    }

    async fn campaigns_for_agent(&self, agent: &str) -> Result<Vec<Campaign>, StoreError> {
        agents::campaigns_for_agent(self, agent).await
    }

    async fn ingest(
        &self,
        agent: &str,
        batch: &ReportBatch,
        now_ms: i64,
    ) -> Result<BatchAck, StoreError> {
        observations::ingest(self, agent, batch, now_ms).await
    }

    async fn observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<AgentObservation>, StoreError> {
        observations::observations(self, campaign, rounds).await
    }

    async fn row_observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<AgentObservation>, StoreError> {
        observations::row_observations(self, campaign, rounds).await
    }

    async fn round_records(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<RoundRecord>, StoreError> {
        rounds::round_records(self, campaign, rounds).await
    }

    async fn block_spaces(&self, campaign: &str) -> Result<Vec<StoredSpace>, StoreError> {
        rounds::block_spaces(self, campaign).await
    }

    async fn purge_raw(
        &self,
        campaign: &str,
        before_round: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        purge::purge_raw(self, campaign, before_round, limit).await
    }

    async fn round_agents(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        observations::round_agents(self, campaign, rounds).await
    }

    async fn round_versions(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        observations::round_versions(self, campaign, rounds).await
    }

    async fn control_observations(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<AgentObservation>, StoreError> {
        observations::control_observations(self, campaign, rounds).await
    }

    async fn traces(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<AgentTrace>, StoreError> {
        observations::traces(self, campaign, rounds).await
    }

    async fn probe_errors(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<AgentProbeErrors>, StoreError> {
        observations::probe_errors(self, campaign, rounds).await
    }

    async fn save_verdicts(&self, vs: &[Verdict]) -> Result<Vec<i64>, StoreError> {
        verdicts::save_verdicts(self, vs).await
    }

    async fn list_verdicts(
        &self,
        campaign: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<Verdict>, StoreError> {
        verdicts::list_verdicts(self, campaign, since_ms).await
    }

    async fn save_vp_faults(&self, fs: &[VpFault]) -> Result<Vec<i64>, StoreError> {
        verdicts::save_vp_faults(self, fs).await
    }

    async fn list_vp_faults(
        &self,
        campaign: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<VpFault>, StoreError> {
        verdicts::list_vp_faults(self, campaign, since_ms).await
    }

    async fn summary_rounds(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<SummaryRound>, StoreError> {
        summaries::summary_rounds(self, campaign, rounds).await
    }

    async fn latest_summary_rounds(&self) -> Result<Vec<(String, SummaryRound)>, StoreError> {
        summaries::latest_summary_rounds(self).await
    }

    async fn replace_summaries(
        &self,
        campaign: &str,
        rounds: RangeInclusive<u64>,
        digests: RangeInclusive<u64>,
        written: &[SummaryRound],
        rows: &[ScopeSummary],
    ) -> Result<(), StoreError> {
        summaries::replace_summaries(self, campaign, rounds, digests, written, rows).await
    }

    async fn scope_summaries(
        &self,
        campaign: &str,
        scope: Scope,
        target: &str,
        rounds: RangeInclusive<u64>,
    ) -> Result<Vec<ScopeSummary>, StoreError> {
        summaries::scope_summaries(self, campaign, scope, target, rounds).await
    }

    async fn round_summaries(
        &self,
        campaign: &str,
        round: u64,
        scope: Scope,
        consensus_only: bool,
        limit: usize,
    ) -> Result<Vec<ScopeSummary>, StoreError> {
        summaries::round_summaries(self, campaign, round, scope, consensus_only, limit).await
    }

    async fn summary_scopes(&self, campaign: Option<&str>) -> Result<Vec<SummaryKey>, StoreError> {
        summaries::summary_scopes(self, campaign).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        leases::try_lease(self, name, holder, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        leases::release_lease(self, name, holder).await
    }

    async fn live_holders(&self, prefix: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        leases::live_holders(self, prefix, now_ms).await
    }

    async fn counts(&self, seen_since_ms: i64) -> Result<StoreCounts, StoreError> {
        Ok(StoreCounts {
            agents: self.count("SELECT COUNT(*) FROM agents", None).await?,
            agents_revoked: self
                .count("SELECT COUNT(*) FROM agents WHERE revoked <> 0", None)
                .await?,
            agents_seen: self
                .count(
                    "SELECT COUNT(*) FROM agents WHERE last_seen_ms >= $1",
                    Some(seen_since_ms),
                )
                .await?,
            campaigns: self.count("SELECT COUNT(*) FROM campaigns", None).await?,
            batches: self.count("SELECT COUNT(*) FROM batches", None).await?,
            observations: self
                .count("SELECT COUNT(*) FROM observations", None)
                .await?
                + self
                    .count(
                        "SELECT CAST(COALESCE(SUM(blocks), 0) AS BIGINT) FROM round_records",
                        None,
                    )
                    .await?,
            traces: self.count("SELECT COUNT(*) FROM traces", None).await?,
            verdicts: self.count("SELECT COUNT(*) FROM verdicts", None).await?,
            verdicts_open: self
                .count("SELECT COUNT(*) FROM verdicts WHERE end_ms IS NULL", None)
                .await?,
        })
    }

    async fn list_coverage(&self) -> Result<Vec<AgentCoverage>, StoreError> {
        census::list_coverage(self).await
    }

    async fn census(&self, campaign: &str) -> Result<Vec<CensusBlock>, StoreError> {
        census::census(self, campaign).await
    }

    async fn put_census(
        &self,
        campaign: &str,
        blocks: &[CensusBlock],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        census::put_census(self, campaign, blocks, now_ms).await
    }

    async fn clear_census(&self, campaign: &str) -> Result<(), StoreError> {
        census::clear_census(self, campaign).await
    }

    async fn round_timings(&self, since_ms: i64) -> Result<Vec<ReportedTiming>, StoreError> {
        timing::round_timings(self, since_ms).await
    }
}
