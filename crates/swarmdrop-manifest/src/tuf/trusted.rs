//! The client's trusted metadata: a sans-IO set, root → timestamp → snapshot → targets
//! and the delegated targets roles below it.
//!
//! The caller fetches bytes (from a directory, a mirror, an edge) and feeds them in
//! order; every check happens here against one reference time fixed for the whole
//! refresh, so an attacker cannot make part of a refresh see a different clock. What
//! this stops, by TUF's attack names: arbitrary installation (signatures and
//! thresholds over distinct keys), rollback (versions never go down, for every role),
//! indefinite freeze (expiry), mix-and-match (snapshot pins every targets role,
//! timestamp pins snapshot by version, length and hash), endless data (lengths are
//! checked before parsing when pinned; callers cap sizes). Shaped like python-tuf's
//! `TrustedMetadataSet`, so the two agree on what a repository may do.

use std::collections::{BTreeMap, BTreeSet};

use super::checks::{
    check_delegations_shape, check_root_shape, check_signatures, parse, Parsed, Signers,
};
use super::errors::TufError;
use super::metadata::{MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp};
use crate::time::UtcTime;

pub use super::checks::{check_length_and_hashes, Digests};

/// Whether an update replaced the trusted copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The new file is now trusted.
    New,
    /// The same version as the trusted copy, which is kept.
    Unchanged,
}

/// Trusted metadata for one refresh.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    reference_time: UtcTime,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
    delegated: BTreeMap<String, Delegated>,
}

/// A trusted delegated role, with what it was signed over, so it can be checked again
/// when the search reaches it through another delegator.
#[derive(Debug, Clone)]
struct Delegated {
    targets: Targets,
    canonical: Vec<u8>,
    signatures: Vec<super::metadata::Signature>,
    /// The delegators whose keys and threshold it met.
    verified_by: BTreeSet<String>,
}

fn name(role: Role) -> String {
    role.name().to_owned()
}

impl TrustedSet {
    /// Starts from a root the caller trusts (shipped with the client or given out of
    /// band). It must be signed by a threshold of its own root keys; expiry is
    /// checked when the timestamp is loaded, after any root rotation.
    pub fn new(root_bytes: &[u8], reference_time: UtcTime) -> Result<Self, TufError> {
        let parsed: Parsed<Root> = parse(root_bytes, "root")?;
        check_root_shape(&parsed.document)?;
        parsed.check_signed_by("root", &Signers::of_root(&parsed.document, Role::Root)?)?;
        Ok(Self {
            reference_time,
            root: parsed.document,
            timestamp: None,
            snapshot: None,
            targets: None,
            delegated: BTreeMap::new(),
        })
    }

