//! BEP 10 handshakes and BEP 9 messages: any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_wire::extension::{ExtendedHandshake, MetadataMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(handshake) = ExtendedHandshake::decode(data) {
        let _ = ExtendedHandshake::decode(&handshake.encode());
    }
    if let Ok(message) = MetadataMessage::decode(data) {
        assert_eq!(MetadataMessage::decode(&message.encode()).ok(), Some(message));
    }
});
