//! DSSE envelopes: parse and verify arbitrary bytes without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use swarmdrop_manifest::keys::SigningKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        let key = SigningKey::from_seed([9; 32]).public();
        let _ = envelope.verify(IN_TOTO_PAYLOAD_TYPE, &[(key.key_id(), key)], 1);
    }
});
