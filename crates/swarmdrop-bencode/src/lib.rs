//! Bencode, the serialisation of BitTorrent metainfo and tracker replies (BEP 3).
//!
//! Decoding borrows from the input and is bounded: nesting depth is capped (a
//! `.torrent` nests four levels; an attacker's file nests 100,000), every length
//! prefix is checked against the bytes that remain before anything is allocated, so a
//! `10000000000:` prefix costs nothing, and the number of values is capped, so memory
//! stays under a fixed budget whatever the input.
//! Decoded dictionaries keep the exact bytes they were decoded from, which is what
//! BitTorrent hashes to make an infohash.
//!
//! Encoding writes into a caller's buffer through [`Writer`], which refuses dictionary
//! keys out of order: canonical bencode is the only bencode we emit.
#![warn(missing_docs)]

mod decode;
mod encode;

pub use decode::{decode, decode_prefix, DecodeError, DecodeErrorKind, Decoder, Dict, Value};
pub use encode::{DictWriter, EncodeError, Writer};

/// The default nesting limit. Metainfo nests four levels deep; tracker replies three.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The default value budget: a million values (about 48 MiB decoded). A multi-file
/// torrent of 100,000 files has about half a million.
pub const DEFAULT_MAX_ITEMS: usize = 1 << 20;
