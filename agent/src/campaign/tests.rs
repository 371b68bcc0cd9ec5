//! The planner's decisions, one at a time: refusals, local policy, sweeps,
//! coverage, census acceptance and batch packing.

use super::*;
use crate::belief::{BlockErrors, RoundOutcome};
use crate::trace::TraceResult;
use darkwatch_schema::packed::BlockSpace;
use darkwatch_schema::{BlockState, SkipReason};
use darkwatch_schema::{CensusBlock, ReportBatch, RoundInfo, MAX_ITEMS_PER_BATCH};

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn campaign(name: &str, interval_secs: u64) -> CampaignAssignment {
    CampaignAssignment {
        name: name.into(),
        country: None,
        interval_secs,
        prefixes: nets(&["198.18.0.0/24"]),
        control: vec![],
        generation: 1,
        census: Default::default(),
        census_tag: None,
    }
}

fn policy() -> Policy {
    Policy {
        exclude: nets(&["198.18.7.0/24"]),
        allow: nets(&["198.18.0.0/15"]),
        max_targets: 1024,
        rediscover_rounds: 10,
        rediscovery: Default::default(),
        traces_per_round: 1,
        min_campaign_probes: 16,
    }
}

#[test]
fn absurd_campaigns_are_refused() {
    assert_eq!(campaign_acceptable(&campaign("kp", 60)), Ok(()));
    assert_eq!(
        campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS)),
        Ok(())
    );
    assert!(campaign_acceptable(&campaign("kp", 0)).is_err());
    assert!(campaign_acceptable(&campaign("kp", MAX_INTERVAL_SECS + 1)).is_err());
    assert!(campaign_acceptable(&campaign("kp", u64::MAX)).is_err());
    assert!(campaign_acceptable(&campaign("../etc", 60)).is_err());
    // That `plan` never sees one: `daemon::tests::only_acceptable_campaigns_are_due`.
    assert!(campaign_acceptable(&campaign("a/b", 60)).is_err());
}

fn reasons(skipped: &[Skipped]) -> Vec<(SkipReason, u64)> {
    skipped.iter().map(|s| (s.reason, s.addresses)).collect()
}

#[test]
fn local_policy_overrides_the_collector() {
    let policy = policy();
    // The excluded /24 is cut out of what the collector assigned.
    let (set, skipped) = policy.targets(&nets(&["198.18.6.0/23"])).unwrap();
    assert_eq!(set.address_count(), 256);
    assert!(!set.contains("198.18.7.1".parse().unwrap()));
    assert_eq!(reasons(&skipped), [(SkipReason::Excluded, 256)]);
    assert_eq!(skipped[0].examples, nets(&["198.18.7.0/24"]));
    // Reserved ranges not carved back by `allow` are never targets.
    for reserved in ["127.0.0.0/24", "10.1.2.0/24", "224.0.0.0/24", "0.0.0.0/24"] {
        let (set, skipped) = policy.targets(&nets(&[reserved])).unwrap();
        assert!(set.is_empty(), "{reserved} must be refused");
        assert_eq!(reasons(&skipped), [(SkipReason::Reserved, 256)]);
    }
    // More than max_targets: the first max_targets addresses are kept.
    let (set, skipped) = policy.targets(&nets(&["198.19.0.0/16"])).unwrap();
    assert_eq!(set.prefixes(), nets(&["198.19.0.0/22"]));
    assert_eq!(
        reasons(&skipped),
        [(SkipReason::OverMaxTargets, 65536 - 1024)]
    );
    let f = policy.filter(&nets(&["198.18.6.0/23", "2400:1::/32"]));
    assert_eq!(
        f.check("198.18.7.9".parse().unwrap()),
        Err(SkipReason::Excluded)
    );
    assert_eq!(
        f.check("198.18.8.9".parse().unwrap()),
        Err(SkipReason::OutsideCampaign)
    );
    assert_eq!(f.check("198.18.6.9".parse().unwrap()), Ok(()));
    assert_eq!(f.check("2400:1:2::9".parse().unwrap()), Ok(()));
}

