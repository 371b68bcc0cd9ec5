//! What each agent watches of each campaign, as `status` shows it.
//!
//! Agents report per campaign how many blocks they track, how many
//! addresses they target, and what they skipped and why (reserved space,
//! local exclusions, IPv6 space too large to sweep, the `max_targets` cap).
//! This module turns the stored reports into rows and one-line summaries
//! such as `kp: 4 blocks, 1024 addresses, skipped 2^64+ ipv6_too_large
//! (2401:f00::/32), 256 reserved`, so an operator sees at a glance that an
//! agent watches less than it was asked to. Pure: no store, no clock.

use std::fmt::Write as _;

use darkwatch_schema::{Coverage, Skipped};
use serde::Serialize;

use crate::store::{AgentCoverage, Campaign};

/// Skipped prefixes named in a summary line (the JSON has all examples).
const EXAMPLES_SHOWN: usize = 2;

/// One agent's coverage of one campaign, as `status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageJson {
    pub campaign: String,
    /// Campaign generation the agent computed this for.
    pub generation: u64,
    /// False when the campaign changed after this report: the agent has not
    /// yet said what it watches of the current definition.
    pub current: bool,
    pub blocks_tracked: u64,
    pub addresses_targeted: u64,
    /// True when the agent skipped part of the campaign.
    pub partial: bool,
    pub skipped: Vec<Skipped>,
    /// When the report arrived (RFC 3339).
    pub updated: String,
    /// The same in one line for people.
    pub summary: String,
}

/// An address count for people: exact below 2^20, a power of two when it is
/// one (IPv6 space), `2^64+` at the wire's saturation point.
pub fn fmt_count(n: u64) -> String {
    if n == u64::MAX {
        "2^64+".into()
    } else if n >= 1 << 20 && n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        n.to_string()
    }
}

/// `kp: 4 blocks, 1024 addresses, skipped 2^80 ipv6_too_large (2001:db8::/48), 256 reserved`.
pub fn summary(c: &Coverage) -> String {
    let mut s = format!(
        "{}: {} blocks, {} addresses",
        c.campaign,
        c.blocks_tracked,
        fmt_count(c.addresses_targeted)
    );
    let skipped: Vec<&Skipped> = c.skipped.iter().filter(|k| k.addresses > 0).collect();
    for (i, k) in skipped.iter().enumerate() {
        s.push_str(if i == 0 { ", skipped " } else { ", " });
        let _ = write!(s, "{} {}", fmt_count(k.addresses), k.reason.as_str());
        if !k.examples.is_empty() {
            let shown: Vec<String> = k
                .examples
                .iter()
                .take(EXAMPLES_SHOWN)
                .map(ToString::to_string)
                .collect();
            let more = if k.examples.len() > EXAMPLES_SHOWN {
                ", ..."
            } else {
                ""
            };
            let _ = write!(s, " ({}{more})", shown.join(", "));
        }
    }
    s
}

