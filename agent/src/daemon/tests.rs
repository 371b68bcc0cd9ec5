//! The daemon in-process: whole rounds, policy refusals and restarts against
//! a simulated network (`SimPinger`, `SimTracer`) and a manual wall clock,
//! on tokio's paused time. Assertions are on what was spooled and on what
//! the simulated network was asked to probe.

use std::net::IpAddr;

use darkwatch_schema::{BlockState, CampaignAssignment, ReportBatch, SkipReason};
use ipnet::IpNet;

use super::*;
use crate::icmp::Outcome;
use crate::sim::{ManualClock, SimPinger, SimTracer};

/// A round boundary for 60 s rounds.
const T0: i64 = 1_800_000_000_000;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Even hosts of 198.18.1.0/24 answer, 198.18.2.0/24 is dark, and every
/// other address answers (so that probing refused space would be noticed).
fn network() -> Arc<SimPinger> {
    Arc::new(SimPinger::new(|addr, _| match addr {
        IpAddr::V4(a) if a.octets()[..3] == [198, 18, 1] && a.octets()[3] % 2 == 1 => {
            Outcome::Timeout
        }
        IpAddr::V4(a) if a.octets()[..3] == [198, 18, 2] => Outcome::Timeout,
        _ => Outcome::Reply {
            rtt: Duration::from_millis(20),
        },
    }))
}

struct Rig {
    dir: tempfile::TempDir,
    pinger: Arc<SimPinger>,
    tracer: Arc<SimTracer>,
    clock: Arc<ManualClock>,
    agent: Agent,
}

const BASE: &str = "collector = \"http://127.0.0.1:9\"\ntoken = \"t\"\nspool_dir = \"spool\"\n\
    pps = 100000\nmax_targets = 2048\nallow = [\"198.18.0.0/15\"]\nexclude_file = \"exclude.txt\"\n\
    [probe]\ntimeout_ms = 500\nmax_probes = 4\nrediscover_rounds = 10\n[trace]\nper_round = 2\n";

fn agent_in(
    dir: &Path,
    pinger: Arc<SimPinger>,
    tracer: Arc<SimTracer>,
    clock: Arc<ManualClock>,
) -> Agent {
    let cfg = Config::parse(BASE, &dir.join("agent.toml")).unwrap();
    Agent::new(cfg, pinger, tracer, clock).unwrap()
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let (pinger, tracer, clock) = (
        network(),
        Arc::new(SimTracer::direct()),
        Arc::new(ManualClock::new(T0)),
    );
    let agent = agent_in(dir.path(), pinger.clone(), tracer.clone(), clock.clone());
    Rig {
        dir,
        pinger,
        tracer,
        clock,
        agent,
    }
}

fn campaign(name: &str, prefixes: &[&str]) -> CampaignAssignment {
    CampaignAssignment {
        name: name.into(),
        country: None,
        interval_secs: 60,
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        control: vec![],
        generation: 1,
        census: Default::default(),
        census_tag: None,
    }
}

fn assigned(campaigns: Vec<CampaignAssignment>) -> Option<Assignments> {
    Some(Assignments {
        agent: "vp1".into(),
        campaigns,
        packed: None,
        probe_errors: false,
        phases: Default::default(),
    })
}

fn spooled(agent: &Agent) -> Vec<ReportBatch> {
    let spool = &agent.spool;
    spool
        .entries()
        .unwrap()
        .iter()
        .filter_map(|e| spool.read(e).unwrap())
        .collect()
}

