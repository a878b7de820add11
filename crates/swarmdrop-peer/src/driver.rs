//! The driver: TCP connections and tracker announces around `Torrent` controllers (one per
//! torrent; several can share one listener).
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
use tokio::net::TcpListener;
use tokio::sync::mpsc;

mod connection;
mod redial;
mod steer;
use connection::{Inbox, Writer};
use steer::Steer;
pub use steer::{Swarm, SwarmEvent, TorrentHandle};

use crate::metrics::PeerMetrics;
use crate::storage::FileStore;
use crate::tracker::{announce, Announce};
use crate::transport::Encryption;

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
    /// Caps the bytes sent to all peers together.
    pub upload_limit: Option<std::sync::Arc<crate::ratelimit::RateLimit>>,
    /// Runs each torrent's controller and hasher threads at a lower scheduling priority
    /// (nice 10 on Linux), so what embeds the engine — a player, a launcher, the hybrid
    /// client's planner and HTTP fetches — keeps the CPU when both want it.
    pub background: bool,
}

/// Lowers the calling thread's scheduling priority to nice 10 (on Linux the nice value
/// belongs to the thread). Best effort: where it is refused, the thread runs as it was.
/// For threads that do background work for a program with better things to do (a
/// runtime's `on_thread_start`, say).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(None, 10);
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

/// Progress reports: pieces verified so far, of how many.
pub type Progress = Box<dyn Fn(u32, u32) + Send>;

/// Checks a piece from peers (its index and bytes) against something stronger than the
/// torrent's SHA-1, which it then replaces: the hybrid client's signed SHA-256
/// midstates (`swarmdrop_manifest::midstates`).
pub type PieceCheck = std::sync::Arc<dyn Fn(u32, &[u8]) -> bool + Send + Sync>;

/// One torrent of a run.
pub struct Job {
    /// The torrent (single file).
    pub meta: Metainfo,
    /// Its data.
    pub store: FileStore,
    /// The bencoded info dictionary, to serve magnet clients (BEP 9).
    pub metadata: Option<Bytes>,
    /// Progress reports for this torrent.
    pub progress: Progress,
    /// The data was already checked against every piece hash (by the caller): skip the
    /// re-check.
    pub verified: bool,
    /// Steered by a scheduler: peers are asked only for pieces it wants (see
    /// [`TorrentHandle`]), and what happens is reported here.
    pub steer: Option<mpsc::UnboundedSender<SwarmEvent>>,
    /// Checks pieces from peers instead of the torrent's SHA-1 (see [`PieceCheck`]).
    pub check: Option<PieceCheck>,
}

fn peer_id() -> [u8; 20] {
    let mut id = *b"-SD0001-000000000000";
    let _ = getrandom::getrandom(&mut id[8..]);
    id
}

/// Downloads and/or seeds `meta`'s single file in `store` until complete (or forever
/// with `keep_seeding`), accepting peers on `listener` if given (bound by the caller, so
/// it can say where before anything runs).
pub async fn run(
    meta: Metainfo,
    store: FileStore,
    options: PeerOptions,
    listener: Option<std::net::TcpListener>,
    progress: Progress,
) -> Result<RunSummary, DriverError> {
    let metadata = options.metadata.clone();
    let job = Job {
        meta,
        store,
        metadata,
        progress,
        verified: false,
        steer: None,
        check: None,
    };
    let mut summaries = run_all(vec![job], options, listener).await?;
    summaries
        .pop()
        .ok_or_else(|| DriverError("the run ended without a summary".into()))
}

/// Runs several torrents at once behind one listener (which routes each accepted peer by
/// the info hash it asks for); each has a controller thread of its own. Returns when all
/// are complete (never, with `keep_seeding`), summaries in `jobs` order.
pub async fn run_all(
    jobs: Vec<Job>,
    options: PeerOptions,
    listener: Option<std::net::TcpListener>,
) -> Result<Vec<RunSummary>, DriverError> {
    start_all(jobs, options, listener)?.wait().await
}

