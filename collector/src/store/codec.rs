//! Row codecs: Rust values to bound SQL parameters and result rows back,
//! including the checked integer conversions (the database stores signed
//! BIGINTs, the API speaks `u64`) and the JSON text columns. A row that does
//! not decode is a [`StoreError::Corrupt`], never a panic.

use std::str::FromStr;

use darkwatch_schema::rtt::Rtt;
use darkwatch_schema::{BlockObservation, BlockState, Hop, TraceObservation};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    AgentInfo, AgentObservation, AgentProbeErrors, AgentTrace, Alerted, Campaign, StoreError,
    Verdict, VpFault,
};

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

/// An observation's reply times as stored (migration 12): the two codes of
/// `schema::rtt` in one integer, `None` without times.
pub(super) fn rtt_code(o: &BlockObservation) -> Option<i64> {
    let rtt = Rtt::from_ms(o.rtt_min_ms, o.rtt_median_ms);
    (!rtt.is_none()).then(|| i64::from(rtt.min) << 8 | i64::from(rtt.median))
}

fn rtt_from_code(code: Option<i64>) -> Rtt {
    code.map_or(Rtt::NONE, |c| Rtt {
        min: (c >> 8) as u8,
        median: c as u8,
    })
}

pub(super) fn observation_from_row(r: &AnyRow) -> Result<AgentObservation, StoreError> {
    let state: String = r.try_get("state")?;
    let rtt = rtt_from_code(r.try_get("rtt")?);
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
            rtt_min_ms: rtt.min_ms(),
            rtt_median_ms: rtt.median_ms(),
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

pub(super) fn probe_errors_from_row(r: &AnyRow) -> Result<AgentProbeErrors, StoreError> {
    Ok(AgentProbeErrors {
        agent: r.try_get("agent")?,
        errors: darkwatch_schema::ProbeErrors {
            campaign: r.try_get("campaign")?,
            round: to_u64(r.try_get("round")?, "probe errors round")?,
            from: parse(&r.try_get::<String, _>("source")?, "probe errors source")?,
            blocks: from_json(&r.try_get::<String, _>("blocks")?, "probe errors blocks")?,
            errors: u32::try_from(r.try_get::<i64, _>("errors")?).unwrap_or(u32::MAX),
            ts_ms: r.try_get("ts_ms")?,
        },
    })
}

/// Name of a unit enum variant as its serde attributes spell it (the
/// correlate crate's `Scope` and `Kind` serialize in lowercase).
pub(super) fn enum_name<T: Serialize>(v: &T, what: &'static str) -> Result<String, StoreError> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(StoreError::Corrupt {
            what,
            why: format!("not a unit variant: {other:?}"),
        }),
    }
}

pub(super) fn enum_from_name<T: DeserializeOwned>(
    s: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    T::deserialize(s.into_deserializer()).map_err(|e: serde::de::value::Error| {
        StoreError::Corrupt {
            what,
            why: format!("{s:?}: {e}"),
        }
    })
}

/// [`Alerted`] as a column: bit 0 open given, bit 1 close given.
fn alerted_bits(a: Alerted) -> i64 {
    i64::from(a.open) | i64::from(a.close) << 1
}

fn alerted_from_bits(b: i64) -> Alerted {
    Alerted {
        open: b & 1 != 0,
        close: b & 2 != 0,
    }
}

/// A verdict's columns that need encoding (the rest bind as they are).
pub(super) struct VerdictCols {
    pub scope: String,
    pub kind: String,
    pub start_round: i64,
    pub end_round: Option<i64>,
    pub blocks_affected: i64,
    pub blocks_total: i64,
    pub prefixes: String,
    pub vantage_points: String,
    pub localization: String,
    pub alerts: i64,
}

pub(super) fn encode_verdict(v: &Verdict) -> Result<VerdictCols, StoreError> {
    Ok(VerdictCols {
        scope: enum_name(&v.scope, "verdict scope")?,
        kind: enum_name(&v.kind, "verdict kind")?,
        start_round: to_i64(v.start_round, "start_round")?,
        end_round: v.end_round.map(|r| to_i64(r, "end_round")).transpose()?,
        blocks_affected: to_i64(v.blocks_affected, "blocks_affected")?,
        blocks_total: to_i64(v.blocks_total, "blocks_total")?,
        prefixes: json(&v.prefixes)?,
        vantage_points: json(&v.vantage_points)?,
        localization: json(&v.localization)?,
        alerts: alerted_bits(v.alerted),
    })
}

