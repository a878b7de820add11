//! One peer connection as a state machine, sans IO: the driver hands it received bytes
//! and the time (`handle_*`), and takes from it bytes to send and events (`poll_*`). The
//! session enforces the protocol: the handshake's info hash, bitfield sizes, piece
//! indices, the choke state of requests, a bound on queued requests, keep-alives and an
//! idle timeout. Whatever breaks it ends in a [`Close`] with a stable reason code.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::bitfield::Bitfield;
use crate::codec::{BlockRef, Decoder, Handshake, Message, WireError};
use crate::extension::ExtendedHandshake;

/// Milliseconds on the caller's clock.
pub type Millis = u64;

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The swarm.
    pub info_hash: [u8; 20],
    /// Our id.
    pub peer_id: [u8; 20],
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Most requests from the peer queued at once; more close the connection.
    pub max_peer_requests: usize,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive: Millis,
    /// Close after this long without hearing anything.
    pub idle_timeout: Millis,
}

impl SessionConfig {
    /// Defaults for a torrent of `pieces` pieces: 500 queued requests (libtorrent
    /// queues 500), keep-alives every 60 s, closed after 120 s of silence.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20], pieces: u32) -> Self {
        Self {
            info_hash,
            peer_id,
            pieces,
            max_peer_requests: 500,
            keepalive: 60_000,
            idle_timeout: 120_000,
        }
    }
}

/// Why a session ended; `code` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Close {
    /// Stable snake_case reason.
    pub code: &'static str,
    /// What happened.
    pub detail: String,
}

impl Close {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<WireError> for Close {
    fn from(e: WireError) -> Self {
        Close::new(e.code(), e.to_string())
    }
}

/// What the peer did, for the swarm logic above the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake checked out.
    Connected {
        /// The peer's id.
        peer_id: [u8; 20],
    },
    /// The peer's pieces are known (bitfield, have-all or have-none) or grew (have).
    Has(HasUpdate),
    /// The peer choked or unchoked us.
    Choked(bool),
    /// The peer is or is no longer interested in us.
    Interested(bool),
    /// The peer asks for a block (we are not choking it, or it is allowed fast).
    Request(BlockRef),
    /// The peer withdrew a request we had not served.
    Cancelled(BlockRef),
    /// A block arrived.
    Block {
        /// Which.
        block: BlockRef,
        /// Its bytes.
        data: Bytes,
    },
    /// The peer will not serve a request of ours (BEP 6).
    Rejected(BlockRef),
    /// The peer lets us request this piece while choked (BEP 6).
    AllowedFast(u32),
    /// The peer's extension handshake (BEP 10).
    Extensions(ExtendedHandshake),
    /// An extension message under our id `id`.
    Extended {
        /// Our id for the extension.
        id: u8,
        /// Its payload.
        payload: Bytes,
    },
}

/// A change to what the peer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HasUpdate {
    /// Its whole set.
    All(Bitfield),
    /// One more piece.
    Piece(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    /// Handshake done; the first message may be a bitfield (or have-all/none).
    First,
    Open,
}

/// One peer connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    received: BytesMut,
    outgoing: BytesMut,
    /// Chunks ready before `outgoing`: block payloads go here as they are.
    queued: VecDeque<Bytes>,
    /// A core message (anything but a keep-alive, the DHT port or an extension message)
    /// has gone out: our pieces can no longer be sent as a bitfield or have-all/none.
    sent_core: bool,
    events: VecDeque<Event>,
    peer_fast: bool,
    peer_extended: bool,
    /// What the peer has.
    pub peer_has: Bitfield,
    /// True while we choke the peer (the protocol starts choked both ways).
    pub am_choking: bool,
    /// True while we want something the peer has.
    pub am_interested: bool,
    /// True while the peer chokes us.
    pub peer_choking: bool,
    /// True while the peer wants something we have.
    pub peer_interested: bool,
    /// Requests the peer made that we have not answered.
    peer_requests: VecDeque<BlockRef>,
    allowed_fast: Vec<u32>,
    /// Requests received while we choke the peer, since the last unchoke.
    choked_requests: usize,
    last_received: Millis,
    last_sent: Millis,
    /// Body bytes received in blocks.
    pub downloaded: u64,
    /// Body bytes sent in blocks.
    pub uploaded: u64,
}

