//! Fuzzes the collector's RIR delegated-stats parser (campaign creation):
//! errors, never panics; prefixes returned are canonical.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cc, body) = text.split_once('\n').unwrap_or(("KP", text));
    for cc in [cc, "KP"] {
        if let Ok(nets) = darkwatch_collector::delegated::parse(body, cc) {
            for n in &nets {
                assert_eq!(n.trunc(), *n, "non-canonical prefix {n}");
            }
            let _ = darkwatch_collector::delegated::ipv4_only(&nets);
        }
    }
});