#[test]
fn an_ipv6_allocation_does_not_cost_the_ipv4_space() {
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["198.18.5.0/24", "2400:1::/32"]);
    let mut st = CampaignState::default();
    let p = plan(&c, &mut st, 1, &policy()).unwrap();
    let sweep = p.sweep.unwrap().targets.unwrap();
    assert_eq!(sweep.prefixes(), nets(&["198.18.5.0/24"]));
    assert_eq!(p.coverage.addresses_targeted, 256);
    assert_eq!(p.coverage.skipped[0].reason, SkipReason::Ipv6TooLarge);
    assert_eq!(p.coverage.skipped[0].examples, nets(&["2400:1::/32"]));
}

#[test]
fn coverage_goes_out_on_change_and_every_ten_rounds() {
    let p = policy();
    let mut c = campaign("kp", 60);
    let mut st = CampaignState::default();
    let mut sent = Vec::new();
    for round in 1..=25 {
        if round == 15 {
            c.generation = 2;
        }
        let plan = plan(&c, &mut st, round, &p).unwrap();
        let b = record(
            &c,
            &mut st,
            &plan,
            RoundResults::default(),
            1,
            Wire::Plain,
            &mut || "00ff00ff".into(),
        );
        if let Some(cov) = b[0].coverage.first() {
            assert_eq!(cov.generation, c.generation);
            assert_eq!(cov.addresses_targeted, 256);
            sent.push(round);
        }
    }
    assert_eq!(sent, [1, 11, 15, 25]);
}

#[test]
fn sweeps_first_then_only_every_rediscover_rounds_or_on_change() {
    let p = policy();
    let mut c = campaign("kp", 60);
    let mut st = CampaignState::default();
    let first = plan(&c, &mut st, 100, &p).unwrap();
    assert!(first.sweep.as_ref().is_some_and(|s| s.targets.is_some()));
    // The sweep runs beside the round and finishes.
    st.discovery_pending = false;
    st.last_round = Some(100);
    assert_eq!(plan(&c, &mut st, 100, &p), Err(NoRound::Done));
    assert!(plan(&c, &mut st, 101, &p).unwrap().sweep.is_none());
    assert!(plan(&c, &mut st, 110, &p).unwrap().sweep.is_some());
    st.discovery_pending = false;
    assert!(plan(&c, &mut st, 111, &p).unwrap().sweep.is_none());
    c.generation = 2;
    assert!(plan(&c, &mut st, 112, &p).unwrap().sweep.is_some());
    assert_eq!(st.generation, 2);
}

#[test]
fn a_rediscovery_sweeps_stale_and_changed_blocks_and_a_sample_of_the_rest() {
    let p = Policy {
        max_targets: 1 << 16,
        ..policy()
    };
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["198.18.0.0/20"]);
    let mut st = CampaignState::default();
    let first = plan(&c, &mut st, 100, &p).unwrap().sweep.unwrap();
    let whole = first.targets.unwrap();
    // 16 blocks, one excluded.
    assert_eq!(whole.address_count(), 15 * 256);
    st.discovery_pending = false;
    st.last_round = Some(100);
    // Block .3 answered on two addresses; block .5 changed state since.
    let b3 = nets(&["198.18.3.0/24"])[0];
    st.trackers.insert(
        b3,
        BlockTracker::from_discovery(b3, vec![ip("198.18.3.1"), ip("198.18.3.2")]),
    );
    st.state_changed = nets(&["198.18.5.0/24"]);
    let again = plan(&c, &mut st, 110, &p).unwrap().sweep.unwrap();
    let t = again.targets.unwrap();
    assert!(st.state_changed.is_empty(), "taken into account once");
    // A fraction of the whole: the stale blocks (1 in 8), the changed one,
    // a sample of the others.
    assert!(
        t.address_count() < whole.address_count() / 3,
        "{} of {}",
        t.address_count(),
        whole.address_count()
    );
    let b5 = nets(&["198.18.5.0/24"])[0];
    assert_eq!(t.addresses_in(&b5).len(), 256, "the changed block, fully");
    // Known addresses are left to the rounds (unless the block is stale).
    let r = p.rediscovery;
    if !r.stale(&b3, 110 / 10) {
        assert!(!t.contains(ip("198.18.3.1")));
    }
    // Over a period every block is swept fully once.
    for block in whole.blocks() {
        let fully = (0..r.stale_after).filter(|n| r.stale(&block, *n)).count();
        assert_eq!(fully, 1, "{block}");
    }
}

