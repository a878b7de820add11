//! Tokens and tracker passes: any bytes through the offline verifiers, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_identity::token::TokenVerifier;
use swarmdrop_manifest::keys::SigningKey;
use swarmdrop_manifest::UtcTime;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = TokenVerifier::new()
        .with_key(SigningKey::from_seed([1; 32]).public())
        .for_drop("d");
    let now = UtcTime::saturating_from_unix(1_800_000_000);
    let _ = verifier.verify(token, now, Some("bulk"));
    let _ = verifier.verify_tracker_pass(token, now);
    let _ = verifier.verify_for_tracker(token, now);
});
