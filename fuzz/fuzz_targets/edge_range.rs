//! Range headers: any bytes, any length; a partial answer always lies inside.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_edge::proto::range::{answer, RangeAnswer};

fuzz_target!(|data: &[u8]| {
    let (len, header) = match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_le_bytes(*len), rest),
        None => (0, data),
    };
    if let RangeAnswer::Partial { start, end } = answer(Some(header), len) {
        assert!(start <= end && end < len);
    }
});
