//! The end-to-end tests, in one binary so that the workspace is linked
//! once: the lab itself (`lab`), the real agents and collectors in it
//! (`scenarios`, `reporting`, `scaleout`), real BGP routers streaming to a
//! collector (`bgp`), and the demo (`demo`).

mod bgp;
mod demo;
mod docs;
mod lab;
mod reporting;
mod scaleout;
mod scenarios;

use std::sync::{Mutex, MutexGuard};

/// Deployments (a collector and agents in a lab) run one at a time, so that
/// 2-core machines do not starve the probers; each test holds this while
/// its deployment runs.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A test that panicked while holding the lock leaves nothing behind.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
