//! The UDP tracker: one task reading datagrams and answering each in place.

use std::net::SocketAddr;
use std::time::Instant;

use super::state::{AnnounceRequest, Tracker};
use crate::proto::udp::{
    parse_request, write_announce, write_connect, write_error, write_scrape, UdpParseError,
    UdpRequest,
};

thread_local! {
    /// The peers of the answer being written, reused from one request to the next.
    static PEERS: std::cell::RefCell<Vec<SocketAddr>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn unix_now(tracker: &Tracker) -> u64 {
    u64::try_from(tracker.now().unix()).unwrap_or(0)
}

/// The connection id a datagram claims (its first 8 bytes), if it has one.
fn claimed_connection_id(packet: &[u8]) -> Option<u64> {
    packet
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// Answers one datagram into `out` (left empty when nothing should be sent).
///
/// Only a connect, or a request whose connection id checks out for its source address,
/// ever gets a reply. A spoofed source cannot hold a valid id, so nothing we send can be
/// aimed at a victim: bad ids and junk are dropped silently and counted.
pub fn handle(tracker: &Tracker, from: SocketAddr, packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let now = unix_now(tracker);
    let request = match parse_request(packet) {
        Ok(request) => request,
        Err(UdpParseError::Sendable {
            transaction_id,
            message,
        }) => {
            let verified =
                claimed_connection_id(packet).is_some_and(|id| tracker.ids.check(id, &from, now));
            if verified {
                tracker.refuse("udp", from, None, "malformed_request", message.to_owned());
                write_error(out, transaction_id, message);
            } else {
                tracker.refuse("udp", from, None, "bad_connection_id", message.to_owned());
            }
            return;
        }
        Err(UdpParseError::Unsendable(message)) => {
            tracker.refuse("udp", from, None, "malformed_request", message.to_owned());
            return;
        }
    };
    match request {
        UdpRequest::Connect { transaction_id } => {
            write_connect(out, transaction_id, tracker.ids.make(&from, now))
        }
        UdpRequest::Announce(a) => {
            if !tracker.ids.check(a.connection_id, &from, now) {
                tracker.refuse(
                    "udp",
                    from,
                    Some(&a.info_hash),
                    "bad_connection_id",
                    "connection id unknown or expired".into(),
                );
                return;
            }
            // BEP 41: the URL path, e.g. "/announce/<token>".
            let token = a
                .url_data
                .split('?')
                .next()
                .and_then(|path| path.strip_prefix("/announce/"))
                .filter(|t| !t.is_empty());
            let numwant = u32::try_from(a.num_want).ok();
            let request = AnnounceRequest {
                protocol: "udp",
                peer: SocketAddr::new(from.ip(), a.port),
                info_hash: a.info_hash,
                left: a.left,
                event: a.event,
                numwant,
                token,
            };
            PEERS.with_borrow_mut(|peers| {
                peers.clear();
                match tracker.announce_into(&request, peers) {
                    Err(refusal) => write_error(out, a.transaction_id, &refusal.message),
                    Ok(stats) => write_announce(
                        out,
                        a.transaction_id,
                        tracker.config.interval,
                        stats.leechers,
                        stats.seeders,
                        peers,
                    ),
                }
            });
        }
        UdpRequest::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        } => {
            if !tracker.ids.check(connection_id, &from, now) {
                tracker.refuse(
                    "udp",
                    from,
                    None,
                    "bad_connection_id",
                    "connection id unknown or expired".into(),
                );
                return;
            }
            match tracker.scrape("udp", from, &info_hashes, None) {
                Ok(stats) => write_scrape(out, transaction_id, &stats),
                Err(refusal) => write_error(out, transaction_id, &refusal.message),
            }
        }
    }
}

/// Serves datagrams on a dedicated thread with a blocking socket: one receive and one
/// send per request, no async machinery on the hot path. Returns when the socket fails.
pub fn serve_blocking(tracker: &Tracker, socket: &std::net::UdpSocket) -> std::io::Result<()> {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // A peer's ICMP unreachable surfaces here on some systems; it is not ours.
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let started = Instant::now();
        handle(tracker, from, &buf[..n], &mut out);
        if !out.is_empty() {
            // A full socket buffer or an unreachable peer must not stop the server.
            let _ = socket.send_to(&out, from);
        }
        tracker.metrics.udp_latency.observe(started.elapsed());
    }
}
