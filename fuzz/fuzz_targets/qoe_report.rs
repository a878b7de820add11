//! QoE reports (serve's `POST /qoe`): never panic; whatever parses is within bounds and
//! serialises back to a report that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::qoe::{QoeReport, MAX_ASSETS};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = QoeReport::parse(data) {
        assert!(report.assets.len() <= MAX_ASSETS);
        let text = serde_json::to_vec(&report).unwrap();
        assert_eq!(QoeReport::parse(&text).as_ref(), Ok(&report));
    }
});
