//! Where things live in a published directory.
//!
//! ```text
//! PUBLISHED/metadata/   N.root.json, root.json, N.targets.json, N.snapshot.json, timestamp.json
//! PUBLISHED/targets/    frames/<sha256>.f001.png   (TUF consistent-snapshot names)
//! PUBLISHED/torrents/   <infohash>.<sha256 of the torrent, 16 hex>.torrent
//! PUBLISHED/provenance/ N.dsse.json                (in-toto/SLSA statement for targets version N)
//! ```
//! Everything but `root.json` and `timestamp.json` (and the pack lock,
//! `.swarmdrop-pack.lock`) is immutable once written, so mirrors and edges can cache it
//! forever.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::{DropPath, InfoHash};

/// Largest metadata file read (a targets file for a big live drop fits easily).
pub const MAX_METADATA_BYTES: u64 = 32 * 1024 * 1024;
/// Largest torrent file read.
pub const MAX_TORRENT_BYTES: u64 = 16 * 1024 * 1024;
/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// Most root rotations followed in one walk.
pub const MAX_ROOT_ROTATIONS: u64 = 1024;

/// Paths inside one published directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The published directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `metadata/`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// `metadata/NAME`.
    pub fn metadata(&self, name: &str) -> PathBuf {
        self.metadata_dir().join(name)
    }

    /// `metadata/N.ROLE.json`.
    pub fn versioned(&self, version: u64, role: &str) -> PathBuf {
        self.metadata(&format!("{version}.{role}.json"))
    }

    /// The file of a target under its consistent-snapshot name.
    pub fn target(&self, path: &DropPath, sha256_hex: &str) -> PathBuf {
        self.root
            .join("targets")
            .join(path.hash_prefixed(sha256_hex))
    }

    /// Where a torrent goes, relative to the published root: named by its infohash and
    /// the start of its own SHA-256, so a torrent with other trackers or webseeds for
    /// the same asset is another file and every torrent file is immutable.
    pub fn torrent_relative(info_hash: &InfoHash, torrent: &[u8]) -> String {
        let digest = hex::encode(Sha256::digest(torrent));
        format!("torrents/{}.{}.torrent", info_hash.to_hex(), &digest[..16])
    }

    /// True when `relative` is a torrent name [`Layout::torrent_relative`] could have made
    /// for `info_hash`: signed metadata must not point a reader anywhere else.
    pub fn is_torrent_relative(info_hash: &InfoHash, relative: &str) -> bool {
        relative
            .strip_prefix("torrents/")
            .and_then(|rest| rest.strip_suffix(".torrent"))
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(hash, digest)| {
                hash == info_hash.to_hex()
                    && digest.len() == 16
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            })
    }

    /// A path relative to the published root.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The provenance envelope for targets version N.
    pub fn provenance(&self, version: u64) -> PathBuf {
        self.root
            .join("provenance")
            .join(format!("{version}.dsse.json"))
    }
}
