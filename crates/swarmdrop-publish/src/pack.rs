//! `swarmdrop pack`: publish a drop directory as signed TUF metadata, hash-named
//! targets, one torrent per p2p asset, and build provenance.
//!
//! Packing into a directory that already holds a release adds the next version when
//! any asset is new or changed (this is how a live drop publishes segments); root
//! stays, and old versions' files stay servable. Files are written so a reader never
//! sees a release half-made: immutable files first, `timestamp.json` last, each by
//! rename. With a fixed clock (`SOURCE_DATE_EPOCH`) the output is byte-identical.

mod scan;
mod state;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use swarmdrop_manifest::hashing::piece_length_for;
use swarmdrop_manifest::policy::Policy;
use swarmdrop_manifest::provenance::{Digested, PackProvenance};
use swarmdrop_manifest::torrent::{magnet_link, Metainfo, NewTorrent};
use swarmdrop_manifest::tuf::metadata::{P2pInfo, TargetCustom, TargetFile};
use swarmdrop_manifest::tuf::release::{build_release, new_root, Expiries, ReleaseKeys};
use swarmdrop_manifest::tuf::sign_metadata;
use swarmdrop_manifest::model::percent_encode;
use swarmdrop_manifest::{DropPath, UtcTime};

use crate::digest::{digest_file, Digests};
use crate::flush::Flusher;
use crate::fsutil::{read_capped, write_atomic};
use crate::keyset;
use crate::layout::{Layout, MAX_POLICY_BYTES, MAX_TORRENT_BYTES};
use crate::PublishError;

/// Where the time comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// A fixed instant (`SOURCE_DATE_EPOCH`): reproducible output.
    Fixed(UtcTime),
    /// The system clock.
    System,
}

impl Clock {
    /// The current time by this clock.
    pub fn now(&self) -> UtcTime {
        match self {
            Clock::Fixed(t) => *t,
            Clock::System => {
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                UtcTime::saturating_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
            }
        }
    }
}

/// Receives progress while assets are hashed.
pub trait PackProgress: Sync {
    /// Hashing starts: this many files and bytes.
    fn begin(&self, _files: usize, _bytes: u64) {}
    /// Another chunk of bytes was hashed.
    fn advance(&self, _bytes: u64) {}
    /// Hashing is done.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl PackProgress for NoProgress {}

/// How assets get into `targets/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Copy each asset while hashing it (safe: later edits to the source cannot touch
    /// the published file).
    #[default]
    Copy,
    /// Hard-link each asset after hashing it (no second copy on disk; falls back to
    /// copying across filesystems). Editing a source in place afterwards would change
    /// the published file too; `verify` and every client would then refuse it.
    Hardlink,
}

/// What to pack and how.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The drop directory.
    pub assets_dir: PathBuf,
    /// The policy file.
    pub policy_file: PathBuf,
    /// The key directory from `keygen`.
    pub keys_dir: PathBuf,
    /// The published directory (created or updated).
    pub out_dir: PathBuf,
    /// Tracker announce URLs, in preference order.
    pub trackers: Vec<String>,
    /// Base URLs where the published directory is served (webseeds, BEP 19).
    pub webseeds: Vec<String>,
    /// Metadata lifetimes.
    pub expiries: Expiries,
    /// Copy or hard-link assets into `targets/`.
    pub link: LinkMode,
}

/// One published asset.
#[derive(Debug, Clone, Serialize)]
pub struct AssetReport {
    /// Drop path.
    pub path: String,
    /// Class.
    pub class: String,
    /// Length in bytes.
    pub length: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// The published file, relative to the published directory.
    pub target: String,
    /// Torrent details for p2p classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p2p: Option<P2pInfo>,
}

/// What `pack` did.
#[derive(Debug, Clone, Serialize)]
pub struct PackReport {
    /// The published directory.
    pub published: PathBuf,
    /// The release version now current.
    pub version: u64,
    /// The root version.
    pub root_version: u64,
    /// False when nothing changed and no version was added.
    pub new_version: bool,
    /// Total asset bytes.
    pub total_bytes: u64,
    /// Assets, by drop path.
    pub assets: Vec<AssetReport>,
}

