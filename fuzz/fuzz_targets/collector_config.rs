//! Fuzzes the collector's TOML config file parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = darkwatch_collector::config::FileConfig::parse(text);
});
