//! Fuzzes the BMP listener's framing and decoding as the listener runs
//! them on a stream: no panic; a frame is never longer than what was
//! read nor shorter than a common header; a message that does not decode
//! is skipped by its length and the stream goes on.
#![no_main]
use darkwatch_collector::bgp::bmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match bmp::frame_len(rest) {
            Ok(Some(len)) => {
                assert!((bmp::HEADER_LEN..=rest.len()).contains(&len));
                if let Err(e) = bmp::decode(&rest[..len], "fuzz") {
                    assert!(e.starts_with("BMP message"));
                }
                rest = &rest[len..];
            }
            Ok(None) => {
                assert!(rest.len() < bmp::MAX_MESSAGE);
                break;
            }
            Err(e) => {
                assert!(!e.is_empty());
                break;
            }
        }
    }
});