fn check_urls(flag: &str, urls: &[String], schemes: &[&str]) -> Result<(), PublishError> {
    for url in urls {
        let ok = schemes.iter().any(|s| {
            url.strip_prefix(s)
                .is_some_and(|rest| rest.len() > 3 && rest.starts_with("://"))
        });
        if !ok || url.chars().any(char::is_whitespace) {
            return Err(PublishError::Layout(format!(
                "{flag} {url:?} is not a URL with scheme {}",
                schemes.join(" or ")
            )));
        }
    }
    Ok(())
}

/// The webseed URL of one target: the base, `targets/`, and the hash-prefixed path with
/// each segment percent-encoded.
pub fn webseed_url(base: &str, path: &DropPath, sha256_hex: &str) -> String {
    let encoded = percent_encode(&path.hash_prefixed(sha256_hex), b"/");
    format!("{}/targets/{encoded}", base.trim_end_matches('/'))
}

/// Packs a drop. See the module documentation.
pub fn pack(
    options: &PackOptions,
    clock: Clock,
    progress: &dyn PackProgress,
) -> Result<PackReport, PublishError> {
    let started = clock.now();
    check_urls("--tracker", &options.trackers, &["http", "https", "udp"])?;
    check_urls("--webseed", &options.webseeds, &["http", "https"])?;
    let policy_bytes = read_capped(&options.policy_file, MAX_POLICY_BYTES)?;
    let policy_text = std::str::from_utf8(&policy_bytes).map_err(|_| PublishError::Asset {
        path: options.policy_file.clone(),
        problem: "policy file is not UTF-8".into(),
    })?;
    let policy = Policy::parse(policy_text, &options.policy_file.display().to_string())?;
    let assets = scan::scan(&options.assets_dir, &policy)?;
    let keys = keyset::load(&options.keys_dir)?;
    let layout = Layout::new(&options.out_dir);
    let existing = state::read_existing(&layout)?;
    if let Some(existing) = &existing {
        state::check_keys_match(existing, &keys, &layout)?;
    }

    let total_bytes: u64 = assets.iter().map(|a| a.length).sum();
    progress.begin(assets.len(), total_bytes);
    let advance = |n: u64| progress.advance(n);
    let mut published = Vec::with_capacity(assets.len());
    let flusher = Flusher::start();
    for asset in &assets {
        let piece_length = asset
            .class
            .allows_p2p()
            .then(|| piece_length_for(asset.length));
        let previous = existing
            .as_ref()
            .and_then(|e| e.targets.get(asset.path.as_str()));
        let target = Target {
            source: &asset.source,
            path: &asset.path,
            piece_length,
            previous,
        };
        let digests = publish_target(&layout, &target, options.link, &flusher, &advance)?;
        published.push((asset, digests, piece_length));
    }
    progress.finish();

    let mut targets = BTreeMap::new();
    let mut reports = Vec::with_capacity(published.len());
    let mut torrents = Vec::new();
    for (asset, digests, piece_length) in &published {
        let sha256 = digests.sha256_hex();
        let p2p = match (piece_length, &digests.pieces) {
            (Some(piece_length), Some(pieces)) => {
                let webseeds: Vec<String> = options
                    .webseeds
                    .iter()
                    .map(|base| webseed_url(base, &asset.path, &sha256))
                    .collect();
                let (bytes, info_hash) = NewTorrent {
                    name: asset.path.file_name(),
                    length: digests.length,
                    piece_length: *piece_length,
                    pieces,
                    trackers: &options.trackers,
                    webseeds: &webseeds,
                    created_by: concat!("swarmdrop/", env!("CARGO_PKG_VERSION")),
                    creation_date: started.unix(),
                }
                .build()
                .map_err(|source| PublishError::Torrent {
                    file: asset.path.to_string(),
                    source,
                })?;
                let torrent = Layout::torrent_relative(&info_hash);
                torrents.push((torrent.clone(), bytes));
                Some(P2pInfo {
                    infohash: info_hash,
                    piece_length: *piece_length,
                    torrent,
                    magnet: magnet_link(
                        &info_hash,
                        asset.path.file_name(),
                        &options.trackers,
                        &webseeds,
                    ),
                })
            }
            _ => None,
        };
        let custom = TargetCustom {
            class: asset.class.name.clone(),
            budget_ms: asset.class.budget_ms,
            paths: asset.class.paths.clone(),
            p2p: p2p.clone(),
        };
        let target = TargetFile {
            length: digests.length,
            hashes: BTreeMap::from([("sha256".to_owned(), sha256.clone())]),
            custom: Some(
                serde_json::to_value(&custom).map_err(|e| PublishError::Layout(e.to_string()))?,
            ),
        };
        targets.insert(asset.path.to_string(), target);
        reports.push(AssetReport {
            path: asset.path.to_string(),
            class: asset.class.name.to_string(),
            length: digests.length,
            sha256: sha256.clone(),
            target: format!("targets/{}", asset.path.hash_prefixed(&sha256)),
            p2p,
        });
    }
    for (relative, bytes) in &torrents {
        write_torrent(&layout, relative, bytes)?;
    }

    if let Some(existing) = &existing {
        if existing.targets == targets {
            return Ok(PackReport {
                published: options.out_dir.clone(),
                version: existing.version,
                root_version: existing.root.version,
                new_version: false,
                total_bytes,
                assets: reports,
            });
        }
    }

    let root_version = match &existing {
        Some(existing) => existing.root.version,
        None => write_first_root(&layout, &keys, started, &options.expiries)?,
    };
    let version = existing.as_ref().map_or(1, |e| e.version + 1);
    let release = build_release(
        version,
        targets,
        ReleaseKeys {
            targets: &keys.targets,
            snapshot: &keys.snapshot,
            timestamp: &keys.timestamp,
        },
        started,
        &options.expiries,
    )?;
    write_atomic(&layout.versioned(version, "targets"), &release.targets)?;
    write_atomic(&layout.versioned(version, "snapshot"), &release.snapshot)?;

    let subjects: Vec<Digested> = reports
        .iter()
        .map(|r| Digested {
            name: r.path.clone(),
            sha256: r.sha256.clone(),
        })
        .collect();
    let statement = PackProvenance {
        drop: policy.drop.name.as_str(),
        version,
        policy: Digested {
            name: options
                .policy_file
                .file_name()
                .map_or_else(|| "policy".into(), |n| n.to_string_lossy().into_owned()),
            sha256: hex::encode(Sha256::digest(&policy_bytes)),
        },
        assets: &subjects,
        trackers: &options.trackers,
        webseeds: &options.webseeds,
        builder_version: crate::VERSION,
        started_on: started,
        finished_on: clock.now(),
    }
    .statement();
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &statement, &[&keys.targets]);
    let mut envelope_bytes =
        serde_json::to_vec_pretty(&envelope).map_err(|e| PublishError::Layout(e.to_string()))?;
    envelope_bytes.push(b'\n');
    write_atomic(&layout.provenance(version), &envelope_bytes)?;

    // Last: the one file that makes the new release visible, once every target is durable.
    flusher.finish()?;
    write_atomic(&layout.metadata("timestamp.json"), &release.timestamp)?;
    Ok(PackReport {
        published: options.out_dir.clone(),
        version,
        root_version,
        new_version: true,
        total_bytes,
        assets: reports,
    })
}

