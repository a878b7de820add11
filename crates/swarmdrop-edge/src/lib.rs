//! The edge cache: serves a published drop over HTTP (ranges, ETags, cache headers) from a
//! memory and a disk tier, filling from the origin with one verified fetch per object,
//! pre-warmed and purged by the control plane, gated by viewer tokens for private drops,
//! and usable as a BEP 19 webseed. See docs/design/0005-edge.md.

pub mod admin;
pub mod config;
pub mod fill;
pub mod index;
pub mod metadata;
pub mod metrics;
pub mod pacing;
pub mod proto;
pub mod serve;
pub mod server;
pub mod source;
pub mod state;
pub mod tiers;
pub mod torrents;

pub use config::EdgeConfig;
pub use state::{Edge, EdgeError, EdgeEvent};
