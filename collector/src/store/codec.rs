//! Row codecs: Rust values to bound SQL parameters and result rows back,
//! including the checked integer conversions (the database stores signed
//! BIGINTs, the API speaks `u64`) and the JSON text columns. A row that does
//! not decode is a [`StoreError::Corrupt`], never a panic.

use std::str::FromStr;

use darkwatch_schema::{BlockObservation, BlockState, Hop, TraceObservation};
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{AgentInfo, AgentObservation, AgentTrace, Campaign, StoreError, Verdict, VpFault};

pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn to_i64(v: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Range(what))
}

/// Range ends clamp instead of failing: `0..=u64::MAX` means "all rounds".
pub(super) fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        what,
        why: format!("negative value {v}"),
    })
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt {
        what: "json",
        why: e.to_string(),
    })
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str, what: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what,
        why: e.to_string(),
    })
}

pub(super) fn parse<T: FromStr>(s: &str, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| StoreError::Corrupt {
        what,
        why: format!("{s:?}: {e}"),
    })
}

pub(super) fn agent_from_row(r: &AnyRow) -> Result<AgentInfo, StoreError> {
    Ok(AgentInfo {
        name: r.try_get("name")?,
        created_ms: r.try_get("created_ms")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        revoked: r.try_get::<i64, _>("revoked")? != 0,
    })
}

pub(super) fn campaign_from_row(row: &AnyRow) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        name: row.try_get("name")?,
        country: row.try_get("country")?,
        interval_secs: to_u64(row.try_get("interval_secs")?, "campaign interval")?,
        prefixes: from_json(&row.try_get::<String, _>("prefixes")?, "campaign prefixes")?,
        control: from_json(&row.try_get::<String, _>("control")?, "campaign control")?,
        agents: from_json(&row.try_get::<String, _>("agents")?, "campaign agents")?,
        generation: to_u64(row.try_get("generation")?, "campaign generation")?,
        created_ms: row.try_get("created_ms")?,
    })
}

pub(super) fn observation_from_row(r: &AnyRow) -> Result<AgentObservation, StoreError> {
    let state: String = r.try_get("state")?;
    Ok(AgentObservation {
        agent: r.try_get("agent")?,
        obs: BlockObservation {
            campaign: r.try_get("campaign")?,
            round: to_u64(r.try_get("round")?, "observation round")?,
            block: parse(&r.try_get::<String, _>("block")?, "observation block")?,
            state: BlockState::parse(&state).ok_or(StoreError::Corrupt {
                what: "observation state",
                why: state.clone(),
            })?,
            probes: u32::try_from(r.try_get::<i64, _>("probes")?).map_err(|e| {
                StoreError::Corrupt {
                    what: "observation probes",
                    why: e.to_string(),
                }
            })?,
            replies: u32::try_from(r.try_get::<i64, _>("replies")?).map_err(|e| {
                StoreError::Corrupt {
                    what: "observation replies",
                    why: e.to_string(),
                }
            })?,
            belief: r.try_get("belief")?,
            availability: r.try_get("availability")?,
            control: r.try_get::<i64, _>("control")? != 0,
            ts_ms: r.try_get("ts_ms")?,
        },
    })
}

pub(super) fn trace_from_row(r: &AnyRow) -> Result<AgentTrace, StoreError> {
    let last: Option<String> = r.try_get("last_responding")?;
    Ok(AgentTrace {
        agent: r.try_get("agent")?,
        trace: TraceObservation {
            campaign: r.try_get("campaign")?,
            round: to_u64(r.try_get("round")?, "trace round")?,
            target: parse(&r.try_get::<String, _>("target")?, "trace target")?,
            hops: from_json::<Vec<Hop>>(&r.try_get::<String, _>("hops")?, "trace hops")?,
            reached: r.try_get::<i64, _>("reached")? != 0,
            last_responding: last
                .map(|s| parse(&s, "trace last_responding"))
                .transpose()?,
            ts_ms: r.try_get("ts_ms")?,
        },
    })
}

pub(super) fn verdict_from_row(r: &AnyRow) -> Result<Verdict, StoreError> {
    Ok(Verdict {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        target: r.try_get("target")?,
        kind: r.try_get("kind")?,
        campaign: r.try_get("campaign")?,
        start_round: to_u64(r.try_get("start_round")?, "verdict start_round")?,
        end_round: r
            .try_get::<Option<i64>, _>("end_round")?
            .map(|v| to_u64(v, "verdict end_round"))
            .transpose()?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        blocks_affected: to_u64(r.try_get("blocks_affected")?, "verdict blocks_affected")?,
        blocks_total: to_u64(r.try_get("blocks_total")?, "verdict blocks_total")?,
        prefixes: from_json(&r.try_get::<String, _>("prefixes")?, "verdict prefixes")?,
        vantage_points: from_json(
            &r.try_get::<String, _>("vantage_points")?,
            "verdict vantage_points",
        )?,
        localization: from_json(
            &r.try_get::<String, _>("localization")?,
            "verdict localization",
        )?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

pub(super) fn vp_fault_from_row(r: &AnyRow) -> Result<VpFault, StoreError> {
    Ok(VpFault {
        id: r.try_get("id")?,
        agent: r.try_get("agent")?,
        campaign: r.try_get("campaign")?,
        kind: r.try_get("kind")?,
        start_round: to_u64(r.try_get("start_round")?, "fault start_round")?,
        end_round: r
            .try_get::<Option<i64>, _>("end_round")?
            .map(|v| to_u64(v, "fault end_round"))
            .transpose()?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        detail: from_json(&r.try_get::<String, _>("detail")?, "fault detail")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}
