//! What a connection carries before BitTorrent: plain, or Message Stream Encryption
//! negotiated by `swarmdrop_wire::mse`. Incoming connections are told apart by their first
//! bytes, so a seeder answers libtorrent's default (MSE first) at once instead of making it
//! retry in plaintext a second later.

use std::time::Duration;

use bytes::BytesMut;
use swarmdrop_wire::mse::{
    is_plain_handshake, MseHandshake, Rc4, CRYPTO_PLAINTEXT, CRYPTO_RC4, MAX_PAD,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What a read asks the kernel for at once, at most.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free room, a read starts a new buffer rather than fill the old one in
/// slivers.
const MIN_READ: usize = 16 * 1024;

/// Reads what `reader` has into the free end of `buf` (0: the stream ended). The caller
/// hands the new bytes on with `buf.split().freeze()`: each read lands in its own part of
/// a shared buffer and travels as it is, not copied out first (a copy per read was the
/// largest user-space cost of the peer engine's connections and of the demo's emulated
/// links).
pub async fn read_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(READ_CHUNK);
    }
    reader.read_buf(buf).await
}

/// How connections are opened and which incoming ones are accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Open connections in plain BitTorrent; accept plain and MSE.
    #[default]
    Plain,
    /// Open connections with MSE offering plaintext or RC4 (for peers that refuse plain
    /// BitTorrent); accept plain and MSE.
    Prefer,
    /// Open and accept only MSE with an RC4 payload stream.
    Require,
}

/// Longest time a peer may take over the obfuscated handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection ready for BitTorrent.
pub(crate) struct Negotiated {
    /// The torrent the peer asked for.
    pub info_hash: [u8; 20],
    /// BitTorrent bytes already received (plaintext).
    pub received: Vec<u8>,
    /// RC4 for what arrives, if negotiated.
    pub incoming: Option<Rc4>,
    /// RC4 for what we send, if negotiated.
    pub outgoing: Option<Rc4>,
    /// `plain`, `mse_plain` or `mse_rc4`, for the connection counter.
    pub label: &'static str,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let _ = getrandom::getrandom(&mut bytes);
    bytes
}

fn random_pad() -> Vec<u8> {
    let len = usize::from(u16::from_le_bytes(random::<2>())) % (MAX_PAD / 4);
    let mut pad = vec![0u8; len];
    let _ = getrandom::getrandom(&mut pad);
    pad
}

/// Prepares `stream` for BitTorrent and learns which of `info_hashes` it is for (dialing,
/// pass exactly one); on failure, the stable reason code to count.
pub(crate) async fn negotiate(
    stream: &mut TcpStream,
    inbound: bool,
    info_hashes: &[[u8; 20]],
    encryption: Encryption,
) -> Result<Negotiated, &'static str> {
    match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        negotiate_now(stream, inbound, info_hashes, encryption),
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(_) => Err("handshake_timeout"),
    }
}

/// Where a plain handshake names its torrent.
const PLAIN_INFO_HASH: std::ops::Range<usize> = 28..48;

async fn negotiate_now(
    stream: &mut TcpStream,
    inbound: bool,
    info_hashes: &[[u8; 20]],
    encryption: Encryption,
) -> Result<Negotiated, &'static str> {
    let first_hash = *info_hashes.first().ok_or("no_torrent")?;
    let methods = match encryption {
        Encryption::Require => CRYPTO_RC4,
        Encryption::Plain | Encryption::Prefer => CRYPTO_PLAINTEXT | CRYPTO_RC4,
    };
    let mut first = Vec::new();
    let handshake = if inbound {
        let mut buf = [0u8; 1024];
        let plain = loop {
            match is_plain_handshake(&first) {
                Some(false) => break false,
                Some(true) if first.len() >= PLAIN_INFO_HASH.end => break true,
                _ => {}
            }
            let n = stream.read(&mut buf).await.map_err(|_| "closed_early")?;
            if n == 0 {
                return Err("closed_early");
            }
            first.extend_from_slice(&buf[..n]);
        };
        if plain {
            if encryption == Encryption::Require {
                return Err("plaintext_refused");
            }
            let mut info_hash = [0u8; 20];
            info_hash.copy_from_slice(&first[PLAIN_INFO_HASH]);
            return Ok(Negotiated {
                info_hash,
                received: first,
                incoming: None,
                outgoing: None,
                label: "plain",
            });
        }
        MseHandshake::responder(info_hashes.to_vec(), methods, random(), &random_pad())
    } else {
        if encryption == Encryption::Plain {
            return Ok(Negotiated {
                info_hash: first_hash,
                received: Vec::new(),
                incoming: None,
                outgoing: None,
                label: "plain",
            });
        }
        MseHandshake::initiator(first_hash, methods, random(), &random_pad())
    };
    run_mse(stream, handshake, first).await
}

async fn run_mse(
    stream: &mut TcpStream,
    mut handshake: MseHandshake,
    first: Vec<u8>,
) -> Result<Negotiated, &'static str> {
    let mut buf = [0u8; 4096];
    let mut received = first;
    loop {
        handshake.handle_bytes(&received).map_err(|e| e.code())?;
        let out = handshake.take_transmit();
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|_| "closed_early")?;
        }
        if let Some(done) = handshake.established() {
            return Ok(Negotiated {
                info_hash: done.info_hash,
                label: if done.method == CRYPTO_RC4 {
                    "mse_rc4"
                } else {
                    "mse_plain"
                },
                received: done.received,
                incoming: done.incoming,
                outgoing: done.outgoing,
            });
        }
        let n = stream.read(&mut buf).await.map_err(|_| "closed_early")?;
        if n == 0 {
            return Err("closed_early");
        }
        received = buf[..n].to_vec();
    }
}
