//! darkwatch-agent as a library: everything a vantage point does to decide
//! whether the /24 blocks of a country answer, and the CLI on top of it.
//!
//! The pipeline is `targets` (what to probe) → `discovery` (which addresses
//! ever answer) → `round` (one Trinocular-style round per block, driven by the
//! pure `belief` state machine) plus `trace` (where the path ends). Probing goes
//! through the `icmp::Pinger` trait, traceroutes through `trace::Tracer` and the
//! wall clock through `clock::Clock` (the `darkwatch-clock` crate, shared with
//! the collector), so that discovery, rounds and the whole daemon can be
//! tested against a simulated network (`sim`, built for tests and with the
//! `sim` feature); `ratelimit` caps the packet rate of all of them
//! together. `campaign` holds the daemon's per-round decisions as pure
//! functions, `schedule` when a round's probes go out (slices) and how it went,
//! `driver` the sequencing of one round as a sans-IO state machine;
//! `daemon` carries out what it asks for and keeps their state in `state` (compact binary
//! files), and `metrics` counts what it did for Prometheus. The binary in
//! `main.rs` is a thin shim over [`cli::main`].

pub mod belief;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod driver;
pub mod icmp;
pub mod metrics;
pub mod ratelimit;
pub mod rediscovery;
pub mod report;
pub mod round;
pub mod schedule;
pub mod settings;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod spool;
pub mod state;
pub mod targets;
pub mod trace;
pub mod tracked;

/// The wall clock, shared with the collector (`darkwatch_clock`).
pub use darkwatch_clock as clock;
pub use settings::ProbeSettings;