/// Starts several torrents as [`run_all`] does and returns at once, with a handle per
/// torrent (in `jobs` order) to steer or stop it. Call from within a tokio runtime.
pub fn start_all(
    jobs: Vec<Job>,
    options: PeerOptions,
    listener: Option<std::net::TcpListener>,
) -> Result<Swarm, DriverError> {
    let keys: connection::Keys = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
    let listener = listener
        .map(|l| {
            l.set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
                .map_err(|e| DriverError(format!("listening: {e}")))
        })
        .transpose()?;
    let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let listen_port = listen_addr.map_or(0, |a| a.port());
    let announce_from = listen_addr
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    let mut routes = HashMap::new();
    let mut controllers = Vec::new();
    let mut handles = Vec::new();
    for job in jobs {
        let (inbox, controller) =
            start_torrent(job, &options, (listen_port, announce_from), &keys)?;
        handles.push(TorrentHandle {
            info_hash: inbox.0,
            inbox: inbox.1.clone(),
        });
        routes.insert(inbox.0, inbox.1);
        controllers.push(controller);
    }
    if let Some(listener) = listener {
        tokio::spawn(connection::accept(
            listener,
            routes,
            options.encryption,
            keys,
            options.upload_limit.clone(),
        ));
    } else {
        drop(routes);
    }
    Ok(Swarm {
        handles,
        controllers,
    })
}

type Route = ([u8; 20], std_mpsc::Sender<Inbox>);

