//! BEP 10 extension handshake and BEP 9 `ut_metadata` messages.
//!
//! Clients in the wild send handshakes with unsorted keys and fields of their own, so
//! decoding is lenient about order and unknown keys but strict about the types and
//! ranges of what we use.

use std::collections::BTreeMap;

use swarmdrop_bencode::{Decoder as BencodeDecoder, Value, Writer};

/// Our id for `ut_metadata` in the handshakes we send.
pub const UT_METADATA: u8 = 1;
/// Our id for `ut_pex`.
pub const UT_PEX: u8 = 2;
/// Metadata travels in 16 KiB pieces (BEP 9).
pub const METADATA_PIECE: usize = 16 * 1024;
/// The largest info dictionary accepted through `ut_metadata`.
pub const MAX_METADATA: u32 = 8 << 20;

/// A malformed extension message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extension message: {0}")]
pub struct ExtensionError(pub String);

fn bad(what: impl Into<String>) -> ExtensionError {
    ExtensionError(what.into())
}

fn lenient() -> BencodeDecoder {
    BencodeDecoder {
        max_depth: 8,
        require_sorted_keys: false,
        max_items: 4096,
    }
}

/// The BEP 10 handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedHandshake {
    /// Extension names to the ids the sender wants to receive them under (0: disabled).
    pub extensions: BTreeMap<String, u8>,
    /// The info dictionary's size, when the sender has it.
    pub metadata_size: Option<u32>,
    /// The sender's listening port.
    pub listen_port: Option<u16>,
    /// Client name and version.
    pub client: Option<String>,
    /// Requests the sender queues without dropping.
    pub request_queue: Option<u32>,
}

impl ExtendedHandshake {
    /// Ours: `ut_metadata` and `ut_pex`, with the metadata size when we have it.
    pub fn ours(metadata_size: Option<u32>, listen_port: Option<u16>, request_queue: u32) -> Self {
        Self {
            extensions: BTreeMap::from([
                ("ut_metadata".to_owned(), UT_METADATA),
                ("ut_pex".to_owned(), UT_PEX),
            ]),
            metadata_size,
            listen_port,
            client: Some(format!("swarmdrop {}", env!("CARGO_PKG_VERSION"))),
            request_queue: Some(request_queue),
        }
    }

    /// The id the sender wants `name` messages under, if it speaks it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied().filter(|id| *id != 0)
    }

    /// The bencoded payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Keys are written in order, so this cannot fail.
        let _ = Writer::new(&mut out).dict(|d| {
            d.key("m")?.dict(|m| {
                for (name, id) in &self.extensions {
                    m.key(name)?.int(i64::from(*id));
                }
                Ok(())
            })?;
            if let Some(size) = self.metadata_size {
                d.key("metadata_size")?.int(i64::from(size));
            }
            if let Some(port) = self.listen_port {
                d.key("p")?.int(i64::from(port));
            }
            if let Some(queue) = self.request_queue {
                d.key("reqq")?.int(i64::from(queue));
            }
            if let Some(client) = &self.client {
                d.key("v")?.str(client);
            }
            Ok(())
        });
        out
    }

    /// Reads a handshake payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let value = lenient()
            .decode(payload)
            .map_err(|e| bad(format!("handshake is not bencode: {e}")))?;
        let dict = value
            .as_dict()
            .ok_or_else(|| bad("handshake is not a dictionary"))?;
        let mut handshake = ExtendedHandshake::default();
        if let Some(m) = dict.get(b"m") {
            let m = m.as_dict().ok_or_else(|| bad("m is not a dictionary"))?;
            for (name, id) in m.entries() {
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let id = id
                    .as_int()
                    .and_then(|i| u8::try_from(i).ok())
                    .ok_or_else(|| bad(format!("extension {name:?} has no id from 0 to 255")))?;
                handshake.extensions.insert(name.to_owned(), id);
            }
        }
        let int = |key: &[u8]| dict.get(key).and_then(Value::as_int);
        if let Some(size) = int(b"metadata_size") {
            let size = u32::try_from(size)
                .ok()
                .filter(|s| (1..=MAX_METADATA).contains(s))
                .ok_or_else(|| bad(format!("metadata_size {size} is out of range")))?;
            handshake.metadata_size = Some(size);
        }
        handshake.listen_port = int(b"p")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        handshake.request_queue = int(b"reqq").and_then(|q| u32::try_from(q).ok());
        handshake.client = dict
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|v| String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned());
        Ok(handshake)
    }
}

/// A BEP 9 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// Asks for piece `n` of the info dictionary.
    Request(u32),
    /// Piece `n`, of an info dictionary of `total_size` bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u32,
        /// The piece's bytes.
        data: Vec<u8>,
    },
    /// The sender will not send piece `n`.
    Reject(u32),
}

