//! Announcing to trackers: HTTP (BEP 3, compact answers of BEP 23 and BEP 7) here, UDP
//! (BEP 15) in `udp_tracker`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use swarmdrop_bencode::Decoder;
use swarmdrop_httpc::{get_bytes, HttpUrl, Timeouts};

/// An announce that did not give peers.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// Neither an http:// nor a udp:// tracker.
    #[error("{0}: only http:// and udp:// trackers are announced to")]
    Unsupported(String),
    /// The call failed.
    #[error(transparent)]
    Fetch(#[from] swarmdrop_httpc::FetchError),
    /// The tracker refused, or answered something else.
    #[error("{url}: {reason}")]
    Refused {
        /// The tracker.
        url: String,
        /// Its failure reason, or what was wrong with the answer.
        reason: String,
    },
}

fn percent(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                char::from(*b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What to tell the tracker.
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a> {
    /// The swarm.
    pub info_hash: &'a [u8; 20],
    /// Our id.
    pub peer_id: &'a [u8; 20],
    /// Where we listen.
    pub port: u16,
    /// Bytes we still need.
    pub left: u64,
    /// `started`, `completed` or `stopped`.
    pub event: Option<&'a str>,
    /// Announce from this local address: the one we listen on, when that is a specific
    /// address, since trackers hand out the address an announce came from.
    pub source: Option<IpAddr>,
}

/// Announces and returns the peers the tracker gave.
pub async fn announce(url: &str, a: Announce<'_>) -> Result<Vec<SocketAddr>, AnnounceError> {
    if url.starts_with("udp://") {
        return crate::udp_tracker::announce_udp(url, a).await;
    }
    if !url.starts_with("http://") {
        return Err(AnnounceError::Unsupported(url.to_owned()));
    }
    let base = HttpUrl::parse(url)?;
    let separator = if base.path().contains('?') { '&' } else { '?' };
    let mut query = format!(
        "info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left={}&compact=1&numwant=80",
        percent(a.info_hash),
        percent(a.peer_id),
        a.port,
        a.left
    );
    if let Some(event) = a.event {
        query.push_str(&format!("&event={event}"));
    }
    let target = base.with_path(&format!("{}{separator}{query}", base.path()));
    let (status, body) = get_bytes(
        &target,
        &[],
        1 << 20,
        Timeouts {
            source: a.source,
            ..Timeouts::default()
        },
        Duration::from_secs(15),
    )
    .await?;
    let refused = |reason: String| AnnounceError::Refused {
        url: url.to_owned(),
        reason,
    };
    if !status.is_success() {
        return Err(refused(format!("HTTP {status}")));
    }
    let lenient = Decoder {
        require_sorted_keys: false,
        ..Decoder::default()
    };
    let value = lenient
        .decode(&body)
        .map_err(|e| refused(format!("not bencode: {e}")))?;
    let dict = value
        .as_dict()
        .ok_or_else(|| refused("not a dictionary".into()))?;
    if let Some(reason) = dict.get(b"failure reason").and_then(|v| v.as_bytes()) {
        return Err(refused(String::from_utf8_lossy(reason).into_owned()));
    }
    let mut peers = Vec::new();
    if let Some(compact) = dict.get(b"peers").and_then(|v| v.as_bytes()) {
        for chunk in compact.chunks_exact(6) {
            let ip = Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3]);
            peers.push(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([chunk[4], chunk[5]]),
            ));
        }
    }
    if let Some(compact) = dict.get(b"peers6").and_then(|v| v.as_bytes()) {
        for chunk in compact.chunks_exact(18) {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&chunk[..16]);
            let port = u16::from_be_bytes([chunk[16], chunk[17]]);
            peers.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port));
        }
    }
    Ok(peers)
}
