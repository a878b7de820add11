//! Peers over TCP: the tokio driver around the sans-IO `swarmdrop-wire` controller. The
//! controller runs on a thread of its own (its store does positioned file IO, which may
//! block briefly); connection tasks only move bytes. See docs/design/0006-wire.md.

pub mod driver;
pub mod magnet;
pub mod metrics;
pub mod ratelimit;
pub mod runtime;
pub mod storage;
pub mod tracker;
pub mod transport;
pub mod udp_tracker;

pub use driver::{
    run, run_all, start_all, Job, PeerOptions, PieceCheck, Progress, RunSummary, Swarm, SwarmEvent,
    TorrentHandle,
};
pub use metrics::{serve_metrics, PeerMetrics};
pub use storage::FileStore;
pub use transport::Encryption;
