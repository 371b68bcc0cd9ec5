//! Fuzzes the RIR delegated-stats parser shared by agent and collector: any
//! text and country must give prefixes and skipped lines or a refusal, never
//! a panic. Every prefix is canonical, every skipped line is a distinct
//! non-comment line of the input, and a refusal only happens when some line
//! was broken.
#![no_main]
use darkwatch_schema::inputs::{delegated, InputError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line picks the country, so the fuzzer can match rows.
    let (cc, body) = text.split_once('\n').unwrap_or(("KP", text));
    let data_lines: Vec<usize> = body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect();
    for cc in [cc, "KP", "*", ""] {
        match delegated::parse(body, "fuzz", cc) {
            Ok(p) => {
                for n in &p.items {
                    assert_eq!(n.trunc(), *n, "non-canonical prefix {n}");
                }
                let lines: Vec<usize> = p.skipped.iter().map(|e| e.line).collect();
                assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
                assert!(lines.iter().all(|l| data_lines.contains(l)), "{lines:?}");
            }
            Err(InputError::NothingUsable { skipped, .. }) => {
                assert!(!skipped.is_empty());
                assert!(skipped.len() <= data_lines.len());
            }
            Err(e) => panic!("parse cannot fail with {e}"),
        }
    }
});
