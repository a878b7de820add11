//! `/proc/stat` text: any bytes parse or are refused, and what parses is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_procstat::CpuTimes;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(times) = CpuTimes::parse(text) {
            assert!(times.steal <= times.busy && times.busy <= times.total);
        }
    }
});
