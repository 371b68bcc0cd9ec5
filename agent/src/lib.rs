//! darkwatch-agent as a library; the binary in `main.rs` is a thin shim.