fn probed_in(pinger: &SimPinger, prefix: &str) -> usize {
    let p = net(prefix);
    pinger
        .sent_addrs()
        .iter()
        .filter(|a| p.contains(*a))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_whole_round_reports_judged_blocks_and_traces() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.2.0/24"])]);
    let next = r.agent.tick(&a).await;
    assert_eq!(next, Some(T0 + 60_000));
    let batches = spooled(&r.agent);
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    b.validate(T0).expect("a batch the collector accepts");
    // The dark block never answered discovery: it is not reported.
    assert_eq!(b.observations.len(), 1, "{:?}", b.observations);
    let o = &b.observations[0];
    assert_eq!(o.block, net("198.18.1.0/24"));
    assert_eq!((o.state, o.campaign.as_str()), (BlockState::Up, "kp"));
    assert_eq!((o.round, o.ts_ms), (round_of(T0, 60), T0));
    assert!(o.probes >= 1 && o.replies >= 1 && !o.control);
    // Discovery swept both blocks once.
    assert_eq!(r.pinger.sent_to("198.18.2.7".parse().unwrap()), 1);
    // One trace per prefix: a known-responsive address, and the first
    // address of the block where none is known.
    let asked = r.tracer.asked();
    assert_eq!(asked.len(), 2);
    assert!(
        matches!(asked[0], IpAddr::V4(a) if a.octets()[..3] == [198, 18, 1] && a.octets()[3] % 2 == 0)
    );
    assert_eq!(asked[1], "198.18.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(b.traces.len(), 2);
    assert!(b.traces.iter().all(|t| t.reached && t.ts_ms == T0));
    // The same round is not run twice.
    r.agent.tick(&a).await;
    assert_eq!(spooled(&r.agent).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_compromised_collector_cannot_widen_probing() {
    let r = rig();
    let mut slow = campaign("slow", &["198.18.9.0/24"]);
    slow.interval_secs = 9_000_000_000_000;
    let mut ctl = campaign("ctl", &["198.18.5.0/24"]);
    ctl.control = vec![net("198.18.7.0/24"), net("10.0.0.0/24")];
    let a = assigned(vec![
        campaign("good", &["198.18.5.0/24"]),
        campaign("excl", &["198.18.6.0/23"]),
        campaign("resv", &["127.0.0.0/24", "10.0.0.0/24"]),
        campaign("huge", &["198.19.0.0/16"]),
        campaign("../etc", &["198.18.10.0/24"]),
        campaign("a/b", &["198.18.10.0/24"]),
        slow,
        ctl,
    ]);
    r.agent.tick(&a).await;
    assert!(
        probed_in(&r.pinger, "198.18.5.0/24") > 0,
        "the legitimate campaign"
    );
    assert!(
        probed_in(&r.pinger, "198.18.6.0/24") > 0,
        "the allowed part"
    );
    for refused in [
        "198.18.7.0/24",
        "127.0.0.0/8",
        "10.0.0.0/8",
        "198.18.9.0/24",
        "198.18.10.0/24",
    ] {
        assert_eq!(probed_in(&r.pinger, refused), 0, "{refused} was probed");
        let p = net(refused);
        assert!(
            r.tracer.asked().iter().all(|t| !p.contains(t)),
            "{refused} was traced"
        );
    }
    // Beyond max_targets (2048): only the first addresses in order.
    assert!(probed_in(&r.pinger, "198.19.0.0/21") > 0);
    assert_eq!(
        probed_in(&r.pinger, "198.19.0.0/16"),
        probed_in(&r.pinger, "198.19.0.0/21"),
        "probed beyond max_targets"
    );
    // Each campaign says what it skipped and why.
    let batches = spooled(&r.agent);
    let coverage = |name: &str| {
        batches
            .iter()
            .flat_map(|b| &b.coverage)
            .find(|c| c.campaign == name)
            .unwrap_or_else(|| panic!("no coverage for {name}"))
            .clone()
    };
    let reasons = |name: &str| -> Vec<(SkipReason, u64)> {
        coverage(name)
            .skipped
            .iter()
            .map(|s| (s.reason, s.addresses))
            .collect()
    };
    assert_eq!(reasons("good"), []);
    assert_eq!(coverage("good").blocks_tracked, 1);
    assert_eq!(reasons("excl"), [(SkipReason::Excluded, 256)]);
    assert_eq!(reasons("resv"), [(SkipReason::Reserved, 512)]);
    assert_eq!(coverage("resv").addresses_targeted, 0);
    assert_eq!(
        reasons("huge"),
        [(SkipReason::OverMaxTargets, 65536 - 2048)]
    );
    assert_eq!(coverage("huge").addresses_targeted, 2048);
    // Refused campaigns leave no state file (names become file names).
    let files: Vec<String> = std::fs::read_dir(r.dir.path().join("spool/state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| !f.contains("slow") && !f.contains("etc")),
        "{files:?}"
    );
    assert!(!r.dir.path().join("spool/etc.json").exists());
    for b in spooled(&r.agent) {
        assert!(b.observations.iter().all(|o| o.campaign != "slow"));
    }
}

#[tokio::test(start_paused = true)]
async fn restarts_resume_without_rediscovery_or_repeating_a_round() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.2.0/24"])]);
    r.agent.tick(&a).await;
    assert_eq!(spooled(&r.agent).len(), 1);
    let Rig { dir, clock, .. } = r;

    // A restart in the same round: nothing is probed, nothing spooled.
    let pinger = network();
    let tracer = Arc::new(SimTracer::direct());
    let agent = agent_in(dir.path(), pinger.clone(), tracer.clone(), clock.clone());
    agent.tick(&a).await;
    assert_eq!(spooled(&agent).len(), 1);
    assert_eq!(pinger.total_sent(), 0);
    assert!(tracer.asked().is_empty());

    // The next round runs from the saved trackers: no sweep of the dark
    // block, and the live one, the campaign's only tracked block, gets the
    // campaign's minimum of probes (`probe.min_campaign_probes`, 16).
    clock.advance(Duration::from_secs(60));
    agent.tick(&a).await;
    let batches = spooled(&agent);
    assert_eq!(batches.len(), 2);
    let last = batches
        .iter()
        .find(|b| {
            b.observations
                .iter()
                .any(|o| o.round == round_of(T0, 60) + 1)
        })
        .expect("the next round's batch");
    assert_eq!(last.observations.len(), 1);
    assert_eq!(last.observations[0].state, BlockState::Up);
    assert_eq!(probed_in(&pinger, "198.18.2.0/24"), 0, "rediscovered");
    assert_eq!(pinger.total_sent(), 16);
}

#[tokio::test(start_paused = true)]
async fn an_ipv6_allocation_is_skipped_and_the_ipv4_space_probed() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "2400:1::/32"])]);
    r.agent.tick(&a).await;
    let b = &spooled(&r.agent)[0];
    assert_eq!(b.observations.len(), 1);
    assert_eq!(b.observations[0].block, net("198.18.1.0/24"));
    assert_eq!(probed_in(&r.pinger, "2400:1::/32"), 0);
    let cov = &b.coverage[0];
    assert_eq!((cov.blocks_tracked, cov.addresses_targeted), (1, 256));
    assert_eq!(cov.skipped[0].reason, SkipReason::Ipv6TooLarge);
    assert_eq!(cov.skipped[0].examples, [net("2400:1::/32")]);
}

