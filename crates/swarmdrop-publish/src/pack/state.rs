//! What a published directory already holds, read back before a new version is made.

use std::collections::BTreeMap;

use swarmdrop_manifest::keys::KeyId;
use swarmdrop_manifest::tuf::metadata::{Role, Root, Snapshot, TargetFile, Targets, Timestamp};
use swarmdrop_manifest::tuf::parse_unverified;

use crate::fsutil::read_capped;
use crate::keyset::Keyset;
use crate::layout::{Layout, MAX_METADATA_BYTES};
use crate::PublishError;

/// What a published directory holds: its root and, unless a first pack stopped before
/// writing `timestamp.json`, its latest release.
#[derive(Debug, Clone)]
pub(crate) struct Existing {
    pub(crate) root: Root,
    /// The highest version of targets, snapshot and timestamp (0 before any release).
    pub(crate) version: u64,
    pub(crate) targets: BTreeMap<String, TargetFile>,
    pub(crate) timestamp: Option<Timestamp>,
}

fn read_role<T: swarmdrop_manifest::tuf::metadata::RoleDocument>(
    layout: &Layout,
    name: &str,
) -> Result<T, PublishError> {
    let path = layout.metadata(name);
    let bytes = read_capped(&path, MAX_METADATA_BYTES)?;
    parse_unverified::<T>(&bytes).map_err(|source| PublishError::Tuf {
        file: path.display().to_string(),
        source,
    })
}

/// Reads the latest release, or `None` for a directory never packed into.
pub(crate) fn read_existing(layout: &Layout) -> Result<Option<Existing>, PublishError> {
    if !layout.metadata("root.json").exists() {
        if layout.metadata("timestamp.json").exists() {
            return Err(PublishError::Layout(format!(
                "{} has timestamp.json but no root.json; it is not a directory swarmdrop can add a version to",
                layout.metadata_dir().display()
            )));
        }
        return Ok(None);
    }
    let root: Root = read_role(layout, "root.json")?;
    if !layout.metadata("timestamp.json").exists() {
        // A first pack stopped after writing root: nothing was released, start over.
        return Ok(Some(Existing {
            root,
            version: 0,
            targets: BTreeMap::new(),
            timestamp: None,
        }));
    }
    let timestamp: Timestamp = read_role(layout, "timestamp.json")?;
    let snapshot_version = timestamp
        .meta
        .get("snapshot.json")
        .map(|m| m.version)
        .ok_or_else(|| {
            PublishError::Layout(format!(
                "{} does not list snapshot.json",
                layout.metadata("timestamp.json").display()
            ))
        })?;
    let snapshot: Snapshot = read_role(layout, &format!("{snapshot_version}.snapshot.json"))?;
    let targets_version = snapshot
        .meta
        .get("targets.json")
        .map(|m| m.version)
        .ok_or_else(|| {
            PublishError::Layout(format!(
                "{snapshot_version}.snapshot.json does not list targets.json"
            ))
        })?;
    let targets: Targets = read_role(layout, &format!("{targets_version}.targets.json"))?;
    let version = timestamp.version.max(snapshot.version).max(targets.version);
    Ok(Some(Existing {
        root,
        version,
        targets: targets.targets,
        timestamp: Some(timestamp),
    }))
}

/// Refuses to add a version signed by keys the directory's root does not list.
pub(crate) fn check_keys_match(
    existing: &Existing,
    keys: &Keyset,
    layout: &Layout,
) -> Result<(), PublishError> {
    let listed = |role: Role| -> Vec<KeyId> {
        existing
            .root
            .role(role)
            .map(|r| r.keyids.clone())
            .unwrap_or_default()
    };
    let checks = [
        (Role::Targets, keys.targets.public().key_id()),
        (Role::Snapshot, keys.snapshot.public().key_id()),
        (Role::Timestamp, keys.timestamp.public().key_id()),
    ];
    for (role, key_id) in checks {
        if !listed(role).contains(&key_id) {
            return Err(PublishError::Layout(format!(
                "{} does not list this keyset's {role} key {key_id}; it was published with other keys \
                 (pack into a new directory, or use the keys it was made with)",
                layout.metadata("root.json").display()
            )));
        }
    }
    Ok(())
}
