//! Magnet links (BEP 9): parse one, then fetch the info dictionary from peers with
//! `ut_metadata` and check it against the info hash before anything trusts it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sha1::{Digest as _, Sha1};
use swarmdrop_wire::codec::{Decoder, Handshake, Message};
use swarmdrop_wire::extension::{
    metadata_pieces, ExtendedHandshake, MetadataMessage, MAX_METADATA, METADATA_PIECE, UT_METADATA,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::tracker::{announce, Announce};

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// `xt=urn:btih:…`.
    pub info_hash: [u8; 20],
    /// `dn`.
    pub name: Option<String>,
    /// `tr` (every one).
    pub trackers: Vec<String>,
    /// `x.pe` peer addresses.
    pub peers: Vec<SocketAddr>,
}

/// A magnet link we cannot use, or metadata we could not get.
#[derive(Debug, thiserror::Error)]
pub enum MagnetError {
    /// The link is malformed.
    #[error("magnet link: {0}")]
    Malformed(String),
    /// No peer gave the metadata.
    #[error("no peer gave the torrent's metadata: {0}")]
    NoMetadata(String),
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match (bytes[at], bytes.get(at + 1..at + 3)) {
            (b'%', Some(hex)) => match u8::from_str_radix(&String::from_utf8_lossy(hex), 16) {
                Ok(byte) => {
                    out.push(byte);
                    at += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base32(text: &str) -> Option<[u8; 20]> {
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::with_capacity(20);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        bits = (bits << 5) | u64::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out.try_into().ok()
}

/// Parses `magnet:?xt=urn:btih:<40 hex or 32 base32>&dn=…&tr=…&x.pe=…`.
pub fn parse_magnet(text: &str) -> Result<Magnet, MagnetError> {
    let bad = |why: &str| MagnetError::Malformed(why.to_owned());
    let query = text
        .strip_prefix("magnet:?")
        .ok_or_else(|| bad("does not start with magnet:?"))?;
    let (mut info_hash, mut name, mut trackers, mut peers) = (None, None, Vec::new(), Vec::new());
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "xt" => {
                let Some(hash) = value.strip_prefix("urn:btih:") else {
                    continue;
                };
                let parsed = match hash.len() {
                    40 => {
                        let mut out = [0u8; 20];
                        hex::decode_to_slice(hash, &mut out).ok().map(|()| out)
                    }
                    32 => base32(hash),
                    _ => None,
                };
                info_hash =
                    Some(parsed.ok_or_else(|| bad("xt is not a 40-hex or 32-base32 info hash"))?);
            }
            "dn" => name = Some(value),
            "tr" => trackers.push(value),
            "x.pe" => {
                if let Ok(addr) = value.parse() {
                    peers.push(addr);
                }
            }
            _ => {}
        }
    }
    Ok(Magnet {
        info_hash: info_hash.ok_or_else(|| bad("no xt=urn:btih: info hash"))?,
        name,
        trackers,
        peers,
    })
}

/// Asks one peer for the metadata.
async fn from_peer(
    addr: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
) -> Result<Bytes, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    Handshake::new(info_hash, peer_id).encode(&mut out);
    Message::Extended {
        id: 0,
        payload: Bytes::from(ExtendedHandshake::ours(None, None, 250).encode()),
    }
    .encode(&mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut received = BytesMut::new();
    let mut handshaken = false;
    let mut pieces: Vec<Option<Vec<u8>>> = Vec::new();
    let mut size = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the peer closed the connection".into());
        }
        received.extend_from_slice(&buf[..n]);
        if !handshaken {
            match Handshake::decode(&mut received).map_err(|e| e.to_string())? {
                None => continue,
                Some(h) if h.info_hash != info_hash => return Err("wrong info hash".into()),
                Some(h) if !h.extended() => return Err("no extension protocol".into()),
                Some(_) => handshaken = true,
            }
        }
        while let Some(message) = Decoder.decode(&mut received).map_err(|e| e.to_string())? {
            let Message::Extended { id, payload } = message else {
                continue;
            };
            if id == 0 {
                let theirs = ExtendedHandshake::decode(&payload).map_err(|e| e.to_string())?;
                let their_id = theirs.id_of("ut_metadata").ok_or("no ut_metadata")?;
                size = theirs.metadata_size.ok_or("no metadata_size")?;
                if size > MAX_METADATA {
                    return Err(format!("metadata of {size} bytes"));
                }
                pieces = vec![None; metadata_pieces(size) as usize];
                let mut requests = BytesMut::new();
                for piece in 0..metadata_pieces(size) {
                    Message::Extended {
                        id: their_id,
                        payload: Bytes::from(MetadataMessage::Request(piece).encode()),
                    }
                    .encode(&mut requests);
                }
                stream
                    .write_all(&requests)
                    .await
                    .map_err(|e| e.to_string())?;
            } else if id == UT_METADATA {
                match MetadataMessage::decode(&payload).map_err(|e| e.to_string())? {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } if total_size == size => {
                        if let Some(slot) = pieces.get_mut(piece as usize) {
                            *slot = Some(data);
                        }
                    }
                    MetadataMessage::Reject(piece) => {
                        return Err(format!("rejected piece {piece}"))
                    }
                    _ => {}
                }
                if !pieces.is_empty() && pieces.iter().all(Option::is_some) {
                    let info: Vec<u8> = pieces.iter().flatten().flatten().copied().collect();
                    if <[u8; 20]>::from(Sha1::digest(&info)) != info_hash {
                        return Err("metadata does not hash to the info hash".into());
                    }
                    debug_assert!(info.len() <= size as usize + METADATA_PIECE);
                    return Ok(Bytes::from(info));
                }
            }
        }
    }
}

