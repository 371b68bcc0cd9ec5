//! Discovery: sweep every target address once to learn which addresses of
//! each block answer at all (the block's ever-responsive set).
//!
//! Like zmap, the sweep never waits for a reply before sending the next probe.
//! When the pinger has a batch transport (the real one does, see
//! `icmp::sweeper`), IPv4 addresses are sent in a shuffled order, paced by the
//! global rate limiter, and replies are matched as they come: a sweep takes
//! the sending time plus one timeout. Otherwise (IPv6, simulated networks, a
//! failed batch sweep) each probe is its own task, up to `concurrency` of them
//! in flight (a semaphore), all paced by the rate limiter. A progress bar is
//! drawn only when stderr is a terminal.
//!
//! The daemon runs discovery beside its rounds ([`Background`]): the space is
//! swept in chunks of blocks (in a shuffled order, so that every part of it
//! joins early), each chunk's findings are handed over as soon as it is done,
//! and two chunks are in flight so that one's reply timeout overlaps the
//! other's sending. A round never waits for a sweep: it takes what is known.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use darkwatch_schema::block_of;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ipnet::IpNet;
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, Semaphore};

use crate::icmp::Pinger;
use crate::ratelimit::RateLimiter;
use crate::targets::TargetSet;
use crate::ProbeSettings;

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("discovery {bar:40} {pos}/{len} probes, {per_sec}, eta {eta}")
    {
        pb.set_style(style);
    }
    pb
}

/// Probes every address of `targets` once and returns, for every block of
/// `targets` (IPv4 /24, IPv6 /48), the addresses that sent an echo reply,
/// sorted. Blocks where nothing answered map to an empty list.
pub async fn sweep(
    pinger: Arc<dyn Pinger>,
    limiter: Arc<RateLimiter>,
    targets: &TargetSet,
    settings: &ProbeSettings,
) -> BTreeMap<IpNet, Vec<IpAddr>> {
    let found = sweep_blocks(pinger, limiter, targets, &targets.blocks(), settings).await;
    let live = found.values().filter(|v| !v.is_empty()).count();
    tracing::info!(
        blocks = found.len(),
        responsive_blocks = live,
        "discovery done"
    );
    found
}

/// [`sweep`] restricted to the target addresses inside `blocks`.
pub async fn sweep_blocks(
    pinger: Arc<dyn Pinger>,
    limiter: Arc<RateLimiter>,
    targets: &TargetSet,
    blocks: &[IpNet],
    settings: &ProbeSettings,
) -> BTreeMap<IpNet, Vec<IpAddr>> {
    let mut found: BTreeMap<IpNet, Vec<IpAddr>> = blocks.iter().map(|b| (*b, Vec::new())).collect();
    let pb = progress_bar(u64::try_from(targets.address_count()).unwrap_or(u64::MAX));
    let sem = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let timeout = settings.timeout;
    let mut per_probe: Vec<&IpNet> = blocks.iter().collect();
    if let Some(batch) = pinger.batch_sweeper() {
        let mut v4: Vec<Ipv4Addr> = Vec::new();
        for block in blocks.iter().filter(|b| matches!(b, IpNet::V4(_))) {
            v4.extend(
                targets
                    .addresses_in(block)
                    .into_iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    }),
            );
        }
        // Spread the probes over all blocks, as zmap does, rather than
        // hitting one network with 256 packets in a row.
        v4.shuffle(&mut rand::thread_rng());
        let count = v4.len() as u64;
        match batch.sweep_v4(v4, limiter.clone(), timeout).await {
            Ok(replied) => {
                for a in replied {
                    let addr = IpAddr::V4(a);
                    found.entry(block_of(addr)).or_default().push(addr);
                }
                pb.inc(count);
                per_probe.retain(|b| !matches!(b, IpNet::V4(_)));
            }
            Err(e) => tracing::warn!("batch sweep failed, probing one address at a time: {e}"),
        }
    }
    for block in per_probe {
        for addr in targets.addresses_in(block) {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            limiter.acquire().await;
            let (pinger, tx, pb) = (pinger.clone(), tx.clone(), pb.clone());
            tokio::spawn(async move {
                if pinger.echo(addr, timeout).await.is_reply() {
                    let _ = tx.send(addr);
                }
                pb.inc(1);
                drop(permit);
            });
        }
    }
    // The channel closes once the last probe task has finished.
    drop(tx);
    while let Some(addr) = rx.recv().await {
        found.entry(block_of(addr)).or_default().push(addr);
    }
    pb.finish_and_clear();
    for addrs in found.values_mut() {
        addrs.sort_unstable();
    }
    found
}

