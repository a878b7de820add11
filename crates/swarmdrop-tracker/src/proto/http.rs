//! The HTTP tracker protocol (BEP 3 announce, BEP 23 compact peers, BEP 7 `peers6`,
//! BEP 48 scrape): parse a query string, write a bencoded answer.
//!
//! `info_hash` and `peer_id` are 20 raw bytes percent-encoded into the query, so the
//! decoder works on bytes, never on text: `%80` is the byte 0x80, not a character.

use std::net::{IpAddr, SocketAddr};

use swarmdrop_bencode::{EncodeError, Writer};
use swarmdrop_manifest::InfoHash;

use super::udp::{AnnounceEvent, ScrapeStats};

/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most info hashes in one scrape.
pub const MAX_SCRAPE_HASHES: usize = 64;

/// A parsed HTTP announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnnounce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The client's peer id.
    pub peer_id: [u8; 20],
    /// Listening port.
    pub port: u16,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Event.
    pub event: AnnounceEvent,
    /// Peers wanted, if given.
    pub numwant: Option<u32>,
}

/// A query the tracker refuses; the text goes into `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Decodes `%XX` and `+` into bytes.
pub fn percent_decode(input: &[u8]) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .ok_or_else(|| QueryError("truncated %-escape".into()))?;
                let text =
                    std::str::from_utf8(hex).map_err(|_| QueryError("bad %-escape".into()))?;
                out.push(
                    u8::from_str_radix(text, 16)
                        .map_err(|_| QueryError(format!("bad %-escape %{text}")))?,
                );
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// One decoded `key=value` pair.
type Pair = (Vec<u8>, Vec<u8>);

/// The query's `key=value` pairs, percent-decoded.
fn pairs(query: &[u8]) -> Result<Vec<Pair>, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError(format!(
            "query longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    query
        .split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = match part.iter().position(|b| *b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &b""[..]),
            };
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn twenty(name: &str, value: &[u8]) -> Result<[u8; 20], QueryError> {
    <[u8; 20]>::try_from(value)
        .map_err(|_| QueryError(format!("{name} must be 20 bytes, got {}", value.len())))
}

fn number<T: std::str::FromStr>(name: &str, value: &[u8]) -> Result<T, QueryError> {
    std::str::from_utf8(value)
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| QueryError(format!("{name} is not a number")))
}

/// Parses an announce query.
pub fn parse_announce(query: &[u8]) -> Result<HttpAnnounce, QueryError> {
    let (mut info_hash, mut peer_id, mut port) = (None, None, None);
    let (mut uploaded, mut downloaded, mut left) = (0, 0, None);
    let (mut event, mut numwant) = (AnnounceEvent::None, None);
    for (key, value) in pairs(query)? {
        match key.as_slice() {
            b"info_hash" => info_hash = Some(InfoHash(twenty("info_hash", &value)?)),
            b"peer_id" => peer_id = Some(twenty("peer_id", &value)?),
            b"port" => port = Some(number::<u16>("port", &value)?),
            b"uploaded" => uploaded = number("uploaded", &value)?,
            b"downloaded" => downloaded = number("downloaded", &value)?,
            b"left" => left = Some(number("left", &value)?),
            b"numwant" => numwant = Some(number("numwant", &value)?),
            b"event" => {
                event = match value.as_slice() {
                    b"started" => AnnounceEvent::Started,
                    b"completed" => AnnounceEvent::Completed,
                    b"stopped" => AnnounceEvent::Stopped,
                    b"" | b"empty" | b"paused" => AnnounceEvent::None,
                    _ => {
                        return Err(QueryError(
                            "event is not started, completed, stopped or empty".into(),
                        ))
                    }
                }
            }
            // compact, no_peer_id, key, corrupt, supportcrypto, ip (ignored: we use the
            // source address, so nobody can announce someone else).
            _ => {}
        }
    }
    Ok(HttpAnnounce {
        info_hash: info_hash.ok_or_else(|| QueryError("info_hash is missing".into()))?,
        peer_id: peer_id.ok_or_else(|| QueryError("peer_id is missing".into()))?,
        port: port
            .filter(|p| *p != 0)
            .ok_or_else(|| QueryError("port is missing or 0".into()))?,
        uploaded,
        downloaded,
        left: left.ok_or_else(|| QueryError("left is missing".into()))?,
        event,
        numwant,
    })
}

/// Parses a scrape query (`info_hash` repeated; none means "all", which we refuse).
pub fn parse_scrape(query: &[u8]) -> Result<Vec<InfoHash>, QueryError> {
    let hashes: Vec<InfoHash> = pairs(query)?
        .into_iter()
        .filter(|(key, _)| key == b"info_hash")
        .map(|(_, value)| twenty("info_hash", &value).map(InfoHash))
        .collect::<Result<_, _>>()?;
    if hashes.is_empty() {
        return Err(QueryError(
            "scrape needs at least one info_hash (full scrapes are off)".into(),
        ));
    }
    if hashes.len() > MAX_SCRAPE_HASHES {
        return Err(QueryError(format!(
            "more than {MAX_SCRAPE_HASHES} info hashes in one scrape"
        )));
    }
    Ok(hashes)
}

