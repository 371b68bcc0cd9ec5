//! BGP as a second signal beside the probes (issue 30).
//!
//! Probes see the data plane; the routing table says whether a network is
//! still reachable in principle. Prefixes withdrawn while blocks go dark
//! mean a country was cut off from the routing system; prefixes still
//! announced mean it is routed but not answering; prefixes announced and
//! withdrawn again and again are the instability the seeds describe.
//!
//! - [`state`] is the sans-IO core: it takes [`state::Event`]s with the round
//!   they fall in and keeps, per peer, its session and routes, and per
//!   routed prefix, who announces it with which origin and how much it
//!   moved in a round. It knows nothing of wire formats, files or sockets.

pub mod state;
