//! Outage verdicts and vantage-point faults in SQL, upserted by their
//! natural keys.

use super::codec::{json, to_i64, verdict_from_row, vp_fault_from_row};
use super::sql::SqlStore;
use super::{StoreError, Verdict, VpFault};

pub(super) async fn upsert_verdict(s: &SqlStore, v: &Verdict) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO verdicts (scope, target, kind, campaign, start_round, end_round, start_ms, end_ms,
            blocks_affected, blocks_total, prefixes, vantage_points, localization, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (campaign, scope, target, kind, start_round) DO UPDATE SET
            end_round = excluded.end_round, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
            blocks_affected = excluded.blocks_affected, blocks_total = excluded.blocks_total,
            prefixes = excluded.prefixes, vantage_points = excluded.vantage_points,
            localization = excluded.localization, updated_ms = excluded.updated_ms
         RETURNING id",
    )
    .bind(&v.scope)
    .bind(&v.target)
    .bind(&v.kind)
    .bind(&v.campaign)
    .bind(to_i64(v.start_round, "start_round")?)
    .bind(v.end_round.map(|r| to_i64(r, "end_round")).transpose()?)
    .bind(v.start_ms)
    .bind(v.end_ms)
    .bind(to_i64(v.blocks_affected, "blocks_affected")?)
    .bind(to_i64(v.blocks_total, "blocks_total")?)
    .bind(json(&v.prefixes)?)
    .bind(json(&v.vantage_points)?)
    .bind(json(&v.localization)?)
    .bind(v.updated_ms)
    .fetch_one(&s.pool)
    .await?;
    Ok(id)
}

pub(super) async fn list_verdicts(
    s: &SqlStore,
    campaign: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<Verdict>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, scope, target, kind, campaign, start_round, end_round, start_ms, end_ms, blocks_affected,
            blocks_total, prefixes, vantage_points, localization, updated_ms
         FROM verdicts WHERE ($1 = '' OR campaign = $1) AND (end_ms IS NULL OR end_ms >= $2)
         ORDER BY start_ms, id",
    )
    .bind(campaign.unwrap_or(""))
    .bind(since_ms.unwrap_or(i64::MIN))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(verdict_from_row).collect()
}

pub(super) async fn upsert_vp_fault(s: &SqlStore, f: &VpFault) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO vp_faults (agent, campaign, kind, start_round, end_round, start_ms, end_ms, detail, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (agent, campaign, kind, start_round) DO UPDATE SET
            end_round = excluded.end_round, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
            detail = excluded.detail, updated_ms = excluded.updated_ms
         RETURNING id",
    )
    .bind(&f.agent)
    .bind(&f.campaign)
    .bind(&f.kind)
    .bind(to_i64(f.start_round, "start_round")?)
    .bind(f.end_round.map(|r| to_i64(r, "end_round")).transpose()?)
    .bind(f.start_ms)
    .bind(f.end_ms)
    .bind(json(&f.detail)?)
    .bind(f.updated_ms)
    .fetch_one(&s.pool)
    .await?;
    Ok(id)
}

pub(super) async fn list_vp_faults(
    s: &SqlStore,
    campaign: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<VpFault>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, agent, campaign, kind, start_round, end_round, start_ms, end_ms, detail, updated_ms
         FROM vp_faults WHERE ($1 = '' OR campaign = $1) AND (end_ms IS NULL OR end_ms >= $2)
         ORDER BY start_ms, id",
    )
    .bind(campaign.unwrap_or(""))
    .bind(since_ms.unwrap_or(i64::MIN))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(vp_fault_from_row).collect()
}
