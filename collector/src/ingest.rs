//! Checks a report batch against what the collector knows, before storing it.
//!
//! `ReportBatch::validate` (shared with the agent) covers shapes and ranges;
//! this adds what needs collector state: each campaign must exist and be
//! assigned to the reporting agent, each round number must agree with
//! its timestamp for that campaign's interval (a round's timing: with its
//! start), and each observed block must
//! overlap the campaign's prefixes (control observations: its control
//! prefixes). Packed rounds must name a block space the collector knows
//! (the campaign's current one or an older generation) and decode within
//! it; they are then stored packed. Pure: campaigns, stored block spaces
//! and the current time are passed in.

use std::collections::HashMap;

use darkwatch_schema::{round_of, BlockSpace, ReportBatch, SchemaError};

use crate::store::{Campaign, Spaces, StoredSpace};

/// How many rounds a reported round may differ from the round its
/// timestamp falls in: probing of a round may finish after the round ends.
pub const MAX_ROUND_DRIFT: u64 = 2;

pub use darkwatch_schema::ERROR_ROUND_AHEAD;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IngestError {
    /// Malformed contents: the agent must not resend this batch as is.
    #[error(transparent)]
    Invalid(#[from] SchemaError),
    #[error("unknown campaign {0:?}")]
    UnknownCampaign(String),
    #[error("campaign {campaign:?} is not assigned to agent {agent:?}")]
    NotAssigned { campaign: String, agent: String },
    #[error("block {block} is not part of campaign {campaign:?}")]
    UnknownBlock { campaign: String, block: String },
    /// The agent's block space differs from the campaign's current one (the
    /// campaign changed since the agent packed the round): the agent resends
    /// the blocks as plain observations.
    #[error("packed round {round} of campaign {campaign:?} refers to block space {space}, not the campaign's {expected}")]
    UnknownBlockSpace {
        campaign: String,
        round: u64,
        space: String,
        expected: String,
    },
    /// A round that has not begun by the collector's clock: the agent's
    /// clock runs ahead. Stored, it would take the place of the real round
    /// (a round is stored once per agent), so it is refused; the agent
    /// keeps the batch in `rejected/`.
    #[error("round {round} of campaign {campaign:?} has not begun by the collector's clock (its round is {current}): the agent's clock runs ahead")]
    RoundAhead {
        campaign: String,
        round: u64,
        current: u64,
    },
}

/// What the packed rounds of a batch hold, once checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackedTotals {
    pub blocks: u64,
    pub probes: u64,
    pub replies: u64,
}

/// Campaigns of `batch` whose packed rounds name a block space other than
/// the campaign's current one: the caller looks up their older generations
/// (`Store::block_spaces`) before [`check_packed`].
pub fn foreign_spaces(batch: &ReportBatch, campaigns: &[Campaign]) -> Vec<String> {
    let mut current: HashMap<&str, String> = HashMap::new();
    let mut out: Vec<String> = Vec::new();
    for p in &batch.packed {
        let Some(c) = campaigns.iter().find(|c| c.name == p.campaign) else {
            continue;
        };
        let digest = current
            .entry(c.name.as_str())
            .or_insert_with(|| BlockSpace::new(&c.prefixes).digest());
        if *digest != p.space && !out.contains(&p.campaign) {
            out.push(p.campaign.clone());
        }
    }
    out
}

