//! Building a release: the signed targets, snapshot and timestamp files for one version,
//! and the root that starts a repository. Pure: keys, the clock and the previous
//! versions come in; file bytes come out.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::keys::{KeyId, PublicKey, SigningKey};
use crate::time::UtcTime;
use crate::tuf::metadata::{
    MetaFile, Role, RoleKeys, Root, Snapshot, TargetFile, Targets, Timestamp, SPEC_VERSION,
};
use crate::tuf::sign::{sign_metadata, SignError};

/// How long each role's metadata stays valid, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiries {
    /// Root: long-lived, rotated rarely.
    pub root: u64,
    /// Targets.
    pub targets: u64,
    /// Snapshot.
    pub snapshot: u64,
    /// Timestamp: short, so a frozen mirror is noticed quickly.
    pub timestamp: u64,
}

impl Default for Expiries {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            root: 365 * DAY,
            targets: 30 * DAY,
            snapshot: 7 * DAY,
            timestamp: DAY,
        }
    }
}

/// The public side of a repository's keys: what goes into root.
#[derive(Debug, Clone)]
pub struct RolePublicKeys {
    /// Root keys.
    pub root: Vec<PublicKey>,
    /// Distinct root signatures required.
    pub root_threshold: u32,
    /// Targets key.
    pub targets: PublicKey,
    /// Snapshot key.
    pub snapshot: PublicKey,
    /// Timestamp key.
    pub timestamp: PublicKey,
}

/// A root document (version 1 unless told otherwise) listing these keys.
pub fn new_root(keys: &RolePublicKeys, version: u64, now: UtcTime, expiries: &Expiries) -> Root {
    let mut all = BTreeMap::new();
    let mut role = |list: &[PublicKey], threshold: u32| {
        let mut keyids: Vec<KeyId> = list
            .iter()
            .map(|k| {
                let id = k.key_id();
                all.insert(id.clone(), k.to_tuf_key());
                id
            })
            .collect();
        keyids.sort();
        keyids.dedup();
        RoleKeys { keyids, threshold }
    };
    let mut roles = BTreeMap::new();
    roles.insert(
        Role::Root.name().to_owned(),
        role(&keys.root, keys.root_threshold),
    );
    roles.insert(Role::Targets.name().to_owned(), role(&[keys.targets], 1));
    roles.insert(Role::Snapshot.name().to_owned(), role(&[keys.snapshot], 1));
    roles.insert(
        Role::Timestamp.name().to_owned(),
        role(&[keys.timestamp], 1),
    );
    Root {
        type_: Role::Root.name().to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        version,
        expires: now.plus_seconds(expiries.root),
        consistent_snapshot: true,
        keys: all,
        roles,
    }
}

/// The signing keys for one release.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseKeys<'a> {
    /// Signs targets.
    pub targets: &'a SigningKey,
    /// Signs snapshot.
    pub snapshot: &'a SigningKey,
    /// Signs timestamp.
    pub timestamp: &'a SigningKey,
}

/// The three files of one release, and their version.
#[derive(Debug, Clone)]
pub struct Release {
    /// Version of targets, snapshot and timestamp (they move together).
    pub version: u64,
    /// `N.targets.json`.
    pub targets: Vec<u8>,
    /// `N.snapshot.json`.
    pub snapshot: Vec<u8>,
    /// `timestamp.json`.
    pub timestamp: Vec<u8>,
}

fn pin(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(BTreeMap::from([(
            "sha256".to_owned(),
            hex::encode(Sha256::digest(bytes)),
        )])),
    }
}

/// Signs version `version` of the targets, and the snapshot and timestamp that pin it
/// by version, length and SHA-256.
pub fn build_release(
    version: u64,
    targets: BTreeMap<String, TargetFile>,
    keys: ReleaseKeys<'_>,
    now: UtcTime,
    expiries: &Expiries,
) -> Result<Release, SignError> {
    let targets_doc = Targets {
        type_: Role::Targets.name().to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        version,
        expires: now.plus_seconds(expiries.targets),
        targets,
        delegations: None,
    };
    let targets_bytes = sign_metadata(&targets_doc, &[keys.targets])?;
    let snapshot_doc = Snapshot {
        type_: Role::Snapshot.name().to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        version,
        expires: now.plus_seconds(expiries.snapshot),
        meta: BTreeMap::from([("targets.json".to_owned(), pin(version, &targets_bytes))]),
    };
    let snapshot_bytes = sign_metadata(&snapshot_doc, &[keys.snapshot])?;
    let timestamp_doc = Timestamp {
        type_: Role::Timestamp.name().to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        version,
        expires: now.plus_seconds(expiries.timestamp),
        meta: BTreeMap::from([("snapshot.json".to_owned(), pin(version, &snapshot_bytes))]),
    };
    let timestamp_bytes = sign_metadata(&timestamp_doc, &[keys.timestamp])?;
    Ok(Release {
        version,
        targets: targets_bytes,
        snapshot: snapshot_bytes,
        timestamp: timestamp_bytes,
    })
}

/// A new `timestamp.json` pinning the same snapshot as `previous`, one version later,
/// with a fresh expiry: how a publisher keeps an unchanged release fresh.
pub fn resign_timestamp(
    previous: &Timestamp,
    key: &SigningKey,
    now: UtcTime,
    expiries: &Expiries,
) -> Result<Vec<u8>, SignError> {
    let timestamp = Timestamp {
        version: previous.version.saturating_add(1),
        expires: now.plus_seconds(expiries.timestamp),
        ..previous.clone()
    };
    sign_metadata(&timestamp, &[key])
}
