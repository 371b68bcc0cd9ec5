//! TEMPORARY stand-in for `GET /v1/signals` and `GET /v1/scopes`, so that
//! the dashboard can be built and tested before the real endpoints (branch
//! h-signals, served from stored per-round summaries) are merged. Drop this
//! file and its two lines (`pub mod` in lib.rs, `.merge(...)` in
//! api::router) when merging h-signals.
//!
//! It answers with the same JSON shapes, computed on each request from
//! stored observations by [`crate::evidence::round_counts`].

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use darkwatch_correlate::Scope;
use darkwatch_schema::round_of;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::correlation::{last_complete_round, top_target};
use crate::evidence::{round_counts, scope_nets, RoundCounts};
use crate::store::{Campaign, Store};
use darkwatch_schema::ApiError;

/// Longest range answered, in rounds (as h-signals answers).
const MAX_ROUNDS: u64 = 10_080;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsQuery {
    scope: Scope,
    target: String,
    from: i64,
    until: i64,
    vp: Option<String>,
    campaign: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesQuery {
    campaign: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Signals {
    scope: Scope,
    target: String,
    campaign: String,
    interval_secs: u64,
    rounds: Vec<RoundCounts>,
}

#[derive(Debug, Serialize)]
pub struct ScopeRow {
    campaign: String,
    scope: Scope,
    target: String,
}

pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/signals", get(signals::<S>))
        .route("/v1/scopes", get(scopes::<S>))
}

/// An error answer, as the API gives them.
type Failure = (StatusCode, Json<ApiError>);

fn fail(status: StatusCode, m: impl Into<String>) -> Failure {
    (
        status,
        Json(ApiError {
            error: m.into(),
            code: None,
        }),
    )
}

fn bad(m: impl Into<String>) -> Failure {
    fail(StatusCode::BAD_REQUEST, m)
}

fn store_failure(e: crate::store::StoreError) -> Failure {
    tracing::error!(error = %e, "store failure");
    fail(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable, retry later",
    )
}

/// Every scope of a campaign: its top scope, each origin AS, each prefix.
fn scopes_of(
    c: &Campaign,
    pfx2as: Option<&darkwatch_schema::inputs::pfx2as::Pfx2As>,
) -> Vec<ScopeRow> {
    let row = |scope, target: String| ScopeRow {
        campaign: c.name.clone(),
        scope,
        target,
    };
    let (top, is_country) = top_target(c);
    let mut out = vec![row(
        if is_country {
            Scope::Country
        } else {
            Scope::Campaign
        },
        top,
    )];
    let mut asns: Vec<u32> = c
        .prefixes
        .iter()
        .flat_map(|p| pfx2as.map(|m| m.origins(p).to_vec()).unwrap_or_default())
        .collect();
    asns.sort_unstable();
    asns.dedup();
    out.extend(asns.into_iter().map(|a| row(Scope::Asn, format!("AS{a}"))));
    let mut prefixes = c.prefixes.clone();
    prefixes.sort();
    out.extend(
        prefixes
            .into_iter()
            .map(|p| row(Scope::Prefix, p.to_string())),
    );
    out
}

async fn scopes<S: Store>(
    State(st): State<AppState<S>>,
    Query(q): Query<ScopesQuery>,
) -> Result<Json<Vec<ScopeRow>>, Failure> {
    let campaigns = st.store.list_campaigns().await.map_err(store_failure)?;
    Ok(Json(
        campaigns
            .iter()
            .filter(|c| q.campaign.as_deref().is_none_or(|n| n == c.name))
            .flat_map(|c| scopes_of(c, st.pfx2as.as_deref()))
            .collect(),
    ))
}

async fn signals<S: Store>(
    State(st): State<AppState<S>>,
    Query(q): Query<SignalsQuery>,
) -> Result<Json<Signals>, Failure> {
    if q.until <= q.from {
        return Err(bad("until must be after from"));
    }
    let campaigns = st.store.list_campaigns().await.map_err(store_failure)?;
    let pfx2as = st.pfx2as.as_deref();
    let campaign = campaigns
        .iter()
        .filter(|c| q.campaign.as_deref().is_none_or(|n| n == c.name))
        .find(|c| {
            scopes_of(c, pfx2as)
                .iter()
                .any(|s| s.scope == q.scope && s.target.eq_ignore_ascii_case(&q.target))
        })
        .ok_or_else(|| {
            fail(
                StatusCode::NOT_FOUND,
                format!("no campaign watches {}", q.target),
            )
        })?;
    let as_prefixes: Vec<IpNet> = campaign
        .prefixes
        .iter()
        .filter(|p| {
            pfx2as.is_some_and(|m| m.origins(p).iter().any(|a| format!("AS{a}") == q.target))
        })
        .copied()
        .collect();
    let nets: Vec<IpNet> = scope_nets(q.scope, &q.target, campaign, &as_prefixes);
    let first = round_of(q.from, campaign.interval_secs);
    let mut last = round_of(q.until, campaign.interval_secs);
    if last.saturating_sub(first) >= MAX_ROUNDS {
        return Err(bad(format!("more than {MAX_ROUNDS} rounds asked")));
    }
    if let Some(l) = last_complete_round(st.clock.now_ms(), campaign.interval_secs) {
        last = last.min(l);
    }
    let obs = st
        .store
        .observations(&campaign.name, first..=last)
        .await
        .map_err(store_failure)?;
    let mut rounds = round_counts(&obs, &nets, first..=last, campaign.interval_secs);
    if let Some(vp) = &q.vp {
        for r in &mut rounds {
            r.per_vp.retain(|p| &p.vp == vp);
        }
    }
    Ok(Json(Signals {
        scope: q.scope,
        target: q.target,
        campaign: campaign.name.clone(),
        interval_secs: campaign.interval_secs,
        rounds,
    }))
}
