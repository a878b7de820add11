//! The peer path: one steered torrent per asset whose class allows `p2p`, all behind one
//! listener, announcing to the torrents' trackers and any given ones. The scheduler says
//! which pieces to ask peers for; pieces fetched over HTTP and checked are handed over,
//! so this viewer serves every piece it has while it downloads.

use std::collections::HashMap;
use std::net::SocketAddr;

use swarmdrop_peer::{
    start_all, FileStore, Job, PeerOptions, PieceCheck, Swarm, SwarmEvent, TorrentHandle,
};
use tokio::sync::mpsc;

use crate::assets::Asset;
use crate::{ClientError, ClientOptions};

/// The running peer engine.
pub(crate) struct Engine {
    /// Asset index → its torrent.
    pub handles: HashMap<usize, TorrentHandle>,
    /// Info hash → asset index.
    pub by_hash: HashMap<[u8; 20], usize>,
    pub events: mpsc::UnboundedReceiver<SwarmEvent>,
    pub swarm: Swarm,
    /// Where peers can reach this viewer.
    pub listening: Option<SocketAddr>,
}

/// The runtime for background work, shared by every run in the process and made on
/// first use: two threads at a lower scheduling priority. The peer engines' connections
/// run here, and so do HTTP ranges due more than the planner's background horizon away
/// (a bulk asset's pieces from an edge, keyframes fetched well ahead), so that neither
/// ever delays the caller's runtime, where the planner, the HTTP ranges of urgent assets
/// (and, in a player, the frames) are. In the demo, fifty viewers' bulk downloads would
/// otherwise stand in the same run queue as every viewer's checkout page.
pub(crate) fn background_runtime() -> Result<&'static tokio::runtime::Runtime, ClientError> {
    static RUNTIME: swarmdrop_peer::runtime::RuntimeSlot =
        swarmdrop_peer::runtime::RuntimeSlot::new();
    RUNTIME
        .get_or_build(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("background")
                .on_thread_start(swarmdrop_peer::driver::lower_priority)
                .enable_all()
                .build()
        })
        .map_err(|e| ClientError::Io(format!("the background runtime: {e}")))
}

/// Whether `asset` goes over the peer path in this run.
pub(crate) fn uses_peers(asset: &Asset, options: &ClientOptions) -> bool {
    asset.meta.is_some()
        && asset
            .class_paths
            .contains(&swarmdrop_manifest::model::PathKind::P2p)
        && options
            .only_paths
            .as_ref()
            .is_none_or(|only| only.contains(&swarmdrop_plan::PathKind::P2p))
}

/// Starts the engine for the assets that use peers (none: no engine).
pub(crate) fn start(
    assets: &mut [Asset],
    options: &ClientOptions,
) -> Result<Option<Engine>, ClientError> {
    let (tx, events) = mpsc::unbounded_channel();
    let mut jobs = Vec::new();
    let mut order = Vec::new();
    for (index, asset) in assets.iter_mut().enumerate() {
        if !uses_peers(asset, options) {
            continue;
        }
        let Some(meta) = asset.meta.clone() else {
            continue;
        };
        let part = asset.part_path().to_path_buf();
        if let Some(dir) = part.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ClientError::Io(format!("{}: {e}", dir.display())))?;
        }
        // A fresh part file: the scheduler plans every piece, so nothing is resumed.
        let _ = std::fs::remove_file(&part);
        let piece_length = u32::try_from(meta.piece_length).map_err(|_| {
            ClientError::Metadata(format!("{}: piece length too large", asset.path))
        })?;
        let store = FileStore::open(&part, meta.length, piece_length, true)
            .map_err(|e| ClientError::Io(format!("{}: {e}", part.display())))?;
        asset.engine_writes = true;
        order.push((index, meta.info_hash.0));
        jobs.push(Job {
            meta,
            store,
            metadata: None,
            progress: Box::new(|_, _| {}),
            verified: false,
            steer: Some(tx.clone()),
            check: asset.midstates.clone().map(|midstates| {
                let check: PieceCheck = std::sync::Arc::new(move |index, bytes| {
                    midstates.check(u64::from(index), bytes)
                });
                check
            }),
        });
    }
    if jobs.is_empty() {
        return Ok(None);
    }
    let listener = match options.listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| ClientError::Usage(format!("--listen {addr}: {e}")))?,
        ),
        None => None,
    };
    let listening = listener.as_ref().and_then(|l| l.local_addr().ok());
    let peer_options = PeerOptions {
        connect: options.peers.clone(),
        use_trackers: options.use_trackers,
        extra_trackers: options.trackers.clone(),
        keep_seeding: true,
        upload_limit: options.upload_limit.clone(),
        // The engine yields the CPU to the planner and the HTTP fetches (and to whatever
        // embeds the client): a keyframe's range must not wait behind piece bookkeeping.
        background: true,
        ..PeerOptions::default()
    };
    // The engine's connections and announces run on the peer runtime.
    let swarm = {
        let _background = background_runtime()?.enter();
        start_all(jobs, peer_options, listener)
            .map_err(|e| ClientError::Usage(format!("starting the peer engine: {e}")))?
    };
    let mut handles = HashMap::new();
    let mut by_hash = HashMap::new();
    for ((index, hash), handle) in order.into_iter().zip(swarm.handles.iter().cloned()) {
        handles.insert(index, handle);
        by_hash.insert(hash, index);
    }
    Ok(Some(Engine {
        handles,
        by_hash,
        events,
        swarm,
        listening,
    }))
}
