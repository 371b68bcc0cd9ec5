//! Fuzzes the agent's target parsers: single targets (address, CIDR, range)
//! and target lists. Whatever they accept must be canonical.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = darkwatch_agent::targets::parse_target(text) {
        assert_eq!(n.trunc(), n, "non-canonical target {n}");
    }
    let _ = darkwatch_agent::targets::parse_target_arg(text);
    if let Ok(nets) = darkwatch_agent::targets::parse_target_list(text, "fuzz") {
        for n in nets {
            assert_eq!(n.trunc(), n, "non-canonical target {n}");
        }
    }
});
