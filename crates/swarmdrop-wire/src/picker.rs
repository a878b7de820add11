//! The piece picker, sans IO: which blocks to ask which peer for.
//!
//! Order of preference for a peer: blocks of pieces already started (finishing pieces
//! frees their memory and lets us announce them), then new pieces: those with a deadline
//! first, soonest first; then by priority; then rarest first (fewest peers have it), ties
//! broken by the caller's random number so that peers do not all chase the same piece.
//! Blocks are 16 KiB. When every block still missing has been asked for, the picker is in
//! endgame and asks other peers for the same blocks; the first copy to arrive wins and the
//! rest are returned for cancelling.
//!
//! A request we withdraw (a cancel after another peer's copy won, the peer's choke) may
//! still be answered: the peer may have sent the block before it heard us, or heard a
//! request again that crossed its choke. So the picker counts, per peer and block, the
//! asks that peer has not answered yet (with the block or a reject; four bits a block,
//! 2 KiB a peer for 64 MiB): a block answering one of them is never held against the
//! peer, and is used when still missing. A block never asked for, or sent more often than
//! asked, is unrequested.

use std::collections::{BTreeMap, HashMap};

use crate::bitfield::Bitfield;
use crate::codec::{BlockRef, BLOCK};

/// Whoever the caller uses to tell peers apart.
pub type PeerKey = u32;

/// Most peers asked for one block in endgame.
const MAX_ENDGAME_DUPLICATES: usize = 3;

#[derive(Debug, Clone, Default)]
struct BlockState {
    /// Peers this block was asked of and has not come from yet.
    requested: Vec<PeerKey>,
    received: bool,
}

#[derive(Debug, Clone)]
struct Started {
    blocks: Vec<BlockState>,
    received: u32,
}

/// What a received block changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// The block completed its piece: hash it, then call `piece_verified` or
    /// `piece_failed`.
    pub piece_complete: Option<u32>,
    /// Duplicate endgame requests to cancel.
    pub cancel: Vec<(PeerKey, BlockRef)>,
    /// True when the block was not one we were waiting for (unrequested or a duplicate).
    pub unexpected: bool,
    /// True when we had asked this peer for the block but were no longer waiting for it
    /// (we cancelled, or the peer choked): the peer did nothing wrong. Such a block is
    /// used when still missing (then `unexpected` is false), otherwise dropped.
    pub late: bool,
}

/// Picks blocks for one torrent.
#[derive(Debug, Clone)]
pub struct Picker {
    piece_length: u32,
    total_length: u64,
    have: Bitfield,
    availability: Vec<u16>,
    priority: Vec<u8>,
    /// Pieces not held whose priority is above 0: what a peer must hold for us to be
    /// interested in it.
    wanted: Bitfield,
    deadline: Vec<Option<u64>>,
    started: BTreeMap<u32, Started>,
    /// Blocks each peer has outstanding, so a departing peer's blocks free up at once.
    outstanding: HashMap<PeerKey, Vec<BlockRef>>,
    /// Per peer, for every block, asks not answered yet (4 bits each, 16 to a word).
    asked: HashMap<PeerKey, Vec<u64>>,
}

/// A setting the picker cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PickerError {
    /// The piece length must be a positive multiple of 16 KiB.
    #[error("piece length {0} is not a positive multiple of 16 KiB")]
    PieceLength(u32),
    /// Total length and piece length do not give this many pieces.
    #[error("{length} bytes in pieces of {piece_length} are not {pieces} pieces")]
    Shape {
        /// Total bytes.
        length: u64,
        /// Bytes per piece.
        piece_length: u32,
        /// Pieces claimed.
        pieces: u32,
    },
}

impl Picker {
    /// A picker for a torrent of `total_length` bytes in pieces of `piece_length`.
    pub fn new(total_length: u64, piece_length: u32, pieces: u32) -> Result<Self, PickerError> {
        if piece_length == 0 || !piece_length.is_multiple_of(BLOCK) {
            return Err(PickerError::PieceLength(piece_length));
        }
        if total_length.div_ceil(u64::from(piece_length)) != u64::from(pieces) || total_length == 0
        {
            return Err(PickerError::Shape {
                length: total_length,
                piece_length,
                pieces,
            });
        }
        Ok(Self {
            piece_length,
            total_length,
            have: Bitfield::empty(pieces),
            availability: vec![0; pieces as usize],
            priority: vec![1; pieces as usize],
            wanted: Bitfield::full(pieces),
            deadline: vec![None; pieces as usize],
            started: BTreeMap::new(),
            outstanding: HashMap::new(),
            asked: HashMap::new(),
        })
    }