impl Session {
    /// A session that has sent nothing yet; it queues our handshake at once.
    pub fn new(config: SessionConfig, now: Millis) -> Self {
        let mut outgoing = BytesMut::new();
        Handshake::new(config.info_hash, config.peer_id).encode(&mut outgoing);
        let pieces = config.pieces;
        Self {
            config,
            phase: Phase::Handshake,
            received: BytesMut::new(),
            outgoing,
            queued: VecDeque::new(),
            sent_core: false,
            events: VecDeque::new(),
            peer_fast: false,
            peer_extended: false,
            peer_has: Bitfield::empty(pieces),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            peer_requests: VecDeque::new(),
            allowed_fast: Vec::new(),
            choked_requests: 0,
            last_received: now,
            last_sent: now,
            downloaded: 0,
            uploaded: 0,
        }
    }

    /// True when the peer speaks BEP 10.
    pub fn peer_extended(&self) -> bool {
        self.peer_extended
    }

    /// True when the peer speaks BEP 6.
    pub fn peer_fast(&self) -> bool {
        self.peer_fast
    }

    /// True once the peer has said what it holds: its first message after the handshake
    /// came (a bitfield, have-all or have-none, or anything else from a peer that holds
    /// nothing and skips the bitfield, as BEP 3 allows).
    pub fn pieces_known(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Requests the peer is waiting on.
    pub fn pending_peer_requests(&self) -> usize {
        self.peer_requests.len()
    }

    /// Takes the oldest request the peer is waiting on, to be answered now (with the
    /// block, or a [`Session::refuse_peer_request`]).
    pub fn pop_peer_request(&mut self) -> Option<BlockRef> {
        self.peer_requests.pop_front()
    }

    /// Our pieces as a bitfield (or BEP 6 have-all/none) may only be the first core
    /// message (BEP 3; our own session closes a connection that breaks this, though
    /// libtorrent tolerates it): sent later, they go out as the `have` messages they
    /// stand for. A peer without BEP 6 is told have-all as a full bitfield and have-none
    /// as nothing (the bitfield is optional there).
    fn announce(&mut self, message: Message) {
        if !self.sent_core {
            match message {
                Message::HaveAll if !self.peer_fast => {
                    let all = Bitfield::full(self.config.pieces);
                    Message::Bitfield(Bytes::copy_from_slice(all.as_bytes()))
                        .encode(&mut self.outgoing);
                }
                Message::HaveNone if !self.peer_fast => return,
                message => message.encode(&mut self.outgoing),
            }
            self.sent_core = true;
            return;
        }
        let pieces = self.config.pieces;
        let held = match &message {
            // Ours, built from a `Bitfield` of the right size: it always reads back.
            Message::Bitfield(bits) => Bitfield::from_bytes(bits, pieces).ok(),
            Message::HaveAll => Some(Bitfield::full(pieces)),
            _ => None,
        };
        if let Some(held) = held {
            for index in (0..pieces).filter(|&i| held.has(i)) {
                Message::Have(index).encode(&mut self.outgoing);
            }
        }
    }

    /// Before our first core message: BEP 6 opens every connection with exactly one of
    /// bitfield, have-all and have-none, so a BEP 6 peer we have told nothing yet (a
    /// reject can answer a request that came with its handshake) is told have-none, and
    /// what we hold later follows as haves.
    fn before_core(&mut self) {
        if !self.sent_core {
            self.sent_core = true;
            if self.peer_fast {
                Message::HaveNone.encode(&mut self.outgoing);
            }
        }
    }

    /// Sends `data` for a request taken with [`Session::pop_peer_request`] (no longer in
    /// the queue, so not looked for there, as [`Session::send`] of a piece does).
    pub fn answer_peer_request(&mut self, block: BlockRef, data: Bytes) {
        self.uploaded += data.len() as u64;
        self.before_core();
        // The block goes out as its own chunk, never copied into the send buffer: only
        // its 13-byte header is.
        self.outgoing.reserve(13);
        self.outgoing
            .extend_from_slice(&(9 + block.length).to_be_bytes());
        self.outgoing.extend_from_slice(&[7]);
        self.outgoing.extend_from_slice(&block.index.to_be_bytes());
        self.outgoing.extend_from_slice(&block.begin.to_be_bytes());
        self.queued.push_back(self.outgoing.split().freeze());
        self.queued.push_back(data);
    }

    /// A request taken with [`Session::pop_peer_request`] that we cannot answer with data:
    /// a BEP 6 peer is told with a reject; others are simply not answered, as BEP 3 does.
    pub fn refuse_peer_request(&mut self, block: BlockRef) {
        if self.peer_fast {
            self.send(Message::Reject(block));
        }
    }

    /// True while the peer still waits on `block`: a choke sent since it asked dropped
    /// the request (and told a BEP 6 peer so with a reject), a cancel withdrew it.
    pub fn peer_request_pending(&self, block: &BlockRef) -> bool {
        self.peer_requests.contains(block)
    }

    /// Bytes received from the socket.
    pub fn handle_bytes(&mut self, now: Millis, bytes: &[u8]) -> Result<(), Close> {
        self.last_received = now;
        self.received.extend_from_slice(bytes);
        if self.phase == Phase::Handshake {
            let Some(handshake) = Handshake::decode(&mut self.received)? else {
                return Ok(());
            };
            if handshake.info_hash != self.config.info_hash {
                return Err(Close::new(
                    "wrong_infohash",
                    "the handshake names another torrent",
                ));
            }
            self.peer_fast = handshake.fast();
            self.peer_extended = handshake.extended();
            self.phase = Phase::First;
            self.events.push_back(Event::Connected {
                peer_id: handshake.peer_id,
            });
        }
        while let Some(message) = Decoder.decode(&mut self.received)? {
            self.handle_message(message)?;
        }
        Ok(())
    }

    fn check_index(&self, index: u32) -> Result<(), Close> {
        if index >= self.config.pieces {
            return Err(Close::new(
                "bad_piece_index",
                format!("piece {index} of a {}-piece torrent", self.config.pieces),
            ));
        }
        Ok(())
    }

    fn handle_message(&mut self, message: Message) -> Result<(), Close> {
        let first = self.phase == Phase::First;
        // The pieces message must come before any other core message; keep-alives, the
        // DHT port and extension messages (libtorrent sends its BEP 10 handshake first)
        // may come before it.
        if !matches!(
            message,
            Message::KeepAlive | Message::Port(_) | Message::Extended { .. }
        ) {
            self.phase = Phase::Open;
        }
        match message {
            Message::KeepAlive => {}
            Message::Choke => {
                self.peer_choking = true;
                self.events.push_back(Event::Choked(true));
            }
            Message::Unchoke => {
                self.peer_choking = false;
                self.events.push_back(Event::Choked(false));
            }
            Message::Interested => {
                self.peer_interested = true;
                self.events.push_back(Event::Interested(true));
            }
            Message::NotInterested => {
                self.peer_interested = false;
                self.events.push_back(Event::Interested(false));
            }
            Message::Have(index) => {
                self.check_index(index)?;
                if self.peer_has.set(index) {
                    self.events.push_back(Event::Has(HasUpdate::Piece(index)));
                }
            }
            Message::Bitfield(bits) if first => {
                self.peer_has = Bitfield::from_bytes(&bits, self.config.pieces)
                    .map_err(|e| Close::new("bad_bitfield", e.to_string()))?;
                self.events
                    .push_back(Event::Has(HasUpdate::All(self.peer_has.clone())));
            }
            Message::HaveAll | Message::HaveNone if first && self.peer_fast => {
                self.peer_has = if matches!(message, Message::HaveAll) {
                    Bitfield::full(self.config.pieces)
                } else {
                    Bitfield::empty(self.config.pieces)
                };
                self.events
                    .push_back(Event::Has(HasUpdate::All(self.peer_has.clone())));
            }
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                return Err(Close::new(
                    "late_bitfield",
                    "a bitfield (or have-all/none) after the first message",
                ))
            }
            Message::Request(block) => {
                self.check_index(block.index)?;
                if self.am_choking && !self.allowed_fast.contains(&block.index) {
                    // BEP 6 peers are told; others are simply ignored, as BEP 3 does. A
                    // peer that keeps asking while choked is flooding.
                    self.choked_requests += 1;
                    if self.choked_requests > self.config.max_peer_requests {
                        return Err(Close::new(
                            "request_flood",
                            format!(
                                "more than {} requests while choked",
                                self.config.max_peer_requests
                            ),
                        ));
                    }
                    if self.peer_fast {
                        self.send(Message::Reject(block));
                    }
                    return Ok(());
                }
                if self.peer_requests.len() >= self.config.max_peer_requests {
                    return Err(Close::new(
                        "request_flood",
                        format!(
                            "more than {} queued requests",
                            self.config.max_peer_requests
                        ),
                    ));
                }
                self.peer_requests.push_back(block);
                self.events.push_back(Event::Request(block));
            }
            Message::Cancel(block) => {
                let before = self.peer_requests.len();
                self.peer_requests.retain(|b| *b != block);
                if self.peer_requests.len() < before {
                    // BEP 6: every request gets exactly one answer, a cancelled one too
                    // (a block already sent was its answer).
                    if self.peer_fast {
                        self.send(Message::Reject(block));
                    }
                    self.events.push_back(Event::Cancelled(block));
                }
            }
            Message::Piece { index, begin, data } => {
                self.check_index(index)?;
                let block = BlockRef {
                    index,
                    begin,
                    length: data.len() as u32,
                };
                self.downloaded += data.len() as u64;
                self.events.push_back(Event::Block { block, data });
            }
            Message::Port(_) => {}
            Message::Suggest(index) => self.check_index(index)?,
            Message::Reject(block) => {
                self.check_index(block.index)?;
                self.events.push_back(Event::Rejected(block));
            }
            Message::AllowedFast(index) => {
                self.check_index(index)?;
                self.events.push_back(Event::AllowedFast(index));
            }
            Message::Extended { id: 0, payload } => {
                let handshake = ExtendedHandshake::decode(&payload)
                    .map_err(|e| Close::new("bad_extension", e.to_string()))?;
                self.events.push_back(Event::Extensions(handshake));
            }
            Message::Extended { id, payload } => {
                self.events.push_back(Event::Extended { id, payload });
            }
        }
        Ok(())
    }

