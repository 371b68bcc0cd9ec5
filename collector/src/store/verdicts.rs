//! Outage verdicts and vantage-point faults in SQL. Rows are identified by
//! id: a correlation pass inserts new ones and updates matched ones in
//! place, all in one transaction, so readers never see half a pass.

use sqlx::AnyConnection;

use super::codec::{encode_verdict, encode_vp_fault, verdict_from_row, vp_fault_from_row};
use super::sql::SqlStore;
use super::{StoreError, Verdict, VpFault};

const VERDICT_COLS: &str =
    "id, scope, target, kind, campaign, start_round, end_round, start_ms, end_ms,
    blocks_affected, blocks_total, prefixes, vantage_points, localization, updated_ms, alerts, change_text";

pub(super) async fn save_verdicts(s: &SqlStore, vs: &[Verdict]) -> Result<Vec<i64>, StoreError> {
    let mut tx = s.pool.begin().await?;
    let mut ids = Vec::with_capacity(vs.len());
    for v in vs {
        ids.push(save_verdict(&mut tx, v).await?);
    }
    tx.commit().await?;
    Ok(ids)
}

async fn save_verdict(conn: &mut AnyConnection, v: &Verdict) -> Result<i64, StoreError> {
    let c = encode_verdict(v)?;
    let q = if v.id == 0 {
        sqlx::query_scalar(
            "INSERT INTO verdicts (scope, target, kind, campaign, start_round, end_round, start_ms, end_ms,
                blocks_affected, blocks_total, prefixes, vantage_points, localization, updated_ms, alerts,
                change_text)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             RETURNING id",
        )
    } else {
        sqlx::query_scalar(
            "UPDATE verdicts SET scope = $1, target = $2, kind = $3, campaign = $4, start_round = $5,
                end_round = $6, start_ms = $7, end_ms = $8, blocks_affected = $9, blocks_total = $10,
                prefixes = $11, vantage_points = $12, localization = $13, updated_ms = $14, alerts = $15,
                change_text = $16
             WHERE id = $17 RETURNING id",
        )
    };
    let q = q
        .bind(c.scope)
        .bind(&v.target)
        .bind(c.kind)
        .bind(&v.campaign)
        .bind(c.start_round)
        .bind(c.end_round)
        .bind(v.start_ms)
        .bind(v.end_ms)
        .bind(c.blocks_affected)
        .bind(c.blocks_total)
        .bind(c.prefixes)
        .bind(c.vantage_points)
        .bind(c.localization)
        .bind(v.updated_ms)
        .bind(c.alerts)
        .bind(&v.change);
    let q = if v.id == 0 { q } else { q.bind(v.id) };
    let id: Option<i64> = q.fetch_optional(&mut *conn).await?;
    id.ok_or(StoreError::Corrupt {
        what: "verdict",
        why: format!("no verdict with id {} to update", v.id),
    })
}

pub(super) async fn list_verdicts(
    s: &SqlStore,
    campaign: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<Verdict>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {VERDICT_COLS}
         FROM verdicts WHERE ($1 = '' OR campaign = $1) AND (end_ms IS NULL OR end_ms >= $2)
         ORDER BY start_ms, id"
    ))
    .bind(campaign.unwrap_or(""))
    .bind(since_ms.unwrap_or(i64::MIN))
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(verdict_from_row).collect()
}

pub(super) async fn save_vp_faults(s: &SqlStore, fs: &[VpFault]) -> Result<Vec<i64>, StoreError> {
    let mut tx = s.pool.begin().await?;
    let mut ids = Vec::with_capacity(fs.len());
    for f in fs {
        let c = encode_vp_fault(f)?;
        let q = if f.id == 0 {
            sqlx::query_scalar(
                "INSERT INTO vp_faults (agent, campaign, kind, start_round, end_round, start_ms, end_ms, detail, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
        } else {
            sqlx::query_scalar(
                "UPDATE vp_faults SET agent = $1, campaign = $2, kind = $3, start_round = $4, end_round = $5,
                    start_ms = $6, end_ms = $7, detail = $8, updated_ms = $9
                 WHERE id = $10 RETURNING id",
            )
        };
        let q = q
            .bind(&f.agent)
            .bind(&f.campaign)
            .bind(c.kind)
            .bind(c.start_round)
            .bind(c.end_round)
            .bind(f.start_ms)
            .bind(f.end_ms)
            .bind(c.detail)
            .bind(f.updated_ms);
        let q = if f.id == 0 { q } else { q.bind(f.id) };
        let id: Option<i64> = q.fetch_optional(&mut *tx).await?;
        ids.push(id.ok_or(StoreError::Corrupt {
            what: "vp fault",
            why: format!("no fault with id {} to update", f.id),
        })?);
    }
    tx.commit().await?;
    Ok(ids)
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