/// Checks the packed rounds of `batch` (after [`check_batch`], which covers
/// their campaigns and round numbers): each must name the current block
/// space of its campaign or an older generation in `older` (by campaign),
/// and its columns must decode within that space. The rounds are then
/// stored as they came; nothing is unpacked into rows.
pub fn check_packed(
    batch: &ReportBatch,
    campaigns: &[Campaign],
    older: &HashMap<String, Vec<StoredSpace>>,
) -> Result<PackedTotals, IngestError> {
    let mut spaces: HashMap<&str, Spaces> = HashMap::new();
    let mut totals = PackedTotals::default();
    for p in &batch.packed {
        let campaign = campaigns
            .iter()
            .find(|c| c.name == p.campaign)
            .ok_or_else(|| IngestError::UnknownCampaign(p.campaign.clone()))?;
        let known = spaces.entry(campaign.name.as_str()).or_insert_with(|| {
            let current = StoredSpace {
                digest: BlockSpace::new(&campaign.prefixes).digest(),
                prefixes: campaign.prefixes.clone(),
            };
            let mut all = older.get(&campaign.name).cloned().unwrap_or_default();
            all.push(current);
            Spaces::new(&all)
        });
        let Some(space) = known.get(&p.space) else {
            return Err(IngestError::UnknownBlockSpace {
                campaign: p.campaign.clone(),
                round: p.round,
                space: p.space.clone(),
                expected: BlockSpace::new(&campaign.prefixes).digest(),
            });
        };
        let blocks = p.unpack(space).map_err(|e| {
            IngestError::Invalid(SchemaError::Packed {
                campaign: p.campaign.clone(),
                round: p.round,
                why: e.to_string(),
            })
        })?;
        totals.blocks += blocks.len() as u64;
        for b in &blocks {
            totals.probes += u64::from(b.probes);
            totals.replies += u64::from(b.replies);
        }
    }
    Ok(totals)
}

