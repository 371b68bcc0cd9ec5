//! Scenario tests on synthetic timelines, by topic. `sim` generates the
//! inputs; each other module tests one part of the pipeline through it.

mod sim;

mod asn;
mod blackout;
mod consensus;
mod degradation;
mod health;
mod incremental;
mod input;
mod instability;
mod localize;
mod partial;
mod summaries;
