//! The handshake and every message of BEP 3, BEP 6 (fast extension) and BEP 10
//! (extension protocol), with a streaming decoder that checks each length before it
//! buffers anything: a peer announcing a 4 GiB message is refused at its first four bytes.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// The protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes in a handshake.
pub const HANDSHAKE_LEN: usize = 68;
/// The block size swarmdrop requests (and the usual one).
pub const BLOCK: u32 = 16 * 1024;
/// The largest block accepted in a `request` or `piece` (some clients use 32 KiB).
pub const MAX_BLOCK: u32 = 128 * 1024;
/// The largest message accepted: a bitfield of 2^23 pieces, or an extension message.
pub const MAX_MESSAGE: u32 = 1 << 20;

/// The handshake each side sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bits: extensions each side supports.
    pub reserved: [u8; 8],
    /// The swarm.
    pub info_hash: [u8; 20],
    /// The sender's id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: the fast extension (BEP 6) and the extension protocol (BEP 10).
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[5] |= 0x10;
        reserved[7] |= 0x04;
        Self {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// True when the sender speaks BEP 6.
    pub fn fast(&self) -> bool {
        self.reserved[7] & 0x04 != 0
    }

    /// True when the sender speaks BEP 10.
    pub fn extended(&self) -> bool {
        self.reserved[5] & 0x10 != 0
    }

    /// The 68 wire bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HANDSHAKE_LEN);
        out.put_u8(19);
        out.put_slice(PROTOCOL);
        out.put_slice(&self.reserved);
        out.put_slice(&self.info_hash);
        out.put_slice(&self.peer_id);
    }

    /// Takes a handshake off the front of `buf`: `None` until 68 bytes are there.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, WireError> {
        if let Some(&first) = buf.first() {
            if first != 19 {
                return Err(WireError::NotBitTorrent);
            }
        }
        if buf.len() >= 20 && &buf[1..20] != PROTOCOL {
            return Err(WireError::NotBitTorrent);
        }
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let bytes = buf.split_to(HANDSHAKE_LEN);
        let mut handshake = Handshake {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        handshake.reserved.copy_from_slice(&bytes[20..28]);
        handshake.info_hash.copy_from_slice(&bytes[28..48]);
        handshake.peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Some(handshake))
    }
}

/// One message after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Zero length: keeps the connection open.
    KeepAlive,
    /// 0.
    Choke,
    /// 1.
    Unchoke,
    /// 2.
    Interested,
    /// 3.
    NotInterested,
    /// 4: the sender now has a piece.
    Have(u32),
    /// 5: the sender's pieces (raw; checked against the piece count by the session).
    Bitfield(Bytes),
    /// 6: asks for a block.
    Request(BlockRef),
    /// 7: a block.
    Piece {
        /// Piece index.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// The bytes.
        data: Bytes,
    },
    /// 8: withdraws a request.
    Cancel(BlockRef),
    /// 9: the sender's DHT port.
    Port(u16),
    /// 0x0d (BEP 6): a piece worth fetching from the sender.
    Suggest(u32),
    /// 0x0e (BEP 6): the sender has every piece.
    HaveAll,
    /// 0x0f (BEP 6): the sender has no piece.
    HaveNone,
    /// 0x10 (BEP 6): a request the sender will not serve.
    Reject(BlockRef),
    /// 0x11 (BEP 6): a piece the receiver may request even while choked.
    AllowedFast(u32),
    /// 20 (BEP 10): an extension message; id 0 is the extension handshake.
    Extended {
        /// The extension's id as the receiver assigned it (0: handshake).
        id: u8,
        /// Its payload.
        payload: Bytes,
    },
}

/// A block of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub index: u32,
    /// Offset in the piece.
    pub begin: u32,
    /// Bytes.
    pub length: u32,
}

/// A peer that broke the protocol; the connection ends. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake is not BitTorrent's.
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    /// A length prefix over the limit.
    #[error("a message of {0} bytes (the limit is {MAX_MESSAGE})")]
    TooLong(u32),
    /// A message id we do not know.
    #[error("unknown message id {0}")]
    UnknownId(u8),
    /// A message whose length does not fit its id.
    #[error("message id {id} with a {len}-byte payload")]
    BadLength {
        /// The id.
        id: u8,
        /// Its payload length.
        len: u32,
    },
    /// A block over `MAX_BLOCK` or of zero bytes.
    #[error("a block of {0} bytes")]
    BadBlock(u32),
}

impl WireError {
    /// The stable snake_case code (metric label).
    pub fn code(&self) -> &'static str {
        match self {
            WireError::NotBitTorrent => "not_bittorrent",
            WireError::TooLong(_) => "message_too_long",
            WireError::UnknownId(_) => "unknown_message",
            WireError::BadLength { .. } => "bad_message_length",
            WireError::BadBlock(_) => "bad_block_size",
        }
    }
}

