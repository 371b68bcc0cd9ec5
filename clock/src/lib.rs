//! The one wall clock of darkwatch, shared by the agent and the collector.
//!
//! Whatever needs "now" (the agent's round schedule and report timestamps;
//! the collector's ingest checks, last-seen times, round completion,
//! leases, `--since`, migrations) reads it through [`Clock`], handed in by
//! its caller, instead of asking the system. Tests then pin or step time
//! with a [`ManualClock`]; the binaries wire in the [`SystemClock`]. Timers
//! (tokio's sleeps) are not the clock's business: they pace waits, the
//! clock only says what time of day it is.
//!
//! A crate of its own, with no dependencies, because both sides need the
//! same trait and test clock and neither should depend on the other.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// A clock shared by the tasks of a process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // Before 1970 only on a badly broken host: read it as the epoch.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock that shows what a test last set it to; clones share the time,
/// so a test keeps one and hands the others to the code under test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
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
        c.advance(Duration::from_millis(500));
        assert_eq!(shared.now_ms(), 1_500);
        c.set(7);
        assert_eq!(shared.now_ms(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
