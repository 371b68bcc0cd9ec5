//! Fuzzes the prefix-to-AS (CAIDA pfx2as) parser and its lookups: no panic;
//! good and skipped lines together are at most the non-comment lines, so a
//! line is never counted twice; lookups return sorted, distinct origins.
#![no_main]
use darkwatch_schema::inputs::{pfx2as::Pfx2As, InputError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let data_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .count();
    match Pfx2As::parse(text, "fuzz") {
        Ok((table, skipped)) => {
            assert!(table.len() + skipped.len() <= data_lines);
            for probe in [
                "198.18.3.0/24",
                "0.0.0.0/0",
                "2001:db8::/64",
                "255.255.255.255/32",
                "::/0",
            ] {
                let net: ipnet::IpNet = probe.parse().expect("literal");
                let o = table.origins(&net);
                assert!(o.windows(2).all(|w| w[0] < w[1]), "{o:?}");
            }
        }
        Err(InputError::NothingUsable { skipped, .. }) => {
            assert!(!skipped.is_empty() && skipped.len() <= data_lines);
        }
        Err(e) => panic!("parse cannot fail with {e}"),
    }
});
