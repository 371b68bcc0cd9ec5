//! Fuzzes the prefix-to-AS (CAIDA pfx2as) parser and its lookups.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = darkwatch_collector::pfx2as::Pfx2As::parse(text, "fuzz") {
        for probe in [
            "198.18.3.0/24",
            "0.0.0.0/0",
            "2001:db8::/64",
            "255.255.255.255/32",
        ] {
            let net: ipnet::IpNet = probe.parse().expect("literal");
            let _ = table.origin(&net);
        }
    }
});
