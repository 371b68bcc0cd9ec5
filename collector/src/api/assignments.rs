//! `GET /v1/assignments`: each agent's campaigns with their census, sent
//! only when they changed (`ETag` / `If-None-Match`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use darkwatch_schema::Assignments;

use super::{ApiFailure, AppState, AuthedAgent};
use crate::store::Store;

/// `GET /v1/assignments`, with an `ETag` (a digest of the body): an agent
/// that sends it back in `If-None-Match` gets `304 Not Modified` and no
/// body while nothing changed. With its census, one assignment is hundreds
/// of MB of JSON for a large campaign, pulled every poll.
pub(super) async fn get_assignments<S: Store>(
    State(st): State<AppState<S>>,
    AuthedAgent(agent): AuthedAgent,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiFailure> {
    let Json(a) = assignments_of(&st, agent).await?;
    let body = serde_json::to_vec(&a)
        .map_err(|e| ApiFailure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let etag = etag_of(&body);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

/// A strong entity tag of `body`: the first 16 bytes of its SHA-256.
fn etag_of(body: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(body)[..16]))
}

async fn assignments_of<S: Store>(
    st: &AppState<S>,
    agent: String,
) -> Result<Json<Assignments>, ApiFailure> {
    let campaigns = st
        .store
        .campaigns_for_agent(&agent)
        .await
        .map_err(ApiFailure::store)?;
    let mut assigned = Vec::with_capacity(campaigns.len());
    for c in &campaigns {
        let census = st.store.census(&c.name).await.map_err(ApiFailure::store)?;
        assigned.push(c.to_assignment_with_census(census));
    }
    Ok(Json(Assignments {
        agent,
        campaigns: assigned,
        packed: Some(darkwatch_schema::packed::PACKED_VERSION),
        probe_errors: true,
    }))
}
