//! `GET /v1/bgp[?prefix=P]`: the live BGP state (the open round, every
//! prefix inside or covering P, and the recent closed rounds with what
//! moved). 404 when the collector has no `[bgp]` input. And
//! `GET /v1/signals?source=bgp`: the stored BGP signal of a scope.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use ipnet::IpNet;

use axum::response::{IntoResponse, Response};

use super::{bad_query, ApiFailure, AppState};
use crate::bgp::hub::BgpView;
use crate::bgp::read::{bgp_signal, BgpQuery, BgpRows};
use crate::store::Store;

pub(super) enum Source {
    Probes,
    Bgp,
}

/// Takes `source` out of `pairs` (probe signals refuse unknown keys);
/// `source=bgp` keeps it, for the BGP query's own check.
pub(super) fn source(pairs: &mut Vec<(String, String)>) -> Result<Option<Source>, String> {
    let Some(i) = pairs.iter().position(|(k, _)| k == "source") else {
        return Ok(None);
    };
    match pairs[i].1.as_str() {
        "probes" => {
            pairs.remove(i);
            Ok(Some(Source::Probes))
        }
        "bgp" => Ok(Some(Source::Bgp)),
        other => Err(format!(
            "query parameter source: probes or bgp, got {other:?}"
        )),
    }
}

pub(super) async fn get_bgp_signal<S: Store + BgpRows>(
    st: &AppState<S>,
    pairs: &[(String, String)],
    now_ms: i64,
) -> Result<Response, ApiFailure> {
    let q = BgpQuery::from_pairs(pairs, now_ms)
        .map_err(|m| ApiFailure::new(StatusCode::BAD_REQUEST, m))?;
    match bgp_signal(st.store.as_ref(), &q).await {
        Ok(s) => Ok(Json(s).into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LiveQuery {
    prefix: Option<IpNet>,
}

pub(super) async fn get_bgp<S>(
    State(st): State<AppState<S>>,
    q: Result<Query<LiveQuery>, QueryRejection>,
) -> Result<Json<BgpView>, ApiFailure> {
    let Query(q) = q.map_err(bad_query)?;
    let hub = st.metrics.bgp().ok_or_else(|| {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            "this collector has no BGP input ([bgp] in collector.toml)",
        )
    })?;
    Ok(Json(hub.view(q.prefix)))
}