    /// Pieces in the torrent.
    pub fn pieces(&self) -> u32 {
        self.have.len()
    }

    /// The pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// True when every wanted piece is verified.
    pub fn complete(&self) -> bool {
        self.wanted.count() == 0
    }

    /// Whether a peer holding `peer_has` has a piece we still want: BitTorrent's
    /// interest. A piece we lack but do not want (a scheduler fetches it elsewhere, or a
    /// file is skipped) is no reason to be interested: a peer that unchoked us for it
    /// would keep an upload slot for a round while we ask it for nothing.
    pub fn wants_any_of(&self, peer_has: &Bitfield) -> bool {
        peer_has.intersects(&self.wanted)
    }

    /// Whether piece `index` is wanted and not held.
    pub fn wants(&self, index: u32) -> bool {
        self.wanted.has(index)
    }

    /// Bytes in piece `index`.
    pub fn piece_size(&self, index: u32) -> u32 {
        let start = u64::from(index) * u64::from(self.piece_length);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    fn blocks_in(&self, index: u32) -> u32 {
        self.piece_size(index).div_ceil(BLOCK)
    }

    fn block(&self, index: u32, block: u32) -> BlockRef {
        let begin = block * BLOCK;
        BlockRef {
            index,
            begin,
            length: (self.piece_size(index) - begin).min(BLOCK),
        }
    }

    /// Marks a piece as verified on disk (a resume, or after hashing).
    pub fn piece_verified(&mut self, index: u32) {
        if self.have.set(index) {
            self.started.remove(&index);
        }
        self.wanted.clear(index);
    }

    /// A completed piece failed its hash: every block is wanted again.
    pub fn piece_failed(&mut self, index: u32) {
        self.started.remove(&index);
    }

    /// Sets a piece's priority (0: do not download; 1: normal; up to 7).
    pub fn set_priority(&mut self, index: u32, priority: u8) {
        if let Some(p) = self.priority.get_mut(index as usize) {
            *p = priority.min(7);
            if *p > 0 && !self.have.has(index) {
                self.wanted.set(index);
            } else {
                self.wanted.clear(index);
            }
        }
    }

    /// Sets a piece's deadline (in the caller's time unit), or clears it.
    pub fn set_deadline(&mut self, index: u32, deadline: Option<u64>) {
        if let Some(d) = self.deadline.get_mut(index as usize) {
            *d = deadline;
        }
    }

    /// Whether some connected peer has announced piece `index`.
    pub fn available(&self, index: u32) -> bool {
        self.availability
            .get(index as usize)
            .is_some_and(|n| *n > 0)
    }

    /// A peer announced piece `index` (`have`).
    pub fn peer_has(&mut self, index: u32) {
        if let Some(n) = self.availability.get_mut(index as usize) {
            *n = n.saturating_add(1);
        }
    }

    /// A peer's whole bitfield joined (a connection) or left (a disconnection).
    pub fn peer_bitfield(&mut self, field: &Bitfield, joined: bool) {
        for index in 0..self.pieces().min(field.len()) {
            if field.has(index) {
                let n = &mut self.availability[index as usize];
                *n = if joined {
                    n.saturating_add(1)
                } else {
                    n.saturating_sub(1)
                };
            }
        }
    }

    /// A peer left: its outstanding blocks are wanted again.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        self.peer_choked(peer);
        self.asked.remove(&peer);
    }

    /// A peer choked us: its outstanding blocks are wanted again from others. Blocks it
    /// still sends (queued before the choke) are late, not unrequested.
    pub fn peer_choked(&mut self, peer: PeerKey) {
        for block in self.outstanding.remove(&peer).unwrap_or_default() {
            self.forget_request(peer, block);
        }
    }

    /// The block's number in the torrent, if it is a well-formed block of it.
    fn block_number(&self, block: &BlockRef) -> Option<usize> {
        let well_formed = block.index < self.pieces()
            && block.begin.is_multiple_of(BLOCK)
            && block.begin < self.piece_size(block.index)
            && self.block(block.index, block.begin / BLOCK).length == block.length;
        let per_piece = (self.piece_length / BLOCK) as usize;
        well_formed.then(|| block.index as usize * per_piece + (block.begin / BLOCK) as usize)
    }

    /// Asks of `peer` for `block` it has not answered yet (at most 15 are counted).
    pub fn unanswered(&self, peer: PeerKey, block: &BlockRef) -> u8 {
        let (Some(words), Some(n)) = (self.asked.get(&peer), self.block_number(block)) else {
            return 0;
        };
        words
            .get(n / 16)
            .map_or(0, |word| ((word >> (4 * (n % 16))) & 0xF) as u8)
    }