/// Accepts or refuses `batch` from `agent` given the current `campaigns`.
pub fn check_batch(
    batch: &ReportBatch,
    agent: &str,
    campaigns: &[Campaign],
    now_ms: i64,
) -> Result<(), IngestError> {
    batch.validate_contents(now_ms)?;
    let by_name: HashMap<&str, &Campaign> =
        campaigns.iter().map(|c| (c.name.as_str(), c)).collect();
    let items = batch
        .observations
        .iter()
        .map(|o| (o.campaign.as_str(), o.round, o.ts_ms))
        .chain(
            batch
                .traces
                .iter()
                .map(|t| (t.campaign.as_str(), t.round, t.ts_ms)),
        )
        .chain(
            batch
                .packed
                .iter()
                .map(|p| (p.campaign.as_str(), p.round, p.ts_ms)),
        )
        .chain(
            batch
                .rounds
                .iter()
                .map(|r| (r.campaign.as_str(), r.round, r.started_ms)),
        )
        .chain(
            batch
                .probe_errors
                .iter()
                .map(|p| (p.campaign.as_str(), p.round, p.ts_ms)),
        );
    for (name, round, ts_ms) in items {
        let campaign = by_name
            .get(name)
            .ok_or_else(|| IngestError::UnknownCampaign(name.to_string()))?;
        if !campaign.assigned_to(agent) {
            return Err(IngestError::NotAssigned {
                campaign: name.to_string(),
                agent: agent.to_string(),
            });
        }
        let expected = round_of(ts_ms, campaign.interval_secs);
        if round.abs_diff(expected) > MAX_ROUND_DRIFT {
            return Err(SchemaError::Round {
                campaign: name.to_string(),
                round,
                ts_ms,
                expected,
            }
            .into());
        }
        // A round starts at `round × interval`: one that starts after
        // `now_ms` comes from a clock at least a round ahead (reports of a
        // round come after it starts, at its end).
        let current = round_of(now_ms, campaign.interval_secs);
        if round > current {
            return Err(IngestError::RoundAhead {
                campaign: name.to_string(),
                round,
                current,
            });
        }
    }
    for o in &batch.observations {
        // Every campaign exists and is assigned: checked above.
        let Some(c) = by_name.get(o.campaign.as_str()) else {
            continue;
        };
        let nets = if o.control { &c.control } else { &c.prefixes };
        if !nets
            .iter()
            .any(|p| p.contains(&o.block) || o.block.contains(p))
        {
            return Err(IngestError::UnknownBlock {
                campaign: o.campaign.clone(),
                block: o.block.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::{BlockObservation, BlockState, TraceObservation};

    const NOW: i64 = 1_800_000_000_000;

    fn campaign(name: &str, agents: &[&str]) -> Campaign {
        Campaign {
            name: name.into(),
            country: None,
            interval_secs: 60,
            prefixes: vec!["198.18.0.0/16".parse().unwrap()],
            control: vec![],
            agents: agents.iter().map(|a| a.to_string()).collect(),
            generation: 1,
            created_ms: NOW,
        }
    }

    fn batch(campaign: &str, round: u64) -> ReportBatch {
        ReportBatch {
            observations: vec![BlockObservation {
                campaign: campaign.into(),
                round,
                block: "198.18.3.0/24".parse().unwrap(),
                state: BlockState::Down,
                probes: 4,
                replies: 0,
                belief: 0.01,
                availability: 0.5,
                control: false,
                rtt_min_ms: None,
                rtt_median_ms: None,
                ts_ms: NOW,
            }],
            ..ReportBatch::new("0123456789abcdef", NOW)
        }
    }

    #[test]
    fn round_timings_are_held_to_their_campaign_and_start() {
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &[])];
        let mut b = batch("kp", r);
        b.rounds = vec![darkwatch_schema::RoundInfo {
            campaign: "kp".into(),
            round: r,
            started_ms: NOW,
            ended_ms: NOW,
            on_time: true,
            blocks: 1,
            probes: 1,
        }];
        assert_eq!(check_batch(&b, "vp1", &cs, NOW), Ok(()));
        let mut other = b.clone();
        other.rounds[0].campaign = "kr".into();
        assert_eq!(
            check_batch(&other, "vp1", &cs, NOW),
            Err(IngestError::UnknownCampaign("kr".into()))
        );
        assert!(matches!(
            check_batch(&b, "vp1", &[campaign("kp", &["vp2"])], NOW),
            Err(IngestError::NotAssigned { .. })
        ));
        let mut far = b.clone();
        far.rounds[0].round = r + MAX_ROUND_DRIFT + 1;
        assert!(matches!(
            check_batch(&far, "vp1", &cs, NOW),
            Err(IngestError::Invalid(SchemaError::Round { .. }))
        ));
    }

    #[test]
    fn packed_rounds_are_checked_against_known_spaces() {
        use darkwatch_schema::{PackedBlock, PackedRound};
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &[])];
        let space = BlockSpace::new(&cs[0].prefixes);
        let blocks: Vec<PackedBlock> = [3u64, 200]
            .iter()
            .map(|&index| PackedBlock {
                index,
                state: BlockState::Down,
                probes: 15,
                replies: 1,
                belief: 3,
                availability: 128,
                rtt: darkwatch_schema::rtt::Rtt::NONE,
            })
            .collect();
        let p = PackedRound::pack("kp", r, &space, NOW, (0, 1), blocks).unwrap();
        let mut b = batch("kp", r);
        b.observations.clear();
        b.packed = vec![p.clone()];
        assert_eq!(check_batch(&b, "vp1", &cs, NOW), Ok(()));
        assert!(foreign_spaces(&b, &cs).is_empty());
        let none = HashMap::new();
        assert_eq!(
            check_packed(&b, &cs, &none),
            Ok(PackedTotals {
                blocks: 2,
                probes: 30,
                replies: 2
            })
        );
        // Packed rounds are held to their campaign's assignment and rounds too.
        let only_vp2 = [campaign("kp", &["vp2"])];
        assert!(matches!(
            check_batch(&b, "vp1", &only_vp2, NOW),
            Err(IngestError::NotAssigned { .. })
        ));
        let mut late = b.clone();
        late.packed[0].round = r + MAX_ROUND_DRIFT + 1;
        assert!(check_batch(&late, "vp1", &cs, NOW).is_err());

        // The campaign grew since the agent packed: unknown unless the older
        // generation is known, then accepted as it is.
        let mut grown = cs.clone();
        grown[0].prefixes.push("198.19.0.0/24".parse().unwrap());
        assert_eq!(foreign_spaces(&b, &grown), ["kp"]);
        let e = check_packed(&b, &grown, &none).unwrap_err();
        assert!(matches!(e, IngestError::UnknownBlockSpace { .. }), "{e}");
        let older = HashMap::from([(
            "kp".to_string(),
            vec![StoredSpace {
                digest: space.digest(),
                prefixes: cs[0].prefixes.clone(),
            }],
        )]);
        assert_eq!(check_packed(&b, &grown, &older).map(|t| t.blocks), Ok(2));

        // Columns that do not decode within the space are invalid.
        let mut bad = b.clone();
        bad.packed[0].blocks = 3;
        assert!(matches!(
            check_packed(&bad, &cs, &none),
            Err(IngestError::Invalid(SchemaError::Packed { .. }))
        ));
    }

    #[test]
    fn accepts_assigned_campaign_with_matching_round() {
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &[])];
        assert_eq!(check_batch(&batch("kp", r), "vp1", &cs, NOW), Ok(()));
        assert_eq!(
            check_batch(&batch("kp", r - MAX_ROUND_DRIFT), "vp1", &cs, NOW),
            Ok(())
        );
        // Ahead of its own timestamp, once the collector's clock is there.
        assert_eq!(
            check_batch(&batch("kp", r + MAX_ROUND_DRIFT), "vp1", &cs, NOW + 120_000),
            Ok(())
        );
        let cs = [campaign("kp", &["vp1", "vp2"])];
        assert_eq!(check_batch(&batch("kp", r), "vp2", &cs, NOW), Ok(()));
    }

    #[test]
    fn refuses_unknown_unassigned_and_misnumbered() {
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &["vp1"])];
        assert_eq!(
            check_batch(&batch("cu", r), "vp1", &cs, NOW),
            Err(IngestError::UnknownCampaign("cu".into()))
        );
        assert!(matches!(
            check_batch(&batch("kp", r), "vp9", &cs, NOW),
            Err(IngestError::NotAssigned { .. })
        ));
        let e = check_batch(&batch("kp", r + MAX_ROUND_DRIFT + 1), "vp1", &cs, NOW).unwrap_err();
        assert!(
            matches!(e, IngestError::Invalid(SchemaError::Round { .. })),
            "{e}"
        );
        let e = check_batch(&batch("kp", 0), "vp1", &cs, NOW).unwrap_err();
        assert!(e.to_string().contains("does not match timestamp"), "{e}");
    }

    /// A round that has not begun by the collector's clock is refused, so
    /// that the real round, when it comes, is stored (it used to be
    /// answered `observations_stored: 0` behind the early one).
    #[test]
    fn refuses_a_round_that_has_not_begun() {
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &[])];
        let early = batch("kp", r + 1);
        assert_eq!(
            check_batch(&early, "vp1", &cs, NOW),
            Err(IngestError::RoundAhead {
                campaign: "kp".into(),
                round: r + 1,
                current: r
            })
        );
        // The same batch once its round has begun.
        assert_eq!(check_batch(&early, "vp1", &cs, NOW + 60_000), Ok(()));
    }

    #[test]
    fn blocks_must_belong_to_the_campaign() {
        let r = round_of(NOW, 60);
        let cs = [campaign("kp", &[])];
        let mut b = batch("kp", r);
        b.observations[0].block = "203.0.113.0/24".parse().unwrap();
        assert_eq!(
            check_batch(&b, "vp1", &cs, NOW),
            Err(IngestError::UnknownBlock {
                campaign: "kp".into(),
                block: "203.0.113.0/24".into()
            })
        );
        // A control observation must lie in the control prefixes.
        b.observations[0].control = true;
        assert!(check_batch(&b, "vp1", &cs, NOW).is_err());
        let mut with_control = campaign("kp", &[]);
        with_control.control = vec!["203.0.113.0/24".parse().unwrap()];
        assert_eq!(check_batch(&b, "vp1", &[with_control], NOW), Ok(()));
        // A /24 block around a smaller campaign prefix overlaps it.
        let mut small = campaign("kp", &[]);
        small.prefixes = vec!["198.18.3.64/26".parse().unwrap()];
        assert_eq!(check_batch(&batch("kp", r), "vp1", &[small], NOW), Ok(()));
    }

    #[test]
    fn traces_are_checked_too() {
        let r = round_of(NOW, 60);
        let mut b = batch("kp", r);
        b.traces.push(TraceObservation {
            campaign: "other".into(),
            round: r,
            target: "198.18.3.1".parse().unwrap(),
            hops: vec![],
            reached: false,
            last_responding: None,
            ts_ms: NOW,
        });
        let cs = [campaign("kp", &[])];
        assert_eq!(
            check_batch(&b, "vp1", &cs, NOW),
            Err(IngestError::UnknownCampaign("other".into()))
        );
    }

    #[test]
    fn schema_validation_runs_first() {
        let mut b = batch("kp", round_of(NOW, 60));
        b.batch_id = "zz".into();
        assert!(matches!(
            check_batch(&b, "vp1", &[], NOW),
            Err(IngestError::Invalid(SchemaError::BatchId(_)))
        ));
    }
}
