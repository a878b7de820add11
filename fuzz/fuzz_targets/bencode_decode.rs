//! Bencode decoding: never panics; whatever decodes re-encodes canonically and decodes
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = swarmdrop_bencode::decode(data) {
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        // Strict decoding only accepts canonical input, so it must round-trip exactly.
        assert_eq!(encoded, data);
    }
    let lenient = swarmdrop_bencode::Decoder {
        require_sorted_keys: false,
        ..Default::default()
    };
    let _ = lenient.decode_prefix(data);
});
