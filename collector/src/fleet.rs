//! Fleet health: is each agent doing its job for each campaign it runs?
//!
//! An operator trusts a monitor that says when it is blind. A vantage point
//! that stops reporting is `stale` once it has missed
//! [`STALE_AFTER_MISSED_ROUNDS`] rounds of *its* campaign (a threshold tied
//! to the slowest campaign on the collector once left a dead 60-s VP "ok"
//! for half an hour), and every known agent has a health for every campaign
//! it runs, so that `/metrics` always has a series an alert rule can fire on.
//!
//! Pure: agents, campaigns, open faults, the latest round each agent
//! reported and the time are passed in (`views::status` and the `/metrics`
//! handler read them from the store).

use darkwatch_schema::round_of;
use serde::Serialize;

use crate::store::{AgentInfo, Campaign, VpFault};

/// Rounds of a campaign an agent may miss before it is stale. The latest
/// complete round is reported just after it ends, so at round `c` a
/// healthy agent has reported `c - 1` (or `c - 2` while that report is on
/// its way); at `c - 3` or earlier it missed two.
pub const STALE_AFTER_MISSED_ROUNDS: u64 = 2;

/// Interval used for an agent that runs no campaign (it is stale once
/// unseen for two such rounds).
const IDLE_INTERVAL_SECS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Ok,
    /// Missed [`STALE_AFTER_MISSED_ROUNDS`] rounds (of a campaign).
    Stale,
    /// The correlation judged the VP faulty (a fault is open).
    Faulty,
    Revoked,
    NeverSeen,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Stale => "stale",
            Health::Faulty => "faulty",
            Health::Revoked => "revoked",
            Health::NeverSeen => "never-seen",
        }
    }
}

/// One agent's health for one campaign it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentCampaign {
    pub agent: String,
    pub campaign: String,
    pub health: Health,
    /// The latest round of the campaign it reported (`None`: none yet).
    pub last_round: Option<u64>,
}

/// The latest round an agent reported of a campaign: `(agent, campaign,
/// round)`, from the round timings agents send with each round.
pub type LastRound = (String, String, u64);

/// Every (agent, campaign it runs) pair with its health at `now_ms`.
/// Revoked agents are left out (they run nothing).
pub fn per_campaign(
    agents: &[AgentInfo],
    campaigns: &[Campaign],
    faults: &[VpFault],
    last_rounds: &[LastRound],
    now_ms: i64,
) -> Vec<AgentCampaign> {
    let mut out = Vec::new();
    for a in agents.iter().filter(|a| !a.revoked) {
        for c in campaigns.iter().filter(|c| c.assigned_to(&a.name)) {
            let last_round = last_rounds
                .iter()
                .filter(|(agent, campaign, _)| *agent == a.name && *campaign == c.name)
                .map(|r| r.2)
                .max();
            let faulty = faults
                .iter()
                .any(|f| f.agent == a.name && f.campaign == c.name && f.end_round.is_none());
            let health = if faulty {
                Health::Faulty
            } else {
                match (a.last_seen_ms, last_round) {
                    (None, None) => Health::NeverSeen,
                    // An agent that never timed a round of this campaign
                    // (new campaign, or an agent that sends no timing):
                    // judged by when it was last seen at all.
                    (Some(seen), None) => stale_since(round_of(seen, c.interval_secs), c, now_ms),
                    (_, Some(r)) => stale_since(r, c, now_ms),
                }
            };
            out.push(AgentCampaign {
                agent: a.name.clone(),
                campaign: c.name.clone(),
                health,
                last_round,
            });
        }
    }
    out
}

fn stale_since(last_round: u64, c: &Campaign, now_ms: i64) -> Health {
    let current = round_of(now_ms, c.interval_secs);
    if current > last_round + STALE_AFTER_MISSED_ROUNDS {
        Health::Stale
    } else {
        Health::Ok
    }
}

