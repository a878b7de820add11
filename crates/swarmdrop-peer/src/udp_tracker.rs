//! Announcing to UDP trackers (BEP 15): a connect exchange for a connection id, then the
//! 98-byte announce. The packet codec is plain functions over byte slices (tested without
//! sockets); [`announce_udp`] is the thin shell that sends them with retries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::tracker::{Announce, AnnounceError};

const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_ERROR: u32 = 3;
/// Attempts per exchange; BEP 15's 15·2ⁿ s back-off is for the open internet, a drop's
/// tracker answers in milliseconds or is down.
const ATTEMPTS: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_secs(2);

/// The connect request.
pub fn connect_request(transaction_id: u32) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    packet[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    packet[12..].copy_from_slice(&transaction_id.to_be_bytes());
    packet
}

/// Why a UDP tracker's answer was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpAnswerError {
    /// Too short for its action, or an unknown action.
    #[error("a malformed answer of {0} bytes")]
    Malformed(usize),
    /// An answer to another request (ignored; keep waiting).
    #[error("an answer to another transaction")]
    OtherTransaction,
    /// The tracker's error message.
    #[error("{0}")]
    Refused(String),
}

fn header(answer: &[u8], transaction_id: u32, action: u32) -> Result<(), UdpAnswerError> {
    if answer.len() < 8 {
        return Err(UdpAnswerError::Malformed(answer.len()));
    }
    let got_action = u32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
    let got_transaction = u32::from_be_bytes([answer[4], answer[5], answer[6], answer[7]]);
    if got_transaction != transaction_id {
        return Err(UdpAnswerError::OtherTransaction);
    }
    if got_action == ACTION_ERROR {
        let message = String::from_utf8_lossy(&answer[8..answer.len().min(8 + 256)]);
        return Err(UdpAnswerError::Refused(message.into_owned()));
    }
    if got_action != action {
        return Err(UdpAnswerError::Malformed(answer.len()));
    }
    Ok(())
}

/// The connection id of a connect answer.
pub fn parse_connect(answer: &[u8], transaction_id: u32) -> Result<u64, UdpAnswerError> {
    header(answer, transaction_id, ACTION_CONNECT)?;
    let id = answer
        .get(8..16)
        .ok_or(UdpAnswerError::Malformed(answer.len()))?;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(id);
    Ok(u64::from_be_bytes(bytes))
}

/// The announce request (event: none, completed, started or stopped).
pub fn announce_request(
    connection_id: u64,
    transaction_id: u32,
    a: &Announce<'_>,
    key: u32,
) -> [u8; 98] {
    let event: u32 = match a.event {
        Some("completed") => 1,
        Some("started") => 2,
        Some("stopped") => 3,
        _ => 0,
    };
    let mut packet = [0u8; 98];
    packet[..8].copy_from_slice(&connection_id.to_be_bytes());
    packet[8..12].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    packet[12..16].copy_from_slice(&transaction_id.to_be_bytes());
    packet[16..36].copy_from_slice(a.info_hash);
    packet[36..56].copy_from_slice(a.peer_id);
    // downloaded (56..64) and uploaded (72..80) stay 0.
    packet[64..72].copy_from_slice(&a.left.to_be_bytes());
    packet[80..84].copy_from_slice(&event.to_be_bytes());
    // IP 0: the sender's address.
    packet[88..92].copy_from_slice(&key.to_be_bytes());
    packet[92..96].copy_from_slice(&80i32.to_be_bytes());
    packet[96..98].copy_from_slice(&a.port.to_be_bytes());
    packet
}

/// The peers of an announce answer: 6-byte entries when asked over IPv4, 18-byte entries
/// over IPv6 (BEP 15's IPv6 extension).
pub fn parse_announce(
    answer: &[u8],
    transaction_id: u32,
    over_ipv6: bool,
) -> Result<Vec<SocketAddr>, UdpAnswerError> {
    header(answer, transaction_id, ACTION_ANNOUNCE)?;
    if answer.len() < 20 {
        return Err(UdpAnswerError::Malformed(answer.len()));
    }
    let entries = &answer[20..];
    let peers = if over_ipv6 {
        entries
            .chunks_exact(18)
            .map(|c| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&c[..16]);
                SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(octets)),
                    u16::from_be_bytes([c[16], c[17]]),
                )
            })
            .collect()
    } else {
        entries
            .chunks_exact(6)
            .map(|c| {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                    u16::from_be_bytes([c[4], c[5]]),
                )
            })
            .collect()
    };
    Ok(peers)
}

