//! `GET /v1/assignments` and `GET /v1/census/{campaign}`: each agent's
//! campaigns, and their census, each sent only when it changed (`ETag` /
//! `If-None-Match`), and the agent's phase slot in each (its rank among the
//! campaign's agents, by name), so that the campaign's VPs probe each block
//! at evenly spread instants of the round (`darkwatch_schema::phase` says
//! why).
//!
//! The census is most of an assignment's weight (every known-responsive
//! address of every block) and changes on its own schedule (with every
//! agent's discovery), so an agent that asks for it apart
//! (`?census=v1`) gets assignments without it, each campaign naming its
//! census by tag, and fetches a census, compactly encoded, only when its
//! tag changed. Agents that do not ask get the census inline, as JSON.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use darkwatch_schema::census::{CENSUS_CONTENT_TYPE, CENSUS_QUERY};
use darkwatch_schema::phase::PhaseSlot;
use darkwatch_schema::Assignments;

use super::{ApiFailure, AppState, AuthedAgent};
use crate::census::{census_body, compact_census, etag_of};
use crate::store::{AgentInfo, Campaign, Store};

/// True if `headers`' `If-None-Match` names `etag`.
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

/// `body` with its `ETag`, or `304 Not Modified` if the agent holds it.
fn tagged(headers: &HeaderMap, etag: String, content_type: &str, body: Vec<u8>) -> Response {
    if matches(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/assignments[?census=v1]`, with an `ETag` (a digest of the
/// body): an agent that sends it back in `If-None-Match` gets `304 Not
/// Modified` and no body while nothing changed.
pub(super) async fn get_assignments<S: Store>(
    State(st): State<AppState<S>>,
    AuthedAgent(agent): AuthedAgent,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    let apart = query
        .iter()
        .any(|(k, v)| (k.as_str(), v.as_str()) == CENSUS_QUERY);
    let a = assignments_of(&st, agent, apart).await?;
    let body = serde_json::to_vec(&a)
        .map_err(|e| ApiFailure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(tagged(&headers, etag_of(&body), "application/json", body))
}

/// `GET /v1/census/{campaign}`: the census of a campaign assigned to the
/// agent, encoded compactly (`darkwatch_schema::census`), with its tag.
pub(super) async fn get_census<S: Store>(
    State(st): State<AppState<S>>,
    AuthedAgent(agent): AuthedAgent,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiFailure> {
    let campaigns = st
        .store
        .campaigns_for_agent(&agent)
        .await
        .map_err(ApiFailure::store)?;
    let Some(c) = campaigns.iter().find(|c| c.name == name) else {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            format!("no campaign {name:?} assigned to agent {agent:?}"),
        ));
    };
    let (etag, body) = census_body(&census_of(&st, c).await?);
    Ok(tagged(&headers, etag, CENSUS_CONTENT_TYPE, body))
}

async fn census_of<S: Store>(
    st: &AppState<S>,
    c: &Campaign,
) -> Result<darkwatch_schema::CensusSet, ApiFailure> {
    let stored = st.store.census(&c.name).await.map_err(ApiFailure::store)?;
    Ok(compact_census(c, stored))
}

/// The agent's assignments; with the census `apart`, each campaign names
/// its census by tag instead of carrying it.
async fn assignments_of<S: Store>(
    st: &AppState<S>,
    agent: String,
    apart: bool,
) -> Result<Assignments, ApiFailure> {
    let campaigns = st
        .store
        .campaigns_for_agent(&agent)
        .await
        .map_err(ApiFailure::store)?;
    let agents = st.store.list_agents().await.map_err(ApiFailure::store)?;
    let mut assigned = Vec::with_capacity(campaigns.len());
    let mut phases = BTreeMap::new();
    for c in &campaigns {
        let census = census_of(st, c).await?;
        assigned.push(if apart {
            let mut a = c.to_assignment();
            a.census_tag = Some(census_body(&census).0);
            a
        } else {
            c.to_assignment_with_census(census)
        });
        if let Some(slot) = phase_slot(c, &agents, &agent) {
            phases.insert(c.name.clone(), slot);
        }
    }
    Ok(Assignments {
        agent,
        campaigns: assigned,
        packed: Some(darkwatch_schema::packed::PACKED_VERSION),
        probe_errors: true,
        phases,
    })
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
