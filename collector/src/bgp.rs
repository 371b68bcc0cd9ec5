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
//! - [`mrt`] and [`bmp`] turn bytes into events with `bgpkit-parser` (BGP is
//!   never hand-parsed here); a malformed or truncated input gives a clear
//!   error and keeps the events decoded before it.
//! - [`replay`] runs decoded files through the core in time order and
//!   [`settings`] is `[bgp]` in collector.toml.
//! - [`hub`] is the live state `serve` keeps (time passed in), [`listen`]
//!   its I/O edge: the BMP listener, the watched MRT directory, the timer.
//!   `GET /v1/bgp` and the `darkwatch_bgp_*` metrics read the hub.
//! - [`compact`] picks the rows stored per round (changes, movement and a
//!   daily keyframe) and expands them back; the store's `bgp` module holds
//!   the SQL; [`signal`] sums them per country, AS or prefix scope and
//!   [`read`] answers the CLI's and the API's queries for it.

pub mod bmp;
pub mod compact;
pub mod hub;
pub mod listen;
pub mod mrt;
pub mod read;
pub mod replay;
pub mod settings;
pub mod signal;
pub mod state;