/// Seconds of sending one background chunk should take at the discovery
/// rate: long enough that its one reply timeout is a small overhead, short
/// enough that findings join the rounds within seconds.
const CHUNK_SECS: u64 = 10;
/// Fewest addresses in a chunk (and the chunk size when the rate is unlimited).
const MIN_CHUNK_ADDRS: u64 = 4096;

/// Splits `blocks` into chunks of about `pps × CHUNK_SECS` addresses
/// (IPv4 blocks counted as 256), in the given order.
pub fn chunks(blocks: &[IpNet], pps: u32) -> Vec<Vec<IpNet>> {
    let addrs = (u64::from(pps) * CHUNK_SECS).max(MIN_CHUNK_ADDRS);
    let per = usize::try_from(addrs / 256).unwrap_or(usize::MAX).max(1);
    blocks.chunks(per).map(<[IpNet]>::to_vec).collect()
}

/// What a background sweep found since it was last asked.
#[derive(Debug, Default)]
pub struct Progress {
    pub targets: BTreeMap<IpNet, Vec<IpAddr>>,
    pub control: BTreeMap<IpNet, Vec<IpAddr>>,
    /// Every chunk has been swept (this is the last handover).
    pub done: bool,
}

/// A discovery sweep running beside the rounds, in chunks; dropped, it stops.
#[derive(Debug)]
pub struct Background {
    sink: Arc<Mutex<Progress>>,
    handle: tokio::task::JoinHandle<()>,
    /// The round in which it started.
    pub round: u64,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Background {
    /// Starts sweeping `control` (few addresses, first) and `targets` under
    /// `limiter`.
    pub fn spawn(
        pinger: Arc<dyn Pinger>,
        limiter: Arc<RateLimiter>,
        targets: Option<TargetSet>,
        control: Option<TargetSet>,
        settings: ProbeSettings,
        round: u64,
    ) -> Background {
        let sink = Arc::new(Mutex::new(Progress::default()));
        let out = sink.clone();
        let handle = tokio::spawn(async move {
            let hand_over = |control: bool, found: BTreeMap<IpNet, Vec<IpAddr>>| {
                let mut p = out.lock().unwrap_or_else(|e| e.into_inner());
                let into = if control {
                    &mut p.control
                } else {
                    &mut p.targets
                };
                into.extend(found);
            };
            let started = tokio::time::Instant::now();
            for (set, control) in [(&control, true), (&targets, false)] {
                let Some(set) = set else { continue };
                let mut blocks = set.blocks();
                blocks.shuffle(&mut rand::thread_rng());
                let mut swept = futures::stream::iter(chunks(&blocks, limiter.pps()))
                    .map(|chunk| {
                        let (pinger, limiter, settings) =
                            (pinger.clone(), limiter.clone(), &settings);
                        async move { sweep_blocks(pinger, limiter, set, &chunk, settings).await }
                    })
                    .buffer_unordered(2);
                while let Some(found) = swept.next().await {
                    hand_over(control, found);
                }
            }
            out.lock().unwrap_or_else(|e| e.into_inner()).done = true;
            tracing::info!(round, took = ?started.elapsed(), "background discovery done");
        });
        Background {
            sink,
            handle,
            round,
        }
    }

    /// Takes what was found since the last call.
    pub fn take(&self) -> Progress {
        std::mem::take(&mut *self.sink.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// True until the last chunk was handed over.
    pub fn running(&self) -> bool {
        !self.handle.is_finished()
    }
}

/// Waits until `bg` has swept everything (for `--once`, which has no next
/// round to protect), polling every `every`.
pub async fn wait_done(bg: &Background, every: Duration) {
    while bg.running() {
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::Outcome;
    use crate::sim::SimPinger;
    use crate::targets::TargetSpec;
    use std::time::Duration;

    fn targets(include: &[&str]) -> TargetSet {
        TargetSet::build(&TargetSpec {
            include: include.iter().map(|s| s.parse().unwrap()).collect(),
            allow: vec!["198.18.0.0/15".parse().unwrap()],
            ..TargetSpec::default()
        })
        .unwrap()
        .0
    }

    /// Even hosts of 198.18.1.0/24 answer; 198.18.2.0/24 is dead.
    fn network() -> Arc<SimPinger> {
        Arc::new(SimPinger::new(|addr, _| match addr {
            IpAddr::V4(a) if a.octets()[2] == 1 && a.octets()[3] % 2 == 0 => Outcome::Reply {
                rtt: Duration::from_millis(20),
            },
            _ => Outcome::Timeout,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn finds_responsive_addresses_per_block() {
        let net = network();
        let settings = ProbeSettings {
            concurrency: 1000,
            ..ProbeSettings::default()
        };
        let got = sweep(
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &targets(&["198.18.1.0/24", "198.18.2.0/24"]),
            &settings,
        )
        .await;
        assert_eq!(got.len(), 2);
        let b1 = &got[&"198.18.1.0/24".parse().unwrap()];
        assert_eq!(b1.len(), 128);
        assert!(b1
            .iter()
            .all(|a| matches!(a, IpAddr::V4(v) if v.octets()[3] % 2 == 0)));
        assert!(got[&"198.18.2.0/24".parse().unwrap()].is_empty());
        assert_eq!(net.total_sent(), 512);
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_many_probes_in_flight_within_the_bound() {
        let net = network();
        let settings = ProbeSettings {
            concurrency: 300,
            timeout: Duration::from_secs(1),
            ..ProbeSettings::default()
        };
        let start = tokio::time::Instant::now();
        sweep(
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &targets(&["198.18.1.0/24", "198.18.2.0/24"]),
            &settings,
        )
        .await;
        assert_eq!(net.max_in_flight(), 300);
        // 512 probes, 300 at a time, dead ones waiting a 1 s timeout: two
        // waves, not 384 sequential timeouts.
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn batch_sweep_finds_the_same_and_waits_one_timeout_in_all() {
        let net = Arc::new(
            SimPinger::new(|addr, _| match addr {
                IpAddr::V4(a) if a.octets()[2] == 1 && a.octets()[3] % 2 == 0 => Outcome::Reply {
                    rtt: Duration::from_millis(20),
                },
                _ => Outcome::Timeout,
            })
            .batched(),
        );
        let settings = ProbeSettings {
            concurrency: 1,
            timeout: Duration::from_secs(1),
            ..ProbeSettings::default()
        };
        let start = tokio::time::Instant::now();
        let got = sweep(
            net.clone(),
            Arc::new(RateLimiter::unlimited()),
            &targets(&["198.18.1.0/24", "198.18.2.0/24"]),
            &settings,
        )
        .await;
        // One in flight would take 384 timeouts if the sweep waited per reply.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(net.total_sent(), 512);
        assert_eq!(net.max_in_flight(), 0, "no per-probe echo was used");
        let b1 = &got[&"198.18.1.0/24".parse().unwrap()];
        assert_eq!(b1.len(), 128);
        assert!(b1.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(got[&"198.18.2.0/24".parse().unwrap()].is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn obeys_the_rate_limit() {
        let net = network();
        let settings = ProbeSettings {
            concurrency: 10_000,
            ..ProbeSettings::default()
        };
        let start = tokio::time::Instant::now();
        sweep(
            net.clone(),
            Arc::new(RateLimiter::new(256, 1)),
            &targets(&["198.18.1.0/24", "198.18.2.0/24"]),
            &settings,
        )
        .await;
        // 512 probes at 256/s cannot all leave in under two (simulated) seconds.
        assert!(
            start.elapsed() >= Duration::from_millis(1990),
            "{:?}",
            start.elapsed()
        );
    }
}