/// The `host:port` of a `udp://host:port[/path]` URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("udp://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::getrandom(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// Sends `packet` until an answer to `transaction_id` arrives, waiting 2, 4 and 8 s.
async fn exchange<T>(
    socket: &tokio::net::UdpSocket,
    packet: &[u8],
    transaction_id: u32,
    parse: impl Fn(&[u8], u32) -> Result<T, UdpAnswerError>,
    url: &str,
) -> Result<T, AnnounceError> {
    let refused = |reason: String| AnnounceError::Refused {
        url: url.to_owned(),
        reason,
    };
    let mut buf = vec![0u8; 2048];
    let mut wait = FIRST_WAIT;
    for _ in 0..ATTEMPTS {
        socket
            .send(packet)
            .await
            .map_err(|e| refused(format!("sending: {e}")))?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
            let Ok(received) = received else { break };
            let n = received.map_err(|e| refused(format!("receiving: {e}")))?;
            match parse(&buf[..n], transaction_id) {
                Ok(value) => return Ok(value),
                Err(UdpAnswerError::OtherTransaction) => continue,
                Err(e) => return Err(refused(e.to_string())),
            }
        }
        wait *= 2;
    }
    Err(refused(format!("no answer after {ATTEMPTS} attempts")))
}

/// Announces to a `udp://` tracker and returns the peers it gave.
pub async fn announce_udp(url: &str, a: Announce<'_>) -> Result<Vec<SocketAddr>, AnnounceError> {
    let refused = |reason: String| AnnounceError::Refused {
        url: url.to_owned(),
        reason,
    };
    let authority = authority(url).ok_or_else(|| refused("not a udp://host:port URL".into()))?;
    let target = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| refused(format!("resolving {authority}: {e}")))?
        .next()
        .ok_or_else(|| refused(format!("{authority} resolves to nothing")))?;
    let local: SocketAddr = match a.source {
        Some(source) if source.is_ipv6() == target.is_ipv6() => (source, 0).into(),
        _ if target.is_ipv6() => (Ipv6Addr::UNSPECIFIED, 0).into(),
        _ => (Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| refused(format!("binding a UDP socket: {e}")))?;
    socket
        .connect(target)
        .await
        .map_err(|e| refused(format!("connecting to {target}: {e}")))?;
    let transaction = random_u32();
    let connection_id = exchange(
        &socket,
        &connect_request(transaction),
        transaction,
        parse_connect,
        url,
    )
    .await?;
    let transaction = random_u32();
    let packet = announce_request(connection_id, transaction, &a, random_u32());
    let over_ipv6 = target.is_ipv6();
    exchange(
        &socket,
        &packet,
        transaction,
        |answer, id| parse_announce(answer, id, over_ipv6),
        url,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANNOUNCE: Announce<'static> = Announce {
        info_hash: &[1; 20],
        peer_id: &[2; 20],
        port: 6881,
        left: 1234,
        event: Some("started"),
        source: None,
    };

    #[test]
    fn connect_round_trip() {
        let request = connect_request(77);
        assert_eq!(&request[..8], &PROTOCOL_ID.to_be_bytes());
        let mut answer = vec![0, 0, 0, 0, 0, 0, 0, 77];
        answer.extend_from_slice(&0xdead_beef_u64.to_be_bytes());
        assert_eq!(parse_connect(&answer, 77), Ok(0xdead_beef));
        assert_eq!(
            parse_connect(&answer, 78),
            Err(UdpAnswerError::OtherTransaction)
        );
        assert_eq!(
            parse_connect(&answer[..12], 77),
            Err(UdpAnswerError::Malformed(12))
        );
    }

    #[test]
    fn announce_fields_are_where_bep15_puts_them() {
        let p = announce_request(9, 5, &ANNOUNCE, 3);
        assert_eq!(u64::from_be_bytes(p[..8].try_into().unwrap()), 9);
        assert_eq!(&p[16..36], &[1; 20]);
        assert_eq!(&p[36..56], &[2; 20]);
        assert_eq!(u64::from_be_bytes(p[64..72].try_into().unwrap()), 1234);
        assert_eq!(u32::from_be_bytes(p[80..84].try_into().unwrap()), 2);
        assert_eq!(u16::from_be_bytes([p[96], p[97]]), 6881);
    }

    #[test]
    fn announce_answers_give_peers_and_errors_give_reasons() {
        let mut answer = vec![0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2];
        answer.extend_from_slice(&[127, 0, 0, 9, 0x1a, 0xe1]);
        answer.extend_from_slice(&[127, 0, 0, 10]); // a truncated entry is ignored
        assert_eq!(
            parse_announce(&answer, 5, false),
            Ok(vec!["127.0.0.9:6881".parse().unwrap()])
        );
        let mut error = vec![0, 0, 0, 3, 0, 0, 0, 5];
        error.extend_from_slice(b"unregistered torrent");
        assert_eq!(
            parse_announce(&error, 5, false),
            Err(UdpAnswerError::Refused("unregistered torrent".into()))
        );
        assert!(parse_announce(&[0, 0, 0, 9, 0, 0, 0, 5], 5, false).is_err());
    }

    #[test]
    fn udp_urls_name_their_authority() {
        assert_eq!(
            authority("udp://127.0.0.1:6969/announce"),
            Some("127.0.0.1:6969")
        );
        assert_eq!(authority("udp://[::1]:6969"), Some("[::1]:6969"));
        assert_eq!(authority("udp:///x"), None);
        assert_eq!(authority("http://x"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_answers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), v6: bool) {
            let _ = parse_connect(&bytes, 5);
            let _ = parse_announce(&bytes, 5, v6);
        }
    }
}
