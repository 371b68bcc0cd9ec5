//! Fuzzes the agent's RIR delegated-stats parser: any text, any country code,
//! must parse or fail with an error, never panic; every prefix it returns is
//! a valid, truncated network.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line picks the country, so the fuzzer can match rows.
    let (cc, body) = text.split_once('\n').unwrap_or(("KP", text));
    for cc in [cc, "KP", "*"] {
        if let Ok(nets) = darkwatch_agent::targets::parse_delegated(body, "fuzz", cc) {
            for n in nets {
                assert_eq!(n.trunc(), n, "non-canonical prefix {n}");
            }
        }
    }
});
