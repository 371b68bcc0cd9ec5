//! One global packet-rate cap for everything the agent sends (discovery
//! sweeps, rounds, traces), as an async token bucket.
//!
//! It is a GCRA ("virtual scheduling") bucket: each packet reserves the next
//! free send slot and sleeps until it, so many concurrent tasks share the rate
//! fairly without a background refill task, and an idle limiter allows a small
//! burst. It uses tokio's clock, so tests can run it on paused time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default burst: packets that may leave back to back after an idle period.
pub const DEFAULT_BURST: u32 = 32;

/// A shared packets-per-second cap. `pps == 0` means unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next packet.
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter that allows `pps` packets per second on average and bursts
    /// of up to `burst` packets.
    pub fn new(pps: u32, burst: u32) -> Self {
        let interval = if pps == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / pps
        };
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            next: Mutex::new(None),
        }
    }

    /// A limiter that never waits.
    pub fn unlimited() -> Self {
        Self::new(0, 1)
    }

    /// Waits until one packet may be sent.
    pub async fn acquire(&self) {
        self.acquire_n(1).await
    }

    /// Waits until `n` packets may be sent (e.g. a whole traceroute).
    pub async fn acquire_n(&self, n: u32) {
        let wait = self.reserve_n(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves send slots for `n` packets and returns how long the caller
    /// must wait before sending them, for callers that pace themselves
    /// outside async code (the batch sweeper's sending thread).
    pub fn reserve_n(&self, n: u32) -> Duration {
        if self.interval.is_zero() || n == 0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let send_at = {
            // The lock is held only for arithmetic, never across an await.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let tat = next.map_or(now, |t| t.max(now));
            *next = Some(tat + self.interval * n);
            tat.checked_sub(self.tolerance).unwrap_or(now)
        };
        send_at.saturating_duration_since(now)
    }

    /// Packets per second this limiter allows (0: unlimited).
    pub fn pps(&self) -> u32 {
        if self.interval.is_zero() {
            0
        } else {
            u32::try_from(Duration::from_secs(1).as_nanos() / self.interval.as_nanos().max(1))
                .unwrap_or(u32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn caps_the_rate_after_a_burst() {
        let rl = RateLimiter::new(100, 10);
        let start = Instant::now();
        for _ in 0..10 {
            rl.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst leaves at once");
        for _ in 0..100 {
            rl.acquire().await;
        }
        // 100 more packets at 100/s take a second of (simulated) time.
        let e = start.elapsed();
        assert!(
            e >= Duration::from_millis(990) && e <= Duration::from_millis(1010),
            "{e:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn is_shared_by_concurrent_tasks() {
        let rl = Arc::new(RateLimiter::new(1000, 1));
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let rl = rl.clone();
                tokio::spawn(async move {
                    for _ in 0..250 {
                        rl.acquire().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 2000 packets at 1000/s: about two seconds whatever the interleaving.
        let e = start.elapsed();
        assert!(
            e >= Duration::from_millis(1990) && e <= Duration::from_millis(2010),
            "{e:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_space_batches_by_the_interval() {
        let rl = RateLimiter::new(1000, 1);
        assert_eq!(rl.pps(), 1000);
        assert_eq!(rl.reserve_n(100), Duration::ZERO);
        // The next batch may leave once the first 100 slots (100 ms) passed.
        assert_eq!(rl.reserve_n(100), Duration::from_millis(100));
        assert_eq!(rl.reserve_n(1), Duration::from_millis(200));
        assert_eq!(
            RateLimiter::unlimited().reserve_n(1_000_000),
            Duration::ZERO
        );
        assert_eq!(RateLimiter::unlimited().pps(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_and_batches() {
        let rl = RateLimiter::unlimited();
        let start = Instant::now();
        for _ in 0..10_000 {
            rl.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        let rl = RateLimiter::new(10, 1);
        rl.acquire_n(30).await;
        rl.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
