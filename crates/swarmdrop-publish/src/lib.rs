//! The filesystem side of publishing a drop.
//!
//! - [`keyset`]: `swarmdrop keygen`, the ed25519 keys for the TUF roles and receipts.
//! - [`pack`]: `swarmdrop pack`, which reads every asset once, hashing SHA-256 and
//!   BitTorrent SHA-1 pieces on separate threads ([`digest`]), and writes the
//!   published directory ([`layout`]) of TUF metadata, targets, torrents and provenance.
//! - [`verify`]: `swarmdrop verify`, the TUF client walk over a published directory,
//!   plus every asset, torrent and the provenance envelope.
//!
//! The rules live in `swarmdrop-manifest`; this crate reads and writes files.
#![warn(missing_docs)]

pub mod digest;
mod error;
mod flush;
mod fsutil;
pub mod keyset;
pub mod layout;
pub mod pack;
pub mod verify;

pub use error::PublishError;
pub use fsutil::read_capped;

/// Our version, written into torrents and provenance.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
