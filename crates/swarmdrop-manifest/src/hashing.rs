//! Incremental hashers fed by whoever reads the bytes.
//!
//! Packing reads each asset once and hands the same buffers to a SHA-256 hasher (for
//! TUF) and a [`PieceHasher`] (SHA-1 per piece, for BitTorrent v1) on separate threads;
//! these types are the pure halves of that pipeline.

use sha1::{Digest as _, Sha1};

/// Smallest piece length we choose (BitTorrent's block size).
pub const MIN_PIECE_LENGTH: u32 = 16 * 1024;
/// Largest piece length we choose.
pub const MAX_PIECE_LENGTH: u32 = 16 * 1024 * 1024;
/// Piece counts we aim to stay under. Every piece costs a `have` to each connected peer
/// (a swarm of n exchanges pieces × n² of them), a hash check, a scheduling decision and,
/// fetched from an edge, an HTTP range: at 2,048 pieces the demo's fifty viewers spent
/// three times the CPU they spend at 256, and still share early (a 64 MiB asset's 256 KiB
/// pieces take an eighth of a second from a 2 MiB/s peer).
pub const TARGET_PIECE_COUNT: u64 = 256;

/// The piece length for a file of `length` bytes: a power of two from 16 KiB to
/// 16 MiB, the smallest that keeps the piece count at or under 256.
pub fn piece_length_for(length: u64) -> u32 {
    let wanted = length.div_ceil(TARGET_PIECE_COUNT);
    let mut piece = MIN_PIECE_LENGTH;
    while u64::from(piece) < wanted && piece < MAX_PIECE_LENGTH {
        piece *= 2;
    }
    piece
}

/// SHA-1 of each `piece_length` slice of a stream, the last one possibly short.
#[derive(Clone)]
pub struct PieceHasher {
    piece_length: u64,
    current: Sha1,
    filled: u64,
    pieces: Vec<[u8; 20]>,
}

impl PieceHasher {
    /// A hasher for pieces of `piece_length` bytes (must be non-zero; 0 is taken as 1).
    pub fn new(piece_length: u32) -> Self {
        Self {
            piece_length: u64::from(piece_length.max(1)),
            current: Sha1::new(),
            filled: 0,
            pieces: Vec::new(),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.piece_length - self.filled;
            let take = usize::try_from(room).map_or(data.len(), |room| room.min(data.len()));
            self.current.update(&data[..take]);
            self.filled += take as u64;
            data = &data[take..];
            if self.filled == self.piece_length {
                self.pieces.push(self.current.finalize_reset().into());
                self.filled = 0;
            }
        }
    }

    /// The piece hashes, including a final short piece.
    pub fn finish(mut self) -> Vec<[u8; 20]> {
        if self.filled > 0 {
            self.pieces.push(self.current.finalize().into());
        }
        self.pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn piece_lengths() {
        assert_eq!(piece_length_for(0), 16 * 1024);
        assert_eq!(piece_length_for(100_000), 16 * 1024);
        assert_eq!(piece_length_for(64 << 20), 256 * 1024);
        assert_eq!(piece_length_for((64 << 20) + 1), 512 * 1024);
        assert_eq!(piece_length_for(1 << 30), 4 * 1024 * 1024);
        assert_eq!(piece_length_for(1 << 40), 16 * 1024 * 1024);
    }

    proptest! {
        /// Feeding in any chunking gives the hashes of the pieces cut directly.
        #[test]
        fn chunking_does_not_matter(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                    piece in 1u32..700, chunk in 1usize..900) {
            let mut hasher = PieceHasher::new(piece);
            for part in data.chunks(chunk) {
                hasher.update(part);
            }
            let expected: Vec<[u8; 20]> = data
                .chunks(piece as usize)
                .map(|p| Sha1::digest(p).into())
                .collect();
            prop_assert_eq!(hasher.finish(), expected);
        }
    }
}
