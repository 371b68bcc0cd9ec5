//! darkwatch-collector: receives agent reports over HTTP, stores them
//! (SQLite or PostgreSQL) and serves campaigns, agents and metrics.
//!
//! The binary (`main.rs`) is a shim over [`cli::main`]. Pure parts
//! (`tokens`, `delegated`, `ingest`, `config`, `metrics`) know nothing of
//! sockets or databases; `store` is the only module that speaks SQL and
//! `api`/`server`/`web` the only ones that speak HTTP (`web` serves the
//! dashboard's page and assets).

pub mod alerts;
pub mod api;
pub mod census;
pub mod cli;
pub mod config;
pub mod correlation;
pub mod coverage;
pub mod delegated;
pub mod hitlist;
pub mod ingest;
pub mod metrics;
pub mod pfx2as;
pub mod report_cli;
pub mod server;
pub mod store;
pub mod tokens;
pub mod web;
