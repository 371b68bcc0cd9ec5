//! A simulated network and clock for tests: [`SimPinger`] answers each
//! address as a closure says, after a simulated delay on tokio's clock, and
//! records what was sent; [`SimTracer`] returns scripted paths and records
//! its targets; [`ManualClock`] (from `darkwatch_clock`) is a wall clock that
//! tests set and advance, [`TokioClock`] one that follows tokio's (paused)
//! clock.
//!
//! Built for the crate's own tests and with the `sim` feature; never part of
//! a release build.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::clock::Clock;
/// The manual wall clock of `darkwatch_clock`, re-exported beside the
/// simulated network that tests use it with.
pub use crate::clock::ManualClock;
use crate::icmp::{BatchSweep, IcmpError, Outcome, Pinger};
use crate::ratelimit::RateLimiter;
use crate::trace::{TraceError, TraceOptions, TraceResult, Tracer};

type Responder = dyn Fn(IpAddr, u32) -> Outcome + Send + Sync;

/// A scripted network. The responder gets the address and how many probes
/// it had received before this one.
pub struct SimPinger {
    responder: Box<Responder>,
    sent: Mutex<HashMap<IpAddr, u32>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    batch: bool,
}

impl SimPinger {
    pub fn new(responder: impl Fn(IpAddr, u32) -> Outcome + Send + Sync + 'static) -> Self {
        Self {
            responder: Box::new(responder),
            sent: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            batch: false,
        }
    }

    /// Also offers a batch sweeper (as the real pinger does), so that
    /// discovery takes its fast path.
    pub fn batched(mut self) -> Self {
        self.batch = true;
        self
    }

    fn record(&self, addr: IpAddr) -> u32 {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let n = sent.entry(addr).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Probes sent to `addr` so far.
    pub fn sent_to(&self, addr: IpAddr) -> u32 {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .copied()
            .unwrap_or(0)
    }

    /// Probes sent in total.
    pub fn total_sent(&self) -> u32 {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Most probes that were awaiting their outcome at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

impl BatchSweep for SimPinger {
    /// Sends every probe paced by `limiter`, then waits one timeout:
    /// replies no slower than the timeout count.
    fn sweep_v4(
        &self,
        addrs: Vec<Ipv4Addr>,
        limiter: Arc<RateLimiter>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<Ipv4Addr>, IcmpError>> {
        Box::pin(async move {
            let mut replied = Vec::new();
            for a in addrs {
                limiter.acquire().await;
                let addr = IpAddr::V4(a);
                let before = self.record(addr);
                if matches!((self.responder)(addr, before), Outcome::Reply { rtt } if rtt <= timeout)
                {
                    replied.push(a);
                }
            }
            tokio::time::sleep(timeout).await;
            Ok(replied)
        })
    }
}

impl Pinger for SimPinger {
    fn batch_sweeper(&self) -> Option<&dyn BatchSweep> {
        if self.batch {
            Some(self)
        } else {
            None
        }
    }

    fn echo(&self, addr: IpAddr, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let before = self.record(addr);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let outcome = (self.responder)(addr, before);
            let wait = match &outcome {
                Outcome::Reply { rtt } if *rtt <= timeout => *rtt,
                Outcome::Reply { .. } | Outcome::Timeout => timeout,
                Outcome::Unreachable { .. } => timeout / 10,
                Outcome::Failed(_) => Duration::ZERO,
            };
            tokio::time::sleep(wait).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            match outcome {
                Outcome::Reply { rtt } if rtt > timeout => Outcome::Timeout,
                other => other,
            }
        })
    }
}

impl SimPinger {
    /// Every address probed so far (discovery and rounds), sorted.
    pub fn sent_addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }
}

type PathFn = dyn Fn(IpAddr) -> TraceResult + Send + Sync;

/// A scripted traceroute: the closure gives the path to each target.
pub struct SimTracer {
    path: Box<PathFn>,
    asked: Mutex<Vec<IpAddr>>,
}

impl SimTracer {
    pub fn new(path: impl Fn(IpAddr) -> TraceResult + Send + Sync + 'static) -> Self {
        Self {
            path: Box::new(path),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// A network where every target is reached in one hop.
    pub fn direct() -> Self {
        Self::new(|target| TraceResult {
            target,
            hops: vec![darkwatch_schema::Hop {
                ttl: 1,
                addr: Some(target),
                rtt_ms: Some(1.0),
                unreachable: None,
            }],
            reached: true,
            last_responding: Some(target),
        })
    }

    /// Targets traced so far, in order.
    pub fn asked(&self) -> Vec<IpAddr> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Tracer for SimTracer {
    fn trace<'a>(
        &'a self,
        target: IpAddr,
        _opts: &'a TraceOptions,
        _limiter: Option<&'a RateLimiter>,
    ) -> BoxFuture<'a, Result<TraceResult, TraceError>> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(target);
        let r = (self.path)(target);
        Box::pin(async move { Ok(r) })
    }
}

/// A wall clock that follows tokio's (paused) clock from `base_ms`, so that
/// the time a round takes on simulated time shows in its timestamps.
#[derive(Debug)]
pub struct TokioClock {
    base_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be created inside a tokio runtime.
    pub fn new(base_ms: i64) -> Self {
        Self {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }
}