    /// One more ask of `peer` for `block`.
    fn note_ask(&mut self, peer: PeerKey, block: &BlockRef) {
        let count = self.unanswered(peer, block);
        self.set_unanswered(peer, block, count.saturating_add(1).min(15));
    }

    /// `peer` answered one ask for `block` (with it, or a reject): false when none was
    /// left to answer.
    fn take_answer(&mut self, peer: PeerKey, block: &BlockRef) -> bool {
        let count = self.unanswered(peer, block);
        if count == 0 {
            return false;
        }
        self.set_unanswered(peer, block, count - 1);
        true
    }

    fn set_unanswered(&mut self, peer: PeerKey, block: &BlockRef, count: u8) {
        let Some(n) = self.block_number(block) else {
            return;
        };
        let words = (self.pieces() as usize * (self.piece_length / BLOCK) as usize).div_ceil(16);
        let counts = self.asked.entry(peer).or_insert_with(|| vec![0; words]);
        if let Some(word) = counts.get_mut(n / 16) {
            let shift = 4 * (n % 16);
            *word = (*word & !(0xF << shift)) | (u64::from(count & 0xF) << shift);
        }
    }

    fn forget_request(&mut self, peer: PeerKey, block: BlockRef) {
        if let Some(started) = self.started.get_mut(&block.index) {
            if let Some(state) = started.blocks.get_mut((block.begin / BLOCK) as usize) {
                state.requested.retain(|p| *p != peer);
            }
        }
    }

    /// Withdraws every request outstanding for piece `index` (another path brought it,
    /// or it is wanted no more): the requests to `cancel`. The asks stay counted, so a
    /// block the peer had already sent is late, not unrequested.
    pub fn withdraw_piece(&mut self, index: u32) -> Vec<(PeerKey, BlockRef)> {
        let mut withdrawn = Vec::new();
        for (peer, list) in &mut self.outstanding {
            list.retain(|block| {
                let ours = block.index == index;
                if ours {
                    withdrawn.push((*peer, *block));
                }
                !ours
            });
        }
        if let Some(started) = self.started.get_mut(&index) {
            for block in &mut started.blocks {
                block.requested.clear();
            }
        }
        withdrawn.sort_unstable_by_key(|(peer, block)| (*peer, block.begin));
        withdrawn
    }

    /// Blocks of piece `index` received so far, and its blocks (0 and 0 before any
    /// block of it is asked for).
    pub fn piece_progress(&self, index: u32) -> (u32, u32) {
        self.started
            .get(&index)
            .map_or((0, 0), |s| (s.received, s.blocks.len() as u32))
    }

    /// A request will not be answered (the peer rejected it): the block is free.
    pub fn request_failed(&mut self, peer: PeerKey, block: BlockRef) {
        if let Some(list) = self.outstanding.get_mut(&peer) {
            list.retain(|b| *b != block);
        }
        self.forget_request(peer, block);
        self.take_answer(peer, &block);
    }

    /// Blocks `peer` has outstanding.
    pub fn outstanding(&self, peer: PeerKey) -> usize {
        self.outstanding.get(&peer).map_or(0, Vec::len)
    }

    /// True when a block arriving from `peer` is one we asked it for.
    pub fn was_requested(&self, peer: PeerKey, block: &BlockRef) -> bool {
        self.outstanding
            .get(&peer)
            .is_some_and(|list| list.contains(block))
    }

    fn wanted(&self, index: u32, peer_has: &Bitfield) -> bool {
        peer_has.has(index) && self.wanted.has(index)
    }

    /// True when no wanted block is free: every missing block is already asked for.
    pub fn in_endgame(&self) -> bool {
        (0..self.pieces()).all(|index| {
            if self.have.has(index) || self.priority[index as usize] == 0 {
                return true;
            }
            match self.started.get(&index) {
                None => false,
                Some(s) => s
                    .blocks
                    .iter()
                    .all(|b| b.received || !b.requested.is_empty()),
            }
        })
    }

