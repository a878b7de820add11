//! A file's SHA-256, checkable one piece at a time and in any order.
//!
//! SHA-256 runs its compression function over 64-byte blocks, carrying eight words of
//! state from one block to the next. The publisher records that state at every piece
//! boundary (a *midstate*, 32 bytes, encoded as a digest is) and signs the list beside
//! the file's SHA-256. A client checks piece `i` by compressing it from the midstate
//! before it and comparing with the one after; the last piece is padded and compared
//! with the signed SHA-256 itself. When every piece has passed, the client has computed
//! exactly the file's SHA-256, block by block, and found it equal to the signed one: the
//! same check as hashing the whole file again, without reading it back once it is in.
//!
//! Forging a piece means finding other bytes that take a signed midstate to the next
//! one: a second preimage of SHA-256's compression, as hard as one of SHA-256 itself
//! (the attacker chooses neither end, so collision attacks do not apply).

use block_buffer::{BlockBuffer, Eager};
use sha2::digest::consts::U64;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// SHA-256's block.
const BLOCK: usize = 64;

/// Bytes short of a block, between updates.
type Pending = BlockBuffer<U64, Eager>;

/// Why a list of midstates does not fit its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MidstateError {
    /// The piece length is not a whole number of SHA-256 blocks.
    #[error("piece length {0} is not a multiple of 64 bytes")]
    PieceLength(u32),
    /// The hex does not decode.
    #[error("the midstates are not hex")]
    Hex,
    /// Not one midstate per piece boundary.
    #[error("{found} midstates for {pieces} pieces (one per boundary: {wanted})")]
    Count {
        /// Midstates given.
        found: usize,
        /// Pieces in the file.
        pieces: u64,
        /// Midstates a file of that many pieces has.
        wanted: u64,
    },
}

/// A file's signed SHA-256 and the midstates between its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Midstates {
    piece_length: u32,
    length: u64,
    sha256: [u8; 32],
    /// The state after each piece but the last.
    after: Vec<[u32; 8]>,
}

fn pieces_in(length: u64, piece_length: u32) -> u64 {
    length.div_ceil(u64::from(piece_length))
}