#[test]
fn a_running_sweep_is_not_restarted_but_an_interrupted_one_is() {
    let p = policy();
    let mut c = campaign("kp", 60);
    let mut st = CampaignState::default();
    assert!(plan(&c, &mut st, 100, &p).unwrap().sweep.is_some());
    // Still sweeping, rounds and rounds later (a country takes hours).
    st.discovering = true;
    for round in 101..130 {
        assert!(plan(&c, &mut st, round, &p).unwrap().sweep.is_none());
    }
    // A change of the campaign starts over even so.
    c.generation = 2;
    assert!(plan(&c, &mut st, 130, &p).unwrap().sweep.is_some());
    // The agent restarted mid-sweep: nothing sweeps, so it starts again.
    st.discovering = false;
    assert!(st.discovery_pending);
    assert!(plan(&c, &mut st, 131, &p).unwrap().sweep.is_some());
}

#[test]
fn records_judged_blocks_and_traces_and_marks_the_round() {
    let c = campaign("kp", 60);
    let mut st = CampaignState::default();
    let plan = plan(&c, &mut st, 7, &policy()).unwrap();
    let outcome = |b: &str, probes| RoundOutcome {
        block: b.parse().unwrap(),
        state: BlockState::Up,
        probes,
        replies: probes.min(1),
        belief: 1.2,
        availability: 0.5,
        rtt: Default::default(),
    };
    let target: IpAddr = "198.18.0.1".parse().unwrap();
    let results = RoundResults {
        outcomes: vec![outcome("198.18.0.0/24", 1), outcome("198.18.1.0/24", 0)],
        controls: vec![outcome("192.0.2.0/24", 2)],
        traces: vec![TraceResult {
            target,
            hops: vec![],
            reached: false,
            last_responding: None,
        }],
        found: BTreeMap::new(),
        info: None,
        report_errors: false,
        errors: vec![],
    };
    let b = record(&c, &mut st, &plan, results, 42, Wire::Plain, &mut || {
        "00ff00ff".into()
    });
    assert_eq!(b.len(), 1);
    let o = &b[0].observations;
    assert_eq!(o.len(), 2, "a block without probes is not reported");
    assert_eq!((o[0].round, o[0].ts_ms, o[0].belief), (7, 42, 1.0));
    assert!(!o[0].control && o[1].control);
    assert_eq!(b[0].traces[0].target, target);
    assert_eq!(st.last_round, Some(7));
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn census_seeds_trackers_within_the_campaign_and_the_policy_only() {
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["198.18.6.0/23", "2400:1::/32"]);
    let census = |addrs: &[&str]| CensusBlock {
        block: darkwatch_schema::block_of(ip(addrs[0])),
        addrs: addrs.iter().map(|a| ip(a)).collect(),
    };
    c.census = darkwatch_schema::CensusSet::from_blocks(&[
        census(&["198.18.6.1", "198.18.6.2"]),
        census(&["198.18.7.1"]),             // locally excluded
        census(&["198.18.9.1", "10.0.0.1"]), // outside the campaign
        census(&["2400:1:0:1::1", "2400:1:0:2::1"]),
    ]);
    let mut st = CampaignState::default();
    let p = plan(&c, &mut st, 1, &policy()).unwrap();
    let tracked: Vec<IpNet> = st.trackers.keys().copied().collect();
    assert_eq!(tracked, nets(&["198.18.6.0/24", "2400:1::/48"]));
    assert_eq!(st.trackers[&nets(&["2400:1::/48"])[0]].responsive.len(), 2);
    let reasons: Vec<(SkipReason, u64)> = p
        .coverage
        .skipped
        .iter()
        .map(|s| (s.reason, s.addresses))
        .collect();
    assert_eq!(
        reasons,
        [
            (SkipReason::Excluded, 257),
            (SkipReason::Ipv6TooLarge, u64::MAX),
            (SkipReason::OutsideCampaign, 2),
        ]
    );
    // 256 swept, plus the two IPv6 addresses.
    assert_eq!(p.coverage.addresses_targeted, 258);
    // The first sweep skips the block the census covers.
    let sweep = p.sweep.unwrap();
    assert!(sweep.targets.is_none(), "{sweep:?}");
    // A rediscovery sweeps it again.
    st.last_round = Some(1);
    let p = plan(&c, &mut st, 11, &policy()).unwrap();
    assert_eq!(
        p.sweep.unwrap().targets.unwrap().prefixes(),
        nets(&["198.18.6.0/24"])
    );
}