/// One agent's health over the campaigns it runs: revoked, never seen,
/// faulty in any, stale in any, else ok. An agent that runs no campaign is
/// stale once unseen for two rounds of [`IDLE_INTERVAL_SECS`].
pub fn of_agent(agent: &AgentInfo, per: &[AgentCampaign], now_ms: i64) -> Health {
    let mine = per.iter().filter(|p| p.agent == agent.name);
    if agent.revoked {
        return Health::Revoked;
    }
    let Some(seen) = agent.last_seen_ms else {
        return Health::NeverSeen;
    };
    let mut health = Health::Ok;
    let mut any = false;
    for p in mine {
        any = true;
        match p.health {
            Health::Faulty => return Health::Faulty,
            Health::Stale => health = Health::Stale,
            _ => {}
        }
    }
    let idle_limit = (STALE_AFTER_MISSED_ROUNDS + 1) as i64 * IDLE_INTERVAL_SECS as i64 * 1000;
    if !any && now_ms - seen > idle_limit {
        health = Health::Stale;
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_800_000_000_000; // a round boundary for 60 s and 600 s

    fn agent(name: &str, last_seen_ms: Option<i64>) -> AgentInfo {
        AgentInfo {
            name: name.into(),
            created_ms: 0,
            last_seen_ms,
            revoked: false,
        }
    }

    fn campaign(name: &str, interval_secs: u64, agents: &[&str]) -> Campaign {
        Campaign {
            name: name.into(),
            country: None,
            interval_secs,
            prefixes: vec![],
            control: vec![],
            agents: agents.iter().map(|a| a.to_string()).collect(),
            generation: 1,
            created_ms: 0,
        }
    }

    fn last(agent: &str, campaign: &str, round: u64) -> LastRound {
        (agent.into(), campaign.into(), round)
    }

    /// The trap: with a 600-s campaign beside it, a VP of a 60-s campaign
    /// that stopped reporting stayed "ok" for half an hour. Now its own
    /// campaign's rounds count: stale after two missed rounds.
    #[test]
    fn stale_after_two_missed_rounds_of_its_own_campaign() {
        let agents = [agent("vp", Some(T0))];
        let campaigns = [campaign("fast", 60, &[]), campaign("slow", 600, &["other"])];
        let r0 = round_of(T0, 60);
        let at = |now: i64| {
            let per = per_campaign(&agents, &campaigns, &[], &[last("vp", "fast", r0 - 1)], now);
            assert_eq!(per.len(), 1, "the slow campaign is not the VP's");
            (per[0].health, of_agent(&agents[0], &per, now))
        };
        // Round r0 + 1 (r0's report may be on its way): ok.
        assert_eq!(at(T0 + MIN + 30_000), (Health::Ok, Health::Ok));
        // Round r0 + 2: r0 and r0 + 1 missed.
        assert_eq!(at(T0 + 2 * MIN + 1), (Health::Stale, Health::Stale));
    }

    #[test]
    fn faults_revocation_and_never_seen() {
        let campaigns = [campaign("kp", 60, &[])];
        let fault = VpFault {
            id: 1,
            agent: "vp".into(),
            campaign: "kp".into(),
            start_round: 1,
            end_round: None,
            start_ms: 0,
            end_ms: None,
            reason: "controls lost".into(),
            updated_ms: 0,
        };
        let r = round_of(T0, 60);
        let seen = [agent("vp", Some(T0))];
        let per = per_campaign(
            &seen,
            &campaigns,
            std::slice::from_ref(&fault),
            &[last("vp", "kp", r)],
            T0,
        );
        assert_eq!(per[0].health, Health::Faulty);
        assert_eq!(of_agent(&seen[0], &per, T0), Health::Faulty);
        let closed = VpFault {
            end_round: Some(2),
            ..fault
        };
        let per = per_campaign(&seen, &campaigns, &[closed], &[last("vp", "kp", r)], T0);
        assert_eq!(per[0].health, Health::Ok);

        let never = [agent("new", None)];
        let per = per_campaign(&never, &campaigns, &[], &[], T0);
        assert_eq!(per[0].health, Health::NeverSeen);
        assert_eq!(of_agent(&never[0], &per, T0), Health::NeverSeen);

        let revoked = [AgentInfo {
            revoked: true,
            ..agent("gone", Some(T0))
        }];
        let per = per_campaign(&revoked, &campaigns, &[], &[], T0);
        assert!(per.is_empty());
        assert_eq!(of_agent(&revoked[0], &per, T0), Health::Revoked);
    }

    /// Without a timed round of a campaign, when the agent was last seen
    /// counts; an agent with no campaign goes stale after two idle rounds.
    #[test]
    fn untimed_and_idle_agents() {
        let campaigns = [campaign("kp", 60, &[])];
        let a = [agent("vp", Some(T0))];
        let per = per_campaign(&a, &campaigns, &[], &[], T0 + 2 * MIN);
        assert_eq!(per[0].health, Health::Ok);
        let per = per_campaign(&a, &campaigns, &[], &[], T0 + 3 * MIN);
        assert_eq!(per[0].health, Health::Stale);

        let per = per_campaign(&a, &[], &[], &[], T0);
        assert!(per.is_empty());
        assert_eq!(of_agent(&a[0], &per, T0 + 20 * MIN), Health::Ok);
        assert_eq!(of_agent(&a[0], &per, T0 + 31 * MIN), Health::Stale);
    }
}