/// Fetches the info dictionary from the magnet's peers, `extra` peers, and whoever its
/// trackers (and `extra_trackers`) name, one peer at a time, each within `per_peer`.
pub async fn fetch_metadata(
    magnet: &Magnet,
    extra: &[SocketAddr],
    extra_trackers: &[String],
    peer_id: [u8; 20],
    per_peer: Duration,
) -> Result<Bytes, MagnetError> {
    let mut peers: Vec<SocketAddr> = magnet.peers.iter().chain(extra).copied().collect();
    for url in magnet.trackers.iter().chain(extra_trackers) {
        let a = Announce {
            info_hash: &magnet.info_hash,
            peer_id: &peer_id,
            port: 0,
            left: 1,
            event: None,
            // Port 0: this announce only asks; nobody should be handed our address.
            source: None,
        };
        if let Ok(found) = announce(url, a).await {
            peers.extend(found);
        }
    }
    peers.dedup();
    let mut last = String::from("no peers to ask");
    for addr in peers {
        match tokio::time::timeout(per_peer, from_peer(addr, magnet.info_hash, peer_id)).await {
            Ok(Ok(info)) => return Ok(info),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no metadata within {per_peer:?}"),
        }
    }
    Err(MagnetError::NoMetadata(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnets_parse() {
        let m = parse_magnet(
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=patch%201.bin&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&x.pe=127.0.0.1:6881",
        )
        .unwrap();
        assert_eq!(m.info_hash[0], 0x01);
        assert_eq!(m.name.as_deref(), Some("patch 1.bin"));
        assert_eq!(m.trackers, vec!["http://127.0.0.1:6969/announce"]);
        assert_eq!(m.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let b32 = parse_magnet("magnet:?xt=urn:btih:AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH").unwrap();
        assert_eq!(b32.info_hash[..3], [0x01, 0x23, 0x45]);
        // Multi-byte characters where hex digits should be (found by the fuzzer).
        let multibyte = format!("magnet:?xt=urn:btih:d\u{2cc}{}", "U".repeat(37));
        assert!(parse_magnet(&multibyte).is_err());
        for bad in ["http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:zz"] {
            assert!(parse_magnet(bad).is_err(), "{bad}");
        }
    }
}
