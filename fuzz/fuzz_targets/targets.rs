//! Fuzzes the agent's command-line target parsers. Whatever they accept
//! must be canonical, and both must agree.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let one = darkwatch_agent::targets::parse_target(text);
    if let Ok(n) = &one {
        assert_eq!(n.trunc(), *n, "non-canonical target {n}");
    }
    assert_eq!(
        one.is_ok(),
        darkwatch_agent::targets::parse_target_arg(text).is_ok()
    );
});