#[test]
fn census_beyond_max_targets_is_skipped() {
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["2400:1::/32"]);
    c.census = darkwatch_schema::CensusSet::from_blocks(&[CensusBlock {
        block: nets(&["2400:1::/48"])[0],
        addrs: (1..=5u16)
            .map(|i| IpAddr::from([0x2400, 1, 0, 0, 0, 0, 0, i]))
            .collect(),
    }]);
    let p = Policy {
        max_targets: 3,
        ..policy()
    };
    let mut st = CampaignState::default();
    let plan = plan(&c, &mut st, 1, &p).unwrap();
    assert_eq!(plan.coverage.addresses_targeted, 3);
    assert!(plan
        .coverage
        .skipped
        .iter()
        .any(|s| s.reason == SkipReason::OverMaxTargets && s.addresses == 2));
    assert_eq!(
        st.trackers
            .values()
            .map(|t| t.responsive.len())
            .sum::<usize>(),
        3
    );
}

#[test]
fn found_census_is_split_to_stay_under_the_batch_limit() {
    let first = ReportBatch::new("00", 5);
    let block = |i: u8, n: u8| CensusBlock {
        block: format!("198.18.{i}.0/24").parse().unwrap(),
        addrs: (1..=n).map(|h| IpAddr::from([198, 18, i, h])).collect(),
    };
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("{n:02}")
    };
    let out = pack(
        vec![first],
        "kp",
        vec![block(1, 5), block(2, 3), block(3, 20)],
        10,
        &mut id,
    );
    let sizes: Vec<Vec<usize>> = out
        .iter()
        .map(|b| {
            b.census
                .iter()
                .flat_map(|c| &c.blocks)
                .map(|b| b.addrs.len())
                .collect()
        })
        .collect();
    assert_eq!(sizes, [vec![5, 3], vec![9], vec![9], vec![2]]);
    for b in &out {
        let items: usize = b
            .census
            .iter()
            .flat_map(|c| &c.blocks)
            .map(|b| 1 + b.addrs.len())
            .sum();
        assert!(items <= 10, "{items}");
        assert!(b.census.iter().all(|c| c.campaign == "kp"));
    }
    let ids: Vec<&str> = out.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids, ["00", "01", "02", "03"]);
    let total: usize = sizes.iter().flatten().sum();
    assert_eq!(total, 28, "nothing lost");
}

#[test]
fn a_wide_ipv6_prefix_without_known_addresses_is_never_traced() {
    let c = CampaignAssignment {
        prefixes: nets(&["198.18.0.0/24", "3fff:100::/32", "3fff:200::/120"]),
        ..campaign("kp", 60)
    };
    let policy = Policy {
        traces_per_round: 3,
        min_campaign_probes: 16,
        ..policy()
    };
    let mut st = CampaignState::default();
    for round in 0..4 {
        let targets = trace_targets(&c, &mut st, round, &policy);
        // The IPv4 /24 and the sweepable /120 are traced to their first
        // host (IPv6 has no network address to skip); nothing is guessed
        // inside the /32.
        assert_eq!(
            targets,
            vec![
                "198.18.0.1".parse::<IpAddr>().unwrap(),
                "3fff:200::".parse().unwrap()
            ],
            "round {round}"
        );
    }
}

const TS: i64 = 1_800_000_000_000;

/// A round of `n` up blocks of 198.18.0.0/15 plus one control, as the
/// daemon hands it to `record`.
fn big_round(n: usize) -> (CampaignAssignment, RoundResults) {
    let c = CampaignAssignment {
        prefixes: nets(&["198.18.0.0/15"]),
        control: nets(&["192.0.2.0/24"]),
        ..campaign("kp", 60)
    };
    let outcome = |block: IpNet| RoundOutcome {
        block,
        state: BlockState::Up,
        probes: 1,
        replies: 1,
        belief: 0.99,
        availability: 0.8,
        rtt: Default::default(),
    };
    let space = BlockSpace::new(&c.prefixes);
    let results = RoundResults {
        outcomes: (0..n as u64)
            .map(|i| outcome(space.block_at(i % space.len()).unwrap()))
            .collect(),
        controls: vec![outcome("192.0.2.0/24".parse().unwrap())],
        info: Some(RoundInfo {
            campaign: "kp".into(),
            round: 7,
            started_ms: TS - 1000,
            ended_ms: TS,
            on_time: true,
            blocks: n as u64,
            probes: n as u64,
        }),
        ..RoundResults::default()
    };
    (c, results)
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0u32;
    move || {
        n += 1;
        format!("{n:08x}")
    }
}