    /// Queues a message for the peer, keeping our side of the state in step.
    pub fn send(&mut self, message: Message) {
        match message {
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                return self.announce(message)
            }
            Message::KeepAlive | Message::Port(_) | Message::Extended { .. } => {}
            _ => self.before_core(),
        }
        match &message {
            Message::Choke => {
                self.am_choking = true;
                // Choking drops the peer's queue, except requests for pieces allowed
                // fast (BEP 6: those stand while choked); BEP 6 peers are told which.
                let allowed_fast = &self.allowed_fast;
                let (kept, dropped): (Vec<BlockRef>, Vec<BlockRef>) = self
                    .peer_requests
                    .drain(..)
                    .partition(|b| allowed_fast.contains(&b.index));
                self.peer_requests = kept.into();
                message.encode(&mut self.outgoing);
                if self.peer_fast {
                    for block in dropped {
                        Message::Reject(block).encode(&mut self.outgoing);
                    }
                }
                return;
            }
            Message::Unchoke => {
                self.am_choking = false;
                self.choked_requests = 0;
            }
            Message::Interested => self.am_interested = true,
            Message::NotInterested => self.am_interested = false,
            Message::AllowedFast(index) => self.allowed_fast.push(*index),
            Message::Piece { index, begin, data } => {
                let block = BlockRef {
                    index: *index,
                    begin: *begin,
                    length: data.len() as u32,
                };
                self.peer_requests.retain(|b| *b != block);
                self.answer_peer_request(block, data.clone());
                return;
            }
            _ => {}
        }
        message.encode(&mut self.outgoing);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next chunk for the socket, in order (empty when nothing is queued): call
    /// until it is empty.
    pub fn poll_transmit(&mut self, now: Millis) -> Bytes {
        let chunk = match self.queued.pop_front() {
            Some(chunk) => chunk,
            // Splitting even an empty buffer is not free (it may first promote the
            // buffer to a shared one, an allocation), and the caller polls until it gets
            // nothing.
            None if self.outgoing.is_empty() => Bytes::new(),
            None => self.outgoing.split().freeze(),
        };
        if !chunk.is_empty() {
            self.last_sent = now;
        }
        chunk
    }

    /// The clock moved: a keep-alive when we have been quiet, a close when the peer has.
    pub fn handle_timeout(&mut self, now: Millis) -> Result<(), Close> {
        if now.saturating_sub(self.last_received) >= self.config.idle_timeout {
            return Err(Close::new(
                "idle_timeout",
                format!("nothing heard for {} ms", self.config.idle_timeout),
            ));
        }
        if self.phase != Phase::Handshake
            && self.outgoing.is_empty()
            && self.queued.is_empty()
            && now.saturating_sub(self.last_sent) >= self.config.keepalive
        {
            Message::KeepAlive.encode(&mut self.outgoing);
        }
        Ok(())
    }

    /// When `handle_timeout` next has something to do.
    pub fn next_timeout(&self) -> Millis {
        (self.last_received + self.config.idle_timeout).min(self.last_sent + self.config.keepalive)
    }
}

#[cfg(test)]
mod tests;