/// Pieces of an info dictionary of `size` bytes.
pub fn metadata_pieces(size: u32) -> u32 {
    (size as usize).div_ceil(METADATA_PIECE) as u32
}

impl MetadataMessage {
    /// The payload (after the extended id byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let (kind, piece) = match self {
            MetadataMessage::Request(p) => (0, *p),
            MetadataMessage::Data { piece, .. } => (1, *piece),
            MetadataMessage::Reject(p) => (2, *p),
        };
        let _ = Writer::new(&mut out).dict(|d| {
            d.key("msg_type")?.int(kind);
            d.key("piece")?.int(i64::from(piece));
            if let MetadataMessage::Data { total_size, .. } = self {
                d.key("total_size")?.int(i64::from(*total_size));
            }
            Ok(())
        });
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }

    /// Reads a payload: a dictionary, then for data the piece's bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let (value, used) = lenient()
            .decode_prefix(payload)
            .map_err(|e| bad(format!("ut_metadata is not bencode: {e}")))?;
        let dict = value
            .as_dict()
            .ok_or_else(|| bad("ut_metadata is not a dictionary"))?;
        let int = |key: &[u8]| dict.get(key).and_then(Value::as_int);
        let piece = int(b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p < metadata_pieces(MAX_METADATA))
            .ok_or_else(|| bad("ut_metadata without a valid piece"))?;
        let rest = &payload[used..];
        match int(b"msg_type") {
            Some(0) => Ok(MetadataMessage::Request(piece)),
            Some(2) => Ok(MetadataMessage::Reject(piece)),
            Some(1) => {
                let total_size = int(b"total_size")
                    .and_then(|s| u32::try_from(s).ok())
                    .filter(|s| (1..=MAX_METADATA).contains(s))
                    .ok_or_else(|| bad("ut_metadata data without a valid total_size"))?;
                if piece >= metadata_pieces(total_size) {
                    return Err(bad(format!(
                        "piece {piece} of a {total_size}-byte info dictionary"
                    )));
                }
                let expected =
                    (total_size as usize - piece as usize * METADATA_PIECE).min(METADATA_PIECE);
                if rest.len() != expected {
                    return Err(bad(format!(
                        "piece {piece} carries {} bytes, not {expected}",
                        rest.len()
                    )));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest.to_vec(),
                })
            }
            other => Err(bad(format!("unknown ut_metadata msg_type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_round_trip() {
        let ours = ExtendedHandshake::ours(Some(31_000), Some(6881), 250);
        let decoded = ExtendedHandshake::decode(&ours.encode()).unwrap();
        assert_eq!(decoded, ours);
        assert_eq!(decoded.id_of("ut_metadata"), Some(UT_METADATA));
    }

    #[test]
    fn foreign_handshakes_are_read_leniently_but_typed_strictly() {
        // Unsorted keys and extra fields, as real clients send.
        let theirs = b"d1:v13:qBittorrent 51:md6:ut_pexi0e11:ut_metadatai3ee13:metadata_sizei5000e6:yourip4:\x7f\x00\x00\x01e";
        let decoded = ExtendedHandshake::decode(theirs).unwrap();
        assert_eq!(decoded.id_of("ut_metadata"), Some(3));
        assert_eq!(decoded.id_of("ut_pex"), None, "id 0 means disabled");
        assert_eq!(decoded.metadata_size, Some(5000));
        for bad in [
            &b"le"[..],
            b"d1:m3:abce",
            b"d1:md2:xxi300eee",
            b"d13:metadata_sizei-1ee",
            b"d13:metadata_sizei999999999ee",
        ] {
            assert!(
                ExtendedHandshake::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn metadata_messages_round_trip_and_sizes_are_checked() {
        for message in [
            MetadataMessage::Request(2),
            MetadataMessage::Reject(0),
            MetadataMessage::Data {
                piece: 1,
                total_size: 20_000,
                data: vec![7; 20_000 - 16_384],
            },
        ] {
            assert_eq!(MetadataMessage::decode(&message.encode()).unwrap(), message);
        }
        let short = MetadataMessage::Data {
            piece: 0,
            total_size: 20_000,
            data: vec![7; 100],
        }
        .encode();
        assert!(MetadataMessage::decode(&short).is_err());
        let past = MetadataMessage::Data {
            piece: 5,
            total_size: 20_000,
            data: vec![],
        }
        .encode();
        assert!(MetadataMessage::decode(&past).is_err());
        assert!(MetadataMessage::decode(b"d8:msg_typei9e5:piecei0ee").is_err());
    }
}
