//! The drop model and everything that proves it, with no IO.
//!
//! - [`policy`]: the policy file (classes, budgets, paths, asset globs).
//! - [`tuf`]: TUF 1.0 metadata: building, signing and the client-side verification walk.
//! - [`dsse`] and [`provenance`]: the in-toto/SLSA statement in a DSSE envelope.
//! - [`torrent`]: BitTorrent v1 metainfo and magnet links, and [`hashing`], the
//!   incremental SHA-256 and SHA-1 piece hashers that feed both.
//! - [`qoe`]: the quality-of-experience report a client sends at the end of a run.
//!
//! Functions take bytes and a [`UtcTime`] and return values; the filesystem and
//! the clock belong to callers (`swarmdrop-publish`, the CLI).
#![warn(missing_docs)]

pub mod canonical;
pub mod config;
pub mod dsse;
pub mod hashing;
pub mod keys;
pub mod midstates;
pub mod model;
pub mod policy;
pub mod provenance;
pub mod qoe;
pub mod time;
pub mod torrent;
pub mod tuf;

pub use model::{ClassName, DropName, DropPath, InfoHash, ModelError, PathKind};
pub use time::UtcTime;
