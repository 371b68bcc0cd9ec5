//! The agent's integration tests, in one binary so that the workspace is
//! linked once: the real `darkwatch-agent` run from outside, on bad input
//! and configs (`cli`, `config`), against real sockets in a namespace lab
//! (`lab`), and against the real collector in a loopback-only namespace
//! (`policy`, `spool_crash`). Lab tests skip outside CI when no lab can be
//! built, and fail in CI.

mod common;
mod loopback;

mod cli;
mod config;
mod lab;
mod policy;
mod spool_crash;