pub(super) fn verdict_from_row(r: &AnyRow) -> Result<Verdict, StoreError> {
    let localization: String = r.try_get("localization")?;
    Ok(Verdict {
        id: r.try_get("id")?,
        scope: enum_from_name(&r.try_get::<String, _>("scope")?, "verdict scope")?,
        target: r.try_get("target")?,
        kind: enum_from_name(&r.try_get::<String, _>("kind")?, "verdict kind")?,
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
        // Evidence, not identity: a row written in an older shape reads as
        // "no localization" (the next pass rewrites it) instead of making
        // every verdict listing fail.
        localization: serde_json::from_str(&localization).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored verdict localization unreadable; shown as none");
            None
        }),
        updated_ms: r.try_get("updated_ms")?,
        alerted: alerted_from_bits(r.try_get("alerts")?),
        change: r.try_get("change_text")?,
    })
}

/// A VP fault's columns that need encoding. The `kind` column holds
/// "vp_fault" and `detail` the reason as `{"reason": ...}`.
pub(super) struct VpFaultCols {
    pub kind: &'static str,
    pub start_round: i64,
    pub end_round: Option<i64>,
    pub detail: String,
}

pub(super) fn encode_vp_fault(f: &VpFault) -> Result<VpFaultCols, StoreError> {
    Ok(VpFaultCols {
        kind: "vp_fault",
        start_round: to_i64(f.start_round, "start_round")?,
        end_round: f.end_round.map(|r| to_i64(r, "end_round")).transpose()?,
        detail: json(&FaultDetail {
            reason: f.reason.clone(),
        })?,
    })
}

#[derive(Serialize, Deserialize)]
struct FaultDetail {
    reason: String,
}

pub(super) fn vp_fault_from_row(r: &AnyRow) -> Result<VpFault, StoreError> {
    let detail: FaultDetail = from_json(&r.try_get::<String, _>("detail")?, "fault detail")?;
    Ok(VpFault {
        id: r.try_get("id")?,
        agent: r.try_get("agent")?,
        campaign: r.try_get("campaign")?,
        start_round: to_u64(r.try_get("start_round")?, "fault start_round")?,
        end_round: r
            .try_get::<Option<i64>, _>("end_round")?
            .map(|v| to_u64(v, "fault end_round"))
            .transpose()?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        reason: detail.reason,
        updated_ms: r.try_get("updated_ms")?,
    })
}

/// The start time of a raw row's round: the time key of the raw tables
/// (`partitions`). A function of (campaign, round) alone, so that a round
/// resent still conflicts with the stored one; a campaign unknown here
/// falls back to the report's timestamp.
pub(super) fn round_ms(
    intervals: &std::collections::HashMap<String, i64>,
    campaign: &str,
    round: u64,
    ts_ms: i64,
) -> i64 {
    intervals
        .get(campaign)
        .and_then(|i| i64::try_from(round).ok()?.checked_mul(*i))
        .unwrap_or(ts_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_correlate::{Kind, Scope};

    #[test]
    fn enum_names_round_trip_and_refuse_unknown_names() {
        for s in [
            Scope::Country,
            Scope::Campaign,
            Scope::Asn,
            Scope::Unrouted,
            Scope::Prefix,
            Scope::Block,
        ] {
            let name = enum_name(&s, "scope").unwrap();
            assert_eq!(enum_from_name::<Scope>(&name, "scope").unwrap(), s);
        }
        assert_eq!(enum_name(&Kind::Blackout, "kind").unwrap(), "blackout");
        assert_eq!(
            enum_from_name::<Kind>("instability", "kind").unwrap(),
            Kind::Instability
        );
        assert!(matches!(
            enum_from_name::<Kind>("outage", "kind"),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn alert_flags_round_trip() {
        for (open, close) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Alerted { open, close };
            assert_eq!(alerted_from_bits(alerted_bits(a)), a);
        }
    }
}
