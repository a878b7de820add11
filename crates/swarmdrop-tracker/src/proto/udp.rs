//! BEP 15, the UDP tracker protocol, with BEP 41 URL data: parse requests from a
//! datagram, write responses into the caller's buffer.
//!
//! A request that cannot be parsed is either worth an error reply (we read its
//! transaction id, so the client can match the error) or silently dropped (too short to
//! have one, or not a request at all): answering junk would make us an amplifier.

use std::net::{IpAddr, SocketAddr};

use swarmdrop_manifest::InfoHash;

/// The magic `protocol_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Most info hashes in one scrape (what fits a 1,500-byte reply).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Longest BEP 41 URL data we keep.
pub const MAX_URL_DATA: usize = 1024;

/// What the peer says it is doing (BEP 15 event field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnounceEvent {
    /// A regular update.
    None,
    /// Finished downloading.
    Completed,
    /// Just started.
    Started,
    /// Leaving the swarm.
    Stopped,
}

impl AnnounceEvent {
    /// The label used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::None => "none",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Started => "started",
            AnnounceEvent::Stopped => "stopped",
        }
    }
}

/// A parsed UDP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    /// Get a connection id.
    Connect {
        /// Echoed back.
        transaction_id: u32,
    },
    /// Announce.
    Announce(UdpAnnounce),
    /// Scrape.
    Scrape {
        /// From a connect response.
        connection_id: u64,
        /// Echoed back.
        transaction_id: u32,
        /// Up to [`MAX_SCRAPE_HASHES`].
        info_hashes: Vec<InfoHash>,
    },
}

/// A UDP announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    /// From a connect response.
    pub connection_id: u64,
    /// Echoed back.
    pub transaction_id: u32,
    /// The swarm.
    pub info_hash: InfoHash,
    /// The client's peer id.
    pub peer_id: [u8; 20],
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left (0: seeder).
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Event.
    pub event: AnnounceEvent,
    /// Peers wanted (negative: default).
    pub num_want: i32,
    /// The client's listening port.
    pub port: u16,
    /// BEP 41 URL data, concatenated (`/announce/<token>`).
    pub url_data: String,
}

/// A request we could not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpParseError {
    /// Worth an error reply to this transaction.
    #[error("{message}")]
    Sendable {
        /// The request's transaction id.
        transaction_id: u32,
        /// What is wrong.
        message: &'static str,
    },
    /// Not worth answering.
    #[error("{0}")]
    Unsendable(&'static str),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn hash_at(b: &[u8], at: usize) -> [u8; 20] {
    let mut x = [0u8; 20];
    x.copy_from_slice(&b[at..at + 20]);
    x
}

/// Parses one datagram.
pub fn parse_request(b: &[u8]) -> Result<UdpRequest, UdpParseError> {
    if b.len() < 16 {
        return Err(UdpParseError::Unsendable("shorter than any request"));
    }
    let connection_id = u64_at(b, 0);
    let action = u32_at(b, 8);
    let transaction_id = u32_at(b, 12);
    let sendable = |message| UdpParseError::Sendable {
        transaction_id,
        message,
    };
    match action {
        0 => {
            if connection_id != PROTOCOL_ID {
                return Err(UdpParseError::Unsendable("connect without the protocol id"));
            }
            Ok(UdpRequest::Connect { transaction_id })
        }
        1 => {
            if b.len() < 98 {
                return Err(sendable("announce shorter than 98 bytes"));
            }
            let event = match u32_at(b, 80) {
                0 => AnnounceEvent::None,
                1 => AnnounceEvent::Completed,
                2 => AnnounceEvent::Started,
                3 => AnnounceEvent::Stopped,
                _ => return Err(sendable("unknown announce event")),
            };
            let url_data = parse_options(&b[98..]).map_err(sendable)?;
            Ok(UdpRequest::Announce(UdpAnnounce {
                connection_id,
                transaction_id,
                info_hash: InfoHash(hash_at(b, 16)),
                peer_id: hash_at(b, 36),
                downloaded: u64_at(b, 56),
                left: u64_at(b, 64),
                uploaded: u64_at(b, 72),
                event,
                num_want: u32_at(b, 92) as i32,
                port: u16::from_be_bytes([b[96], b[97]]),
                url_data,
            }))
        }
        2 => {
            let body = &b[16..];
            if body.is_empty() || !body.len().is_multiple_of(20) {
                return Err(sendable("scrape needs whole 20-byte info hashes"));
            }
            if body.len() / 20 > MAX_SCRAPE_HASHES {
                return Err(sendable("too many info hashes in one scrape"));
            }
            let info_hashes = body
                .chunks_exact(20)
                .map(|c| InfoHash(hash_at(c, 0)))
                .collect();
            Ok(UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            })
        }
        _ => Err(sendable("unknown action")),
    }
}

/// BEP 41 options after an announce: 0 ends, 1 is padding, 2 carries URL data.
fn parse_options(mut b: &[u8]) -> Result<String, &'static str> {
    let mut url = Vec::new();
    while let Some((&kind, rest)) = b.split_first() {
        match kind {
            0 => break,
            1 => b = rest,
            2 => {
                let (&len, rest) = rest
                    .split_first()
                    .ok_or("URL data option without a length")?;
                let data = rest
                    .get(..usize::from(len))
                    .ok_or("URL data option longer than the packet")?;
                if url.len() + data.len() > MAX_URL_DATA {
                    return Err("URL data longer than 1 KiB");
                }
                url.extend_from_slice(data);
                b = &rest[usize::from(len)..];
            }
            _ => return Err("unknown announce option"),
        }
    }
    String::from_utf8(url).map_err(|_| "URL data is not UTF-8")
}

