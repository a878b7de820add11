//! RFC 9218 Priority headers: any bytes give an urgency from 0 to 7, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_edge::pacing::{urgency, URGENCIES};

fuzz_target!(|data: &[u8]| {
    assert!(usize::from(urgency(Some(data))) < URGENCIES);
});
