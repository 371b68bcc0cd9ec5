//! `GET /v1/assignments`: each agent's campaigns with their census, sent
//! only when they changed (`ETag` / `If-None-Match`), and the agent's phase
//! slot in each (its rank among the campaign's agents, by name), so that the
//! campaign's VPs probe each block at evenly spread instants of the round
//! (`darkwatch_schema::phase` says why).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::BTreeMap;

use darkwatch_schema::phase::PhaseSlot;
use darkwatch_schema::Assignments;

use super::{ApiFailure, AppState, AuthedAgent};
use crate::store::{AgentInfo, Campaign, Store};

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
    let agents = st.store.list_agents().await.map_err(ApiFailure::store)?;
    let mut assigned = Vec::with_capacity(campaigns.len());
    let mut phases = BTreeMap::new();
    for c in &campaigns {
        let census = st.store.census(&c.name).await.map_err(ApiFailure::store)?;
        assigned.push(c.to_assignment_with_census(census));
        if let Some(slot) = phase_slot(c, &agents, &agent) {
            phases.insert(c.name.clone(), slot);
        }
    }
    Ok(Json(Assignments {
        agent,
        campaigns: assigned,
        packed: Some(darkwatch_schema::packed::PACKED_VERSION),
        probe_errors: true,
        phases,
    }))
}

/// `agent`'s slot among the agents that run `c`: the campaign's own list,
/// or every agent not revoked when it names none; ranked by name so that
/// every agent's slot follows from the same list.
fn phase_slot(c: &Campaign, agents: &[AgentInfo], agent: &str) -> Option<PhaseSlot> {
    let mut names: Vec<&str> = if c.agents.is_empty() {
        agents
            .iter()
            .filter(|a| !a.revoked)
            .map(|a| a.name.as_str())
            .collect()
    } else {
        c.agents.iter().map(String::as_str).collect()
    };
    names.sort_unstable();
    names.dedup();
    let rank = names.iter().position(|n| *n == agent)?;
    Some(PhaseSlot {
        rank: rank as u32,
        of: names.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(agents: &[&str]) -> Campaign {
        Campaign {
            name: "kp".into(),
            country: None,
            interval_secs: 600,
            prefixes: vec![],
            control: vec![],
            agents: agents.iter().map(|a| a.to_string()).collect(),
            generation: 1,
            created_ms: 0,
        }
    }

    fn agent(name: &str, revoked: bool) -> AgentInfo {
        AgentInfo {
            name: name.into(),
            created_ms: 0,
            last_seen_ms: None,
            revoked,
        }
    }

    #[test]
    fn each_agent_of_a_campaign_gets_its_own_slot() {
        let all = [
            agent("vp-c", false),
            agent("vp-a", false),
            agent("vp-x", true),
            agent("vp-b", false),
        ];
        let c = campaign(&[]);
        let slots: Vec<_> = ["vp-a", "vp-b", "vp-c"]
            .iter()
            .map(|a| phase_slot(&c, &all, a).unwrap())
            .collect();
        assert_eq!(
            slots,
            (0..3)
                .map(|rank| PhaseSlot { rank, of: 3 })
                .collect::<Vec<_>>()
        );
        assert_eq!(phase_slot(&c, &all, "vp-x"), None, "revoked");
        // A campaign that names its agents ranks among those only.
        let c = campaign(&["vp-c", "vp-b"]);
        assert_eq!(
            phase_slot(&c, &all, "vp-c"),
            Some(PhaseSlot { rank: 1, of: 2 })
        );
        assert_eq!(phase_slot(&c, &all, "vp-a"), None);
    }
}
