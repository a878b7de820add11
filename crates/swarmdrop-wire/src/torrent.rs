//! One torrent's peers together, sans IO: sessions, the picker, the choker, piece
//! verification and bans. The driver (or the deterministic swarm test) moves bytes and
//! time in; blocks go to and come from a [`Store`] it provides.
//!
//! Integrity: a piece is written as complete and announced with `have` only after its
//! SHA-1 matches. A failed piece remembers, per block, who sent it and the block's hash;
//! when the piece later verifies, every peer whose block differs from the good one is
//! banned (what libtorrent calls smart ban), so a liar is caught even when honest peers
//! sent the rest of the piece, and honest peers are never blamed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use sha1::{Digest as _, Sha1};

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::codec::{BlockRef, Message};
use crate::extension::{ExtendedHandshake, MetadataMessage, METADATA_PIECE, UT_METADATA};
use crate::picker::{PeerKey, Picker, PickerError};
use crate::session::{Close, Event, HasUpdate, Millis, Session, SessionConfig};

/// Where blocks live.
pub trait Store {
    /// A block of a verified piece (`None` when it cannot be read).
    fn read(&mut self, block: BlockRef) -> Option<Bytes>;
    /// Writes verified bytes: a whole piece (`begin` 0, `length` the piece's size).
    fn write(&mut self, block: BlockRef, data: &[u8]);
    /// The whole piece as written (the fallback for hashing when a piece was not
    /// assembled in memory).
    fn piece(&mut self, index: u32, length: u32) -> Option<Vec<u8>>;
}

/// What a torrent is.
#[derive(Debug, Clone)]
pub struct TorrentInfo {
    /// The swarm.
    pub info_hash: [u8; 20],
    /// Bytes per piece.
    pub piece_length: u32,
    /// Total bytes.
    pub total_length: u64,
    /// SHA-1 of each piece.
    pub piece_hashes: Vec<[u8; 20]>,
}

/// Something the swarm logic above should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentEvent {
    /// A piece verified and was announced.
    PieceVerified(u32),
    /// A piece failed its hash; it will be fetched again.
    HashFailed(u32),
    /// A peer sent bad data and is banned (close it; refuse it again).
    Banned(PeerKey),
    /// A peer's session ended.
    Closed(PeerKey, Close),
    /// Every piece is verified.
    Complete,
    /// A piece is complete: hash it and call `piece_checked` (only with
    /// `hash_elsewhere`, which lets a driver hash on other threads).
    CheckPiece {
        /// The piece.
        index: u32,
        /// Its bytes as assembled.
        bytes: Bytes,
    },
    /// A peer sent a block we never asked it for.
    Unrequested(PeerKey),
    /// A peer sent a block after we withdrew the request (cancel or choke) and it was
    /// no longer needed: dropped, not held against the peer.
    Late(PeerKey),
}

/// Blocks never asked for tolerated from one peer before it is closed (late copies of
/// withdrawn requests are not counted: the picker tells them apart).
const MAX_UNREQUESTED: u32 = 16;

struct Peer {
    session: Session,
    connected: bool,
    peer_id: Option<[u8; 20]>,
    /// The id the peer wants `ut_metadata` messages under.
    ut_metadata: Option<u8>,
    /// Bytes received and sent since the last rechoke.
    window_down: u64,
    window_up: u64,
    /// Bytes received since the last one-second rate update, and that rate.
    recent_down: u64,
    recent_rate: f64,
    unrequested: u32,
    download_rate: f64,
    upload_rate: f64,
}

/// One peer, as metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The caller's key.
    pub key: PeerKey,
    /// `libtorrent`, `swarmdrop`, `other` (from the peer id's client prefix).
    pub client: &'static str,
    /// Block bytes sent to it.
    pub uploaded: u64,
    /// Block bytes received from it.
    pub downloaded: u64,
    /// True while we choke it.
    pub am_choking: bool,
    /// True while it chokes us.
    pub peer_choking: bool,
}

