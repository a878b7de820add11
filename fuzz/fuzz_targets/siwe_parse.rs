//! SIWE messages: never panic; whatever parses formats back to text that parses to
//! the same message, and checking it never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_identity::siwe::{Expected, SiweMessage};
use swarmdrop_manifest::UtcTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = SiweMessage::parse(text) {
        let again = SiweMessage::parse(&message.to_text());
        assert_eq!(again.as_ref(), Ok(&message));
        let expected = Expected {
            domain: "drop.example",
            uri: "https://drop.example/",
            chain_id: 1,
            skew_seconds: 60,
            max_age_seconds: Some(600),
        };
        let _ = message.check(
            text,
            "0x00",
            &expected,
            UtcTime::saturating_from_unix(1_800_000_000),
        );
    }
});