/// Writes a connect response.
pub fn write_connect(out: &mut Vec<u8>, transaction_id: u32, connection_id: u64) {
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&connection_id.to_be_bytes());
}

/// Writes an announce response; peers of the request's address family only.
pub fn write_announce(
    out: &mut Vec<u8>,
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
    peers: &[SocketAddr],
) {
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
    for peer in peers {
        match peer.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&peer.port().to_be_bytes());
    }
}

/// Scrape numbers of one swarm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Seeders now.
    pub seeders: u32,
    /// Completed downloads ever.
    pub completed: u32,
    /// Leechers now.
    pub leechers: u32,
}

/// Writes a scrape response.
pub fn write_scrape(out: &mut Vec<u8>, transaction_id: u32, stats: &[ScrapeStats]) {
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for s in stats {
        out.extend_from_slice(&s.seeders.to_be_bytes());
        out.extend_from_slice(&s.completed.to_be_bytes());
        out.extend_from_slice(&s.leechers.to_be_bytes());
    }
}

/// Writes an error response.
pub fn write_error(out: &mut Vec<u8>, transaction_id: u32, message: &str) {
    out.extend_from_slice(&3u32.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announce_bytes(url: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&99u32.to_be_bytes());
        b.extend_from_slice(&[0xab; 20]);
        b.extend_from_slice(&[0xcd; 20]);
        b.extend_from_slice(&1u64.to_be_bytes());
        b.extend_from_slice(&2u64.to_be_bytes());
        b.extend_from_slice(&3u64.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&6881u16.to_be_bytes());
        b.extend_from_slice(url);
        b
    }

    #[test]
    fn parses_connect_announce_scrape() {
        let mut connect = PROTOCOL_ID.to_be_bytes().to_vec();
        connect.extend_from_slice(&0u32.to_be_bytes());
        connect.extend_from_slice(&42u32.to_be_bytes());
        assert_eq!(
            parse_request(&connect).unwrap(),
            UdpRequest::Connect { transaction_id: 42 }
        );

        // URL data split over two options with padding, as BEP 41 allows.
        let request =
            parse_request(&announce_bytes(b"\x02\x09/announce\x01\x02\x04/tok\x00")).unwrap();
        let UdpRequest::Announce(a) = request else {
            panic!("not an announce")
        };
        assert_eq!(
            (a.left, a.event, a.num_want, a.port),
            (2, AnnounceEvent::Started, -1, 6881)
        );
        assert_eq!(a.url_data, "/announce/tok");

        let mut scrape = 7u64.to_be_bytes().to_vec();
        scrape.extend_from_slice(&2u32.to_be_bytes());
        scrape.extend_from_slice(&1u32.to_be_bytes());
        scrape.extend_from_slice(&[1; 40]);
        assert!(
            matches!(parse_request(&scrape).unwrap(), UdpRequest::Scrape { info_hashes, .. } if info_hashes.len() == 2)
        );
    }

    #[test]
    fn bad_requests_are_sorted_into_answer_or_drop() {
        assert!(matches!(
            parse_request(&[0; 15]),
            Err(UdpParseError::Unsendable(_))
        ));
        let mut connect = 1u64.to_be_bytes().to_vec();
        connect.extend_from_slice(&[0; 8]);
        assert!(matches!(
            parse_request(&connect),
            Err(UdpParseError::Unsendable(_))
        ));
        let truncated = &announce_bytes(b"")[..60];
        assert!(matches!(
            parse_request(truncated),
            Err(UdpParseError::Sendable {
                transaction_id: 99,
                ..
            })
        ));
        assert!(matches!(
            parse_request(&announce_bytes(b"\x02\x50/a")),
            Err(UdpParseError::Sendable { .. })
        ));
        assert!(matches!(
            parse_request(&announce_bytes(b"\x07")),
            Err(UdpParseError::Sendable { .. })
        ));
    }

    #[test]
    fn responses_have_the_bep15_layout() {
        let mut out = Vec::new();
        write_announce(
            &mut out,
            5,
            1800,
            2,
            3,
            &["127.0.0.2:6881".parse().unwrap()],
        );
        assert_eq!(out.len(), 20 + 6);
        assert_eq!(&out[20..], &[127, 0, 0, 2, 0x1a, 0xe1]);
        out.clear();
        write_scrape(
            &mut out,
            5,
            &[ScrapeStats {
                seeders: 1,
                completed: 2,
                leechers: 3,
            }],
        );
        assert_eq!(out.len(), 8 + 12);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn announce_fields_round_trip(url in "[/a-zA-Z0-9._-]{0,300}") {
            let mut options = Vec::new();
            for chunk in url.as_bytes().chunks(255) {
                options.push(2u8);
                options.push(chunk.len() as u8);
                options.extend_from_slice(chunk);
            }
            let parsed = parse_request(&announce_bytes(&options)).unwrap();
            prop_assert!(matches!(parsed, UdpRequest::Announce(a) if a.url_data == url));
        }
    }
}
