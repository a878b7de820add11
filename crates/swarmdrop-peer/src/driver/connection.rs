//! Connection tasks: they negotiate the transport, then only move bytes between the
//! socket and their torrent's controller. One listener serves every torrent of a run: an
//! accepted connection is routed by the info hash its handshake names (plain or MSE).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use swarmdrop_wire::picker::PeerKey;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::ratelimit::RateLimit;
use crate::transport::{negotiate, Encryption, Negotiated};

/// A run's shared upload cap, if any.
pub(crate) type Limit = Option<Arc<RateLimit>>;

/// Bytes a connection's socket is given beyond what it has written (16 blocks); the
/// controller answers more requests as the queue drains below half of this. Blocks
/// handed over are past a peer's `cancel`, so the queue is kept short: a peer that stops
/// wanting a piece (another path brought it first) is spared everything it asked for
/// beyond this. Answering on request, as before, queued whole pipelines (up to 250
/// blocks) behind a capped uplink. Shallower queues measured slower in the demo (32 and
/// 64 KiB: the controller's turns between refills left capped uplinks idle).
const SOCKET_QUEUE: usize = 256 * 1024;

/// The controller's end of a connection: what it queues for the socket, and how much of
/// that is not written yet.
pub(crate) struct Writer {
    chunks: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl Writer {
    /// Queues `bytes` for the socket.
    pub(crate) fn send(&self, bytes: Bytes) {
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let _ = self.chunks.send(bytes);
    }

    /// Bytes of blocks the socket may be given now.
    pub(crate) fn room(&self) -> usize {
        SOCKET_QUEUE.saturating_sub(self.queued.load(Ordering::Relaxed))
    }
}

/// What a torrent's controller hears.
pub(crate) enum Inbox {
    Checked(u32, Bytes, bool),
    /// A connection reached BitTorrent: its writer, transport, and address if we dialed it.
    Opened(PeerKey, Writer, &'static str, Option<SocketAddr>),
    /// A connection's socket queue drained below half of `SOCKET_QUEUE`: it can take
    /// more blocks.
    Writable,
    Received(PeerKey, Bytes),
    Closed(PeerKey),
    /// A connection that failed before BitTorrent began, with its reason code.
    Refused(&'static str),
    /// A dial that did not reach BitTorrent (no connection, or its handshake failed).
    Unreachable(SocketAddr),
    /// An order from the scheduler steering this torrent.
    Steer(super::Steer),
    Peers(Vec<SocketAddr>),
}

/// Keys unique across every torrent of a run.
pub(crate) type Keys = Arc<AtomicU32>;

fn next_key(keys: &Keys) -> PeerKey {
    keys.fetch_add(1, Ordering::Relaxed)
}

async fn write_all_vectored(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    chunks: &[Bytes],
) -> std::io::Result<()> {
    let (mut at, mut offset) = (0, 0);
    while at < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[at..]
            .iter()
            .enumerate()
            .map(|(k, chunk)| std::io::IoSlice::new(if k == 0 { &chunk[offset..] } else { chunk }))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && at < chunks.len() {
            let left = chunks[at].len() - offset;
            if written >= left {
                written -= left;
                at += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

fn encrypt_chunks(cipher: &mut swarmdrop_wire::mse::Rc4, chunks: &mut [Bytes]) {
    for chunk in chunks {
        let mut sealed = chunk.to_vec();
        cipher.apply(&mut sealed);
        *chunk = Bytes::from(sealed);
    }
}

/// Moves bytes between a negotiated stream and its controller until either side ends.
async fn carry(
    key: PeerKey,
    stream: TcpStream,
    inbox: std_mpsc::Sender<Inbox>,
    negotiated: Negotiated,
    limit: Limit,
    dialed: Option<SocketAddr>,
) {
    let (mut incoming, mut outgoing) = (negotiated.incoming, negotiated.outgoing);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicUsize::new(0));
    let handle = Writer {
        chunks: tx,
        queued: queued.clone(),
    };
    if inbox
        .send(Inbox::Opened(key, handle, negotiated.label, dialed))
        .is_err()
    {
        return;
    }
    let wake = inbox.clone();
    if !negotiated.received.is_empty()
        && inbox
            .send(Inbox::Received(key, Bytes::from(negotiated.received)))
            .is_err()
    {
        return;
    }
    let writing = tokio::spawn(async move {
        // Everything queued goes out in one vectored write: a block's header and payload
        // are separate chunks, and a write per chunk would double the system calls.
        let mut chunks: Vec<Bytes> = Vec::with_capacity(64);
        while let Some(first) = rx.recv().await {
            chunks.clear();
            chunks.push(first);
            while chunks.len() < 64 {
                match rx.try_recv() {
                    Ok(chunk) => chunks.push(chunk),
                    Err(_) => break,
                }
            }
            if let Some(cipher) = outgoing.as_mut() {
                encrypt_chunks(cipher, &mut chunks);
            }
            if let Some(limit) = &limit {
                limit.acquire(chunks.iter().map(Bytes::len).sum()).await;
            }
            if write_all_vectored(&mut writer, &chunks).await.is_err() {
                break;
            }
            let written: usize = chunks.iter().map(Bytes::len).sum();
            let before = queued.fetch_sub(written, Ordering::Relaxed);
            let low = SOCKET_QUEUE / 2;
            if before >= low && before - written < low && wake.send(Inbox::Writable).is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::new();
    loop {
        match crate::transport::read_chunk(&mut reader, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(cipher) = incoming.as_mut() {
                    cipher.apply(&mut buf);
                }
                if inbox
                    .send(Inbox::Received(key, buf.split().freeze()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    writing.abort();
    let _ = inbox.send(Inbox::Closed(key));
}

/// Dials `addr` for one torrent.
pub(crate) async fn dial(
    addr: SocketAddr,
    info_hash: [u8; 20],
    encryption: Encryption,
    inbox: std_mpsc::Sender<Inbox>,
    keys: Keys,
    limit: Limit,
) {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
    else {
        let _ = inbox.send(Inbox::Unreachable(addr));
        return;
    };
    let _ = stream.set_nodelay(true);
    match negotiate(&mut stream, false, &[info_hash], encryption).await {
        Ok(negotiated) => {
            carry(
                next_key(&keys),
                stream,
                inbox,
                negotiated,
                limit,
                Some(addr),
            )
            .await
        }
        Err(code) => {
            let _ = inbox.send(Inbox::Refused(code));
            let _ = inbox.send(Inbox::Unreachable(addr));
        }
    }
}

/// Accepts peers for every torrent in `routes` (info hash → its controller's inbox).
/// A connection naming no torrent here is counted on the first one's metrics.
pub(crate) async fn accept(
    listener: TcpListener,
    routes: HashMap<[u8; 20], std_mpsc::Sender<Inbox>>,
    encryption: Encryption,
    keys: Keys,
    limit: Limit,
) {
    let routes = Arc::new(routes);
    let hashes: Arc<Vec<[u8; 20]>> = Arc::new(routes.keys().copied().collect());
    let Some(fallback) = routes.values().next().cloned() else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let (routes, hashes, fallback, keys, limit) = (
            routes.clone(),
            hashes.clone(),
            fallback.clone(),
            keys.clone(),
            limit.clone(),
        );
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match negotiate(&mut stream, true, &hashes, encryption).await {
                Ok(negotiated) => match routes.get(&negotiated.info_hash) {
                    Some(inbox) => {
                        carry(
                            next_key(&keys),
                            stream,
                            inbox.clone(),
                            negotiated,
                            limit,
                            None,
                        )
                        .await
                    }
                    None => {
                        let _ = fallback.send(Inbox::Refused("wrong_infohash"));
                    }
                },
                Err(code) => {
                    let _ = fallback.send(Inbox::Refused(code));
                }
            }
        });
    }
}