fn census(addrs: &[&str]) -> darkwatch_schema::CensusBlock {
    let addrs: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    darkwatch_schema::CensusBlock {
        block: darkwatch_schema::block_of(addrs[0]),
        addrs,
    }
}

#[tokio::test(start_paused = true)]
async fn a_census_cannot_widen_probing() {
    let r = rig();
    let mut kp = campaign("kp", &["198.18.5.0/24", "2400:1::/32"]);
    kp.census = darkwatch_schema::CensusSet::from_blocks(&[
        census(&["198.18.5.1"]),
        census(&["198.18.20.1"]),
        census(&["10.0.0.1"]),
        census(&["2400:9::1"]),
        census(&["2400:1::1", "2400:1::2"]),
    ]);
    let mut ex = campaign("ex", &["198.18.6.0/23", "127.0.0.0/24"]);
    ex.census = darkwatch_schema::CensusSet::from_blocks(&[
        census(&["198.18.7.2"]),
        census(&["127.0.0.1"]),
    ]);
    let a = assigned(vec![kp, ex]);
    for _ in 0..11 {
        r.agent.tick(&a).await;
        r.clock.advance(Duration::from_secs(60));
    }
    for refused in [
        "198.18.20.0/24",
        "10.0.0.0/8",
        "2400:9::/32",
        "198.18.7.0/24",
        "127.0.0.0/8",
    ] {
        assert_eq!(probed_in(&r.pinger, refused), 0, "{refused} was probed");
    }
    // The accepted IPv6 census addresses are probed: the /48 is judged.
    assert!(probed_in(&r.pinger, "2400:1::/48") > 0);
    let batches = spooled(&r.agent);
    assert!(batches
        .iter()
        .flat_map(|b| &b.observations)
        .any(|o| o.block == net("2400:1::/48") && o.state == BlockState::Up));
    let cov = batches
        .iter()
        .flat_map(|b| &b.coverage)
        .find(|c| c.campaign == "kp")
        .unwrap();
    let outside = cov
        .skipped
        .iter()
        .find(|s| s.reason == SkipReason::OutsideCampaign)
        .unwrap();
    assert_eq!(outside.addresses, 3);
    let ex = batches
        .iter()
        .flat_map(|b| &b.coverage)
        .find(|c| c.campaign == "ex")
        .unwrap();
    let reasons: Vec<(SkipReason, u64)> =
        ex.skipped.iter().map(|s| (s.reason, s.addresses)).collect();
    assert_eq!(
        reasons,
        [(SkipReason::Excluded, 257), (SkipReason::Reserved, 257)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_agent_judges_census_blocks_in_its_first_round_without_sweeping_them() {
    let r = rig();
    let mut kp = campaign("kp", &["198.18.1.0/24", "198.18.3.0/24"]);
    kp.census = darkwatch_schema::CensusSet::from_blocks(&[census(&[
        "198.18.1.2",
        "198.18.1.4",
        "198.18.1.6",
    ])]);
    let a = assigned(vec![kp]);
    r.agent.tick(&a).await;
    let b = &spooled(&r.agent)[0];
    let judged: Vec<(IpNet, BlockState)> =
        b.observations.iter().map(|o| (o.block, o.state)).collect();
    assert_eq!(
        judged,
        [
            (net("198.18.1.0/24"), BlockState::Up),
            (net("198.18.3.0/24"), BlockState::Up)
        ]
    );
    // No sweep of the census block: only the round's probes.
    assert!(probed_in(&r.pinger, "198.18.1.0/24") <= 3);
    assert_eq!(r.pinger.sent_to("198.18.1.1".parse().unwrap()), 0);
    // What the sweep found goes to the collector's census.
    assert_eq!(b.census.len(), 1);
    assert_eq!(b.census[0].campaign, "kp");
    let blocks: Vec<(IpNet, usize)> = b.census[0]
        .blocks
        .iter()
        .map(|c| (c.block, c.addrs.len()))
        .collect();
    assert_eq!(blocks, [(net("198.18.3.0/24"), 256)]);
    b.validate(T0).unwrap();

    // The periodic rediscovery refreshes the census block too.
    r.clock.advance(Duration::from_secs(600));
    r.agent.tick(&a).await;
    assert_eq!(r.pinger.sent_to("198.18.1.1".parse().unwrap()), 1);
    let batches = spooled(&r.agent);
    let refreshed = batches
        .iter()
        .flat_map(|b| &b.census)
        .flat_map(|c| &c.blocks)
        .find(|c| c.block == net("198.18.1.0/24"))
        .expect("the refreshed census block");
    assert_eq!(refreshed.addrs.len(), 128);
}

#[tokio::test(start_paused = true)]
async fn a_tightened_local_policy_applies_to_what_was_learnt_before() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.6.0/23"])]);
    r.agent.tick(&a).await;
    assert!(probed_in(&r.pinger, "198.18.6.0/24") > 0);
    let Rig { dir, clock, .. } = r;
    // The operator excludes 198.18.6.0/24 and restarts the agent.
    std::fs::write(
        dir.path().join("exclude.txt"),
        "198.18.6.0/24\n198.18.7.0/24\n",
    )
    .unwrap();
    let pinger = network();
    let agent = agent_in(
        dir.path(),
        pinger.clone(),
        Arc::new(SimTracer::direct()),
        clock.clone(),
    );
    clock.advance(Duration::from_secs(60));
    agent.tick(&a).await;
    assert_eq!(
        probed_in(&pinger, "198.18.6.0/24"),
        0,
        "probed newly excluded space"
    );
    assert!(probed_in(&pinger, "198.18.1.0/24") > 0);
    let last = spooled(&agent)
        .into_iter()
        .find(|b| {
            b.observations
                .iter()
                .any(|o| o.round == round_of(T0, 60) + 1)
        })
        .unwrap();
    assert!(last
        .observations
        .iter()
        .all(|o| o.block != net("198.18.6.0/24")));
}

#[tokio::test(start_paused = true)]
async fn an_absurd_interval_does_not_set_the_schedule() {
    let r = rig();
    let mut slow = campaign("slow", &["198.18.9.0/24"]);
    slow.interval_secs = u64::MAX;
    assert_eq!(r.agent.tick(&assigned(vec![slow.clone()])).await, None);
    let a = assigned(vec![slow, campaign("good", &["198.18.5.0/24"])]);
    assert_eq!(r.agent.tick(&a).await, Some(T0 + 60_000));
    assert_eq!(probed_in(&r.pinger, "198.18.9.0/24"), 0);
}

#[tokio::test(start_paused = true)]
async fn only_acceptable_campaigns_are_due() {
    // The one acceptance check of an assignment: `plan` and the round
    // driver never see a refused campaign (a name that is no file name, an
    // absurd interval).
    let r = rig();
    let mut slow = campaign("slow", &["198.18.9.0/24"]);
    slow.interval_secs = 0;
    let a = assigned(vec![
        campaign("a/b", &["198.18.10.0/24"]),
        slow,
        campaign("good", &["198.18.5.0/24"]),
        campaign("../etc", &["198.18.10.0/24"]),
    ])
    .unwrap();
    let (due, next) = r.agent.due(&a);
    let names: Vec<&str> = due
        .iter()
        .map(|d| a.campaigns[d.index].name.as_str())
        .collect();
    assert_eq!(names, ["good"]);
    assert_eq!((due[0].round, due[0].started_ms), (round_of(T0, 60), T0));
    assert_eq!(next, Some(T0 + 60_000));
}

/// An agent in `dir` with `BASE` changed by `edits` (pairs of old, new),
/// on the wall clock `clock`.
fn agent_with(
    dir: &Path,
    edits: &[(&str, &str)],
    pinger: Arc<SimPinger>,
    clock: Arc<dyn Clock>,
) -> Agent {
    let mut text = BASE.to_string();
    for (old, new) in edits {
        assert!(text.contains(old), "{old}");
        text = text.replace(old, new);
    }
    let cfg = Config::parse(&text, &dir.join("agent.toml")).unwrap();
    Agent::new(cfg, pinger, Arc::new(SimTracer::direct()), clock).unwrap()
}

/// Sleeps (on tokio's paused clock) until `at_ms` of `clock`.
async fn sleep_until_ms(clock: &dyn Clock, at_ms: i64) {
    let wait = (at_ms - clock.now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// The blocks observed (not controls) in round `round`.
fn observed(agent: &Agent, round: u64) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = spooled(agent)
        .iter()
        .flat_map(|b| &b.observations)
        .filter(|o| o.round == round && !o.control)
        .map(|o| o.block)
        .collect();
    v.sort();
    v
}

/// A /16 of which 254 blocks are tracked in the end (198.18.2.0/24 is dark,
/// 198.18.7.0/24 excluded), at 1000 pps: its sweep (500 pps) takes over two
/// rounds.
const SLOW: &[(&str, &str)] = &[
    ("pps = 100000", "pps = 1000"),
    ("max_targets = 2048", "max_targets = 70000"),
];

#[tokio::test(start_paused = true)]
async fn the_first_round_is_probed_and_recorded_before_discovery_has_finished() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let pinger = network();
    let clock = Arc::new(crate::sim::TokioClock::new(T0));
    let agent = agent_with(dir.path(), SLOW, pinger.clone(), clock.clone());
    let a = assigned(vec![campaign("kp", &["198.18.0.0/16"])]);
    let first = round_of(T0, 60);
    let next = agent.tick(&a).await.unwrap();
    assert!(agent.discovering("kp").await, "the sweep goes on");
    assert!(pinger.sent_addrs().len() < 65536 - 256);
    let seen = observed(&agent, first);
    assert!(!seen.is_empty() && seen.len() < 254, "{}", seen.len());
    // Stamped with the round's start, although it ended ~a minute later.
    for b in spooled(&agent) {
        for o in &b.observations {
            assert_eq!((o.round, o.ts_ms), (first, T0));
        }
    }
    let status = agent.status();
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!(
        (s.campaign.as_str(), s.round, s.started_ms),
        ("kp", first, T0)
    );
    assert!(s.on_time && s.ended_ms > T0 + 30_000, "{s:?}");
    assert_eq!(s.blocks, seen.len() as u64);
    // Blocks that joined during the round share the campaign's minimum of
    // probes (16) with the blocks tracked by then, not with none (as at the
    // round's start): all but the first few stop at their first reply.
    let probes: u32 = spooled(&agent)
        .iter()
        .flat_map(|b| &b.observations)
        .filter(|o| o.round == first && !o.control)
        .map(|o| o.probes)
        .sum();
    assert!(
        probes as usize <= seen.len() + 32,
        "{probes} probes for {} blocks that all answer",
        seen.len()
    );
    // Later rounds take what was found meanwhile; every round is on time.
    let mut round = first;
    let mut next = next;
    while agent.discovering("kp").await || observed(&agent, round).len() < 254 {
        assert!(round < first + 6, "discovery never ended");
        sleep_until_ms(clock.as_ref(), next).await;
        next = agent.tick(&a).await.unwrap();
        round += 1;
        let s = &agent.status()[0];
        assert_eq!(s.round, round);
        assert!(s.on_time, "{s:?}");
    }
    assert!(round > first + 1, "discovery took more than one round");
    assert_eq!(
        pinger.sent_to("198.18.2.9".parse().unwrap()),
        1,
        "swept once"
    );
    // What the rounds found went to the census, once.
    let census: usize = spooled(&agent)
        .iter()
        .flat_map(|b| &b.census)
        .map(|c| c.blocks.len())
        .sum();
    assert_eq!(census, 254);
}

#[tokio::test(start_paused = true)]
async fn a_rediscovery_does_not_delay_a_round() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let pinger = network();
    let clock = Arc::new(crate::sim::TokioClock::new(T0));
    let mut edits = SLOW.to_vec();
    // Every block stale every time: rediscoveries as long as the first.
    edits.push((
        "rediscover_rounds = 10",
        "rediscover_rounds = 3\nrediscover_stale_after = 1",
    ));
    let agent = agent_with(dir.path(), &edits, pinger.clone(), clock.clone());
    let a = assigned(vec![campaign("kp", &["198.18.0.0/16"])]);
    let first = round_of(T0, 60);
    let mut round = first;
    let mut next = agent.tick(&a).await.unwrap();
    // Rounds until a rediscovery (not the first sweep, which may still run
    // after the dark 198.18.2.0/24 was swept) is running at the end of one.
    let mut rediscovering = false;
    for _ in 0..12 {
        let before = pinger.sent_to("198.18.2.9".parse().unwrap());
        sleep_until_ms(clock.as_ref(), next).await;
        next = agent.tick(&a).await.unwrap();
        round += 1;
        let s = agent.status()[0].clone();
        assert!(s.on_time, "{s:?}");
        let swept_in = agent
            .run_of("kp")
            .lock()
            .await
            .st
            .as_ref()
            .unwrap()
            .discovered_round;
        if before == 1 && swept_in > Some(first) && agent.discovering("kp").await {
            // Every known block was probed in the round, while the sweep ran.
            assert_eq!(observed(&agent, round).len(), 254);
            assert_eq!(s.blocks, 254);
            assert!(s.ended_ms < round_start_ms(round + 1, 60));
            rediscovering = true;
            break;
        }
    }
    assert!(rediscovering, "no round ran during a rediscovery");
}

#[tokio::test(start_paused = true)]
async fn probes_are_spread_over_the_interval_in_slices() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let times: Arc<std::sync::Mutex<Vec<(IpAddr, tokio::time::Instant)>>> = Arc::default();
    let log = times.clone();
    let pinger = Arc::new(SimPinger::new(move |addr, _| {
        log.lock()
            .unwrap()
            .push((addr, tokio::time::Instant::now()));
        Outcome::Reply {
            rtt: Duration::from_millis(20),
        }
    }));
    let clock = Arc::new(crate::sim::TokioClock::new(T0));
    let agent = agent_with(dir.path(), &SLOW[1..], pinger.clone(), clock.clone());
    // 64 blocks, all up: one probe each per round.
    let a = assigned(vec![campaign("kp", &["198.18.64.0/18"])]);
    let next = agent.tick(&a).await.unwrap();
    sleep_until_ms(clock.as_ref(), next).await;
    times.lock().unwrap().clear();
    let start = tokio::time::Instant::now();
    agent.tick(&a).await;
    let probes = times.lock().unwrap().clone();
    assert_eq!(probes.len(), 64, "{:?}", agent.status());
    // timeout 500 ms × 4 probes: slices start over the first 53.8 s.
    let span = schedule::span_ms(60_000, 2_000);
    let mut slices = std::collections::BTreeSet::new();
    for (addr, at) in probes {
        let block = darkwatch_schema::block_of(addr);
        // The rig's agent is "vp1", with no phase slot from the collector.
        let phase = darkwatch_schema::phase::name_phase("vp1", schedule::SLICES);
        let k = schedule::slice_of(&block, schedule::SLICES, phase);
        let due = schedule::slice_start_ms(k, schedule::SLICES, span);
        let off = at.duration_since(start).as_millis() as u64;
        assert!(
            (due..due + 100).contains(&off),
            "{block} at {off} ms, slice {k} at {due}"
        );
        slices.insert(k);
    }
    assert!(slices.len() >= 30, "{} slices used", slices.len());
}

