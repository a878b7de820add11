//! `swarmdrop verify`: check a published directory the way a client would, and more.
//!
//! Walks root (following `N.root.json` rotations) → timestamp → snapshot → targets
//! with [`TrustedSet`], then streams every asset (or the ones asked for) through the
//! same one-read hasher as `pack`, checking length and SHA-256 against the signed
//! targets, each p2p asset's torrent against its infohash and piece hashes, and the
//! provenance envelope against the targets keys and the targets list. Stops at the
//! first failure and names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use swarmdrop_manifest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use swarmdrop_manifest::keys::{KeyId, PublicKey};
use swarmdrop_manifest::torrent::Metainfo;
use swarmdrop_manifest::tuf::metadata::{Role, TargetFile};
use swarmdrop_manifest::tuf::{TrustedSet, TufError};
use swarmdrop_manifest::{DropPath, UtcTime};

use crate::digest::digest_file;
use crate::fsutil::read_capped;
use crate::layout::{Layout, MAX_METADATA_BYTES, MAX_ROOT_ROTATIONS, MAX_TORRENT_BYTES};
use crate::PublishError;

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The published directory.
    pub published: PathBuf,
    /// The root to trust; `None` trusts `metadata/1.root.json` of the directory itself.
    pub trusted_root: Option<PathBuf>,
    /// Only these drop paths (all when empty).
    pub assets: Vec<String>,
    /// The reference time for expiry.
    pub now: UtcTime,
}

/// One checked asset.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedAsset {
    /// Drop path.
    pub path: String,
    /// Length.
    pub length: u64,
    /// Whether a torrent was checked too.
    pub torrent_checked: bool,
    /// Where the verified data is.
    #[serde(skip)]
    pub data_file: PathBuf,
    /// Where its checked torrent is, if it has one.
    #[serde(skip)]
    pub torrent_file: Option<PathBuf>,
}

/// What verification established.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Root version reached.
    pub root_version: u64,
    /// Timestamp version.
    pub timestamp_version: u64,
    /// Snapshot version.
    pub snapshot_version: u64,
    /// Targets version.
    pub targets_version: u64,
    /// True when the trusted root came from the directory itself.
    pub trust_on_first_use: bool,
    /// Assets checked.
    pub assets: Vec<VerifiedAsset>,
    /// Subjects in the provenance statement (all matched the targets).
    pub provenance_subjects: usize,
    /// The reference time used.
    pub reference_time: UtcTime,
}

fn tuf_error(file: &Path, source: TufError) -> PublishError {
    PublishError::Tuf {
        file: file.display().to_string(),
        source,
    }
}

fn read_metadata(path: &Path) -> Result<Vec<u8>, PublishError> {
    read_capped(path, MAX_METADATA_BYTES)
}

