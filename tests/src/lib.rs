//! darkwatch's test support: the network-namespace lab (`lab`) that every
//! end-to-end test and demo runs in, re-exported at the crate root, and what
//! runs the real binaries in it (`harness`, `forward`, `webhook`), load at
//! saturation and at a fleet's rate (`load`, `fleet`), and the commands the
//! docs show, for a test to run (`doccmds`).

pub mod doccmds;
pub mod fleet;
pub mod forward;
pub mod harness;
pub mod lab;
pub mod load;
pub mod webhook;

pub use lab::{
    clean_all, clean_stale, lab_or_skip, Lab, LabConfig, LabError, Node, PingOutcome, Plan,
    COLLECTOR_ADDR, CONTROL_PREFIX, COUNTRY_SPACE,
};