#[tokio::test(start_paused = true)]
async fn a_torn_belief_file_costs_no_responsive_set_and_no_rediscovery() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.2.0/24"])]);
    r.agent.tick(&a).await;
    let Rig { dir, clock, .. } = r;
    let state = dir.path().join("spool/state");
    assert!(!state.join("campaign-kp.json").exists(), "no JSON state");
    let belief = state.join("campaign-kp.belief");
    let b = std::fs::read(&belief).unwrap();
    std::fs::write(&belief, &b[..b.len() - 3]).unwrap();

    let pinger = network();
    let agent = agent_in(
        dir.path(),
        pinger.clone(),
        Arc::new(SimTracer::direct()),
        clock.clone(),
    );
    clock.advance(Duration::from_secs(60));
    agent.tick(&a).await;
    assert_eq!(probed_in(&pinger, "198.18.2.0/24"), 0, "rediscovered");
    assert_eq!(
        observed(&agent, round_of(T0, 60) + 1),
        [net("198.18.1.0/24")]
    );
    // Only responsive addresses (even hosts) were probed.
    assert!(pinger
        .sent_addrs()
        .iter()
        .all(|a| matches!(a, IpAddr::V4(v) if v.octets()[3] % 2 == 0)));
}

#[tokio::test(start_paused = true)]
async fn the_json_state_of_an_earlier_version_is_taken_over() {
    let r = rig();
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.2.0/24"])]);
    r.agent.tick(&a).await;
    let Rig {
        dir, clock, agent, ..
    } = r;
    // What an earlier agent kept: the whole state as JSON, no binary files.
    let state = dir.path().join("spool/state");
    let run = agent.run_of("kp");
    let st = run.lock().await.st.clone().unwrap();
    std::fs::write(
        state.join("campaign-kp.json"),
        serde_json::to_vec(&st).unwrap(),
    )
    .unwrap();
    for ext in ["sets", "belief", "meta.json"] {
        std::fs::remove_file(state.join(format!("campaign-kp.{ext}"))).unwrap();
    }
    let pinger = network();
    let agent = agent_in(
        dir.path(),
        pinger.clone(),
        Arc::new(SimTracer::direct()),
        clock.clone(),
    );
    agent.tick(&a).await;
    assert_eq!(pinger.total_sent(), 0, "the round was done already");
    clock.advance(Duration::from_secs(60));
    agent.tick(&a).await;
    assert_eq!(probed_in(&pinger, "198.18.2.0/24"), 0, "rediscovered");
    assert_eq!(
        observed(&agent, round_of(T0, 60) + 1),
        [net("198.18.1.0/24")]
    );
    assert!(!state.join("campaign-kp.json").exists());
    assert!(state.join("campaign-kp.sets").exists());
}

