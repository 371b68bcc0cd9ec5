//! One module per group of benchmark sections; each section appends rows
//! to the summary table (and, for some, a detailed table).

mod agent;
mod collector;
mod sim;
mod sweep;

pub(crate) use agent::{agent_e2e_rows, agent_scale_rows, memory_rows, steady_rows};
pub(crate) use collector::{correlation_rows, ingest_rows, latency_rows, scale_rows};
pub(crate) use sim::sim_rows;
pub(crate) use sweep::sweep_rows;
