//! The driver: TCP connections and tracker announces around one `Torrent` controller.
//!
//! The controller lives on a thread of its own and owns everything stateful; it receives
//! `Inbox` messages (a connection opened, bytes arrived, a connection closed) and hands
//! each connection's outgoing bytes to that connection's writer task. Connection tasks
//! hold no protocol state, so the protocol logic stays in the sans-IO crate where the
//! deterministic swarm test exercises it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmdrop_manifest::torrent::Metainfo;
use swarmdrop_wire::picker::PeerKey;
use swarmdrop_wire::torrent::{Torrent, TorrentConfig, TorrentEvent, TorrentInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::metrics::PeerMetrics;
use crate::storage::FileStore;
use crate::tracker::{announce, Announce};
use crate::transport::{negotiate, Encryption};

/// How to find and serve peers.
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// Connect to these peers.
    pub connect: Vec<SocketAddr>,
    /// Announce to the torrent's HTTP trackers.
    pub use_trackers: bool,
    /// Announce to these HTTP trackers too.
    pub extra_trackers: Vec<String>,
    /// Keep running (seeding) once complete.
    pub keep_seeding: bool,
    /// Counters to keep up to date (for `--metrics`).
    pub metrics: PeerMetrics,
    /// The bencoded info dictionary, to serve magnet clients (BEP 9).
    pub metadata: Option<Bytes>,
    /// Plain BitTorrent or Message Stream Encryption.
    pub encryption: Encryption,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Pieces verified at the end.
    pub have: u32,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Peers banned for bad data.
    pub banned: u32,
    /// Pieces that failed their hash.
    pub hash_failures: u32,
    /// Connections closed, by reason code.
    pub closed: HashMap<&'static str, u32>,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

enum Inbox {
    Checked(u32, Bytes, bool),
    Opened(PeerKey, mpsc::UnboundedSender<Bytes>, &'static str),
    Received(PeerKey, Vec<u8>),
    Closed(PeerKey),
    /// A connection that failed before BitTorrent began, with its reason code.
    Refused(&'static str),
    Peers(Vec<SocketAddr>),
}

/// Progress reports: pieces verified so far, of how many.
pub type Progress = Box<dyn Fn(u32, u32) + Send>;

fn peer_id() -> [u8; 20] {
    let mut id = *b"-SD0001-000000000000";
    let _ = getrandom::getrandom(&mut id[8..]);
    id
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

/// One connection's transport: whether it was accepted or dialed, for which torrent, and
/// what it may negotiate before BitTorrent.
#[derive(Clone, Copy)]
struct Transport {
    inbound: bool,
    info_hash: [u8; 20],
    encryption: Encryption,
}

fn encrypt_chunks(cipher: &mut swarmdrop_wire::mse::Rc4, chunks: &mut [Bytes]) {
    for chunk in chunks {
        let mut sealed = chunk.to_vec();
        cipher.apply(&mut sealed);
        *chunk = Bytes::from(sealed);
    }
}

async fn connection(
    key: PeerKey,
    mut stream: TcpStream,
    inbox: std_mpsc::Sender<Inbox>,
    transport: Transport,
) {
    let _ = stream.set_nodelay(true);
    let negotiated = match negotiate(
        &mut stream,
        transport.inbound,
        transport.info_hash,
        transport.encryption,
    )
    .await
    {
        Ok(negotiated) => negotiated,
        Err(code) => {
            let _ = inbox.send(Inbox::Refused(code));
            return;
        }
    };
    let (mut incoming, mut outgoing) = (negotiated.incoming, negotiated.outgoing);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    if inbox
        .send(Inbox::Opened(key, tx, negotiated.label))
        .is_err()
    {
        return;
    }
    if !negotiated.received.is_empty()
        && inbox
            .send(Inbox::Received(key, negotiated.received))
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
            if write_all_vectored(&mut writer, &chunks).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(cipher) = incoming.as_mut() {
                    cipher.apply(&mut buf[..n]);
                }
                if inbox.send(Inbox::Received(key, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    writing.abort();
    let _ = inbox.send(Inbox::Closed(key));
}

/// Downloads and/or seeds `meta`'s single file in `store` until complete (or forever
/// with `keep_seeding`), accepting peers on `listener` if given (bound by the caller, so
/// it can say where before anything runs).
pub async fn run(
    meta: Metainfo,
    mut store: FileStore,
    options: PeerOptions,
    listener: Option<std::net::TcpListener>,
    progress: Progress,
) -> Result<RunSummary, DriverError> {
    let piece_length = u32::try_from(meta.piece_length)
        .map_err(|_| DriverError(format!("piece length {} is too large", meta.piece_length)))?;
    let have = store.recheck(&meta.pieces);
    let info = TorrentInfo {
        info_hash: meta.info_hash.0,
        piece_length,
        total_length: meta.length,
        piece_hashes: meta.pieces.clone(),
    };
    let our_id = peer_id();
    let mut seed_bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut seed_bytes);
    let torrent = Torrent::new(
        info,
        TorrentConfig::default(),
        our_id,
        store,
        &have,
        u64::from_le_bytes(seed_bytes),
    )
    .map_err(|e| DriverError(e.to_string()))?;
    let (inbox_tx, inbox_rx) = std_mpsc::channel::<Inbox>();
    let next_key = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));

    let listen_port = match listener {
        Some(listener) => {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
                .map_err(|e| DriverError(format!("listening: {e}")))?;
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            let (inbox, keys) = (inbox_tx.clone(), next_key.clone());
            let transport = Transport {
                inbound: true,
                info_hash: meta.info_hash.0,
                encryption: options.encryption,
            };
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let key = keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::spawn(connection(key, stream, inbox.clone(), transport));
                }
            });
            port
        }
        None => 0,
    };

    let mut trackers: Vec<String> = if options.use_trackers {
        meta.announce_list
            .iter()
            .flatten()
            .cloned()
            .chain(meta.announce.clone())
            .collect()
    } else {
        Vec::new()
    };
    trackers.extend(options.extra_trackers.iter().cloned());
    trackers.dedup();
    if !trackers.is_empty() {
        let (inbox, info_hash, left) = (
            inbox_tx.clone(),
            meta.info_hash.0,
            if have.is_full() { 0 } else { meta.length },
        );
        tokio::spawn(async move {
            loop {
                for url in &trackers {
                    let a = Announce {
                        info_hash: &info_hash,
                        peer_id: &our_id,
                        port: listen_port,
                        left,
                        event: Some("started"),
                    };
                    if let Ok(peers) = announce(url, a).await {
                        let _ = inbox.send(Inbox::Peers(peers));
                    }
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
    }
    // Hashing runs on its own thread, beside the protocol, as libtorrent's disk threads do.
    let (hash_tx, hash_rx) = std_mpsc::channel::<(u32, Bytes)>();
    {
        let (inbox, hashes) = (inbox_tx.clone(), meta.pieces.clone());
        std::thread::Builder::new()
            .name("piece-hasher".into())
            .spawn(move || {
                use sha1::Digest as _;
                while let Ok((index, bytes)) = hash_rx.recv() {
                    let good = hashes
                        .get(index as usize)
                        .is_some_and(|want| <[u8; 20]>::from(sha1::Sha1::digest(&bytes)) == *want);
                    if inbox.send(Inbox::Checked(index, bytes, good)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DriverError(format!("starting the hasher: {e}")))?;
    }
    let torrent = torrent.hash_elsewhere(true).with_metadata(
        options.metadata.clone(),
        Some(listen_port).filter(|p| *p != 0),
    );
    let keep_seeding = options.keep_seeding;
    let metrics = options.metrics.clone();
    let connect_inbox = inbox_tx.clone();
    drop(inbox_tx);
    // Dialing from the controller thread goes through this runtime.
    let runtime = tokio::runtime::Handle::current();
    let transport = Transport {
        inbound: false,
        info_hash: meta.info_hash.0,
        encryption: options.encryption,
    };
    let dialer = move |addr: SocketAddr| {
        let inbox = connect_inbox.clone();
        let keys = next_key.clone();
        runtime.spawn(async move {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
            {
                let key = keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connection(key, stream, inbox, transport).await;
            }
        });
    };
    for addr in &options.connect {
        dialer(*addr);
    }
    tokio::task::spawn_blocking(move || {
        control(
            torrent,
            inbox_rx,
            keep_seeding,
            progress,
            dialer,
            &metrics,
            &hash_tx,
        )
    })
    .await
    .map_err(|e| DriverError(format!("the controller stopped: {e}")))
}

fn control(
    mut torrent: Torrent<FileStore>,
    inbox: std_mpsc::Receiver<Inbox>,
    keep_seeding: bool,
    progress: Progress,
    dial: impl Fn(SocketAddr),
    metrics: &PeerMetrics,
    hasher: &std_mpsc::Sender<(u32, Bytes)>,
) -> RunSummary {
    let started = Instant::now();
    let now = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut writers: HashMap<PeerKey, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    let mut dialed: std::collections::HashSet<SocketAddr> = Default::default();
    let mut summary = RunSummary {
        pieces: torrent.have().len(),
        ..RunSummary::default()
    };
    let mut last_tick = 0;
    progress(torrent.have().count(), torrent.have().len());
    loop {
        if torrent.complete() && !keep_seeding {
            break;
        }
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Ok(Inbox::Checked(index, bytes, good)) => {
                torrent.piece_checked(index, Some(bytes), good)
            }
            Ok(Inbox::Opened(key, writer, transport)) => {
                metrics.opened(transport);
                torrent.add_peer(key, now());
                writers.insert(key, writer);
            }
            Ok(Inbox::Received(key, bytes)) => torrent.handle_bytes(key, now(), &bytes),
            Ok(Inbox::Closed(key)) => {
                torrent.remove_peer(key);
                writers.remove(&key);
            }
            Ok(Inbox::Refused(code)) => {
                *summary.closed.entry(code).or_default() += 1;
                metrics.closed(code);
            }
            Ok(Inbox::Peers(peers)) => {
                for addr in peers {
                    if dialed.insert(addr) {
                        dial(addr);
                    }
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if now().saturating_sub(last_tick) >= 50 {
            last_tick = now();
            torrent.handle_timeout(last_tick);
            metrics.update(
                torrent.have().count(),
                torrent.have().len(),
                torrent.peers(),
            );
        }
        while let Some(event) = torrent.poll_event() {
            match event {
                TorrentEvent::PieceVerified(_) | TorrentEvent::Complete => {
                    progress(torrent.have().count(), torrent.have().len());
                }
                TorrentEvent::HashFailed(_) => {
                    summary.hash_failures += 1;
                    metrics.hash_failed();
                }
                TorrentEvent::Unrequested(_) => metrics.unrequested(),
                TorrentEvent::CheckPiece { index, bytes } => {
                    let _ = hasher.send((index, bytes));
                }
                TorrentEvent::Banned(_) => {
                    summary.banned += 1;
                    metrics.banned();
                }
                TorrentEvent::Closed(key, reason) => {
                    *summary.closed.entry(reason.code).or_default() += 1;
                    metrics.closed(reason.code);
                    // Dropping the writer ends the connection's writer task.
                    writers.remove(&key);
                }
            }
        }
        let t = now();
        for (key, writer) in &writers {
            loop {
                let bytes = torrent.poll_transmit(*key, t);
                if bytes.is_empty() {
                    break;
                }
                let _ = writer.send(bytes);
            }
        }
    }
    summary.have = torrent.have().count();
    metrics.update(
        torrent.have().count(),
        torrent.have().len(),
        torrent.peers(),
    );
    summary
}