/// An announce answer: counts and peers, compact (BEP 23) and IPv6 (BEP 7).
pub fn write_announce(
    out: &mut Vec<u8>,
    interval: u32,
    min_interval: u32,
    seeders: u32,
    leechers: u32,
    peers: &[SocketAddr],
    warning: Option<&str>,
) -> Result<(), EncodeError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for peer in peers {
        match peer.ip() {
            IpAddr::V4(ip) => {
                v4.extend_from_slice(&ip.octets());
                v4.extend_from_slice(&peer.port().to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v6.extend_from_slice(&ip.octets());
                v6.extend_from_slice(&peer.port().to_be_bytes());
            }
        }
    }
    Writer::new(out).dict(|d| {
        d.key("complete")?.int(i64::from(seeders));
        d.key("incomplete")?.int(i64::from(leechers));
        d.key("interval")?.int(i64::from(interval));
        d.key("min interval")?.int(i64::from(min_interval));
        d.key("peers")?.bytes(&v4);
        if !v6.is_empty() {
            d.key("peers6")?.bytes(&v6);
        }
        if let Some(warning) = warning {
            d.key("warning message")?.str(warning);
        }
        Ok(())
    })
}

/// A scrape answer (BEP 48).
pub fn write_scrape(
    out: &mut Vec<u8>,
    swarms: &[(InfoHash, ScrapeStats)],
) -> Result<(), EncodeError> {
    let mut sorted: Vec<&(InfoHash, ScrapeStats)> = swarms.iter().collect();
    sorted.sort_by_key(|(hash, _)| *hash);
    sorted.dedup_by_key(|(hash, _)| *hash);
    Writer::new(out).dict(|d| {
        d.key("files")?.dict(|files| {
            for (hash, stats) in &sorted {
                files.key_bytes(&hash.0)?.dict(|f| {
                    f.key("complete")?.int(i64::from(stats.seeders));
                    f.key("downloaded")?.int(i64::from(stats.completed));
                    f.key("incomplete")?.int(i64::from(stats.leechers));
                    Ok(())
                })?;
            }
            Ok(())
        })
    })
}

/// A refusal: `d14:failure reason…e`.
pub fn write_failure(out: &mut Vec<u8>, reason: &str) {
    // One string key: cannot be out of order.
    let _ = Writer::new(out).dict(|d| {
        d.key("failure reason")?.str(reason);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use swarmdrop_bencode::decode;

    fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn binary_info_hash_decodes_exactly() {
        let hash: Vec<u8> = (0u8..20)
            .map(|i| i.wrapping_mul(37).wrapping_add(0x80))
            .collect();
        let query = format!("info_hash={}&peer_id=-SD0001-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=100&event=started&compact=1&numwant=20", encode(&hash));
        let a = parse_announce(query.as_bytes()).unwrap();
        assert_eq!(a.info_hash.0.to_vec(), hash);
        assert_eq!(
            (a.port, a.left, a.event, a.numwant),
            (6881, 100, AnnounceEvent::Started, Some(20))
        );
        // Unreserved characters may appear literally.
        let mixed = format!(
            "info_hash=abcdefghij{}&peer_id=12345678901234567890&port=1&left=0",
            encode(b"klmnopqrst")
        );
        assert_eq!(
            &parse_announce(mixed.as_bytes()).unwrap().info_hash.0,
            b"abcdefghijklmnopqrst"
        );
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let ok = "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0";
        for (from, to, needle) in [
            (
                "info_hash=aaaaaaaaaaaaaaaaaaaa",
                "info_hash=aaaa",
                "info_hash must be 20 bytes",
            ),
            ("&port=1", "", "port is missing"),
            ("left=0", "left=lots", "left is not a number"),
            ("left=0", "left=-1", "left is not a number"),
            ("port=1", "port=70000", "port is not a number"),
            (
                "info_hash=aaaaaaaaaaaaaaaaaaaa",
                "info_hash=%zz",
                "bad %-escape",
            ),
            (
                "info_hash=aaaaaaaaaaaaaaaaaaaa",
                "info_hash=aaa%4",
                "truncated",
            ),
        ] {
            let err = parse_announce(ok.replace(from, to).as_bytes()).unwrap_err();
            assert!(err.0.contains(needle), "{needle}: {err}");
        }
        assert!(parse_announce(&vec![b'a'; MAX_QUERY_BYTES + 1]).is_err());
    }

    #[test]
    fn answers_decode_as_bencode() {
        let mut out = Vec::new();
        let peers = [
            "127.0.0.2:6881".parse().unwrap(),
            "[::1]:6882".parse().unwrap(),
        ];
        write_announce(&mut out, 1800, 60, 1, 2, &peers, None).unwrap();
        let value = decode(&out).unwrap();
        let dict = value.as_dict().unwrap();
        assert_eq!(
            dict.get(b"peers").unwrap().as_bytes().unwrap(),
            &[127, 0, 0, 2, 0x1a, 0xe1]
        );
        assert_eq!(dict.get(b"peers6").unwrap().as_bytes().unwrap().len(), 18);
        out.clear();
        write_scrape(
            &mut out,
            &[
                (
                    InfoHash([2; 20]),
                    ScrapeStats {
                        seeders: 1,
                        completed: 5,
                        leechers: 2,
                    },
                ),
                (InfoHash([1; 20]), ScrapeStats::default()),
            ],
        )
        .unwrap();
        assert!(decode(&out).is_ok());
        out.clear();
        write_failure(&mut out, "unknown infohash");
        assert_eq!(out, b"d14:failure reason16:unknown infohashe");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(query in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_announce(&query);
            let _ = parse_scrape(&query);
        }

        #[test]
        fn any_hash_round_trips(hash in any::<[u8; 20]>(), port in 1u16..) {
            let query = format!("info_hash={}&peer_id={}&port={port}&left=5", encode(&hash), encode(&[7; 20]));
            prop_assert_eq!(parse_announce(query.as_bytes()).unwrap().info_hash.0, hash);
        }
    }
}
