//! Piece integrity: hashing a completed piece (here, or handed out to the driver),
//! writing it whole once good, announcing it, and banning peers whose blocks differ from
//! the verified copy (smart ban).

use bytes::Bytes;
use sha1::{Digest as _, Sha1};

use super::{Store, Torrent, TorrentEvent};
use crate::codec::{BlockRef, Message};
use crate::picker::PeerKey;
use crate::session::Close;

impl<S: Store> Torrent<S> {
    pub(super) fn verify(&mut self, index: u32) {
        let length = self.picker.piece_size(index);
        let bytes = self
            .partial
            .remove(&index)
            .or_else(|| self.store.piece(index, length));
        if self.hash_elsewhere {
            if let Some(bytes) = bytes {
                self.events.push_back(TorrentEvent::CheckPiece {
                    index,
                    bytes: Bytes::from(bytes),
                });
                return;
            }
        }
        let good = bytes.as_deref().is_some_and(|bytes| {
            <[u8; 20]>::from(Sha1::digest(bytes)) == self.info.piece_hashes[index as usize]
        });
        self.piece_checked(index, bytes.map(Bytes::from), good);
    }

    /// Piece `index` arrived by another path (an HTTP range) and the caller checked it
    /// against its hash: it is written, announced with `have`, and no longer asked of
    /// peers. A piece already held is ignored.
    pub fn piece_from_elsewhere(&mut self, index: u32, bytes: Bytes) {
        if index >= self.picker.pieces() || self.picker.have().has(index) {
            return;
        }
        self.withdraw(index);
        self.partial.remove(&index);
        self.piece_checked(index, Some(bytes), true);
    }

    /// Asks peers for piece `index` (with a deadline for the picker, in the caller's
    /// milliseconds) or stops asking (`want` false). A torrent driven by a scheduler
    /// starts with [`Torrent::want_nothing`] and wants pieces one by one.
    pub fn want_piece(&mut self, index: u32, want: bool, deadline: Option<u64>) {
        let before = self.picker.wants(index);
        // Only a wanted piece has requests to withdraw: a piece already handed over (the
        // client then unwants it too) was withdrawn when it came.
        if !want && before {
            self.withdraw(index);
        }
        self.picker.set_priority(index, u8::from(want));
        self.picker.set_deadline(index, deadline.filter(|_| want));
        // Interest follows what we want: the peers holding this piece may gain or lose it.
        if self.picker.wants(index) != before {
            let holders: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| p.session.peer_has.has(index))
                .map(|(key, _)| *key)
                .collect();
            for key in holders {
                self.update_interest(key);
            }
        }
    }

    /// Another path is fetching piece `index` too. Unless peers have sent half of it
    /// already, it is left to that path: its requests are cancelled and peers are not
    /// asked for it again, so that its bytes come once (two copies racing cost the
    /// loser's bytes: on a drop's edges, about half of what they sent at the end). A
    /// piece mostly in stays a race. [`Torrent::want_piece`] asks peers again if that
    /// path fails; blocks already in are kept for then.
    pub fn fetching_elsewhere(&mut self, index: u32) {
        let (received, blocks) = self.picker.piece_progress(index);
        if self.picker.wants(index) && received * 2 < blocks.max(1) {
            self.want_piece(index, false, None);
        }
    }

    /// Cancels every request outstanding for piece `index`.
    fn withdraw(&mut self, index: u32) {
        for (peer, block) in self.picker.withdraw_piece(index) {
            if let Some(session) = self.session(peer) {
                session.send(Message::Cancel(block));
            }
        }
    }

    /// Stops asking for every piece not held (and so is interested in no peer).
    pub fn want_nothing(&mut self) {
        for index in 0..self.picker.pieces() {
            self.picker.set_priority(index, 0);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.update_interest(key);
        }
    }

    /// Which pieces some connected peer holds.
    pub fn available(&self) -> Vec<bool> {
        (0..self.picker.pieces())
            .map(|i| self.picker.available(i))
            .collect()
    }

    /// How far the connected peers that are still downloading have got: the mean share
    /// of the pieces each holds, and how many they are; `None` with no such peer. A peer
    /// counts once it has said what it holds (a seed whose bitfield is on its way is no
    /// leecher at 0%). A scheduler compares its own progress with it (see
    /// `swarmdrop_plan`'s spare edges).
    pub fn leechers_progress(&self) -> Option<(f64, u32)> {
        let pieces = self.picker.pieces();
        let (held, leechers) = self
            .peers
            .values()
            .filter(|p| p.connected && p.session.pieces_known())
            .map(|p| p.session.peer_has.count())
            .filter(|n| *n < pieces)
            .fold((0u64, 0u32), |(sum, count), n| {
                (sum + u64::from(n), count + 1)
            });
        (pieces > 0 && leechers > 0).then(|| {
            (
                held as f64 / (f64::from(leechers) * f64::from(pieces)),
                leechers,
            )
        })
    }

    /// The SHA-1 of piece `index` (`bytes`, as assembled) was checked: `good` or not.
    /// Called by the driver for pieces it hashed elsewhere (see `hash_elsewhere`).
    pub fn piece_checked(&mut self, index: u32, bytes: Option<Bytes>, good: bool) {
        let length = self.picker.piece_size(index);
        let senders = self.senders.remove(&index).unwrap_or_default();
        if !good {
            self.picker.piece_failed(index);
            self.events.push_back(TorrentEvent::HashFailed(index));
            let suspects = self.suspects.entry(index).or_default();
            if let Some(bytes) = bytes {
                for (block, sender) in senders {
                    let start = block.begin as usize;
                    let end = (start + block.length as usize).min(bytes.len());
                    let hash = <[u8; 20]>::from(Sha1::digest(&bytes[start.min(end)..end]));
                    suspects.push((block, sender, hash));
                }
            }
            return;
        }
        if let Some(bytes) = &bytes {
            self.store.write(
                BlockRef {
                    index,
                    begin: 0,
                    length,
                },
                bytes,
            );
        }
        self.picker.piece_verified(index);
        self.events.push_back(TorrentEvent::PieceVerified(index));
        // Whoever sent a block that differs from the good one lied.
        if let (Some(suspects), Some(bytes)) = (self.suspects.remove(&index), bytes) {
            let mut liars: Vec<PeerKey> = Vec::new();
            for (block, sender, hash) in suspects {
                let start = block.begin as usize;
                let end = (start + block.length as usize).min(bytes.len());
                if <[u8; 20]>::from(Sha1::digest(&bytes[start.min(end)..end])) != hash
                    && !liars.contains(&sender)
                {
                    liars.push(sender);
                }
            }
            for liar in liars {
                if !self.banned.insert(liar) {
                    continue;
                }
                self.events.push_back(TorrentEvent::Banned(liar));
                self.close(
                    liar,
                    Close {
                        code: "banned",
                        detail: format!("sent corrupt data for piece {index}"),
                    },
                );
            }
        }
        // Only to peers past the handshake: a peer still in it gets our pieces in the
        // bitfield, which must be our first message (a `have` before it, as this sent
        // once, made our own peers close the connection as `late_bitfield`; the session
        // now turns a late bitfield into haves, but one bitfield is the shorter way).
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            if let Some(session) = self.session(key) {
                session.send(Message::Have(index));
            }
            self.update_interest(key);
        }
        if self.picker.complete() {
            self.events.push_back(TorrentEvent::Complete);
        }
    }
}
