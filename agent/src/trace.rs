//! Traceroute with trippy-core (ICMP): where does the path to a target end?
//!
//! trippy's tracer is synchronous and thread-based, so each trace runs on a
//! blocking thread with a bounded number of rounds and its own
//! `trace_identifier` (concurrent tracers with equal identifiers steal each
//! other's replies). `reached` is true only if an echo reply came from the
//! target itself: trippy may label the silent hop after the last responder as
//! the target, which must not count.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use darkwatch_schema::Hop;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use trippy_core::{Builder, IcmpPacketType, Protocol};

use crate::ratelimit::RateLimiter;

/// How a traceroute is run.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceOptions {
    /// Highest TTL probed.
    pub max_ttl: u8,
    /// Rounds of probes (each round probes every TTL up to the target).
    pub rounds: usize,
    /// How long a round waits for late replies once the target answered.
    pub grace: Duration,
    /// Shortest round.
    pub min_round: Duration,
    /// Longest round: how long to wait for silent hops.
    pub max_round: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            max_ttl: 30,
            rounds: 3,
            grace: Duration::from_millis(100),
            min_round: Duration::from_millis(100),
            max_round: Duration::from_millis(1000),
        }
    }
}

/// The result of one traceroute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceResult {
    pub target: IpAddr,
    /// One entry per TTL from 1 up to the last responding hop.
    pub hops: Vec<Hop>,
    /// True only if the target itself sent an echo reply.
    pub reached: bool,
    /// The farthest hop that answered (the target if reached).
    pub last_responding: Option<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("max TTL must be between 1 and {max}, got {0}", max = trippy_core::MAX_TTL)]
    BadMaxTtl(u8),
    #[error("traceroute to {target} failed: {source}")]
    Tracer {
        target: IpAddr,
        #[source]
        source: trippy_core::Error,
    },
    #[error("traceroute to {0} was interrupted")]
    Interrupted(IpAddr),
}

/// Identifiers for concurrent tracers: the high half of the identifier space
/// (pings use the low half), starting at a random point per process.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn next_trace_id() -> u16 {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // Salted per process so two agents on one host rarely collide.
    static SALT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let salt = *SALT.get_or_init(rand::random::<u16>);
    0x8000 | (salt.wrapping_add(n) & 0x7fff)
}

/// Runs traceroutes: trippy on the real network ([`TrippyTracer`]), a
/// scripted one in tests (`sim::SimTracer`).
pub trait Tracer: Send + Sync {
    fn trace<'a>(
        &'a self,
        target: IpAddr,
        opts: &'a TraceOptions,
        limiter: Option<&'a RateLimiter>,
    ) -> BoxFuture<'a, Result<TraceResult, TraceError>>;
}

/// The real tracer, over trippy-core (see [`trace`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct TrippyTracer;

impl Tracer for TrippyTracer {
    fn trace<'a>(
        &'a self,
        target: IpAddr,
        opts: &'a TraceOptions,
        limiter: Option<&'a RateLimiter>,
    ) -> BoxFuture<'a, Result<TraceResult, TraceError>> {
        Box::pin(trace(target, opts, limiter))
    }
}

/// Traces the path to `target` on a blocking thread. With a `limiter`, the
/// whole trace's packet budget (`max_ttl × rounds`) is taken from it first.
pub async fn trace(
    target: IpAddr,
    opts: &TraceOptions,
    limiter: Option<&RateLimiter>,
) -> Result<TraceResult, TraceError> {
    if let Some(l) = limiter {
        l.acquire_n(u32::from(opts.max_ttl) * opts.rounds as u32)
            .await;
    }
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || trace_blocking(target, &opts))
        .await
        .map_err(|_| TraceError::Interrupted(target))?
}

/// Traces the path to `target` on the calling thread (blocks for up to
/// `rounds × max_round`).
pub fn trace_blocking(target: IpAddr, opts: &TraceOptions) -> Result<TraceResult, TraceError> {
    if opts.max_ttl == 0 || opts.max_ttl > trippy_core::MAX_TTL {
        return Err(TraceError::BadMaxTtl(opts.max_ttl));
    }
    let tracer = Builder::new(target)
        .protocol(Protocol::Icmp)
        .trace_identifier(next_trace_id())
        .max_ttl(opts.max_ttl)
        .max_rounds(Some(opts.rounds.max(1)))
        .grace_duration(opts.grace)
        .min_round_duration(opts.min_round)
        .max_round_duration(opts.max_round.max(opts.min_round))
        .build()
        .map_err(|source| TraceError::Tracer { target, source })?;
    tracer
        .run()
        .map_err(|source| TraceError::Tracer { target, source })?;
    let state = tracer.snapshot();
    let views: Vec<HopView> = state
        .hops()
        .iter()
        .map(|h| HopView {
            ttl: h.ttl(),
            addrs: h.addrs().copied().collect(),
            rtt_ms: (h.total_recv() > 0).then(|| h.avg_ms()),
            echo_reply: matches!(
                h.last_icmp_packet_type(),
                Some(IcmpPacketType::EchoReply(_))
            ),
            unreachable: match h.last_icmp_packet_type() {
                Some(IcmpPacketType::Unreachable(code)) => Some(code.0),
                _ => None,
            },
        })
        .collect();
    Ok(summarize(target, &views))
}

