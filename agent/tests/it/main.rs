//! The agent's integration tests, in one binary so that the workspace is
//! linked once: the real `darkwatch-agent` run from outside, on bad input
//! and configs (`cli`, `config`), with its logs on a pipe (`logs`), against
//! real sockets in a namespace lab (`lab`), against the real collector in a
//! loopback-only namespace (`policy`, `spool_crash`, `packed`, `rounds`: rounds beside a
//! rediscovery), real ICMP on loopback with a sweep beside rounds
//! (`sweep_beside`), and with the
//! real collector judging an IPv6 hitlist campaign in a two-namespace lab
//! (`v6hitlist`); the monitoring examples of `deploy/` are checked against
//! its metrics (`monitoring`). Lab tests skip outside CI when no lab can be
//! built, and fail in CI.

mod common;
mod loopback;

mod cli;
mod config;
mod lab;
mod logs;
mod monitoring;
mod packed;
mod policy;
mod rounds;
mod spool_crash;
mod sweep_beside;
mod v6hitlist;
