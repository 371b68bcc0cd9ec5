//! Fuzzes the address and CIDR list parser (target, exclusion and hitlist
//! files): no panic; every entry line is either an item or a skipped line;
//! items are canonical.
#![no_main]
use darkwatch_schema::inputs::{addrlist, InputError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A leading byte-order mark is dropped, not an entry.
    let entries = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .filter(|l| !l.split('#').next().unwrap_or("").trim().is_empty())
        .count();
    match addrlist::parse(text, "fuzz") {
        Ok(p) => {
            assert_eq!(p.items.len() + p.skipped.len(), entries);
            for n in &p.items {
                assert_eq!(n.trunc(), *n, "non-canonical entry {n}");
            }
        }
        Err(InputError::NothingUsable { skipped, .. }) => assert_eq!(skipped.len(), entries),
        Err(e) => panic!("parse cannot fail with {e}"),
    }
});