#[test]
fn packed_rounds_carry_every_block_in_bounded_chunks() {
    let (c, results) = big_round(512);
    let mut st = CampaignState::default();
    let plan = plan(&c, &mut st, 7, &policy()).unwrap();
    let wire = Wire::choose(true, Some(darkwatch_schema::packed::PACKED_VERSION), 200);
    let b = record(&c, &mut st, &plan, results, TS, wire, &mut ids());
    // 512 blocks in chunks of 200: three batches, one chunk each.
    assert_eq!(b.len(), 3);
    assert!(b.iter().all(|b| b.packed.len() == 1));
    let space = BlockSpace::new(&c.prefixes);
    let blocks: Vec<u64> = b
        .iter()
        .flat_map(|b| b.packed[0].unpack(&space).unwrap())
        .map(|p| p.index)
        .collect();
    assert_eq!(blocks, (0..512).collect::<Vec<u64>>());
    // The control stays plain, and the round info rides in the first batch.
    assert_eq!(b[0].observations.len(), 1);
    assert!(b[0].observations[0].control);
    assert_eq!(b[0].rounds.len(), 1);
    for batch in &b {
        batch.validate(TS).unwrap();
    }
}

#[test]
fn plain_rounds_larger_than_a_batch_are_split_and_complete() {
    // More blocks than one batch may hold (the /15 has 512; repeat them).
    let n = MAX_ITEMS_PER_BATCH + 1234;
    let (c, results) = big_round(n);
    let mut st = CampaignState::default();
    let plan = plan(&c, &mut st, 7, &policy()).unwrap();
    // A collector without packed support gets plain batches, no round info.
    let wire = Wire::choose(true, None, 200);
    assert_eq!(wire, Wire::Plain);
    let b = record(&c, &mut st, &plan, results, 42, wire, &mut ids());
    assert_eq!(b.len(), 2);
    let total: usize = b.iter().map(|b| b.observations.len()).sum();
    assert_eq!(total, n + 1, "every block and the control");
    assert!(b.iter().all(|b| b.rounds.is_empty() && b.packed.is_empty()));
    for batch in &b {
        assert!(items(batch) <= MAX_ITEMS_PER_BATCH);
    }
    assert_ne!(b[0].batch_id, b[1].batch_id);
}

#[test]
fn probe_errors_are_reported_per_router_only_to_a_collector_that_takes_them() {
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["198.18.0.0/22"]);
    let border: IpAddr = "203.0.113.244".parse().unwrap();
    let other: IpAddr = "203.0.113.9".parse().unwrap();
    let outcome = |b: &str| RoundOutcome {
        block: b.parse().unwrap(),
        state: BlockState::Down,
        probes: 8,
        replies: 0,
        belief: 0.01,
        availability: 0.9,
        rtt: Default::default(),
    };
    let seen = |b: &str, from, errors| BlockErrors {
        block: b.parse().unwrap(),
        from,
        errors,
    };
    let results = |report_errors| RoundResults {
        outcomes: [
            "198.18.0.0/24",
            "198.18.1.0/24",
            "198.18.2.0/24",
            "198.18.3.0/24",
        ]
        .map(outcome)
        .to_vec(),
        errors: vec![
            seen("198.18.3.0/24", border, 3),
            seen("198.18.0.0/24", border, 2),
            seen("198.18.2.0/24", other, 1),
        ],
        report_errors,
        ..RoundResults::default()
    };
    for wire in [
        Wire::Plain,
        Wire::choose(true, Some(darkwatch_schema::packed::PACKED_VERSION), 200),
    ] {
        let mut st = CampaignState::default();
        let p = plan(&c, &mut st, 7, &policy()).unwrap();
        let b = record(&c, &mut st, &p, results(true), TS, wire, &mut ids());
        let errors: Vec<_> = b.iter().flat_map(|b| &b.probe_errors).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].from, other);
        assert_eq!((errors[0].errors, errors[0].blocks.len()), (1, 1));
        assert_eq!(errors[1].from, border);
        assert_eq!(errors[1].blocks, nets(&["198.18.0.0/24", "198.18.3.0/24"]));
        assert_eq!((errors[1].round, errors[1].errors), (7, 5));
        for batch in &b {
            batch.validate(TS).unwrap();
        }
        // An older collector refuses the field: nothing is sent to it.
        let mut st = CampaignState::default();
        let p = plan(&c, &mut st, 7, &policy()).unwrap();
        let b = record(&c, &mut st, &p, results(false), TS, wire, &mut ids());
        assert!(b.iter().all(|b| b.probe_errors.is_empty()));
        assert!(!serde_json::to_string(&b[0])
            .unwrap()
            .contains("probe_errors"));
    }
}