/// The client family a peer id names (Azureus-style `-XX1234-` prefixes).
pub fn client_kind(peer_id: &[u8; 20]) -> &'static str {
    match &peer_id[..3] {
        b"-LT" | b"-lt" => "libtorrent",
        b"-SD" => "swarmdrop",
        b"-qB" => "qbittorrent",
        b"-TR" => "transmission",
        b"-UT" | b"-ut" => "utorrent",
        b"-A2" => "aria2",
        _ => "other",
    }
}

/// Tuning.
#[derive(Debug, Clone, Copy)]
pub struct TorrentConfig {
    /// Unchoke slots.
    pub upload_slots: usize,
    /// Rechoke period. BEP 3 suggests 10 s and libtorrent uses 15 s, for downloads of
    /// minutes to hours; a drop's bulk asset takes about 20 s, and with 10 s rounds the
    /// first viewers to ask held every slot for half of it while those who joined a
    /// second later waited on optimistic unchokes. 3 s rounds measured about 3 % faster
    /// bulk completion in the demo (see docs/design/0006-wire.md).
    pub rechoke_every: Millis,
    /// Fewest and most requests outstanding per peer; in between, enough to cover one
    /// second at the peer's measured rate.
    pub min_pipeline: usize,
    /// See `min_pipeline`.
    pub max_pipeline: usize,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        Self {
            upload_slots: 4,
            rechoke_every: 3_000,
            min_pipeline: 64,
            max_pipeline: 250,
        }
    }
}

/// A torrent and its peers.
pub struct Torrent<S: Store> {
    info: TorrentInfo,
    config: TorrentConfig,
    peer_id: [u8; 20],
    store: S,
    picker: Picker,
    choker: Choker,
    peers: BTreeMap<PeerKey, Peer>,
    banned: HashSet<PeerKey>,
    /// Per failed piece: who sent which block, and that block's hash.
    suspects: HashMap<u32, Vec<(BlockRef, PeerKey, [u8; 20])>>,
    /// Who sent each block of pieces in progress.
    senders: HashMap<u32, Vec<(BlockRef, PeerKey)>>,
    events: VecDeque<TorrentEvent>,
    last_rechoke: Millis,
    random: u64,
    /// The bencoded info dictionary, served to magnet clients (BEP 9).
    metadata: Option<Bytes>,
    /// Pieces being received, assembled in memory: hashed from here and written whole
    /// once they verify (one write, no read back).
    partial: HashMap<u32, Vec<u8>>,
    last_rate: Millis,
    hash_elsewhere: bool,
    listen_port: Option<u16>,
}

impl<S: Store> Torrent<S> {
    /// A torrent with `have` pieces already verified in `store`; `seed` drives every
    /// random choice, so a run is reproducible.
    pub fn new(
        info: TorrentInfo,
        config: TorrentConfig,
        peer_id: [u8; 20],
        store: S,
        have: &Bitfield,
        seed: u64,
    ) -> Result<Self, PickerError> {
        let pieces = info.piece_hashes.len() as u32;
        let mut picker = Picker::new(info.total_length, info.piece_length, pieces)?;
        for index in 0..pieces {
            if have.has(index) {
                picker.piece_verified(index);
            }
        }
        Ok(Self {
            choker: Choker::new(config.upload_slots, 3),
            config,
            peer_id,
            store,
            picker,
            peers: BTreeMap::new(),
            banned: HashSet::new(),
            suspects: HashMap::new(),
            senders: HashMap::new(),
            events: VecDeque::new(),
            last_rechoke: 0,
            random: seed | 1,
            metadata: None,
            listen_port: None,
            partial: HashMap::new(),
            last_rate: 0,
            hash_elsewhere: false,
            info,
        })
    }

    /// Completed pieces are handed out as `CheckPiece` events instead of hashed here, so
    /// that hashing does not hold up the protocol.
    pub fn hash_elsewhere(mut self, yes: bool) -> Self {
        self.hash_elsewhere = yes;
        self
    }

    /// The SHA-1 each piece must have.
    pub fn piece_hashes(&self) -> &[[u8; 20]] {
        &self.info.piece_hashes
    }