/// What we keep of one trippy hop; separated so the summary logic is testable.
#[derive(Debug, Clone, PartialEq)]
pub struct HopView {
    pub ttl: u8,
    pub addrs: Vec<IpAddr>,
    pub rtt_ms: Option<f64>,
    /// The last reply at this TTL was an echo reply.
    pub echo_reply: bool,
    /// The last reply at this TTL was a destination unreachable, with this code.
    pub unreachable: Option<u8>,
}

/// Turns trippy's hops into darkwatch hops: cut after the target's echo
/// reply or after the first hop that answered unreachable (every higher TTL
/// would only hear the same router again), drop trailing silent hops, derive
/// `reached` and `last_responding`.
pub fn summarize(target: IpAddr, views: &[HopView]) -> TraceResult {
    let reached_at = views
        .iter()
        .position(|v| v.echo_reply && v.addrs.contains(&target));
    let end = views
        .iter()
        .position(|v| (v.echo_reply && v.addrs.contains(&target)) || v.unreachable.is_some())
        .map_or(views.len(), |i| i + 1);
    let mut hops: Vec<Hop> = views
        .iter()
        .take(end)
        .map(|v| Hop {
            ttl: v.ttl,
            addr: if v.addrs.contains(&target) {
                Some(target)
            } else {
                v.addrs.first().copied()
            },
            rtt_ms: v.rtt_ms.filter(|_| !v.addrs.is_empty()),
            unreachable: v.unreachable.filter(|_| !v.addrs.is_empty()),
        })
        .collect();
    while hops.last().is_some_and(|h| h.addr.is_none()) {
        hops.pop();
    }
    let last_responding = darkwatch_schema::TraceObservation::derive_last_responding(&hops);
    TraceResult {
        target,
        hops,
        reached: reached_at.is_some(),
        last_responding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn view(ttl: u8, addr: Option<&str>, echo: bool) -> HopView {
        HopView {
            ttl,
            addrs: addr.map(ip).into_iter().collect(),
            rtt_ms: addr.map(|_| 1.5),
            echo_reply: echo,
            unreachable: None,
        }
    }

    #[test]
    fn an_unreachable_hop_ends_the_path_and_keeps_its_code() {
        let t = ip("198.18.1.1");
        let unreachable = |ttl| HopView {
            unreachable: Some(0),
            ..view(ttl, Some("203.0.113.9"), false)
        };
        let r = summarize(
            t,
            &[
                view(1, Some("192.0.2.2"), false),
                unreachable(2),
                unreachable(3),
                unreachable(4),
            ],
        );
        assert!(!r.reached);
        assert_eq!(r.hops.len(), 2, "{:?}", r.hops);
        assert_eq!(r.hops[1].unreachable, Some(0));
        assert_eq!(r.hops[0].unreachable, None);
        assert_eq!(r.last_responding, Some(ip("203.0.113.9")));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"unreachable\":0"), "{json}");
    }

    #[test]
    fn a_reached_target_ends_the_path() {
        let t = ip("198.18.1.1");
        let r = summarize(
            t,
            &[
                view(1, Some("192.0.2.2"), false),
                view(2, None, false),
                view(3, Some("198.18.1.1"), true),
                view(4, Some("198.18.1.1"), true),
            ],
        );
        assert!(r.reached);
        assert_eq!(r.hops.len(), 3);
        assert_eq!(
            r.hops[1],
            Hop {
                ttl: 2,
                addr: None,
                rtt_ms: None,
                unreachable: None
            }
        );
        assert_eq!(r.last_responding, Some(t));
    }

    #[test]
    fn a_silent_target_is_not_reached() {
        let t = ip("198.18.1.1");
        // trippy labels the hop after the last responder as the target; it
        // has no address and no echo reply.
        let r = summarize(
            t,
            &[
                view(1, Some("192.0.2.2"), false),
                view(2, None, false),
                view(3, None, false),
            ],
        );
        assert!(!r.reached);
        assert_eq!(r.hops.len(), 1);
        assert_eq!(r.last_responding, Some(ip("192.0.2.2")));
        // An unreachable from the target's address is not an echo reply.
        let r = summarize(t, &[view(1, Some("198.18.1.1"), false)]);
        assert!(!r.reached);
        assert_eq!(r.last_responding, Some(t));
    }

    #[test]
    fn nothing_answered() {
        let r = summarize(
            ip("198.18.1.1"),
            &[view(1, None, false), view(2, None, false)],
        );
        assert!(!r.reached && r.hops.is_empty() && r.last_responding.is_none());
    }

    #[test]
    fn trace_ids_are_distinct_and_in_the_high_half() {
        let a = next_trace_id();
        let b = next_trace_id();
        assert_ne!(a, b);
        assert!(a >= 0x8000 && b >= 0x8000);
        assert!(matches!(
            trace_blocking(
                ip("198.18.1.1"),
                &TraceOptions {
                    max_ttl: 0,
                    ..TraceOptions::default()
                }
            ),
            Err(TraceError::BadMaxTtl(0))
        ));
    }
}
