//! The edge's index of what it may serve, built from verified TUF metadata (sans IO:
//! bytes in, index out; `metadata.rs` does the fetching).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::tuf::{Role, TrustedSet, TufError};
use swarmdrop_manifest::{DropPath, InfoHash};

/// A target the signed metadata lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its drop path (`frames/f001.png`).
    pub name: String,
    /// Its consistent-snapshot path under `targets/`.
    pub served: String,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256.
    pub sha256: [u8; 32],
    /// Its class (empty when the metadata names none).
    pub class: String,
    /// `"<sha256 hex>"`, the ETag.
    pub etag: String,
    /// The same, ready for a response header.
    pub etag_value: Option<axum::http::HeaderValue>,
}

impl Target {
    /// The SHA-256 in hex (also the ETag).
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A torrent the signed metadata names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRef {
    /// The swarm it must describe.
    pub info_hash: InfoHash,
    /// The first 16 hex digits of its SHA-256 (from its name).
    pub sha256_prefix: String,
    /// The class of its target.
    pub class: String,
}

/// Everything the edge may serve for one verified metadata state.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// By consistent-snapshot path under `targets/`.
    pub by_served: HashMap<String, Arc<Target>>,
    /// By drop path.
    pub by_name: BTreeMap<String, Arc<Target>>,
    /// By file name under `torrents/`.
    pub torrents: HashMap<String, TorrentRef>,
    /// Verified metadata files by name under `metadata/`.
    pub metadata: HashMap<String, Bytes>,
    /// Their ETags (quoted SHA-256), computed once.
    pub etags: HashMap<String, String>,
    /// Root, timestamp, snapshot and targets versions.
    pub versions: [u64; 4],
}

/// Metadata that did not verify, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {error}")]
pub struct IndexError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub error: TufError,
}

/// The verified files of one refresh, in the order they were loaded.
#[derive(Debug, Clone, Default)]
pub struct MetadataFiles {
    /// `N.root.json` for each root version trusted, oldest first.
    pub roots: Vec<Bytes>,
    /// `timestamp.json`.
    pub timestamp: Bytes,
    /// The snapshot the timestamp names.
    pub snapshot: Bytes,
    /// The targets the snapshot names.
    pub targets: Bytes,
}

impl Index {
    /// Builds the index from a set that has loaded timestamp, snapshot and targets, and
    /// the bytes it loaded them from.
    pub fn build(set: &TrustedSet, files: &MetadataFiles) -> Result<Self, IndexError> {
        let missing = |role: Role, file: &str| IndexError {
            file: file.to_owned(),
            error: TufError::OutOfOrder {
                role: role.to_string(),
                why: "not loaded",
            },
        };
        let timestamp = set
            .timestamp()
            .ok_or_else(|| missing(Role::Timestamp, "timestamp.json"))?;
        let snapshot = set
            .snapshot()
            .ok_or_else(|| missing(Role::Snapshot, "snapshot.json"))?;
        let targets = set
            .targets()
            .ok_or_else(|| missing(Role::Targets, "targets.json"))?;
        let mut index = Index {
            versions: [
                set.root().version,
                timestamp.version,
                snapshot.version,
                targets.version,
            ],
            ..Index::default()
        };
        let first_root = set.root().version + 1 - files.roots.len() as u64;
        for (offset, bytes) in files.roots.iter().enumerate() {
            index.metadata.insert(
                format!("{}.root.json", first_root + offset as u64),
                bytes.clone(),
            );
        }
        if let Some(latest) = files.roots.last() {
            index.metadata.insert("root.json".into(), latest.clone());
        }
        index
            .metadata
            .insert("timestamp.json".into(), files.timestamp.clone());
        index.metadata.insert(
            format!("{}.snapshot.json", snapshot.version),
            files.snapshot.clone(),
        );
        index.metadata.insert(
            format!("{}.targets.json", targets.version),
            files.targets.clone(),
        );
        index.etags = index
            .metadata
            .iter()
            .map(|(name, bytes)| {
                (
                    name.clone(),
                    format!("\"{}\"", hex::encode(Sha256::digest(bytes))),
                )
            })
            .collect();
        for (name, file) in &targets.targets {
            let bad = |why: &str| IndexError {
                file: format!("{}.targets.json", targets.version),
                error: TufError::Malformed {
                    role: Role::Targets.to_string(),
                    detail: format!("target {name:?}: {why}"),
                },
            };
            let Ok(path) = DropPath::new(name) else {
                return Err(bad("not a valid drop path"));
            };
            let sha256_hex = file.hashes.get("sha256").ok_or_else(|| bad("no sha256"))?;
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(sha256_hex, &mut sha256).map_err(|_| bad("bad sha256"))?;
            let custom = file.swarmdrop();
            let class = custom
                .as_ref()
                .map(|c| c.class.as_str().to_owned())
                .unwrap_or_default();
            if let Some(p2p) = custom.as_ref().and_then(|c| c.p2p.as_ref()) {
                // Pack's names only: torrents/<infohash hex>.<16 hex>.torrent.
                let parts = p2p
                    .torrent
                    .strip_prefix("torrents/")
                    .and_then(|rest| rest.strip_suffix(".torrent"))
                    .and_then(|rest| rest.split_once('.'));
                match parts {
                    Some((hash, prefix))
                        if hash == p2p.infohash.to_hex()
                            && prefix.len() == 16
                            && prefix.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        index.torrents.insert(
                            format!("{hash}.{prefix}.torrent"),
                            TorrentRef {
                                info_hash: p2p.infohash,
                                sha256_prefix: prefix.to_ascii_lowercase(),
                                class: class.clone(),
                            },
                        );
                    }
                    _ => return Err(bad("its torrent path is not one pack writes")),
                }
            }
            let target = Arc::new(Target {
                name: name.clone(),
                served: path.hash_prefixed(sha256_hex),
                length: file.length,
                sha256,
                class,
                etag: format!("\"{sha256_hex}\""),
                etag_value: axum::http::HeaderValue::from_str(&format!("\"{sha256_hex}\"")).ok(),
            });
            index
                .by_served
                .insert(target.served.clone(), target.clone());
            index.by_name.insert(name.clone(), target);
        }
        Ok(index)
    }

    /// Targets of the given classes (all when `classes` is empty).
    pub fn targets_of(&self, classes: &[String]) -> Vec<Arc<Target>> {
        self.by_name
            .values()
            .filter(|t| classes.is_empty() || classes.contains(&t.class))
            .cloned()
            .collect()
    }
}