fn block(mut payload: &[u8]) -> Result<BlockRef, WireError> {
    let index = payload.get_u32();
    let begin = payload.get_u32();
    let length = payload.get_u32();
    if length == 0 || length > MAX_BLOCK {
        return Err(WireError::BadBlock(length));
    }
    Ok(BlockRef {
        index,
        begin,
        length,
    })
}

/// Takes whole messages off the front of a receive buffer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decoder;

impl Decoder {
    /// The next message, or `None` until the buffer holds a whole one. The length is
    /// checked as soon as its four bytes arrive.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len > MAX_MESSAGE {
            return Err(WireError::TooLong(len));
        }
        if len == 0 {
            buf.advance(4);
            return Ok(Some(Message::KeepAlive));
        }
        let id = match buf.get(4) {
            Some(id) => *id,
            None => return Ok(None),
        };
        let payload_len = len - 1;
        let fixed = |want: u32| {
            if payload_len == want {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    id,
                    len: payload_len,
                })
            }
        };
        // Check the shape before waiting for the body, so no one can make us buffer a
        // megabyte for a message that could never be valid.
        match id {
            0..=3 | 0x0e | 0x0f => fixed(0)?,
            4 | 0x0d | 0x11 => fixed(4)?,
            6 | 8 | 0x10 => fixed(12)?,
            9 => fixed(2)?,
            7 if !(8..=8 + MAX_BLOCK).contains(&payload_len) => {
                return Err(WireError::BadLength {
                    id,
                    len: payload_len,
                })
            }
            20 if payload_len < 1 => {
                return Err(WireError::BadLength {
                    id,
                    len: payload_len,
                })
            }
            5 | 7 | 20 => {}
            other => return Err(WireError::UnknownId(other)),
        }
        if buf.len() < 4 + len as usize {
            return Ok(None);
        }
        buf.advance(5);
        let mut payload = buf.split_to(payload_len as usize).freeze();
        let message = match id {
            0 => Message::Choke,
            1 => Message::Unchoke,
            2 => Message::Interested,
            3 => Message::NotInterested,
            4 => Message::Have(payload.get_u32()),
            5 => Message::Bitfield(payload),
            6 => Message::Request(block(&payload)?),
            7 => {
                let index = payload.get_u32();
                let begin = payload.get_u32();
                if payload.is_empty() {
                    return Err(WireError::BadBlock(0));
                }
                Message::Piece {
                    index,
                    begin,
                    data: payload,
                }
            }
            8 => Message::Cancel(block(&payload)?),
            9 => Message::Port(payload.get_u16()),
            0x0d => Message::Suggest(payload.get_u32()),
            0x0e => Message::HaveAll,
            0x0f => Message::HaveNone,
            0x10 => Message::Reject(block(&payload)?),
            0x11 => Message::AllowedFast(payload.get_u32()),
            _ => {
                let id = payload.get_u8();
                Message::Extended { id, payload }
            }
        };
        Ok(Some(message))
    }
}

fn put_block(out: &mut BytesMut, id: u8, block: &BlockRef) {
    out.put_u32(13);
    out.put_u8(id);
    out.put_u32(block.index);
    out.put_u32(block.begin);
    out.put_u32(block.length);
}

impl Message {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let bare = |out: &mut BytesMut, id: u8| {
            out.put_u32(1);
            out.put_u8(id);
        };
        let index = |out: &mut BytesMut, id: u8, index: u32| {
            out.put_u32(5);
            out.put_u8(id);
            out.put_u32(index);
        };
        match self {
            Message::KeepAlive => out.put_u32(0),
            Message::Choke => bare(out, 0),
            Message::Unchoke => bare(out, 1),
            Message::Interested => bare(out, 2),
            Message::NotInterested => bare(out, 3),
            Message::Have(i) => index(out, 4, *i),
            Message::Bitfield(bits) => {
                out.put_u32(1 + bits.len() as u32);
                out.put_u8(5);
                out.put_slice(bits);
            }
            Message::Request(b) => put_block(out, 6, b),
            Message::Piece { index, begin, data } => {
                out.put_u32(9 + data.len() as u32);
                out.put_u8(7);
                out.put_u32(*index);
                out.put_u32(*begin);
                out.put_slice(data);
            }
            Message::Cancel(b) => put_block(out, 8, b),
            Message::Port(port) => {
                out.put_u32(3);
                out.put_u8(9);
                out.put_u16(*port);
            }
            Message::Suggest(i) => index(out, 0x0d, *i),
            Message::HaveAll => bare(out, 0x0e),
            Message::HaveNone => bare(out, 0x0f),
            Message::Reject(b) => put_block(out, 0x10, b),
            Message::AllowedFast(i) => index(out, 0x11, *i),
            Message::Extended { id, payload } => {
                out.put_u32(2 + payload.len() as u32);
                out.put_u8(20);
                out.put_u8(*id);
                out.put_slice(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests;
