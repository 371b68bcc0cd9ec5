//! One probing round over many blocks: each block runs its own
//! [`BlockTracker`] round (its probes strictly one after another, as the
//! belief update needs each outcome before choosing the next step), while
//! up to `block_concurrency` blocks proceed concurrently under the global
//! rate limiter, as futures of the caller's task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use ipnet::IpNet;
use rand::RngCore;

use darkwatch_schema::rtt::Rtt;

use crate::belief::{BlockErrors, BlockTracker, RoundOutcome};
use crate::icmp::{Outcome, Pinger};
use crate::ratelimit::RateLimiter;
use crate::ProbeSettings;

/// A per-block RNG seed derived from the round seed (splitmix64 over the
/// block), so a round is reproducible whatever the task scheduling.
pub(crate) fn block_seed(seed: u64, block: &IpNet) -> u64 {
    darkwatch_schema::phase::seeded_hash(seed, block)
}

/// A block's round RNG: splitmix64, a few instructions per number and
/// nothing to set up (a block draws two numbers per round, so seeding a
/// ChaCha `StdRng` per block would cost more than drawing them).
#[derive(Debug, Clone)]
pub struct BlockRng(u64);

impl BlockRng {
    pub fn new(seed: u64) -> Self {
        BlockRng(seed)
    }
}

impl RngCore for BlockRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Runs one round of one block to completion. Returns its outcome, and
/// the routers' ICMP errors to its probes if any came.
pub async fn probe_block(
    tracker: &mut BlockTracker,
    pinger: &dyn Pinger,
    limiter: &RateLimiter,
    settings: &ProbeSettings,
    seed: u64,
) -> (RoundOutcome, Option<BlockErrors>) {
    let mut rng = BlockRng::new(block_seed(seed, &tracker.block));
    tracker.start_round_min(settings.max_probes, settings.min_probes, &mut rng);
    // The last router whose errors answered this block's probes, and how
    // many came: localization evidence, kept here, not in the tracker.
    let (mut error_from, mut errors) = (None, 0u32);
    // The first replies' times, on the stack (a round's up blocks answer
    // one or two probes; no allocation per block).
    let (mut rtts_ms, mut timed) = ([0f64; 16], 0);
    while let Some(addr) = tracker.next_target() {
        limiter.acquire().await;
        match pinger.echo(addr, settings.timeout).await {
            Outcome::Reply { rtt } => {
                if let Some(slot) = rtts_ms.get_mut(timed) {
                    *slot = rtt.as_secs_f64() * 1e3;
                    timed += 1;
                }
                tracker.on_reply()
            }
            Outcome::Unreachable { from } => {
                error_from = Some(from);
                errors = errors.saturating_add(1);
                tracker.on_error(from);
            }
            _ => tracker.on_loss(),
        }
    }
    let errors = error_from.map(|from| BlockErrors {
        block: tracker.block,
        from,
        errors,
    });
    let mut outcome = tracker.finish_round();
    outcome.rtt = Rtt::of(&mut rtts_ms[..timed]);
    (outcome, errors)
}

/// Runs one round over every tracker and returns one outcome per block, in
/// block order. Trackers are updated in place (persist them between rounds).
/// A tracker without known-responsive addresses sends nothing and keeps its
/// belief (its outcome has `probes == 0`).
pub async fn run_round(
    trackers: &mut BTreeMap<IpNet, BlockTracker>,
    pinger: Arc<dyn Pinger>,
    limiter: Arc<RateLimiter>,
    settings: &ProbeSettings,
    seed: u64,
) -> Vec<RoundOutcome> {
    let probed = run_trackers(
        trackers.values_mut(),
        pinger.as_ref(),
        limiter.as_ref(),
        settings,
        seed,
    )
    .await;
    let mut outcomes: Vec<RoundOutcome> = probed.outcomes.into_iter().map(|(_, o)| o).collect();
    outcomes.sort_unstable_by_key(|o| o.block);
    outcomes
}

/// What [`run_trackers`] hands back.
#[derive(Debug, Default)]
pub struct Probed {
    /// Each tracker's outcome with the tracker's position among those
    /// given, in the order the blocks finished.
    pub outcomes: Vec<(u32, RoundOutcome)>,
    /// The routers' errors, for the few blocks whose probes drew them.
    pub errors: Vec<BlockErrors>,
}

