//! darkwatch-agent as a library: everything a vantage point does to decide
//! whether the /24 blocks of a country answer, and the CLI on top of it.
//!
//! The pipeline is `targets` (what to probe) → `discovery` (which addresses
//! ever answer) → `round` (one Trinocular-style round per block, driven by the
//! pure `belief` state machine) plus `trace` (where the path ends). Probing goes
//! through the `icmp::Pinger` trait so that discovery and rounds can be tested
//! against a simulated network; `ratelimit` caps the packet rate of all of them
//! together. The binary in `main.rs` is a thin shim over [`cli::main`].

pub mod belief;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod icmp;
pub mod ratelimit;
pub mod report;
pub mod round;
pub mod settings;
pub mod spool;
pub mod targets;
pub mod trace;

pub use settings::ProbeSettings;
