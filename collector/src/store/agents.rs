//! Agents (tokens, revocation, last seen) and campaigns (definitions and
//! their generation counter) in SQL.

use sqlx::Row;

use super::codec::{agent_from_row, campaign_from_row, json, to_i64};
use super::sql::SqlStore;
use super::{AgentInfo, AuthOutcome, Campaign, CampaignSpec, StoreError};
use crate::tokens;

/// `last_seen_ms` is rewritten at most this often per agent (a write per
/// request would double the write load for a value shown to the minute).
const TOUCH_EVERY_MS: i64 = 5_000;

pub(super) async fn add_agent(
    s: &SqlStore,
    name: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let r = sqlx::query(
        "INSERT INTO agents (name, token_hash, created_ms, revoked) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(token_hash)
    .bind(now_ms)
    .execute(&s.pool)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::AgentExists(name.to_string()));
    }
    Ok(())
}

pub(super) async fn list_agents(s: &SqlStore) -> Result<Vec<AgentInfo>, StoreError> {
    let rows =
        sqlx::query("SELECT name, created_ms, last_seen_ms, revoked FROM agents ORDER BY name")
            .fetch_all(&s.pool)
            .await?;
    rows.iter().map(agent_from_row).collect()
}

pub(super) async fn revoke_agent(s: &SqlStore, name: &str) -> Result<(), StoreError> {
    let r = sqlx::query("UPDATE agents SET revoked = 1 WHERE name = $1")
        .bind(name)
        .execute(&s.pool)
        .await?;
    one_agent(r.rows_affected(), name)
}

/// A statement on one agent by name: touching no row means no such agent.
fn one_agent(rows: u64, name: &str) -> Result<(), StoreError> {
    match rows {
        0 => Err(StoreError::NoAgent(name.to_string())),
        _ => Ok(()),
    }
}

pub(super) async fn rotate_agent(
    s: &SqlStore,
    name: &str,
    token_hash: &str,
) -> Result<(), StoreError> {
    let r = sqlx::query("UPDATE agents SET token_hash = $1, revoked = 0 WHERE name = $2")
        .bind(token_hash)
        .bind(name)
        .execute(&s.pool)
        .await?;
    one_agent(r.rows_affected(), name)
}

pub(super) async fn remove_agent(s: &SqlStore, name: &str) -> Result<(), StoreError> {
    let r = sqlx::query("DELETE FROM agents WHERE name = $1")
        .bind(name)
        .execute(&s.pool)
        .await?;
    one_agent(r.rows_affected(), name)
}

pub(super) async fn authenticate(
    s: &SqlStore,
    token_hash: &str,
) -> Result<AuthOutcome, StoreError> {
    // Looked up by the token's hash (indexed): the lookup's timing can
    // depend only on the SHA-256 of the presented token, which says
    // nothing about any stored token (finding a token whose hash is
    // near a stored one is a preimage problem). The candidate is then
    // compared in constant time. Reading every agent per request, as
    // before, cost a quarter of the ingest CPU with 200 agents.
    let rows = sqlx::query("SELECT name, token_hash, revoked FROM agents WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_all(&s.pool)
        .await?;
    let mut agents = Vec::with_capacity(rows.len());
    for r in &rows {
        agents.push((
            r.try_get::<String, _>("name")?,
            r.try_get::<String, _>("token_hash")?,
            r.try_get::<i64, _>("revoked")? != 0,
        ));
    }
    Ok(
        match tokens::find_match(token_hash, agents.iter().map(|a| a.1.as_str())) {
            Some(i) if agents[i].2 => AuthOutcome::Revoked(agents[i].0.clone()),
            Some(i) => AuthOutcome::Agent(agents[i].0.clone()),
            None => AuthOutcome::Unknown,
        },
    )
}

pub(super) async fn touch_agent(s: &SqlStore, name: &str, now_ms: i64) -> Result<(), StoreError> {
    {
        let mut touched = s.touched.lock().unwrap_or_else(|p| p.into_inner());
        match touched.get(name) {
            Some(&last) if (0..TOUCH_EVERY_MS).contains(&(now_ms - last)) => return Ok(()),
            _ => {
                touched.insert(name.to_string(), now_ms);
            }
        }
    }
    sqlx::query("UPDATE agents SET last_seen_ms = $1 WHERE name = $2")
        .bind(now_ms)
        .bind(name)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(super) async fn put_campaign(
    s: &SqlStore,
    spec: &CampaignSpec,
    replace: bool,
    now_ms: i64,
) -> Result<Campaign, StoreError> {
    let mut tx = s.pool.begin().await?;
    // Write first: SQLite then holds the write lock for the whole
    // transaction instead of upgrading later (which could fail as busy).
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'campaign_generation'")
        .execute(&mut *tx)
        .await?;
    let generation: i64 =
        sqlx::query_scalar("SELECT value FROM counters WHERE name = 'campaign_generation'")
            .fetch_one(&mut *tx)
            .await?;
    let prefixes = json(&spec.prefixes)?;
    let control = json(&spec.control)?;
    let agents = json(&spec.agents)?;
    let interval = to_i64(spec.interval_secs, "interval")?;
    let inserted = sqlx::query(
        "INSERT INTO campaigns (name, country, interval_secs, prefixes, control, agents, generation, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&spec.name)
    .bind(spec.country.clone())
    .bind(interval)
    .bind(&prefixes)
    .bind(&control)
    .bind(&agents)
    .bind(generation)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        if !replace {
            return Err(StoreError::CampaignExists(spec.name.clone()));
        }
        sqlx::query(
            "UPDATE campaigns SET country = $1, interval_secs = $2, prefixes = $3, control = $4, agents = $5,
             generation = $6, updated_ms = $7 WHERE name = $8",
        )
        .bind(spec.country.clone())
        .bind(interval)
        .bind(&prefixes)
        .bind(&control)
        .bind(&agents)
        .bind(generation)
        .bind(now_ms)
        .bind(&spec.name)
        .execute(&mut *tx)
        .await?;
    }
    super::rounds::record_space(&mut tx, &spec.name, &spec.prefixes, now_ms).await?;
    let row = sqlx::query(
        "SELECT name, country, interval_secs, prefixes, control, agents, generation, created_ms
         FROM campaigns WHERE name = $1",
    )
    .bind(&spec.name)
    .fetch_one(&mut *tx)
    .await?;
    let campaign = campaign_from_row(&row)?;
    tx.commit().await?;
    Ok(campaign)
}

pub(super) async fn list_campaigns(s: &SqlStore) -> Result<Vec<Campaign>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, country, interval_secs, prefixes, control, agents, generation, created_ms
         FROM campaigns ORDER BY name",
    )
    .fetch_all(&s.pool)
    .await?;
    rows.iter().map(campaign_from_row).collect()
}

pub(super) async fn remove_campaign(s: &SqlStore, name: &str) -> Result<(), StoreError> {
    let r = sqlx::query("DELETE FROM campaigns WHERE name = $1")
        .bind(name)
        .execute(&s.pool)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NoCampaign(name.to_string()));
    }
    Ok(())
}

pub(super) async fn campaigns_for_agent(
    s: &SqlStore,
    agent: &str,
) -> Result<Vec<Campaign>, StoreError> {
    let all = list_campaigns(s).await?;
    Ok(all.into_iter().filter(|c| c.assigned_to(agent)).collect())
}