/// Starts one torrent's controller, hasher and tracker announces; returns its route for
/// the listener and the controller to await.
fn start_torrent(
    job: Job,
    options: &PeerOptions,
    (listen_port, announce_from): (u16, Option<std::net::IpAddr>),
    keys: &connection::Keys,
) -> Result<(Route, tokio::task::JoinHandle<RunSummary>), DriverError> {
    let Job {
        meta,
        mut store,
        metadata,
        progress,
        verified,
        steer,
        check,
    } = job;
    let piece_length = u32::try_from(meta.piece_length)
        .map_err(|_| DriverError(format!("piece length {} is too large", meta.piece_length)))?;
    let have = if verified {
        swarmdrop_wire::Bitfield::full(meta.pieces.len() as u32)
    } else {
        store.recheck(&meta.pieces)
    };
    let info_hash = meta.info_hash.0;
    let info = TorrentInfo {
        info_hash,
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
        let (inbox, left) = (
            inbox_tx.clone(),
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
                        source: announce_from,
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
    // The hasher and the controller both take it (a bool, copied into each).
    let background = options.background;
    {
        let (inbox, hashes) = (inbox_tx.clone(), meta.pieces.clone());
        std::thread::Builder::new()
            .name("piece-hasher".into())
            .spawn(move || {
                use sha1::Digest as _;
                if background {
                    lower_priority();
                }
                while let Ok((index, bytes)) = hash_rx.recv() {
                    let good = match &check {
                        Some(check) => check(index, &bytes),
                        None => hashes.get(index as usize).is_some_and(|want| {
                            <[u8; 20]>::from(sha1::Sha1::digest(&bytes)) == *want
                        }),
                    };
                    if inbox.send(Inbox::Checked(index, bytes, good)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DriverError(format!("starting the hasher: {e}")))?;
    }
    let mut torrent = torrent
        .hash_elsewhere(true)
        .with_metadata(metadata, Some(listen_port).filter(|p| *p != 0));
    if steer.is_some() {
        torrent.want_nothing();
    }
    let keep_seeding = options.keep_seeding;
    let metrics = options.metrics.clone();
    // Dialing from the controller thread goes through this runtime.
    let runtime = tokio::runtime::Handle::current();
    let (connect_inbox, encryption, dial_keys, limit) = (
        inbox_tx.clone(),
        options.encryption,
        keys.clone(),
        options.upload_limit.clone(),
    );
    let dialer = move |addr: SocketAddr| {
        runtime.spawn(connection::dial(
            addr,
            info_hash,
            encryption,
            connect_inbox.clone(),
            dial_keys.clone(),
            limit.clone(),
        ));
    };
    let connect = options.connect.clone();
    // A thread of its own rather than one of the runtime's blocking pool: a pool thread
    // would go back to the pool with the lowered priority.
    let (summary_tx, summary_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("peer-controller".into())
        .spawn(move || {
            if background {
                lower_priority();
            }
            let summary = control(
                torrent,
                info_hash,
                inbox_rx,
                keep_seeding,
                progress,
                (connect, dialer),
                &metrics,
                &hash_tx,
                steer,
            );
            let _ = summary_tx.send(summary);
        })
        .map_err(|e| DriverError(format!("starting the controller: {e}")))?;
    let controller = tokio::spawn(async move {
        match summary_rx.await {
            Ok(summary) => summary,
            // The controller thread panicked: carried to whoever awaits it, as a join of
            // the thread would.
            Err(_) => std::panic::panic_any("the torrent's controller thread panicked"),
        }
    });
    Ok(((info_hash, inbox_tx), controller))
}

/// The most inbox messages the controller takes in one turn before it answers its
/// connections: enough to cover a burst, few enough that a busy inbox does not keep a
/// writer that has room waiting.
const BATCH: usize = 64;

#[allow(clippy::too_many_arguments)]
fn control(
    mut torrent: Torrent<FileStore>,
    info_hash: [u8; 20],
    inbox: std_mpsc::Receiver<Inbox>,
    keep_seeding: bool,
    progress: Progress,
    (connect, dial): (Vec<SocketAddr>, impl Fn(SocketAddr)),
    metrics: &PeerMetrics,
    hasher: &std_mpsc::Sender<(u32, Bytes)>,
    steer: Option<mpsc::UnboundedSender<SwarmEvent>>,
) -> RunSummary {
    let mut available: Vec<bool> = Vec::new();
    // The leechers' mean progress in thousandths, and their number, as last reported: a
    // new report only when either moves that much, not on every `have` of fifty peers.
    let mut leechers: Option<(u32, u32)> = None;
    let started = Instant::now();
    let now = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut writers: HashMap<PeerKey, Writer> = HashMap::new();
    let mut redial = redial::Redial::default();
    for addr in connect {
        if redial.learn(addr) {
            dial(addr);
        }
    }
    let mut summary = RunSummary {
        pieces: torrent.have().len(),
        ..RunSummary::default()
    };
    let mut last_tick = 0;
    progress(torrent.have().count(), torrent.have().len());
    'run: loop {
        if torrent.complete() && !keep_seeding {
            break;
        }
        // Whatever else is already waiting is taken in the same turn: the pass over every
        // connection below then runs once per turn, not once per message (with fifty
        // peers, most of this thread's time went to passes that found nothing to send).
        let first = inbox.recv_timeout(Duration::from_millis(50));
        let waiting = std::iter::from_fn(|| inbox.try_recv().ok().map(Ok)).take(BATCH - 1);
        for message in std::iter::once(first).chain(waiting) {
            match message {
                Ok(Inbox::Checked(index, bytes, good)) => {
                    torrent.piece_checked(index, Some(bytes), good)
                }
                Ok(Inbox::Opened(key, writer, transport, dialed)) => {
                    metrics.opened(transport);
                    torrent.add_peer(key, now());
                    writers.insert(key, writer);
                    if let Some(addr) = dialed {
                        redial.opened(addr, key, now());
                    }
                }
                Ok(Inbox::Received(key, bytes)) => torrent.handle_bytes(key, now(), &bytes),
                Ok(Inbox::Closed(key)) => {
                    torrent.remove_peer(key);
                    writers.remove(&key);
                    redial.closed(key, now());
                }
                Ok(Inbox::Unreachable(addr)) => redial.unreachable(addr, now()),
                // Answered below, with every connection's room.
                Ok(Inbox::Writable) => {}
                Ok(Inbox::Steer(order)) => match order {
                    Steer::Want(index, deadline) => torrent.want_piece(index, true, deadline),
                    Steer::Unwant(index) => torrent.want_piece(index, false, None),
                    Steer::Elsewhere(index) => torrent.fetching_elsewhere(index),
                    Steer::Verified(index, bytes) => torrent.piece_from_elsewhere(index, bytes),
                    Steer::Stop => break 'run,
                },
                Ok(Inbox::Refused(code)) => {
                    *summary.closed.entry(code).or_default() += 1;
                    metrics.closed(code);
                }
                Ok(Inbox::Peers(peers)) => {
                    for addr in peers {
                        if redial.learn(addr) {
                            dial(addr);
                        }
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break 'run,
            }
        }
        if now().saturating_sub(last_tick) >= 50 {
            last_tick = now();
            torrent.handle_timeout(last_tick);
            // A seed waits for leechers to come to it; a download goes back to peers
            // that left, so that losing every connection once does not stall it.
            if !torrent.complete() {
                let again = redial.due(last_tick);
                metrics.redialed(again.len());
                for addr in again {
                    dial(addr);
                }
            }
            metrics.update(
                info_hash,
                torrent.have().count(),
                torrent.have().len(),
                torrent.peers(),
            );
            if let Some(events) = &steer {
                let now_available = torrent.available();
                if now_available != available {
                    available = now_available;
                    let _ = events.send(SwarmEvent::Available {
                        info_hash,
                        pieces: available.clone(),
                    });
                }
                let now_leechers = torrent.leechers_progress();
                let reported = now_leechers.map(|(mean, n)| ((mean * 1000.0).round() as u32, n));
                if reported != leechers {
                    leechers = reported;
                    let _ = events.send(SwarmEvent::LeechersProgress {
                        info_hash,
                        mean: now_leechers.map(|(mean, _)| mean),
                        leechers: now_leechers.map_or(0, |(_, n)| n),
                    });
                }
            }
        }
        while let Some(event) = torrent.poll_event() {
            match event {
                TorrentEvent::PieceVerified(index) => {
                    progress(torrent.have().count(), torrent.have().len());
                    if let Some(events) = &steer {
                        let _ = events.send(SwarmEvent::Verified { info_hash, index });
                    }
                }
                TorrentEvent::Complete => {
                    progress(torrent.have().count(), torrent.have().len());
                }
                TorrentEvent::HashFailed(index) => {
                    summary.hash_failures += 1;
                    metrics.hash_failed();
                    if let Some(events) = &steer {
                        let _ = events.send(SwarmEvent::HashFailed { info_hash, index });
                    }
                }
                TorrentEvent::Unrequested(_) => metrics.unrequested(),
                TorrentEvent::Late(_) => metrics.late(),
                TorrentEvent::CheckPiece { index, bytes } => {
                    let _ = hasher.send((index, bytes));
                }
                TorrentEvent::Banned(key) => {
                    redial.banned(key);
                    summary.banned += 1;
                    metrics.banned();
                    if let Some(events) = &steer {
                        let _ = events.send(SwarmEvent::Banned { info_hash });
                    }
                }
                TorrentEvent::Closed(key, reason) => {
                    *summary.closed.entry(reason.code).or_default() += 1;
                    metrics.closed(reason.code);
                    // Dropping the writer ends the connection's writer task.
                    writers.remove(&key);
                    redial.closed(key, now());
                }
            }
        }
        let t = now();
        for (key, writer) in &writers {
            let mut room = writer.room();
            loop {
                let bytes = torrent.poll_transmit_within(*key, t, &mut room);
                if bytes.is_empty() {
                    break;
                }
                writer.send(bytes);
            }
        }
    }
    summary.have = torrent.have().count();
    metrics.update(
        info_hash,
        torrent.have().count(),
        torrent.have().len(),
        torrent.peers(),
    );
    summary
}
