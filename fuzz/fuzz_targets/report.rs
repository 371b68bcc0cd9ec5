//! Fuzzes report decoding as the collector does it: JSON body →
//! `ReportBatch` (with field-naming errors) → schema validation → checks
//! against a campaign. Accepted batches must re-encode and decode equal.
#![no_main]
use darkwatch_collector::store::Campaign;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = darkwatch_collector::api::parse_batch(data) else {
        return;
    };
    let campaigns = [Campaign {
        name: "kp".into(),
        country: None,
        interval_secs: 60,
        prefixes: vec!["198.18.0.0/15".parse().expect("literal")],
        control: vec![],
        agents: vec![],
        generation: 1,
        created_ms: NOW,
    }];
    if darkwatch_collector::ingest::check_batch(&batch, "vp1", &campaigns, NOW).is_ok() {
        let json = serde_json::to_vec(&batch).expect("encode");
        let back = darkwatch_collector::api::parse_batch(&json).expect("re-decode");
        assert_eq!(back, batch);
    }
});
