//! The collector's integration tests, in one binary so that the workspace
//! is linked once: the real `darkwatch-collector` binary and its store
//! against SQLite and PostgreSQL (`server`, `store`, `rounds`, `census`,
//! `bad_input`, `crash`, `signals`, `timing`, `sharing`: two collectors
//! sharing the campaigns), the dashboard in a headless browser (`dashboard`), the files
//! under `deploy/` (`deploy_files`), the log format on a pipe (`logs`),
//! `/metrics` through promtool (`metrics`), alerts to a real Alertmanager
//! (`alertmanager`) and a signed webhook (`webhook`), MRT import (`bgp`). Fixtures are in
//! `common`.

#[macro_use]
mod common;

mod alertmanager;
mod bad_input;
mod bgp;
mod census;
mod cli_traps;
mod crash;
mod dashboard;
mod deploy_files;
mod incremental;
mod logs;
mod metrics;
mod rounds;
mod server;
mod sharing;
mod signals;
mod store;
mod timing;
mod webhook;