    /// Serves `info` (the bencoded info dictionary, whose SHA-1 must be the info hash) to
    /// peers that ask through `ut_metadata`, and advertises our listening port.
    pub fn with_metadata(mut self, info: Option<Bytes>, listen_port: Option<u16>) -> Self {
        self.metadata =
            info.filter(|bytes| <[u8; 20]>::from(Sha1::digest(bytes)) == self.info.info_hash);
        self.listen_port = listen_port;
        self
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    /// Pieces verified.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// True when every piece is verified.
    pub fn complete(&self) -> bool {
        self.picker.complete()
    }

    /// True when `peer` was banned here.
    pub fn is_banned(&self, peer: PeerKey) -> bool {
        self.banned.contains(&peer)
    }

    /// Peers connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A snapshot of every peer, for metrics.
    pub fn peers(&self) -> Vec<PeerSnapshot> {
        self.peers
            .iter()
            .map(|(key, p)| PeerSnapshot {
                key: *key,
                client: p.peer_id.map(|id| client_kind(&id)).unwrap_or("connecting"),
                uploaded: p.session.uploaded,
                downloaded: p.session.downloaded,
                am_choking: p.session.am_choking,
                peer_choking: p.session.peer_choking,
            })
            .collect()
    }

    /// The store.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// A new connection to `peer` (our handshake is queued at once). Banned peers are
    /// refused.
    pub fn add_peer(&mut self, peer: PeerKey, now: Millis) -> bool {
        if self.banned.contains(&peer) || self.peers.contains_key(&peer) {
            return false;
        }
        let config = SessionConfig::new(
            self.info.info_hash,
            self.peer_id,
            self.info.piece_hashes.len() as u32,
        );
        self.peers.insert(
            peer,
            Peer {
                session: Session::new(config, now),
                connected: false,
                peer_id: None,
                ut_metadata: None,
                window_down: 0,
                window_up: 0,
                recent_down: 0,
                recent_rate: 0.0,
                unrequested: 0,
                download_rate: 0.0,
                upload_rate: 0.0,
            },
        );
        true
    }

    /// Ends a connection (the driver saw it close, or decided to).
    pub fn remove_peer(&mut self, peer: PeerKey) {
        if let Some(gone) = self.peers.remove(&peer) {
            self.picker.peer_bitfield(&gone.session.peer_has, false);
            self.picker.peer_gone(peer);
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TorrentEvent> {
        self.events.pop_front()
    }

    /// The next chunk to send to `peer` (empty when nothing is queued): call until empty.
    pub fn poll_transmit(&mut self, peer: PeerKey, now: Millis) -> Bytes {
        let mut unlimited = usize::MAX;
        self.poll_transmit_within(peer, now, &mut unlimited)
    }

    /// As [`Torrent::poll_transmit`], answering the peer's requests only while `budget`
    /// (bytes of blocks) lasts; the rest stay queued here. A block handed to the socket
    /// is past recall, while a request still queued here is withdrawn by the peer's
    /// `cancel` or by our choke: a driver whose uploads are slower than its peers'
    /// pipelines (a capped uplink) hands each connection only what it will send soon,
    /// so the blocks a peer no longer needs (its endgame duplicates, a piece another
    /// path brought first) are never sent.
    pub fn poll_transmit_within(
        &mut self,
        peer: PeerKey,
        now: Millis,
        budget: &mut usize,
    ) -> Bytes {
        while *budget > 0 {
            let Some(block) = self
                .peers
                .get_mut(&peer)
                .and_then(|p| p.session.pop_peer_request())
            else {
                break;
            };
            *budget = budget.saturating_sub(block.length as usize);
            self.serve(peer, block);
        }
        self.peers
            .get_mut(&peer)
            .map(|p| p.session.poll_transmit(now))
            .unwrap_or_default()
    }

    fn close(&mut self, peer: PeerKey, reason: Close) {
        self.remove_peer(peer);
        self.events.push_back(TorrentEvent::Closed(peer, reason));
    }

    /// Bytes from `peer`.
    pub fn handle_bytes(&mut self, peer: PeerKey, now: Millis, bytes: &[u8]) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Err(reason) = state.session.handle_bytes(now, bytes) {
            self.close(peer, reason);
            return;
        }
        while let Some(event) = self
            .peers
            .get_mut(&peer)
            .and_then(|p| p.session.poll_event())
        {
            if let Err(reason) = self.handle_event(peer, event) {
                self.close(peer, reason);
                return;
            }
        }
        self.request_more(peer);
    }

    fn session(&mut self, peer: PeerKey) -> Option<&mut Session> {
        self.peers.get_mut(&peer).map(|p| &mut p.session)
    }

    fn update_interest(&mut self, peer: PeerKey) {
        let wants = {
            let Some(p) = self.peers.get(&peer) else {
                return;
            };
            self.picker.wants_any_of(&p.session.peer_has)
        };
        if let Some(session) = self.session(peer) {
            if wants != session.am_interested {
                session.send(if wants {
                    Message::Interested
                } else {
                    Message::NotInterested
                });
            }
        }
    }

    fn handle_event(&mut self, peer: PeerKey, event: Event) -> Result<(), Close> {
        match event {
            Event::Connected { peer_id } => {
                let have = self.picker.have().clone();
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                p.connected = true;
                p.peer_id = Some(peer_id);
                if p.session.peer_extended() {
                    let size = self.metadata.as_ref().map(|m| m.len() as u32);
                    let ours = ExtendedHandshake::ours(size, self.listen_port, 500);
                    p.session.send(Message::Extended {
                        id: 0,
                        payload: Bytes::from(ours.encode()),
                    });
                }
                let message = if p.session.peer_fast() && have.is_full() {
                    Message::HaveAll
                } else if p.session.peer_fast() && have.count() == 0 {
                    Message::HaveNone
                } else {
                    Message::Bitfield(Bytes::copy_from_slice(have.as_bytes()))
                };
                p.session.send(message);
            }
            Event::Has(HasUpdate::All(field)) => {
                self.picker.peer_bitfield(&field, true);
                self.update_interest(peer);
            }
            Event::Has(HasUpdate::Piece(index)) => {
                self.picker.peer_has(index);
                // One more piece can only make us interested, and only if we want it.
                if self.picker.wants(index) {
                    self.update_interest(peer);
                }
            }
            Event::Choked(true) => {
                // A choke drops our requests (BEP 6 peers also reject them one by one);
                // blocks the peer had queued may still come, and are welcome.
                self.picker.peer_choked(peer);
            }
            Event::Interested(true) => {
                // A free slot need not wait for the next round.
                if self.slots_in_use() < self.config.upload_slots {
                    if let Some(session) = self.session(peer) {
                        if session.am_choking {
                            session.send(Message::Unchoke);
                        }
                    }
                }
            }
            Event::Interested(false) => {
                // A peer that wants nothing more gives its slot back at once: our upload
                // would idle until the next round (seconds, a sizeable part of a drop's
                // bulk download) while others wait choked.
                let held_a_slot = self.session(peer).is_some_and(|s| !s.am_choking);
                if held_a_slot {
                    if let Some(session) = self.session(peer) {
                        session.send(Message::Choke);
                    }
                    self.unchoke_a_waiting_peer();
                }
            }
            Event::Choked(false) | Event::AllowedFast(_) => {}
            Event::Extensions(handshake) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.ut_metadata = handshake.id_of("ut_metadata");
                }
            }
            Event::Extended { id, payload } if id == UT_METADATA => {
                self.metadata_message(peer, &payload)
            }
            Event::Cancelled(_) | Event::Extended { .. } => {}
            // Requests wait in the session and are answered as the socket takes them
            // (`poll_transmit_within`): one a choke or a cancel has since withdrawn is
            // never answered.
            Event::Request(_) => {}
            Event::Rejected(block) => self.picker.request_failed(peer, block),
            Event::Block { block, data } => self.receive(peer, block, &data)?,
        }
        Ok(())
    }

