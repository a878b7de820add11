//! Signed SHA-256 midstates: any list, piece length and file length give a clear error
//! or a checker, never a panic; a checker refuses or accepts any bytes for any piece
//! without panicking; and a list a hasher records from the bytes accepts every piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::midstates::{MidstateHasher, Midstates};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let piece_length = u32::from(u16::from_le_bytes([head[0], head[1]]));
    let length = u64::from(u32::from_le_bytes([head[2], head[3], head[4], head[5]])) % 100_000;
    let text = String::from_utf8_lossy(rest);
    if let Ok(midstates) = Midstates::from_hex(&text, piece_length, length, [0u8; 32]) {
        for index in 0..midstates.pieces().min(4) {
            let _ = midstates.check(index, rest);
        }
    }
    // Whatever the bytes, their own midstates accept every piece of them.
    let piece_length = (u32::from(head[0] % 8) + 1) * 64;
    let mut hasher = MidstateHasher::new(Some(piece_length));
    hasher.update(rest);
    let (sha256, states) = hasher.finish();
    let midstates = Midstates::from_hex(&states, piece_length, rest.len() as u64, sha256)
        .expect("a hasher's own midstates parse");
    for (index, piece) in rest.chunks(piece_length as usize).enumerate() {
        assert!(midstates.check(index as u64, piece));
    }
});
