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
mod targets;

use state::Existing;
use targets::{publish_target, Target};

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use swarmdrop_manifest::hashing::piece_length_for;
use swarmdrop_manifest::model::percent_encode;
use swarmdrop_manifest::policy::Policy;
use swarmdrop_manifest::provenance::{Digested, PackProvenance};
use swarmdrop_manifest::torrent::{magnet_link, Metainfo, NewTorrent};
use swarmdrop_manifest::tuf::metadata::{P2pInfo, TargetCustom, TargetFile};
use swarmdrop_manifest::tuf::release::{
    build_release, new_root, resign_timestamp, Expiries, ReleaseKeys,
};
use swarmdrop_manifest::tuf::sign_metadata;
use swarmdrop_manifest::{DropPath, InfoHash, UtcTime};

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

/// What a pack run did to the published directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackOutcome {
    /// A new release (targets, snapshot, timestamp) was published.
    NewVersion,
    /// No asset changed; the release stays as it was.
    Unchanged,
    /// No asset changed; `timestamp.json` was re-signed because it was past half its life.
    TimestampRefreshed,
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
    /// What happened.
    pub outcome: PackOutcome,
    /// True for [`PackOutcome::NewVersion`].
    pub new_version: bool,
    /// When the current `timestamp.json` expires.
    pub timestamp_expires: UtcTime,
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

/// Refuses an output directory inside the drop: the next pack would publish it.
fn check_out_not_in_assets(options: &PackOptions) -> Result<(), PublishError> {
    let assets = fs::canonicalize(&options.assets_dir)
        .map_err(|e| PublishError::io(&options.assets_dir, e))?;
    let out =
        fs::canonicalize(&options.out_dir).map_err(|e| PublishError::io(&options.out_dir, e))?;
    if out.starts_with(&assets) {
        return Err(PublishError::Layout(format!(
            "--out {} is inside the drop directory {}; the next pack would publish it",
            options.out_dir.display(),
            options.assets_dir.display()
        )));
    }
    Ok(())
}

/// Holds an exclusive lock on `PUBLISHED/.swarmdrop-pack.lock` while packing: two packs
/// at once would both write version N+1.
fn lock(layout: &Layout) -> Result<fs::File, PublishError> {
    let path = layout.root().join(".swarmdrop-pack.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| PublishError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(PublishError::Layout(format!(
            "another swarmdrop pack is writing {} (lock {} is held)",
            layout.root().display(),
            path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(PublishError::io(&path, e)),
    }
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
    let policy_text = std::str::from_utf8(&policy_bytes).map_err(|_| {
        PublishError::Layout(format!(
            "{}: the policy file is not UTF-8",
            options.policy_file.display()
        ))
    })?;
    let policy = Policy::parse(policy_text, &options.policy_file.display().to_string())?;
    let keys = keyset::load(&options.keys_dir)?;
    let layout = Layout::new(&options.out_dir);
    fs::create_dir_all(layout.root()).map_err(|e| PublishError::io(layout.root(), e))?;
    check_out_not_in_assets(options)?;
    let assets = scan::scan(&options.assets_dir, &policy)?;
    let _lock = lock(&layout)?;
    let existing = state::read_existing(&layout)?;
    if let Some(existing) = &existing {
        state::check_keys_match(existing, &keys, &layout)?;
    }

    let total_bytes: u64 = assets.iter().map(|a| a.length).sum();
    progress.begin(assets.len(), total_bytes);
    let advance = |n: u64| progress.advance(n);
    let mut published = Vec::with_capacity(assets.len());
    let flusher = Flusher::start(layout.root().to_owned());
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
                let previous = existing
                    .as_ref()
                    .and_then(|e| e.targets.get(asset.path.as_str()))
                    .and_then(|t| t.swarmdrop())
                    .and_then(|c| c.p2p);
                let torrent = match previous.filter(|p| {
                    torrent_reusable(&layout, p, &info_hash, &options.trackers, &webseeds)
                }) {
                    // Same swarm, trackers and webseeds: keep the torrent file (and so its
                    // creation date) clients and caches already have.
                    Some(previous) => previous.torrent,
                    None => {
                        let torrent = Layout::torrent_relative(&info_hash, &bytes);
                        write_new(&layout.join(&torrent), &bytes, &flusher)?;
                        torrent
                    }
                };
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
                    sha256_midstates: digests.midstates.clone(),
                })
            }
            _ => None,
        };
        let custom = TargetCustom {
            class: asset.class.name.clone(),
            budget_ms: asset.class.budget_ms,
            paths: asset.class.paths.clone(),
            p2p: p2p.clone(),
            poll_ms: asset.class.poll_ms,
            spare_edges: asset.class.spare_edges,
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

    let report = |version, root_version, outcome, timestamp_expires| PackReport {
        published: options.out_dir.clone(),
        version,
        root_version,
        outcome,
        new_version: outcome == PackOutcome::NewVersion,
        timestamp_expires,
        total_bytes,
        assets: reports.clone(),
    };
    if let Some(Existing {
        root,
        version,
        targets: old,
        timestamp: Some(timestamp),
    }) = &existing
    {
        if *old == targets {
            flusher.finish()?;
            // Nothing to release; keep the release fresh if its timestamp is past half its life.
            let half_life = started.plus_seconds(options.expiries.timestamp / 2);
            if timestamp.expires > half_life {
                return Ok(report(
                    *version,
                    root.version,
                    PackOutcome::Unchanged,
                    timestamp.expires,
                ));
            }
            let bytes = resign_timestamp(timestamp, &keys.timestamp, started, &options.expiries)?;
            write_atomic(&layout.metadata("timestamp.json"), &bytes)?;
            let expires = started.plus_seconds(options.expiries.timestamp);
            return Ok(report(
                *version,
                root.version,
                PackOutcome::TimestampRefreshed,
                expires,
            ));
        }
    }

    let root_version = match &existing {
        Some(existing) => existing.root.version,
        None => write_first_root(&layout, &keys, started, &options.expiries)?,
    };
    let version = existing.as_ref().map_or(0, |e| e.version).saturating_add(1);
    let release_keys = ReleaseKeys {
        targets: &keys.targets,
        snapshot: &keys.snapshot,
        timestamp: &keys.timestamp,
    };
    let release = build_release(version, targets, release_keys, started, &options.expiries)?;
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
    Ok(report(
        version,
        root_version,
        PackOutcome::NewVersion,
        started.plus_seconds(options.expiries.timestamp),
    ))
}

/// True when the previous release's torrent for an asset describes the same swarm
/// with the same trackers and webseeds, so it can stay the asset's torrent.
fn torrent_reusable(
    layout: &Layout,
    previous: &P2pInfo,
    info_hash: &InfoHash,
    trackers: &[String],
    webseeds: &[String],
) -> bool {
    if previous.infohash != *info_hash || !Layout::is_torrent_relative(info_hash, &previous.torrent)
    {
        return false;
    }
    let Ok(bytes) = read_capped(&layout.join(&previous.torrent), MAX_TORRENT_BYTES) else {
        return false;
    };
    let Ok(meta) = Metainfo::parse(&bytes) else {
        return false;
    };
    let tiers: Vec<Vec<String>> = trackers.iter().map(|t| vec![t.clone()]).collect();
    meta.info_hash == *info_hash && meta.announce_list == tiers && meta.url_list == webseeds
}

/// Writes an immutable, content-named file unless it is already there.
fn write_new(path: &Path, bytes: &[u8], flusher: &Flusher) -> Result<(), PublishError> {
    if fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    write_atomic(path, bytes)?;
    flusher.sync(path.to_owned());
    Ok(())
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
