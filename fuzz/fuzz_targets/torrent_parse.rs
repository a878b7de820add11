//! Torrent parsing: never panics; a parsed torrent's counts are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::torrent::Metainfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = Metainfo::parse(data) {
        assert_eq!(meta.piece_count, meta.pieces.len());
        assert_eq!(
            meta.length.div_ceil(meta.piece_length),
            meta.piece_count as u64
        );
        let _ = meta.magnet();
    }
});
