//! The collector's integration tests, in one binary so that the workspace
//! is linked once: the real `darkwatch-collector` binary and its store
//! against SQLite and PostgreSQL (`server`, `store`, `rounds`, `census`,
//! `bad_input`, `crash`),
//! the dashboard in a headless browser (`dashboard`), and the files under
//! `deploy/` (`deploy_files`). Fixtures are in `common`.

#[macro_use]
mod common;

mod bad_input;
mod census;
mod crash;
mod dashboard;
mod deploy_files;
mod rounds;
mod server;
mod sharing;
mod store;
