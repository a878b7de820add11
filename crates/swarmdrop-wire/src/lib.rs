//! The BitTorrent peer wire protocol as a sans-IO core: bytes in, messages out, and the
//! reverse. No sockets, no clocks: the tokio driver and the deterministic swarm test both
//! feed it. See docs/design/0006-wire.md.

pub mod bitfield;
pub mod choker;
pub mod codec;
pub mod extension;
pub mod mse;
pub mod picker;
pub mod session;
pub mod torrent;

pub use bitfield::Bitfield;
pub use codec::{Decoder, Handshake, Message, WireError};