/// [`run_round`] over any trackers (a slice's, say), probed where they
/// are: nothing is moved, copied or collected but the outcomes.
pub async fn run_trackers<'a, I>(
    trackers: I,
    pinger: &dyn Pinger,
    limiter: &RateLimiter,
    settings: &ProbeSettings,
    seed: u64,
) -> Probed
where
    I: IntoIterator<Item = &'a mut BlockTracker>,
    I::IntoIter: Send,
{
    // Blocks are probed by `block_concurrency` workers, futures of the
    // caller's task, each taking the next block once its own is done: no
    // task, no allocation per block (a round of millions of blocks would
    // spend more CPU on spawning than on probing). The locks are never
    // held across an await (a `RefCell` would make the caller's future
    // fail to be `Send`), and are never contended: one task polls them all.
    let trackers = trackers.into_iter();
    let (least, most) = trackers.size_hint();
    let limit = settings
        .block_concurrency
        .max(1)
        .min(most.unwrap_or(usize::MAX).max(1));
    let next = Mutex::new(trackers.enumerate());
    let done = Mutex::new(Probed {
        outcomes: Vec::with_capacity(least),
        errors: Vec::new(),
    });
    let (queue, out) = (&next, &done);
    let worker = move || async move {
        loop {
            let Some((i, t)) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                break;
            };
            let (o, e) = probe_block(t, pinger, limiter, settings, seed).await;
            let mut d = out.lock().unwrap_or_else(|e| e.into_inner());
            d.outcomes.push((i as u32, o));
            d.errors.extend(e);
        }
    };
    let mut workers: FuturesUnordered<_> = (0..limit).map(|_| worker()).collect();
    while workers.next().await.is_some() {}
    drop(workers);
    done.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::Outcome;
    use crate::sim::SimPinger;
    use darkwatch_schema::BlockState;
    use std::net::IpAddr;
    use std::time::Duration;

    fn block(i: u8) -> IpNet {
        format!("198.18.{i}.0/24").parse().unwrap()
    }

    fn trackers(n: u8) -> BTreeMap<IpNet, BlockTracker> {
        (0..n)
            .map(|i| {
                let hosts = (1..=50).map(|h| IpAddr::from([198, 18, i, h])).collect();
                (block(i), BlockTracker::from_discovery(block(i), hosts))
            })
            .collect()
    }

    /// Blocks with an even third octet answer; odd ones went dark.
    fn network() -> Arc<SimPinger> {
        Arc::new(SimPinger::new(|addr, _| match addr {
            IpAddr::V4(a) if a.octets()[2] % 2 == 0 => Outcome::Reply {
                rtt: Duration::from_millis(30),
            },
            _ => Outcome::Timeout,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn judges_each_block_and_keeps_trackers() {
        let net = network();
        let mut t = trackers(10);
        let settings = ProbeSettings {
            timeout: Duration::from_secs(1),
            ..ProbeSettings::default()
        };
        let out = run_round(
            &mut t,
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &settings,
            7,
        )
        .await;
        assert_eq!(out.len(), 10);
        assert_eq!(t.len(), 10);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.block, block(i as u8));
            if i % 2 == 0 {
                assert_eq!(
                    (o.state, o.probes, o.replies),
                    (BlockState::Up, 1, 1),
                    "{o:?}"
                );
                // The reply's time, within the 5 % scale's rounding.
                let median = o.rtt.median_ms().expect("a timed reply");
                assert!((median / 30.0 - 1.0).abs() < 0.03, "{o:?}");
            } else {
                // Silence is called down only once the budget is spent.
                assert_eq!(
                    (o.state, o.probes, o.replies),
                    (BlockState::Down, settings.max_probes, 0),
                    "{o:?}"
                );
                assert_eq!(o.rtt, Rtt::NONE);
            }
            assert_eq!(t[&o.block].belief, o.belief);
        }
        let sent: u32 = out.iter().map(|o| o.probes).sum();
        assert_eq!(net.total_sent(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_run_concurrently_but_probes_within_a_block_do_not() {
        let net = network();
        let mut t = trackers(40);
        let settings = ProbeSettings {
            timeout: Duration::from_secs(1),
            block_concurrency: 16,
            ..ProbeSettings::default()
        };
        let start = tokio::time::Instant::now();
        run_round(
            &mut t,
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &settings,
            1,
        )
        .await;
        // Each dead block waits out its timeouts one after another, so at most
        // one probe per block is in flight.
        assert!(net.max_in_flight() <= 16, "{}", net.max_in_flight());
        assert!(net.max_in_flight() > 1);
        // 20 dead blocks × 15 sequential timeouts, 16 blocks at a time (two
        // waves of 15 s): far less than running them one by one (300 s).
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn same_seed_same_probes() {
        let settings = ProbeSettings {
            timeout: Duration::from_secs(1),
            ..ProbeSettings::default()
        };
        let mut picks = Vec::new();
        for _ in 0..2 {
            // Only .7 answers, so the number of probes depends on the order.
            let net = Arc::new(SimPinger::new(|addr, _| match addr {
                IpAddr::V4(a) if a.octets()[3] == 7 => Outcome::Reply {
                    rtt: Duration::from_millis(1),
                },
                _ => Outcome::Timeout,
            }));
            let mut t = trackers(3);
            for tr in t.values_mut() {
                tr.availability = 0.1;
            }
            let out = run_round(
                &mut t,
                net,
                Arc::new(RateLimiter::unlimited()),
                &settings,
                99,
            )
            .await;
            picks.push(out.iter().map(|o| o.probes).collect::<Vec<_>>());
        }
        assert_eq!(picks[0], picks[1]);
    }

    #[tokio::test(start_paused = true)]
    async fn trackers_without_addresses_send_nothing() {
        let net = network();
        let mut t = BTreeMap::from([(block(1), BlockTracker::from_discovery(block(1), vec![]))]);
        let out = run_round(
            &mut t,
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &ProbeSettings::default(),
            0,
        )
        .await;
        assert_eq!((out[0].probes, out[0].state), (0, BlockState::Uncertain));
        assert_eq!(net.total_sent(), 0);
    }
}