    /// A BEP 9 message: requests get the piece of the info dictionary (or a reject).
    fn metadata_message(&mut self, peer: PeerKey, payload: &[u8]) {
        let Ok(MetadataMessage::Request(piece)) = MetadataMessage::decode(payload) else {
            return;
        };
        let answer = match &self.metadata {
            Some(info) if (piece as usize) * METADATA_PIECE < info.len() => {
                let start = piece as usize * METADATA_PIECE;
                let end = (start + METADATA_PIECE).min(info.len());
                MetadataMessage::Data {
                    piece,
                    total_size: info.len() as u32,
                    data: info[start..end].to_vec(),
                }
            }
            _ => MetadataMessage::Reject(piece),
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some(id) = p.ut_metadata {
            p.session.send(Message::Extended {
                id,
                payload: Bytes::from(answer.encode()),
            });
        }
    }

    fn serve(&mut self, peer: PeerKey, block: BlockRef) {
        let valid = self.picker.have().has(block.index)
            && u64::from(block.begin) + u64::from(block.length)
                <= u64::from(self.picker.piece_size(block.index));
        let data = if valid { self.store.read(block) } else { None };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        match data {
            Some(data) => {
                p.window_up += data.len() as u64;
                // The header states the length of the bytes that follow it.
                let block = BlockRef {
                    length: data.len() as u32,
                    ..block
                };
                p.session.answer_peer_request(block, data);
            }
            None => p.session.refuse_peer_request(block),
        }
    }

    fn receive(&mut self, peer: PeerKey, block: BlockRef, data: &[u8]) -> Result<(), Close> {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.window_down += data.len() as u64;
            p.recent_down += data.len() as u64;
        }
        let outcome = self.picker.block_received(peer, block);
        if outcome.unexpected && outcome.late {
            self.events.push_back(TorrentEvent::Late(peer));
            return Ok(());
        }
        if outcome.unexpected {
            // Late duplicates after a cancel are normal; a stream of blocks never asked
            // for is not.
            self.events.push_back(TorrentEvent::Unrequested(peer));
            let strikes = self.peers.get_mut(&peer).map_or(0, |p| {
                p.unrequested += 1;
                p.unrequested
            });
            if strikes > MAX_UNREQUESTED {
                return Err(Close {
                    code: "unrequested_blocks",
                    detail: format!("more than {MAX_UNREQUESTED} blocks never asked for"),
                });
            }
            return Ok(());
        }
        let size = self.picker.piece_size(block.index) as usize;
        let buffer = self
            .partial
            .entry(block.index)
            .or_insert_with(|| vec![0; size]);
        let start = block.begin as usize;
        if let Some(slot) = buffer.get_mut(start..start + data.len()) {
            slot.copy_from_slice(data);
        }
        self.senders
            .entry(block.index)
            .or_default()
            .push((block, peer));
        for (other, cancelled) in outcome.cancel {
            if let Some(session) = self.session(other) {
                session.send(Message::Cancel(cancelled));
            }
        }
        if let Some(index) = outcome.piece_complete {
            self.verify(index);
        }
        Ok(())
    }