#[test]
fn a_small_campaign_spreads_its_minimum_of_probes_over_its_blocks() {
    assert_eq!(min_probes_per_block(16, 1), 16);
    assert_eq!(min_probes_per_block(16, 4), 4);
    assert_eq!(min_probes_per_block(16, 5), 4);
    assert_eq!(min_probes_per_block(16, 16), 1);
    assert_eq!(min_probes_per_block(16, 1_000_000), 1);
    assert_eq!(min_probes_per_block(0, 1), 1);
    assert_eq!(min_probes_per_block(16, 0), 16);
    // The plan carries the share of the blocks tracked.
    let c = campaign("kp", 60);
    let mut st = CampaignState::default();
    st.trackers.insert(
        nets(&["198.18.0.0/24"])[0],
        BlockTracker::from_discovery(nets(&["198.18.0.0/24"])[0], vec![]),
    );
    assert_eq!(plan(&c, &mut st, 1, &policy()).unwrap().min_probes, 16);
}

#[test]
fn packs_in_the_newest_version_the_collector_reads_with_reply_times() {
    use darkwatch_schema::packed::PACKED_VERSION;
    let choose = |v| Wire::choose(true, v, 200);
    assert_eq!(choose(Some(0)), Wire::Plain);
    assert_eq!(
        choose(Some(1)),
        Wire::Packed {
            max_blocks: 200,
            version: 1
        }
    );
    for v in [PACKED_VERSION, PACKED_VERSION + 1] {
        assert_eq!(
            choose(Some(v)),
            Wire::Packed {
                max_blocks: 200,
                version: PACKED_VERSION
            }
        );
    }
    assert_eq!(Wire::choose(false, Some(PACKED_VERSION), 200), Wire::Plain);
    // Each block's reply times travel in its packed block.
    let (c, mut results) = big_round(3);
    let rtt = darkwatch_schema::rtt::Rtt::of(&mut [20.0, 35.0]);
    results.outcomes[1].rtt = rtt;
    let mut st = CampaignState::default();
    let plan = plan(&c, &mut st, 7, &policy()).unwrap();
    let b = record(
        &c,
        &mut st,
        &plan,
        results,
        TS,
        choose(Some(PACKED_VERSION)),
        &mut ids(),
    );
    let space = BlockSpace::new(&c.prefixes);
    let blocks = b[0].packed[0].unpack(&space).unwrap();
    assert_eq!(blocks[1].rtt, rtt);
}

#[test]
fn an_unchanged_census_is_seeded_once() {
    let mut c = campaign("kp", 60);
    c.prefixes = nets(&["198.18.6.0/23"]);
    c.census = [ip("198.18.6.1"), ip("198.18.6.2"), ip("198.18.7.1")]
        .into_iter()
        .collect();
    c.census_tag = Some("\"a\"".into());
    let b6 = nets(&["198.18.6.0/24"])[0];
    let mut st = CampaignState::default();
    let first = plan(&c, &mut st, 1, &policy()).unwrap();
    assert_eq!(st.trackers[&b6].responsive.len(), 2);
    // Forget what the census seeded: the same census is not walked again...
    st.trackers.retain(|_, _| false);
    st.last_round = Some(1);
    let again = plan(&c, &mut st, 2, &policy()).unwrap();
    assert!(st.trackers.is_empty());
    // ... and says the same of coverage and skips.
    assert_eq!(again.coverage, first.coverage);
    // A new census is.
    c.census_tag = Some("\"b\"".into());
    plan(&c, &mut st, 3, &policy()).unwrap();
    assert_eq!(st.trackers[&b6].responsive.len(), 2);
}
