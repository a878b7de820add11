//! A BitTorrent tracker: HTTP (BEP 3, 23, 7, 48) and UDP (BEP 15, 41), token-gated for
//! private drops.
//!
//! [`proto`] is the sans-IO core: codecs, connection ids, swarms. The servers are thin
//! tokio shells around it.
#![warn(missing_docs)]

pub mod proto;
pub mod server;
