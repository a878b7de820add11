//! MSE handshakes, both roles: any bytes in any split, never a panic, and the buffered
//! bytes stay within the spec's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_wire::mse::{MseHandshake, CRYPTO_PLAINTEXT, CRYPTO_RC4};

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let methods = CRYPTO_PLAINTEXT | CRYPTO_RC4;
    let mut responder = MseHandshake::responder(vec![[7; 20]], methods, [1; 20], &[]);
    let mut initiator = MseHandshake::initiator([7; 20], methods, [2; 20], &[3; 17]);
    let chunk = usize::from(split).max(1);
    for piece in bytes.chunks(chunk) {
        let _ = responder.handle_bytes(piece);
        let _ = initiator.handle_bytes(piece);
    }
    let _ = (responder.take_transmit(), initiator.take_transmit());
});
