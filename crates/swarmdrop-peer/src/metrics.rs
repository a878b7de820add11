//! Counters of a peer run, in Prometheus text, for `--metrics ADDR`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use swarmdrop_wire::picker::PeerKey;
use swarmdrop_wire::torrent::PeerSnapshot;

#[derive(Debug, Default)]
struct State {
    /// Per torrent: (pieces verified, pieces).
    progress: HashMap<[u8; 20], (u32, u32)>,
    hash_failures: u64,
    bans: u64,
    unrequested: u64,
    late: u64,
    redials: u64,
    closed: BTreeMap<&'static str, u64>,
    /// Connections that reached BitTorrent, by transport.
    opened: BTreeMap<&'static str, u64>,
    /// Connected peers, by torrent.
    current: HashMap<[u8; 20], HashMap<PeerKey, PeerSnapshot>>,
    /// Bytes of peers that left, by client: (uploaded, downloaded).
    departed: BTreeMap<&'static str, (u64, u64)>,
}

/// Shared between the controller (writer) and the metrics endpoint (reader).
#[derive(Debug, Default, Clone)]
pub struct PeerMetrics {
    state: Arc<Mutex<State>>,
}

impl PeerMetrics {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub(crate) fn update(
        &self,
        info_hash: [u8; 20],
        have: u32,
        pieces: u32,
        peers: Vec<PeerSnapshot>,
    ) {
        self.with(|s| {
            s.progress.insert(info_hash, (have, pieces));
            let now: HashMap<PeerKey, PeerSnapshot> =
                peers.into_iter().map(|p| (p.key, p)).collect();
            let before = s.current.insert(info_hash, now).unwrap_or_default();
            let now = &s.current[&info_hash];
            for (key, old) in &before {
                if !now.contains_key(key) {
                    let entry = s.departed.entry(old.client).or_default();
                    entry.0 += old.uploaded;
                    entry.1 += old.downloaded;
                }
            }
        });
    }

    pub(crate) fn hash_failed(&self) {
        self.with(|s| s.hash_failures += 1);
    }

    pub(crate) fn unrequested(&self) {
        self.with(|s| s.unrequested += 1);
    }

    pub(crate) fn late(&self) {
        self.with(|s| s.late += 1);
    }

    pub(crate) fn redialed(&self, dials: usize) {
        if dials > 0 {
            self.with(|s| s.redials += dials as u64);
        }
    }

    pub(crate) fn banned(&self) {
        self.with(|s| s.bans += 1);
    }

    pub(crate) fn opened(&self, transport: &'static str) {
        self.with(|s| *s.opened.entry(transport).or_default() += 1);
    }

    pub(crate) fn closed(&self, code: &'static str) {
        self.with(|s| *s.closed.entry(code).or_default() += 1);
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            let mut by_client: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
            for (client, (up, down)) in &s.departed {
                let e = by_client.entry(client).or_default();
                e.1 += up;
                e.2 += down;
            }
            let (mut choking, mut choked) = (0, 0);
            for p in s.current.values().flat_map(HashMap::values) {
                let e = by_client.entry(p.client).or_default();
                e.0 += 1;
                e.1 += p.uploaded;
                e.2 += p.downloaded;
                choking += u64::from(p.am_choking);
                choked += u64::from(p.peer_choking);
            }
            out.push_str("# HELP swarmdrop_peer_peers Peers connected, by client.\n# TYPE swarmdrop_peer_peers gauge\n");
            for (client, (n, _, _)) in &by_client {
                let _ = writeln!(out, "swarmdrop_peer_peers{{client=\"{client}\"}} {n}");
            }
            out.push_str("# HELP swarmdrop_peer_uploaded_bytes_total Block bytes sent, by client.\n# TYPE swarmdrop_peer_uploaded_bytes_total counter\n");
            for (client, (_, up, _)) in &by_client {
                let _ = writeln!(out, "swarmdrop_peer_uploaded_bytes_total{{client=\"{client}\"}} {up}");
            }
            out.push_str("# HELP swarmdrop_peer_downloaded_bytes_total Block bytes received, by client.\n# TYPE swarmdrop_peer_downloaded_bytes_total counter\n");
            for (client, (_, _, down)) in &by_client {
                let _ = writeln!(out, "swarmdrop_peer_downloaded_bytes_total{{client=\"{client}\"}} {down}");
            }
            out.push_str("# HELP swarmdrop_peer_choke_state Peers by choke state.\n# TYPE swarmdrop_peer_choke_state gauge\n");
            let _ = writeln!(out, "swarmdrop_peer_choke_state{{state=\"we_choke\"}} {choking}");
            let _ = writeln!(out, "swarmdrop_peer_choke_state{{state=\"they_choke\"}} {choked}");
            out.push_str("# HELP swarmdrop_peer_connections_total Connections that reached BitTorrent, by transport (plain, mse_plain: MSE handshake then plaintext, mse_rc4).\n# TYPE swarmdrop_peer_connections_total counter\n");
            for (transport, n) in &s.opened {
                let _ = writeln!(out, "swarmdrop_peer_connections_total{{transport=\"{transport}\"}} {n}");
            }
            out.push_str("# HELP swarmdrop_peer_closed_total Connections closed, by reason.\n# TYPE swarmdrop_peer_closed_total counter\n");
            for (code, n) in &s.closed {
                let _ = writeln!(out, "swarmdrop_peer_closed_total{{reason=\"{code}\"}} {n}");
            }
            let _ = write!(
                out,
                "# HELP swarmdrop_peer_hash_failures_total Pieces that failed their SHA-1.\n# TYPE swarmdrop_peer_hash_failures_total counter\nswarmdrop_peer_hash_failures_total {}\n\
                 # HELP swarmdrop_peer_bans_total Peers banned for sending bad data.\n# TYPE swarmdrop_peer_bans_total counter\nswarmdrop_peer_bans_total {}\n\
                 # HELP swarmdrop_peer_unrequested_blocks_total Blocks received that were never asked for.\n# TYPE swarmdrop_peer_unrequested_blocks_total counter\nswarmdrop_peer_unrequested_blocks_total {}\n\
                 # HELP swarmdrop_peer_late_blocks_total Blocks that came after we withdrew the request (a cancel or the peer's choke) and were no longer needed: dropped, not held against the peer.\n# TYPE swarmdrop_peer_late_blocks_total counter\nswarmdrop_peer_late_blocks_total {}\n\
                 # HELP swarmdrop_peer_redials_total Dials to peers that had left or could not be reached, made again after a backoff.\n# TYPE swarmdrop_peer_redials_total counter\nswarmdrop_peer_redials_total {}\n\
                 # HELP swarmdrop_peer_pieces_verified Pieces verified.\n# TYPE swarmdrop_peer_pieces_verified gauge\nswarmdrop_peer_pieces_verified {}\n\
                 # HELP swarmdrop_peer_pieces Pieces in the torrents of the run.\n# TYPE swarmdrop_peer_pieces gauge\nswarmdrop_peer_pieces {}\n",
                s.hash_failures,
                s.bans,
                s.unrequested,
                s.late,
                s.redials,
                s.progress.values().map(|p| u64::from(p.0)).sum::<u64>(),
                s.progress.values().map(|p| u64::from(p.1)).sum::<u64>()
            );
            out
        })
    }
}

/// Serves `GET /metrics` on `listener` until it fails.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: PeerMetrics,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    axum::serve(listener, app).await
}
