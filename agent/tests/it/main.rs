//! The agent's integration tests, in one binary so that the workspace is
//! linked once: the real `darkwatch-agent` run from outside, on bad input
//! and configs (`cli`, `config`), against real sockets in a namespace lab
//! (`lab`), against the real collector in a loopback-only namespace
//! (`policy`, `spool_crash`, `rounds`: rounds beside a rediscovery), and
//! with the real collector judging an IPv6 hitlist campaign in a
//! two-namespace lab (`v6hitlist`). Lab tests skip outside CI when no lab
//! can be built, and fail in CI.

mod common;
mod loopback;

mod cli;
mod config;
mod lab;
mod policy;
mod rounds;
mod spool_crash;
mod v6hitlist;