    /// Up to `max` blocks to ask `peer` (which has `peer_has`) for; `random` breaks ties.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        random: u64,
    ) -> Vec<BlockRef> {
        let mut picked = Vec::new();
        // 1. Pieces already started, most urgent first.
        let mut started: Vec<u32> = self
            .started
            .keys()
            .copied()
            .filter(|i| self.wanted(*i, peer_has))
            .collect();
        started.sort_by_key(|i| self.order_key(*i, random));
        for index in started {
            self.take_free_blocks(peer, index, max, &mut picked, false);
            if picked.len() >= max {
                return self.commit(peer, picked);
            }
        }
        // 2. New pieces.
        let mut fresh: Vec<u32> = (0..self.pieces())
            .filter(|i| !self.started.contains_key(i) && self.wanted(*i, peer_has))
            .collect();
        // Only the best few can be needed: select them in O(n), then order just those
        // (pick runs on every message batch; sorting every piece each time showed up).
        let per_piece = (self.piece_length / BLOCK).max(1) as usize;
        let needed = (max - picked.len()).div_ceil(per_piece) + 1;
        if fresh.len() > needed {
            fresh.select_nth_unstable_by_key(needed, |i| self.order_key(*i, random));
            fresh.truncate(needed);
        }
        fresh.sort_by_key(|i| self.order_key(*i, random));
        for index in fresh {
            let blocks = self.blocks_in(index);
            self.started.insert(
                index,
                Started {
                    blocks: vec![BlockState::default(); blocks as usize],
                    received: 0,
                },
            );
            self.take_free_blocks(peer, index, max, &mut picked, false);
            if picked.len() >= max {
                return self.commit(peer, picked);
            }
        }
        // 3. Endgame: nothing is free anywhere; ask for what others are slow to send.
        if picked.is_empty() && self.in_endgame() {
            let indices: Vec<u32> = self
                .started
                .keys()
                .copied()
                .filter(|i| self.wanted(*i, peer_has))
                .collect();
            for index in indices {
                self.take_free_blocks(peer, index, max, &mut picked, true);
                if picked.len() >= max {
                    break;
                }
            }
        }
        self.commit(peer, picked)
    }

    fn commit(&mut self, peer: PeerKey, picked: Vec<BlockRef>) -> Vec<BlockRef> {
        for block in &picked {
            self.note_ask(peer, block);
        }
        if !picked.is_empty() {
            self.outstanding
                .entry(peer)
                .or_default()
                .extend(picked.iter().copied());
        }
        picked
    }

    /// Sort key: deadline (soonest first, none last), priority (high first), rarity
    /// (fewest holders first), then a per-call shuffle.
    fn order_key(&self, index: u32, random: u64) -> (u64, u8, u16, u64) {
        let i = index as usize;
        (
            self.deadline[i].unwrap_or(u64::MAX),
            7 - self.priority[i],
            self.availability[i],
            (u64::from(index) ^ random).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    fn take_free_blocks(
        &mut self,
        peer: PeerKey,
        index: u32,
        max: usize,
        picked: &mut Vec<BlockRef>,
        endgame: bool,
    ) {
        let Some(started) = self.started.get(&index) else {
            return;
        };
        let candidates: Vec<u32> = started
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                !b.received
                    && if endgame {
                        !b.requested.contains(&peer) && b.requested.len() < MAX_ENDGAME_DUPLICATES
                    } else {
                        b.requested.is_empty()
                    }
            })
            .map(|(n, _)| n as u32)
            .collect();
        for n in candidates {
            if picked.len() >= max {
                return;
            }
            let block = self.block(index, n);
            if let Some(state) = self
                .started
                .get_mut(&index)
                .and_then(|s| s.blocks.get_mut(n as usize))
            {
                state.requested.push(peer);
                picked.push(block);
            }
        }
    }

    /// A block arrived from `peer`.
    pub fn block_received(&mut self, peer: PeerKey, block: BlockRef) -> Received {
        let mut outcome = Received::default();
        let mut requested = self.was_requested(peer, &block);
        if let Some(list) = self.outstanding.get_mut(&peer) {
            list.retain(|b| *b != block);
        }
        // Every copy answers one ask of this peer, if one is left.
        let answers_an_ask = self.take_answer(peer, &block);
        if !requested && answers_an_ask {
            outcome.late = true;
            requested = true;
        }
        let n = (block.begin / BLOCK) as usize;
        // One shape check for both uses (it also keeps a `begin` past its piece from
        // reaching the arithmetic in `block`).
        let valid_shape = self.block_number(&block).is_some();
        let Some(started) = self.started.get_mut(&block.index).filter(|_| valid_shape) else {
            outcome.unexpected = true;
            return outcome;
        };
        let Some(state) = started.blocks.get_mut(n) else {
            outcome.unexpected = true;
            return outcome;
        };
        if state.received || !requested {
            outcome.unexpected = true;
            state.requested.retain(|p| *p != peer);
            return outcome;
        }
        state.received = true;
        for other in std::mem::take(&mut state.requested) {
            if other != peer {
                outcome.cancel.push((other, block));
            }
        }
        started.received += 1;
        if started.received as usize == started.blocks.len() {
            outcome.piece_complete = Some(block.index);
        }
        for (other, cancelled) in &outcome.cancel {
            if let Some(list) = self.outstanding.get_mut(other) {
                list.retain(|b| b != cancelled);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
