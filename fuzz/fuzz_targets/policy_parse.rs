//! Policy files: never panic, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::policy::Policy;
use swarmdrop_manifest::DropPath;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = Policy::parse(text, "fuzz.toml") {
            for path in ["frames/a.png", "checkout/index.html", "x"] {
                if let Ok(path) = DropPath::new(path) {
                    let _ = policy.class_for(&path);
                }
            }
        }
        let _ = DropPath::new(text);
        let _ = swarmdrop_manifest::UtcTime::parse(text);
    }
});
