//! Magnet links: any text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_peer::magnet::parse_magnet;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_magnet(text);
    }
});
