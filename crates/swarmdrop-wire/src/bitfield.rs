//! Which pieces a peer has: one bit per piece, high bit first (BEP 3).

/// A fixed-length set of pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    pieces: u32,
}

/// A bitfield that does not fit the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// Not `ceil(pieces / 8)` bytes.
    #[error("a bitfield of {got} bytes for {pieces} pieces (want {want})")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
        /// Pieces in the torrent.
        pieces: u32,
    },
    /// A bit set past the last piece (BEP 3: spare bits must be zero).
    #[error("a bitfield with spare bits set past piece {pieces}")]
    SpareBits {
        /// Pieces in the torrent.
        pieces: u32,
    },
}

impl Bitfield {
    /// No pieces of `pieces`.
    pub fn empty(pieces: u32) -> Self {
        Self {
            bits: vec![0; (pieces as usize).div_ceil(8)],
            pieces,
        }
    }

    /// Every piece of `pieces`.
    pub fn full(pieces: u32) -> Self {
        let mut field = Self::empty(pieces);
        for index in 0..pieces {
            field.set(index);
        }
        field
    }

    /// Checks a received bitfield against the torrent's piece count.
    pub fn from_bytes(bytes: &[u8], pieces: u32) -> Result<Self, BitfieldError> {
        let want = (pieces as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                want,
                pieces,
            });
        }
        let spare = (want * 8) as u32 - pieces;
        if spare > 0 {
            let mask = (1u8 << spare) - 1;
            if bytes.last().is_some_and(|last| last & mask != 0) {
                return Err(BitfieldError::SpareBits { pieces });
            }
        }
        Ok(Self {
            bits: bytes.to_vec(),
            pieces,
        })
    }

    /// The wire form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Pieces in the torrent.
    pub fn len(&self) -> u32 {
        self.pieces
    }

    /// True for a torrent of no pieces.
    pub fn is_empty(&self) -> bool {
        self.pieces == 0
    }

    /// Whether this field holds a piece `other` lacks (spare bits are always clear, so
    /// whole bytes compare; fields of different sizes compare over the shorter).
    pub fn has_any_missing_from(&self, other: &Bitfield) -> bool {
        self.bits
            .iter()
            .zip(&other.bits)
            .any(|(ours, theirs)| ours & !theirs != 0)
    }

    /// Whether some piece is set in both fields (over the shorter, as above).
    pub fn intersects(&self, other: &Bitfield) -> bool {
        self.bits
            .iter()
            .zip(&other.bits)
            .any(|(ours, theirs)| ours & theirs != 0)
    }

    /// Whether piece `index` is set (false past the end).
    pub fn has(&self, index: u32) -> bool {
        index < self.pieces && self.bits[(index / 8) as usize] & (0x80 >> (index % 8)) != 0
    }

    /// Clears piece `index` (nothing past the end).
    pub fn clear(&mut self, index: u32) {
        if index < self.pieces {
            self.bits[(index / 8) as usize] &= !(0x80 >> (index % 8));
        }
    }

    /// Sets piece `index`; false (and nothing set) past the end.
    pub fn set(&mut self, index: u32) -> bool {
        if index >= self.pieces {
            return false;
        }
        self.bits[(index / 8) as usize] |= 0x80 >> (index % 8);
        true
    }

    /// Pieces set.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    /// True when every piece is set.
    pub fn is_full(&self) -> bool {
        self.count() == self.pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spare_bits_and_lengths_are_checked() {
        assert!(Bitfield::from_bytes(&[0xff, 0x80], 9).is_ok());
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0], 9),
            Err(BitfieldError::SpareBits { pieces: 9 })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0xff], 9),
            Err(BitfieldError::WrongLength { .. })
        ));
        let full = Bitfield::full(9);
        assert_eq!(full.as_bytes(), &[0xff, 0x80]);
        assert!(full.is_full() && full.has(8) && !full.has(9));
    }

    proptest! {
        #[test]
        fn set_then_has(pieces in 1u32..2000, picks in proptest::collection::vec(0u32..2100, 0..50)) {
            let mut field = Bitfield::empty(pieces);
            for &p in &picks {
                prop_assert_eq!(field.set(p), p < pieces);
            }
            for &p in &picks {
                prop_assert_eq!(field.has(p), p < pieces);
            }
            prop_assert!(Bitfield::from_bytes(field.as_bytes(), pieces).is_ok());
        }

        #[test]
        fn missing_from_agrees_with_piece_by_piece(
            pieces in 1u32..700,
            ours in proptest::collection::vec(0u32..700, 0..60),
            theirs in proptest::collection::vec(0u32..700, 0..60),
        ) {
            let (mut a, mut b) = (Bitfield::empty(pieces), Bitfield::empty(pieces));
            for &p in &ours { a.set(p); }
            for &p in &theirs { b.set(p); }
            let slow = (0..pieces).any(|i| a.has(i) && !b.has(i));
            prop_assert_eq!(a.has_any_missing_from(&b), slow);
            prop_assert!(!Bitfield::full(pieces).has_any_missing_from(&Bitfield::full(pieces)));
        }

        #[test]
        fn intersects_and_clear_agree_with_piece_by_piece(
            pieces in 1u32..700,
            ours in proptest::collection::vec(0u32..700, 0..60),
            theirs in proptest::collection::vec(0u32..700, 0..60),
            cleared in proptest::collection::vec(0u32..760, 0..60),
        ) {
            let (mut a, mut b) = (Bitfield::empty(pieces), Bitfield::empty(pieces));
            for &p in &ours { a.set(p); }
            for &p in &theirs { b.set(p); }
            for &p in &cleared { a.clear(p); }
            for &p in &cleared { prop_assert!(!a.has(p)); }
            prop_assert!(Bitfield::from_bytes(a.as_bytes(), pieces).is_ok(), "spare bits stay clear");
            let slow = (0..pieces).any(|i| a.has(i) && b.has(i));
            prop_assert_eq!(a.intersects(&b), slow);
            prop_assert_eq!(b.intersects(&a), slow);
        }
    }
}