    /// Fills `peer`'s request pipeline: deep enough to cover a second at its rate.
    fn request_more(&mut self, peer: PeerKey) {
        let random = self.next_random();
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        if !p.connected || p.session.peer_choking || !p.session.am_interested {
            return;
        }
        let depth = ((p.recent_rate.max(p.download_rate) / f64::from(crate::codec::BLOCK))
            as usize)
            .clamp(self.config.min_pipeline, self.config.max_pipeline);
        let room = depth.saturating_sub(self.picker.outstanding(peer));
        if room == 0 {
            return;
        }
        let has = p.session.peer_has.clone();
        for block in self.picker.pick(peer, &has, room, random) {
            if let Some(session) = self.session(peer) {
                session.send(Message::Request(block));
            }
        }
    }

    /// The clock moved: timeouts, keep-alives, rechoking, and topping up pipelines.
    pub fn handle_timeout(&mut self, now: Millis) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in &keys {
            let result = self
                .session(*key)
                .map_or(Ok(()), |session| session.handle_timeout(now));
            if let Err(reason) = result {
                self.close(*key, reason);
            }
        }
        if now.saturating_sub(self.last_rate) >= 1000 {
            let seconds = now.saturating_sub(self.last_rate) as f64 / 1000.0;
            self.last_rate = now;
            for p in self.peers.values_mut() {
                p.recent_rate = p.recent_down as f64 / seconds;
                p.recent_down = 0;
            }
        }
        if now.saturating_sub(self.last_rechoke) >= self.config.rechoke_every {
            self.rechoke(now);
        }
        for key in keys {
            self.request_more(key);
        }
    }
}

mod integrity;
mod slots;

#[cfg(test)]
mod steered_tests;
#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod upload_tests;
