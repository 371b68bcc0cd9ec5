//! The wall clock behind a trait, so that the daemon's round schedule and
//! timestamps can be driven by simulated time in tests. The daemon reads the
//! time of day only through [`Clock`]; tokio's timers still pace the waits.

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