#[tokio::test(start_paused = true)]
async fn a_sweep_that_ends_between_rounds_is_taken_in_not_started_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let pinger = network();
    let clock = Arc::new(crate::sim::TokioClock::new(T0));
    // 512 addresses at 9 pps (half of 18): the sweep ends ~54 s into the
    // first round, after its last slice (52 s).
    let agent = agent_with(
        dir.path(),
        &[("pps = 100000", "pps = 18")],
        pinger.clone(),
        clock.clone(),
    );
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.3.0/24"])]);
    let next = agent.tick(&a).await.unwrap();
    assert!(observed(&agent, round_of(T0, 60)).is_empty());
    sleep_until_ms(clock.as_ref(), next).await;
    agent.tick(&a).await;
    assert_eq!(
        observed(&agent, round_of(T0, 60) + 1),
        [net("198.18.1.0/24"), net("198.18.3.0/24")]
    );
    assert!(!agent.discovering("kp").await);
    assert!(
        pinger.total_sent() < 600,
        "swept again: {}",
        pinger.total_sent()
    );
}

#[tokio::test(start_paused = true)]
async fn a_routers_errors_to_the_probes_are_reported_to_a_collector_that_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exclude.txt"), "198.18.7.0/24\n").unwrap();
    let dark = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let border: IpAddr = "203.0.113.244".parse().unwrap();
    let pinger = {
        let dark = dark.clone();
        Arc::new(SimPinger::new(move |addr, _| match addr {
            IpAddr::V4(a) if a.octets()[..3] == [198, 18, 1] => {
                if dark.load(std::sync::atomic::Ordering::Relaxed) {
                    Outcome::Unreachable { from: border }
                } else {
                    Outcome::Reply {
                        rtt: Duration::from_millis(20),
                    }
                }
            }
            _ => Outcome::Reply {
                rtt: Duration::from_millis(20),
            },
        }))
    };
    let clock = Arc::new(ManualClock::new(T0));
    let agent = agent_in(
        dir.path(),
        pinger,
        Arc::new(SimTracer::direct()),
        clock.clone(),
    );
    *agent.wire.lock().unwrap() = (Wire::Plain, true);
    let a = assigned(vec![campaign("kp", &["198.18.1.0/24", "198.18.2.0/24"])]);
    agent.tick(&a).await;
    assert!(spooled(&agent).iter().all(|b| b.probe_errors.is_empty()));
    dark.store(true, std::sync::atomic::Ordering::Relaxed);
    clock.set(T0 + 60_000);
    agent.tick(&a).await;
    let errors: Vec<_> = spooled(&agent)
        .into_iter()
        .flat_map(|b| b.probe_errors)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].from, border);
    assert_eq!(errors[0].blocks, vec![net("198.18.1.0/24")]);
    assert_eq!(errors[0].round, round_of(T0, 60) + 1);
    assert!(errors[0].errors >= 1);
}

