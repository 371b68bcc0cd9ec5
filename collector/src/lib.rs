//! darkwatch-collector: receives agent reports over HTTP, stores them
//! (SQLite or PostgreSQL) and serves campaigns, agents and metrics.
//!
//! The binary (`main.rs`) is a shim over [`cli::main`]. Pure parts
//! (`tokens`, `ingest`, `config`, `metrics`, `reconcile`) know nothing of
//! sockets, databases or the clock; `clock` is the one source of time,
//! injected everywhere else; `store` is the only module that speaks SQL and
//! `api`/`server`/`web` the only ones that speak HTTP (`web` serves the
//! dashboard's page and assets). `correlation` wires the store to the
//! correlation core and `reconcile` through two narrow traits (its
//! `edges`, with an in-memory implementation for tests); `views` is the
//! read model that both the CLI and the API serve, `signals` the part of it
//! read from the per-round scope summaries each correlation pass stores
//! (signals, timeline, scope gauges). Published input files (delegated
//! stats, pfx2as, address lists) are parsed by `darkwatch_schema::inputs`;
//! `inputs` loads the ones `serve` reads at start-up.
//!
//! `names` gives scope keys their display names (AS names from a file,
//! ISO 3166 country names).
//!
//! `evidence` assembles a verdict's evidence for its page on the dashboard.

pub mod alerts;
pub mod api;
pub mod bgp;
pub mod causes;
pub mod census;
pub mod cli;
pub mod config;
pub mod correlation;
pub mod coverage;
pub mod evidence;
pub mod fleet;
pub mod hitlist;
pub mod ingest;
pub mod inputs;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod reload;
pub mod routing;
pub mod server;
pub mod signals;
pub mod space;
pub mod store;
pub mod timespec;
pub mod tokens;
pub mod views;
pub mod web;

/// The one source of time, shared with the agent (`darkwatch_clock`).
pub use darkwatch_clock as clock;
