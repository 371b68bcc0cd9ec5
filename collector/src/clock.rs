//! The collector's one source of wall-clock time.
//!
//! Everything that needs "now" (ingest checks, last-seen times, round
//! completion, leases, `--since`, migrations) takes a [`Clock`] from its
//! caller instead of reading the system time, so tests can pin time with a
//! [`ManualClock`]. The binary wires in the [`SystemClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Unix time in milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// A clock shared by the server, the correlation loop and the CLI.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock that shows what it was last set to; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_by_its_clones() {
        let c = ManualClock::new(1_000);
        let shared: SharedClock = Arc::new(c.clone());
        c.advance(500);
        assert_eq!(shared.now_ms(), 1_500);
        c.set(7);
        assert_eq!(shared.now_ms(), 7);
    }
}