/// One asset on its way into `targets/`.
struct Target<'a> {
    source: &'a Path,
    path: &'a DropPath,
    piece_length: Option<u32>,
    previous: Option<&'a TargetFile>,
}

/// Hashes an asset and makes sure its hash-named file is in `targets/`. When the last
/// release had the same path and length and its file is there, hash without copying
/// first: an unchanged asset is then read once and written never.
fn publish_target(
    layout: &Layout,
    target: &Target<'_>,
    link: LinkMode,
    flusher: &Flusher,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Digests, PublishError> {
    let (source, path) = (target.source, target.path);
    let probably_unchanged = target
        .previous
        .and_then(|p| p.hashes.get("sha256").map(|h| (p.length, h)))
        .filter(|(length, hash)| {
            fs::metadata(layout.target(path, hash)).is_ok_and(|m| m.len() == *length)
                && fs::metadata(source).is_ok_and(|m| m.len() == *length)
        });
    if let Some((_, previous_hash)) = probably_unchanged {
        let digests = digest_file(source, target.piece_length, None, progress)?;
        if &digests.sha256_hex() == previous_hash {
            return Ok(digests);
        }
    }
    let placeholder = layout.target(path, "partial");
    let dir = placeholder.parent().unwrap_or(layout.root()).to_owned();
    fs::create_dir_all(&dir).map_err(|e| PublishError::io(&dir, e))?;
    if link == LinkMode::Hardlink {
        let before = fs::metadata(source).map_err(|e| PublishError::io(source, e))?;
        let digests = digest_file(source, target.piece_length, None, progress)?;
        let final_path = layout.target(path, &digests.sha256_hex());
        if !final_path.exists() {
            if fs::hard_link(source, &final_path).is_err() {
                // Another filesystem, or one without links: copy instead.
                fs::copy(source, &final_path).map_err(|e| PublishError::io(&final_path, e))?;
                flusher.sync(final_path.clone());
            }
            let after = fs::metadata(&final_path).map_err(|e| PublishError::io(&final_path, e))?;
            if after.len() != before.len() || after.modified().ok() != before.modified().ok() {
                let _ = fs::remove_file(&final_path);
                return Err(PublishError::Asset {
                    path: source.to_owned(),
                    problem: "changed while it was being packed; pack again".into(),
                });
            }
        }
        return Ok(digests);
    }
    let temp = dir.join(format!(
        ".{}.partial-{}",
        path.file_name(),
        std::process::id()
    ));
    let digests = match digest_file(source, target.piece_length, Some(&temp), progress) {
        Ok(d) => d,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    let final_path = layout.target(path, &digests.sha256_hex());
    if final_path.exists() {
        fs::remove_file(&temp).map_err(|e| PublishError::io(&temp, e))?;
    } else {
        fs::rename(&temp, &final_path).map_err(|e| PublishError::io(&final_path, e))?;
        flusher.sync(final_path);
    }
    Ok(digests)
}

/// Torrents are named by infohash; the file is rewritten only when its trackers or
/// webseeds changed, so an unchanged asset's torrent keeps its bytes.
fn write_torrent(layout: &Layout, relative: &str, bytes: &[u8]) -> Result<(), PublishError> {
    let path = layout.join(relative);
    if let Ok(existing) = read_capped(&path, MAX_TORRENT_BYTES) {
        if let (Ok(old), Ok(new)) = (Metainfo::parse(&existing), Metainfo::parse(bytes)) {
            if old.info_hash == new.info_hash
                && old.announce_list == new.announce_list
                && old.url_list == new.url_list
            {
                return Ok(());
            }
        }
    }
    write_atomic(&path, bytes)
}

fn write_first_root(
    layout: &Layout,
    keys: &keyset::Keyset,
    now: UtcTime,
    expiries: &Expiries,
) -> Result<u64, PublishError> {
    let threshold = keys.index.root_threshold as usize;
    if keys.root.len() < threshold {
        return Err(PublishError::Keyset(format!(
            "the first pack signs root with {threshold} root key(s), but only {} root private key(s) are in the key directory",
            keys.root.len()
        )));
    }
    let root = new_root(&keys.role_public_keys(), 1, now, expiries);
    let signers: Vec<_> = keys.root.iter().collect();
    let bytes = sign_metadata(&root, &signers)?;
    write_atomic(&layout.versioned(1, "root"), &bytes)?;
    write_atomic(&layout.metadata("root.json"), &bytes)?;
    Ok(1)
}

#[cfg(test)]
mod tests;
