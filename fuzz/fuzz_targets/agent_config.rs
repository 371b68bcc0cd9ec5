//! Fuzzes the agent's TOML config parsing and validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = darkwatch_agent::config::Config::parse(text, std::path::Path::new("/fuzz/agent.toml"));
});
