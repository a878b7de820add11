//! Request paths: any text; nothing accepted has a segment that could climb.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_edge::proto::paths::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = parse(path) {
        for segment in request.object.relative().split('/') {
            assert!(!segment.is_empty() && segment != "." && segment != "..");
            assert!(!segment.contains('\\') && !segment.contains('\0'));
        }
    }
});
