//! Checks and merges of `campaign add` against what is saved: `--agents`
//! must name registered agents, and `--replace` changes only what the
//! command line gives (it used to reset every field left out, so a campaign
//! restricted to two agents silently became "all agents"). Pure: the saved
//! campaign and the registered agents are passed in.

use crate::store::{AgentInfo, Campaign, CampaignSpec};

use super::CampaignAddArgs;

/// Seconds between rounds of a new campaign when `--interval` is not given.
pub const DEFAULT_INTERVAL_SECS: u64 = 600;

/// Which fields of a campaign the command line gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Given {
    pub country: bool,
    /// The campaign's space, from `--prefix`, `--delegated` or `--hitlist`
    /// (a campaign of hitlists alone takes its blocks from them).
    pub space: bool,
    pub interval: bool,
    /// `--agents` or `--all-agents`.
    pub agents: bool,
    pub control: bool,
}

impl Given {
    pub fn of(args: &CampaignAddArgs) -> Given {
        Given {
            country: args.country.is_some(),
            space: !args.prefixes.is_empty()
                || args.delegated.is_some()
                || !args.hitlists.is_empty(),
            interval: args.interval.is_some(),
            agents: !args.agents.is_empty() || args.all_agents,
            control: !args.control.is_empty(),
        }
    }
}

/// `--replace`: each field the command line gives replaces the saved one;
/// the others stay as saved.
pub fn keep_unchanged(mut spec: CampaignSpec, given: Given, old: &Campaign) -> CampaignSpec {
    if !given.country {
        spec.country = old.country.clone();
    }
    if !given.space {
        spec.prefixes = old.prefixes.clone();
    }
    if !given.interval {
        spec.interval_secs = old.interval_secs;
    }
    if !given.agents {
        spec.agents = old.agents.clone();
    }
    if !given.control {
        spec.control = old.control.clone();
    }
    spec
}

/// The names of `wanted` that no registered agent has.
pub fn unknown_agents<'a>(wanted: &'a [String], known: &[AgentInfo]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| !known.iter().any(|k| &k.name == *w))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Campaign {
        Campaign {
            name: "kp".into(),
            country: Some("KP".into()),
            interval_secs: 60,
            prefixes: vec!["175.45.176.0/22".parse().unwrap()],
            control: vec!["192.0.2.0/24".parse().unwrap()],
            agents: vec!["vp-a".into(), "vp-b".into()],
            generation: 3,
            created_ms: 0,
        }
    }

    fn spec() -> CampaignSpec {
        CampaignSpec {
            name: "kp".into(),
            country: None,
            interval_secs: DEFAULT_INTERVAL_SECS,
            prefixes: vec![],
            control: vec![],
            agents: vec![],
        }
    }

    /// The trap: `--replace --interval 120` made a two-agent campaign an
    /// all-agents one, and dropped its country, prefixes and controls.
    #[test]
    fn replace_keeps_what_is_not_given() {
        let given = Given {
            interval: true,
            ..Given::default()
        };
        let new = keep_unchanged(
            CampaignSpec {
                interval_secs: 120,
                ..spec()
            },
            given,
            &saved(),
        );
        let old = saved();
        assert_eq!(new.interval_secs, 120);
        assert_eq!(new.agents, old.agents);
        assert_eq!(new.country, old.country);
        assert_eq!(new.prefixes, old.prefixes);
        assert_eq!(new.control, old.control);
    }

    #[test]
    fn replace_takes_what_is_given() {
        let given = Given {
            country: true,
            space: true,
            interval: true,
            agents: true,
            control: true,
        };
        let mine = CampaignSpec {
            country: Some("CU".into()),
            prefixes: vec!["198.18.0.0/24".parse().unwrap()],
            interval_secs: 30,
            agents: vec![],
            control: vec!["198.51.100.0/24".parse().unwrap()],
            ..spec()
        };
        assert_eq!(keep_unchanged(mine.clone(), given, &saved()), mine);
    }

    #[test]
    fn unknown_agents_are_named() {
        let known = [AgentInfo {
            name: "vp-a".into(),
            created_ms: 0,
            last_seen_ms: None,
            revoked: false,
        }];
        let wanted = ["vp-a".to_string(), "vp-z".to_string()];
        assert_eq!(unknown_agents(&wanted, &known), ["vp-z"]);
        assert!(unknown_agents(&wanted[..1], &known).is_empty());
    }
}