/// Rows of `agent`, for the campaigns that still exist and are still
/// assigned to it, by campaign name.
pub fn for_agent(
    agent: &str,
    all: &[AgentCoverage],
    campaigns: &[Campaign],
    fmt_time: impl Fn(i64) -> String,
) -> Vec<CoverageJson> {
    let mut rows: Vec<CoverageJson> = all
        .iter()
        .filter(|r| r.agent == agent)
        .filter_map(|r| {
            let c = &r.coverage;
            let campaign = campaigns
                .iter()
                .find(|k| k.name == c.campaign && k.assigned_to(agent))?;
            let mut summary = summary(c);
            let current = c.generation >= campaign.generation;
            if !current {
                let _ = write!(
                    summary,
                    " [for generation {}, campaign is at {}]",
                    c.generation, campaign.generation
                );
            }
            Some(CoverageJson {
                campaign: c.campaign.clone(),
                generation: c.generation,
                current,
                blocks_tracked: c.blocks_tracked,
                addresses_targeted: c.addresses_targeted,
                partial: c.skipped.iter().any(|k| k.addresses > 0),
                skipped: c.skipped.clone(),
                updated: fmt_time(r.updated_ms),
                summary,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.campaign.cmp(&b.campaign));
    rows
}

/// Campaigns assigned to `agent` of which it reported no coverage (an
/// agent too old to report it, or one that has not started them yet).
pub fn missing(agent: &str, all: &[AgentCoverage], campaigns: &[Campaign]) -> Vec<String> {
    campaigns
        .iter()
        .filter(|c| c.assigned_to(agent))
        .filter(|c| {
            !all.iter()
                .any(|r| r.agent == agent && r.coverage.campaign == c.name)
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::SkipReason;

    fn coverage(skipped: Vec<Skipped>) -> Coverage {
        Coverage {
            campaign: "kp".into(),
            generation: 3,
            blocks_tracked: 4,
            addresses_targeted: 1024,
            skipped,
        }
    }

    fn campaign(name: &str, generation: u64) -> Campaign {
        Campaign {
            name: name.into(),
            country: Some("KP".into()),
            interval_secs: 60,
            prefixes: vec![],
            control: vec![],
            agents: vec![],
            generation,
            created_ms: 0,
        }
    }

    #[test]
    fn counts_read_as_powers_of_two_when_large() {
        assert_eq!(fmt_count(256), "256");
        assert_eq!(fmt_count(1_000_000), "1000000");
        assert_eq!(fmt_count(1 << 20), "2^20");
        assert_eq!(fmt_count(1 << 63), "2^63");
        assert_eq!(fmt_count(u64::MAX), "2^64+");
    }

    #[test]
    fn summary_names_each_reason_with_examples() {
        let c = coverage(vec![
            Skipped {
                reason: SkipReason::Ipv6TooLarge,
                addresses: u64::MAX,
                examples: vec![
                    "2401:f00::/32".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                    "2001:db9::/32".parse().unwrap(),
                ],
            },
            Skipped {
                reason: SkipReason::Reserved,
                addresses: 256,
                examples: vec![],
            },
            Skipped {
                reason: SkipReason::Excluded,
                addresses: 0,
                examples: vec![],
            },
        ]);
        assert_eq!(
            summary(&c),
            "kp: 4 blocks, 1024 addresses, skipped 2^64+ ipv6_too_large \
             (2401:f00::/32, 2001:db8::/32, ...), 256 reserved"
        );
        assert_eq!(summary(&coverage(vec![])), "kp: 4 blocks, 1024 addresses");
    }

    #[test]
    fn rows_flag_partial_and_outdated_coverage() {
        let skipped = vec![Skipped {
            reason: SkipReason::Reserved,
            addresses: 256,
            examples: vec![],
        }];
        let all = [
            AgentCoverage {
                agent: "vp1".into(),
                updated_ms: 5,
                coverage: coverage(skipped),
            },
            AgentCoverage {
                agent: "vp2".into(),
                updated_ms: 5,
                coverage: coverage(vec![]),
            },
            AgentCoverage {
                agent: "vp1".into(),
                updated_ms: 5,
                coverage: Coverage {
                    campaign: "gone".into(),
                    ..coverage(vec![])
                },
            },
        ];
        let rows = for_agent("vp1", &all, &[campaign("kp", 4)], |ms| ms.to_string());
        assert_eq!(rows.len(), 1, "removed campaigns are not shown");
        let mut elsewhere = campaign("kp", 4);
        elsewhere.agents = vec!["vp2".into()];
        assert!(for_agent("vp1", &all, &[elsewhere], |ms| ms.to_string()).is_empty());
        assert_eq!(
            missing("vp1", &all, &[campaign("kp", 4), campaign("cu", 1)]),
            ["cu"]
        );
        assert!(rows[0].partial);
        assert!(!rows[0].current);
        assert!(rows[0]
            .summary
            .ends_with("[for generation 3, campaign is at 4]"));
        let rows = for_agent("vp2", &all, &[campaign("kp", 3)], |ms| ms.to_string());
        assert!(!rows[0].partial && rows[0].current);
        assert_eq!(rows[0].updated, "5");
    }
}