fn encode(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> [u32; 8] {
    let mut state = [0u32; 8];
    for (word, bytes) in state.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    state
}

/// Hashes `data` into `state`, keeping what is short of a block in `pending` (the
/// blocks are compressed where they lie, not copied).
fn absorb(state: &mut [u32; 8], pending: &mut Pending, data: &[u8]) {
    pending.digest_blocks(data, |blocks| sha2::compress256(state, blocks));
}

/// Pads a file of `length` bytes in all and returns its SHA-256.
fn finish(mut state: [u32; 8], mut pending: Pending, length: u64) -> [u8; 32] {
    pending.len64_padding_be(length.wrapping_mul(8), |block| {
        sha2::compress256(&mut state, std::slice::from_ref(block))
    });
    encode(&state)
}

impl Midstates {
    /// The midstates a signed target carries (hex, 32 bytes each), for a file of
    /// `length` bytes in pieces of `piece_length`.
    pub fn from_hex(
        hex_states: &str,
        piece_length: u32,
        length: u64,
        sha256: [u8; 32],
    ) -> Result<Self, MidstateError> {
        if piece_length == 0 || !(piece_length as usize).is_multiple_of(BLOCK) {
            return Err(MidstateError::PieceLength(piece_length));
        }
        let bytes = hex::decode(hex_states).map_err(|_| MidstateError::Hex)?;
        let pieces = pieces_in(length, piece_length);
        let wanted = pieces.saturating_sub(1);
        if bytes.len() % 32 != 0 || (bytes.len() / 32) as u64 != wanted {
            return Err(MidstateError::Count {
                found: bytes.len() / 32,
                pieces,
                wanted,
            });
        }
        Ok(Midstates {
            piece_length,
            length,
            sha256,
            after: bytes.chunks_exact(32).map(decode).collect(),
        })
    }

    /// Pieces in the file.
    pub fn pieces(&self) -> u64 {
        pieces_in(self.length, self.piece_length)
    }

    /// Whether `bytes` are piece `index`: the SHA-256 of the file carried across it
    /// from the midstate before to the one after (or, for the last piece, to the
    /// signed SHA-256).
    pub fn check(&self, index: u64, bytes: &[u8]) -> bool {
        let pieces = self.pieces();
        if index >= pieces {
            return false;
        }
        let start = index * u64::from(self.piece_length);
        let expected = u64::from(self.piece_length).min(self.length - start);
        if bytes.len() as u64 != expected {
            return false;
        }
        let mut state = match index.checked_sub(1) {
            None => INITIAL,
            Some(before) => self.after[before as usize],
        };
        let mut pending = Pending::default();
        absorb(&mut state, &mut pending, bytes);
        if index + 1 < pieces {
            // A whole piece is whole blocks: nothing is pending.
            return state == self.after[index as usize];
        }
        finish(state, pending, self.length) == self.sha256
    }
}

/// Computes a file's SHA-256 from its bytes in order, recording the midstate at every
/// piece boundary (the publisher's side of [`Midstates`]).
#[derive(Clone)]
pub struct MidstateHasher {
    piece_length: Option<u32>,
    state: [u32; 8],
    pending: Pending,
    length: u64,
    /// The state at each piece boundary passed.
    boundaries: Vec<[u8; 32]>,
}

impl std::fmt::Debug for MidstateHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MidstateHasher")
            .field("piece_length", &self.piece_length)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl MidstateHasher {
    /// A hasher recording midstates every `piece_length` bytes, if given and a whole
    /// number of blocks; otherwise a plain SHA-256.
    pub fn new(piece_length: Option<u32>) -> Self {
        MidstateHasher {
            piece_length: piece_length.filter(|p| *p > 0 && (*p as usize).is_multiple_of(BLOCK)),
            state: INITIAL,
            pending: Pending::default(),
            length: 0,
            boundaries: Vec::new(),
        }
    }

    /// Hashes `data`, next in the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let Some(piece) = self.piece_length.map(u64::from) else {
            absorb(&mut self.state, &mut self.pending, data);
            self.length += data.len() as u64;
            return;
        };
        while !data.is_empty() {
            // Up to the next piece boundary, so the state there can be recorded.
            let room = (piece - self.length % piece).min(data.len() as u64) as usize;
            let (now, rest) = data.split_at(room);
            absorb(&mut self.state, &mut self.pending, now);
            self.length += now.len() as u64;
            if self.length.is_multiple_of(piece) {
                // A boundary is a whole number of blocks in: nothing is pending.
                self.boundaries.push(encode(&self.state));
            }
            data = rest;
        }
    }

    /// The file's SHA-256 and its midstates, hex (empty without a piece length).
    pub fn finish(mut self) -> ([u8; 32], String) {
        // A boundary exactly at the end closes the last piece; it is not between two.
        if let Some(piece) = self.piece_length {
            if self.length > 0 && self.length.is_multiple_of(u64::from(piece)) {
                self.boundaries.pop();
            }
        }
        let digest = finish(self.state, self.pending, self.length);
        (digest, hex::encode(self.boundaries.concat()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    fn published(data: &[u8], piece_length: u32) -> Midstates {
        let mut hasher = MidstateHasher::new(Some(piece_length));
        hasher.update(data);
        let (digest, states) = hasher.finish();
        Midstates::from_hex(&states, piece_length, data.len() as u64, digest).unwrap()
    }

    #[test]
    fn the_digest_is_sha256_whatever_the_sizes() {
        for len in [
            0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 16384, 16385,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for piece in [64u32, 128, 16384] {
                let mut h = MidstateHasher::new(Some(piece));
                h.update(&data);
                let (digest, _) = h.finish();
                assert_eq!(
                    digest.to_vec(),
                    Sha256::digest(&data).to_vec(),
                    "{len} {piece}"
                );
            }
        }
    }

    #[test]
    fn every_piece_checks_and_a_changed_byte_does_not() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let m = published(&data, 1024);
        assert_eq!(m.pieces(), 10);
        for (i, piece) in data.chunks(1024).enumerate() {
            assert!(m.check(i as u64, piece), "piece {i}");
            let mut bad = piece.to_vec();
            bad[17] ^= 1;
            assert!(!m.check(i as u64, &bad), "damaged piece {i}");
        }
        // A piece offered for another index, a short piece, a piece past the end.
        assert!(!m.check(1, &data[..1024]));
        assert!(!m.check(0, &data[..1000]));
        assert!(!m.check(10, &data[..1024]));
    }

    #[test]
    fn lists_that_do_not_fit_are_refused_by_name() {
        let data = vec![5u8; 4096];
        let mut h = MidstateHasher::new(Some(1024));
        h.update(&data);
        let (digest, states) = h.finish();
        assert_eq!(states.len(), 3 * 64);
        assert_eq!(
            Midstates::from_hex(&states[64..], 1024, 4096, digest),
            Err(MidstateError::Count {
                found: 2,
                pieces: 4,
                wanted: 3
            })
        );
        assert_eq!(
            Midstates::from_hex("zz", 1024, 4096, digest),
            Err(MidstateError::Hex)
        );
        assert_eq!(
            Midstates::from_hex(&states, 1000, 4096, digest),
            Err(MidstateError::PieceLength(1000))
        );
    }

    proptest! {
        #[test]
        fn split_anyhow_the_pieces_check_and_the_digest_is_sha256(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            blocks in 1u32..8,
            cuts in proptest::collection::vec(0usize..3000, 0..6),
        ) {
            let piece_length = blocks * 64;
            let mut hasher = MidstateHasher::new(Some(piece_length));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                hasher.update(&data[from..cut]);
                from = cut;
            }
            let (digest, states) = hasher.finish();
            prop_assert_eq!(digest.to_vec(), Sha256::digest(&data).to_vec());
            let m = Midstates::from_hex(&states, piece_length, data.len() as u64, digest).unwrap();
            for (i, piece) in data.chunks(piece_length as usize).enumerate() {
                prop_assert!(m.check(i as u64, piece));
                let mut bad = piece.to_vec();
                bad[i % piece.len()] ^= 0x40;
                prop_assert!(!m.check(i as u64, &bad));
            }
        }
    }
}