/// Verifies a published directory; see the module documentation.
pub fn verify(
    options: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport, PublishError> {
    let layout = Layout::new(&options.published);
    let trust_on_first_use = options.trusted_root.is_none();
    let root_path = options
        .trusted_root
        .clone()
        .unwrap_or_else(|| layout.versioned(1, "root"));
    let mut set = TrustedSet::new(&read_metadata(&root_path)?, options.now)
        .map_err(|e| tuf_error(&root_path, e))?;

    for _ in 0..MAX_ROOT_ROTATIONS {
        if set.root().version == u64::MAX {
            break;
        }
        let next = layout.versioned(set.root().version + 1, "root");
        if !next.exists() {
            break;
        }
        set.update_root(&read_metadata(&next)?)
            .map_err(|e| tuf_error(&next, e))?;
    }
    if !set.root().consistent_snapshot {
        return Err(PublishError::Layout(format!(
            "root version {} does not use consistent snapshots; swarmdrop publishes and verifies only that layout",
            set.root().version
        )));
    }
    let timestamp_path = layout.metadata("timestamp.json");
    set.update_timestamp(&read_metadata(&timestamp_path)?)
        .map_err(|e| tuf_error(&timestamp_path, e))?;
    let snapshot_version = set
        .timestamp()
        .and_then(|t| t.meta.get("snapshot.json"))
        .map(|m| m.version)
        .ok_or_else(|| {
            tuf_error(
                &timestamp_path,
                TufError::MissingMeta {
                    parent: Role::Timestamp.to_string(),
                    name: "snapshot.json".into(),
                },
            )
        })?;
    let snapshot_path = layout.versioned(snapshot_version, "snapshot");
    set.update_snapshot(&read_metadata(&snapshot_path)?, false)
        .map_err(|e| tuf_error(&snapshot_path, e))?;
    let targets_version = set
        .snapshot()
        .and_then(|s| s.meta.get("targets.json"))
        .map(|m| m.version)
        .ok_or_else(|| {
            tuf_error(
                &snapshot_path,
                TufError::MissingMeta {
                    parent: Role::Snapshot.to_string(),
                    name: "targets.json".into(),
                },
            )
        })?;
    let targets_path = layout.versioned(targets_version, "targets");
    set.update_targets(&read_metadata(&targets_path)?)
        .map_err(|e| tuf_error(&targets_path, e))?;
    let targets = set.targets().map(|t| t.targets.clone()).unwrap_or_default();

    let selected: Vec<(&String, &TargetFile)> = if options.assets.is_empty() {
        targets.iter().collect()
    } else {
        options
            .assets
            .iter()
            .map(|wanted| {
                targets.get_key_value(wanted).ok_or_else(|| {
                    tuf_error(&targets_path, TufError::UnknownTarget(wanted.clone()))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut assets = Vec::with_capacity(selected.len());
    for (name, target) in selected {
        assets.push(verify_asset(
            &layout,
            &set,
            &targets_path,
            name,
            target,
            progress,
        )?);
    }
    let provenance_subjects = verify_provenance(&layout, &set, targets_version, &targets)?;

    Ok(VerifyReport {
        root_version: set.root().version,
        timestamp_version: set.timestamp().map_or(0, |t| t.version),
        snapshot_version,
        targets_version,
        trust_on_first_use,
        assets,
        provenance_subjects,
        reference_time: options.now,
    })
}

/// Piece lengths a published torrent may have: powers of two from 16 KiB to 256 MiB.
/// Checked before hashing, since the piece hasher keeps 20 bytes per piece.
fn valid_piece_length(piece_length: u32) -> bool {
    piece_length.is_power_of_two() && (16 * 1024..=256 * 1024 * 1024).contains(&piece_length)
}

fn verify_asset(
    layout: &Layout,
    set: &TrustedSet,
    targets_file: &Path,
    name: &str,
    target: &TargetFile,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifiedAsset, PublishError> {
    let in_targets = |problem: String| PublishError::Mismatch {
        file: targets_file.display().to_string(),
        problem: format!("{name}: {problem}"),
    };
    let path = DropPath::new(name).map_err(|e| in_targets(e.to_string()))?;
    let sha256 = target
        .hashes
        .get("sha256")
        .ok_or_else(|| in_targets("lists no sha256".into()))?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(in_targets(format!(
            "sha256 {sha256:?} is not 64 hex digits"
        )));
    }
    let file = layout.target(&path, &sha256.to_ascii_lowercase());

    // The torrent first: its piece length, checked, decides how the asset is hashed.
    let p2p = target.swarmdrop().and_then(|c| c.p2p);
    let torrent = match &p2p {
        Some(p2p) => {
            if !valid_piece_length(p2p.piece_length) {
                return Err(in_targets(format!(
                    "piece length {} is not a power of two from 16 KiB to 256 MiB",
                    p2p.piece_length
                )));
            }
            if !Layout::is_torrent_relative(&p2p.infohash, &p2p.torrent) {
                return Err(in_targets(format!(
                    "torrent path {:?} is not a torrent name for {}",
                    p2p.torrent, p2p.infohash
                )));
            }
            let torrent_path = layout.join(&p2p.torrent);
            let bytes = read_capped(&torrent_path, MAX_TORRENT_BYTES)?;
            let torrent_file = torrent_path.display().to_string();
            let meta = Metainfo::parse(&bytes).map_err(|source| PublishError::Torrent {
                file: torrent_file.clone(),
                source,
            })?;
            let mismatch = |problem: String| PublishError::Mismatch {
                file: torrent_file.clone(),
                problem,
            };
            if meta.info_hash != p2p.infohash {
                return Err(mismatch(format!(
                    "infohash is {}, signed targets say {}",
                    meta.info_hash, p2p.infohash
                )));
            }
            if meta.length != target.length || meta.piece_length != u64::from(p2p.piece_length) {
                return Err(mismatch(format!(
                    "describes {} bytes in pieces of {}; signed targets say {} bytes in pieces of {}",
                    meta.length, meta.piece_length, target.length, p2p.piece_length
                )));
            }
            Some((torrent_file, meta))
        }
        None => None,
    };

    let digests = digest_file(&file, p2p.as_ref().map(|p| p.piece_length), None, progress)
        .map_err(|e| match e {
            PublishError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PublishError::Mismatch {
                    file: name.to_owned(),
                    problem: format!("missing: {} does not exist", file.display()),
                }
            }
            other => other,
        })?;
    set.verify_target_digest(name, digests.length, &digests.sha256_hex())
        .map_err(|source| tuf_error(&file, source))?;
    // Clients check pieces against the signed midstates instead of reading the file
    // back: they must be the file's own.
    if let Some(signed) = p2p.as_ref().and_then(|p| p.sha256_midstates.as_deref()) {
        if !digests
            .midstates
            .as_deref()
            .is_some_and(|ours| ours.eq_ignore_ascii_case(signed))
        {
            return Err(PublishError::Mismatch {
                file: name.to_owned(),
                problem: "the signed sha256_midstates are not the file's".into(),
            });
        }
    }

    if let Some((torrent_file, meta)) = &torrent {
        if let Some(first_bad) = digests
            .pieces
            .as_deref()
            .unwrap_or_default()
            .iter()
            .zip(&meta.pieces)
            .position(|(a, b)| a != b)
        {
            return Err(PublishError::Mismatch {
                file: torrent_file.clone(),
                problem: format!("piece {first_bad} hash does not match {name}"),
            });
        }
    }
    Ok(VerifiedAsset {
        path: name.to_owned(),
        length: digests.length,
        torrent_checked: torrent.is_some(),
        torrent_file: torrent.map(|(file, _)| PathBuf::from(file)),
        data_file: file,
    })
}

fn verify_provenance(
    layout: &Layout,
    set: &TrustedSet,
    version: u64,
    targets: &BTreeMap<String, TargetFile>,
) -> Result<usize, PublishError> {
    let path = layout.provenance(version);
    let file = path.display().to_string();
    let bytes = read_metadata(&path)?;
    let envelope = Envelope::parse(&bytes).map_err(|source| PublishError::Provenance {
        file: file.clone(),
        source,
    })?;
    let root = set.root();
    let role = root
        .role(Role::Targets)
        .ok_or_else(|| PublishError::Layout("root has no targets role".into()))?;
    let trusted: Vec<(KeyId, PublicKey)> = role
        .keyids
        .iter()
        .filter_map(|id| {
            root.keys
                .get(id)
                .and_then(|k| k.public_key().ok())
                .map(|k| (id.clone(), k))
        })
        .collect();
    let payload = envelope
        .verify(IN_TOTO_PAYLOAD_TYPE, &trusted, role.threshold as usize)
        .map_err(|source| PublishError::Provenance {
            file: file.clone(),
            source,
        })?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| PublishError::Mismatch {
            file: file.clone(),
            problem: format!("statement is not JSON: {e}"),
        })?;
    let mismatch = |problem: String| PublishError::Mismatch {
        file: file.clone(),
        problem,
    };
    if statement["_type"] != swarmdrop_manifest::provenance::STATEMENT_TYPE {
        return Err(mismatch(format!(
            "statement _type is {}",
            statement["_type"]
        )));
    }
    let subjects: BTreeMap<String, String> = statement["subject"]
        .as_array()
        .ok_or_else(|| mismatch("statement has no subject list".into()))?
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default().to_owned();
            let digest = s["digest"]["sha256"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (name, digest)
        })
        .collect();
    let expected: BTreeMap<String, String> = targets
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.hashes.get("sha256").cloned().unwrap_or_default(),
            )
        })
        .collect();
    if subjects != expected {
        let differing = expected
            .iter()
            .find(|(name, digest)| subjects.get(*name) != Some(digest))
            .map(|(name, _)| name.clone())
            .or_else(|| {
                subjects
                    .keys()
                    .find(|name| !expected.contains_key(*name))
                    .cloned()
            })
            .unwrap_or_default();
        return Err(mismatch(format!(
            "statement subjects differ from the signed targets (first: {differing:?})"
        )));
    }
    Ok(subjects.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_lengths_from_signed_metadata_are_bounded() {
        assert!(valid_piece_length(16 * 1024));
        assert!(valid_piece_length(1 << 28));
        for bad in [0, 1, 16 * 1024 - 1, 3 << 14, 1 << 29] {
            assert!(!valid_piece_length(bad), "{bad}");
        }
    }

    #[test]
    fn torrent_paths_from_signed_metadata_stay_in_torrents() {
        let ih = swarmdrop_manifest::InfoHash([0xab; 20]);
        let good = Layout::torrent_relative(&ih, b"d4:infod...e");
        assert!(Layout::is_torrent_relative(&ih, &good));
        for bad in [
            format!("../{good}"),
            format!("/{good}"),
            format!("torrents/{}.torrent", ih),
            format!("torrents/{}.../../x.torrent", ih),
            good.replace("abab", "cdcd"),
        ] {
            assert!(!Layout::is_torrent_relative(&ih, &bad), "{bad}");
        }
    }
}
