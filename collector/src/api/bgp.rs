//! `GET /v1/bgp[?prefix=P]`: the live BGP state (the open round, every
//! prefix inside or covering P, and the recent closed rounds with what
//! moved). 404 when the collector has no `[bgp]` input.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use ipnet::IpNet;

use super::{bad_query, ApiFailure, AppState};
use crate::bgp::hub::BgpView;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BgpQuery {
    prefix: Option<IpNet>,
}

pub(super) async fn get_bgp<S>(
    State(st): State<AppState<S>>,
    q: Result<Query<BgpQuery>, QueryRejection>,
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
