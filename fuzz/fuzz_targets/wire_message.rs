//! Peer wire messages: any bytes through the streaming decoder; what it accepts
//! re-encodes to exactly the bytes it consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use swarmdrop_wire::codec::{Decoder, Handshake};

fuzz_target!(|data: &[u8]| {
    let mut handshake = BytesMut::from(data);
    let _ = Handshake::decode(&mut handshake);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match Decoder.decode(&mut buf) {
            Ok(Some(message)) => {
                let mut again = BytesMut::new();
                message.encode(&mut again);
                assert_eq!(again.len(), before - buf.len());
            }
            Ok(None) | Err(_) => break,
        }
    }
});