    /// The reference time of this refresh.
    pub fn reference_time(&self) -> UtcTime {
        self.reference_time
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The trusted timestamp, once loaded.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, once loaded.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The trusted top-level targets, once loaded.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    /// A trusted targets role by name: `targets`, or a delegated role once loaded.
    pub fn targets_role(&self, role: &str) -> Option<&Targets> {
        if role == Role::Targets.name() {
            self.targets.as_ref()
        } else {
            self.delegated.get(role).map(|d| &d.targets)
        }
    }

    /// Rotates to the next root (`N+1.root.json`): signed by a threshold of the current
    /// root keys and of its own, with version exactly one more.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::OutOfOrder {
                role: name(Role::Root),
                why: "root must be updated before timestamp",
            });
        }
        let parsed: Parsed<Root> = parse(bytes, "root")?;
        check_root_shape(&parsed.document)?;
        parsed.check_signed_by("root", &Signers::of_root(&self.root, Role::Root)?)?;
        let expected = self
            .root
            .version
            .checked_add(1)
            .ok_or(TufError::BadVersion {
                role: name(Role::Root),
                got: parsed.document.version,
                expected: "a version after u64::MAX, which cannot exist".into(),
                why: "the trusted root's version is already the largest possible",
            })?;
        if parsed.document.version != expected {
            return Err(TufError::BadVersion {
                role: name(Role::Root),
                got: parsed.document.version,
                expected: expected.to_string(),
                why: "root versions must increase by one",
            });
        }
        parsed.check_signed_by("root", &Signers::of_root(&parsed.document, Role::Root)?)?;
        self.root = parsed.document;
        Ok(())
    }

    fn check_not_expired(&self, role: &str, expires: UtcTime) -> Result<(), TufError> {
        if expires <= self.reference_time {
            return Err(TufError::Expired {
                role: role.to_owned(),
                expires,
                reference_time: self.reference_time,
            });
        }
        Ok(())
    }

    /// Loads `timestamp.json`. A version below the trusted one is a rollback; an equal
    /// version keeps the trusted copy. An expired timestamp is still kept (for rollback
    /// checks of the next one) but reported.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<Updated, TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::OutOfOrder {
                role: name(Role::Timestamp),
                why: "timestamp must be loaded before snapshot",
            });
        }
        self.check_not_expired("root", self.root.expires)?;
        let parsed: Parsed<Timestamp> = parse(bytes, "timestamp")?;
        parsed.check_signed_by("timestamp", &Signers::of_root(&self.root, Role::Timestamp)?)?;
        let new = parsed.document;
        let new_meta = snapshot_meta(&new)?;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(TufError::BadVersion {
                    role: name(Role::Timestamp),
                    got: new.version,
                    expected: format!(">= {}", old.version),
                    why: "rollback",
                });
            }
            if new.version == old.version {
                return Ok(Updated::Unchanged);
            }
            let old_meta = snapshot_meta(old)?;
            if new_meta.version < old_meta.version {
                return Err(TufError::BadVersion {
                    role: name(Role::Snapshot),
                    got: new_meta.version,
                    expected: format!(">= {}", old_meta.version),
                    why: "timestamp pins an older snapshot (rollback)",
                });
            }
        }
        let expires = new.expires;
        self.timestamp = Some(new);
        self.check_not_expired("timestamp", expires)?;
        Ok(Updated::New)
    }

    /// Loads the snapshot. `trusted` skips the length/hash pin (for a copy the client
    /// itself stored earlier); version and signatures are always checked.
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted: bool) -> Result<(), TufError> {
        if self.targets.is_some() {
            return Err(TufError::OutOfOrder {
                role: name(Role::Snapshot),
                why: "snapshot must be loaded before targets",
            });
        }
        let timestamp = self.timestamp.as_ref().ok_or(TufError::OutOfOrder {
            role: name(Role::Snapshot),
            why: "timestamp must be loaded first",
        })?;
        self.check_not_expired("timestamp", timestamp.expires)?;
        let pin = snapshot_meta(timestamp)?.clone();
        if !trusted {
            check_length_and_hashes("snapshot.json", bytes, pin.length, pin.hashes.as_ref())?;
        }
        let parsed: Parsed<Snapshot> = parse(bytes, "snapshot")?;
        parsed.check_signed_by("snapshot", &Signers::of_root(&self.root, Role::Snapshot)?)?;
        let new = parsed.document;
        if let Some(old) = &self.snapshot {
            for (file, old_file) in &old.meta {
                let new_file = new.meta.get(file).ok_or_else(|| TufError::MissingMeta {
                    parent: name(Role::Snapshot),
                    name: file.clone(),
                })?;
                if new_file.version < old_file.version {
                    return Err(TufError::BadVersion {
                        role: file.trim_end_matches(".json").to_owned(),
                        got: new_file.version,
                        expected: format!(">= {}", old_file.version),
                        why: "snapshot pins an older version (rollback)",
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot().map(|_| ())
    }

    fn check_final_snapshot(&self) -> Result<&Snapshot, TufError> {
        let (Some(timestamp), Some(snapshot)) = (&self.timestamp, &self.snapshot) else {
            return Err(TufError::OutOfOrder {
                role: name(Role::Snapshot),
                why: "timestamp and snapshot must be loaded first",
            });
        };
        self.check_not_expired("snapshot", snapshot.expires)?;
        let pinned = snapshot_meta(timestamp)?.version;
        if snapshot.version != pinned {
            return Err(TufError::BadVersion {
                role: name(Role::Snapshot),
                got: snapshot.version,
                expected: pinned.to_string(),
                why: "timestamp pins a different snapshot version",
            });
        }
        Ok(snapshot)
    }

    /// Loads the top-level targets metadata, pinned by the snapshot.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        self.update_delegated_targets(bytes, Role::Targets.name(), Role::Root.name())
    }

    /// Loads targets metadata for `role`, delegated by `delegator` (`targets` by `root`
    /// for the top level): signed by the keys the delegator names for it, of the version
    /// (and length and hashes, when pinned) the snapshot lists, and not expired.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<(), TufError> {
        let snapshot = self.check_final_snapshot()?;
        let file = format!("{role}.json");
        let pin = snapshot
            .meta
            .get(&file)
            .ok_or_else(|| TufError::MissingMeta {
                parent: name(Role::Snapshot),
                name: file.clone(),
            })?
            .clone();
        let signers = self.signers_for(role, delegator)?;
        check_length_and_hashes(&file, bytes, pin.length, pin.hashes.as_ref())?;
        let parsed: Parsed<Targets> = parse(bytes, role)?;
        parsed.check_signed_by(role, &signers)?;
        if parsed.document.version != pin.version {
            return Err(TufError::BadVersion {
                role: role.to_owned(),
                got: parsed.document.version,
                expected: pin.version.to_string(),
                why: "snapshot pins a different version",
            });
        }
        self.check_not_expired(role, parsed.document.expires)?;
        check_delegations_shape(role, &parsed.document)?;
        if role == Role::Targets.name() {
            self.targets = Some(parsed.document);
        } else {
            self.delegated.insert(
                role.to_owned(),
                Delegated {
                    targets: parsed.document,
                    canonical: parsed.canonical,
                    signatures: parsed.signatures,
                    verified_by: BTreeSet::from([delegator.to_owned()]),
                },
            );
        }
        Ok(())
    }

    /// Checks a delegated role already trusted (through one delegator) against the keys
    /// and threshold `delegator` gives it: a role is trusted on a branch of the search
    /// only if that branch's delegator would accept it.
    pub fn check_delegated_by(&mut self, role: &str, delegator: &str) -> Result<(), TufError> {
        let Some(entry) = self.delegated.get(role) else {
            return if role == Role::Targets.name() && delegator == Role::Root.name() {
                Ok(())
            } else {
                Err(TufError::OutOfOrder {
                    role: role.to_owned(),
                    why: "it must be loaded first",
                })
            };
        };
        if entry.verified_by.contains(delegator) {
            return Ok(());
        }
        let signers = self.signers_for(role, delegator)?;
        check_signatures(&signers, role, &entry.canonical, &entry.signatures)?;
        if let Some(entry) = self.delegated.get_mut(role) {
            entry.verified_by.insert(delegator.to_owned());
        }
        Ok(())
    }

    /// Who must sign `role` as `delegator` delegates it.
    fn signers_for(&self, role: &str, delegator: &str) -> Result<Signers<'_>, TufError> {
        let not_delegated = || TufError::NotDelegated {
            role: role.to_owned(),
            delegator: delegator.to_owned(),
        };
        if delegator == Role::Root.name() {
            return if role == Role::Targets.name() {
                Signers::of_root(&self.root, Role::Targets)
            } else {
                Err(not_delegated())
            };
        }
        let parent = self.targets_role(delegator).ok_or(TufError::OutOfOrder {
            role: role.to_owned(),
            why: "its delegator must be loaded first",
        })?;
        let delegations = parent.delegations.as_ref().ok_or_else(not_delegated)?;
        let listed_by = delegator.to_owned();
        if let Some(delegated) = delegations.roles.iter().flatten().find(|r| r.name == role) {
            return Ok(Signers {
                listed_by: listed_by.clone(),
                keys: &delegations.keys,
                keyids: &delegated.keyids,
                threshold: delegated.threshold,
            });
        }
        match &delegations.succinct_roles {
            Some(bins) if bins.is_bin(role) => Ok(Signers {
                listed_by,
                keys: &delegations.keys,
                keyids: &bins.keyids,
                threshold: bins.threshold,
            }),
            _ => Err(not_delegated()),
        }
    }

    /// The signed description of a target listed by the top-level targets role (not
    /// through delegations: [`crate::tuf::updater::Updater::find_target`] searches those).
    /// swarmdrop's publisher lists every asset at the top level.
    pub fn target(&self, path: &str) -> Result<&TargetFile, TufError> {
        self.targets
            .as_ref()
            .ok_or(TufError::OutOfOrder {
                role: name(Role::Targets),
                why: "targets must be loaded before looking up a target",
            })?
            .targets
            .get(path)
            .ok_or_else(|| TufError::UnknownTarget(path.to_owned()))
    }

    /// Checks a target file's bytes against its signed length and hashes.
    pub fn verify_target(&self, path: &str, bytes: &[u8]) -> Result<&TargetFile, TufError> {
        let target = self.target(path)?;
        check_length_and_hashes(path, bytes, Some(target.length), Some(&target.hashes))?;
        Ok(target)
    }

    /// Checks a target streamed elsewhere, by its length and SHA-256, against the
    /// signed metadata (which must list a SHA-256 for it).
    pub fn verify_target_digest(
        &self,
        path: &str,
        length: u64,
        sha256_hex: &str,
    ) -> Result<&TargetFile, TufError> {
        let target = self.target(path)?;
        let mismatch = |detail: String| TufError::LengthOrHashMismatch {
            what: path.to_owned(),
            detail,
        };
        if length != target.length {
            return Err(mismatch(format!(
                "length is {length} bytes, signed metadata says {}",
                target.length
            )));
        }
        let expected = target
            .hashes
            .get("sha256")
            .ok_or_else(|| mismatch("signed metadata lists no sha256 for it".into()))?;
        if !expected.eq_ignore_ascii_case(sha256_hex) {
            return Err(mismatch(format!(
                "sha256 is {sha256_hex}, signed metadata says {expected}"
            )));
        }
        Ok(target)
    }
}

fn snapshot_meta(timestamp: &Timestamp) -> Result<&MetaFile, TufError> {
    timestamp
        .meta
        .get("snapshot.json")
        .ok_or_else(|| TufError::MissingMeta {
            parent: name(Role::Timestamp),
            name: "snapshot.json".into(),
        })
}

#[cfg(test)]
mod tests;