#[tokio::test]
async fn a_census_apart_is_kept_by_tag_cached_beside_the_assignments_and_not_in_them() {
    let r = rig();
    let set: darkwatch_schema::CensusSet = ["198.18.5.1", "198.18.5.9", "198.18.6.3"]
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .collect();
    let mut kp = campaign("kp", &["198.18.5.0/23"]);
    kp.census = set.clone();
    kp.census_tag = Some("\"t1\"".into());
    let previous = assigned(vec![kp.clone()]).unwrap();

    // The same tag: the census held is kept, nothing is fetched (the
    // collector here is unreachable).
    let mut a = previous.clone();
    a.campaigns[0].census = Default::default();
    r.agent.fill_census(&mut a, Some(&previous)).await;
    assert_eq!(a.campaigns[0].census, set);

    // A new tag that cannot be fetched: the census and tag held stay, so
    // that the next poll tries again.
    let mut b = previous.clone();
    b.campaigns[0].census = Default::default();
    b.campaigns[0].census_tag = Some("\"t2\"".into());
    r.agent.fill_census(&mut b, Some(&previous)).await;
    assert_eq!(b.campaigns[0].census, set);
    assert_eq!(b.campaigns[0].census_tag.as_deref(), Some("\"t1\""));

    // Cached: the assignments file names the census, the census file holds
    // it; loading puts them together again.
    r.agent.save_assignments(&mut a);
    assert_eq!(
        a.campaigns[0].census, set,
        "saving keeps the census in memory"
    );
    let text = std::fs::read_to_string(r.agent.assignments_path()).unwrap();
    assert!(!text.contains("198.18.5.9"), "{text}");
    let path = r.agent.census_path("kp");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, set.encode()).unwrap();
    let mut cached: Assignments = serde_json::from_str(&text).unwrap();
    assert!(cached.campaigns[0].census.is_empty());
    r.agent.load_cached_census(&mut cached);
    assert_eq!(cached, a);
}
