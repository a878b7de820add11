//! The client's trusted metadata: a sans-IO walk root → timestamp → snapshot → targets.
//!
//! The caller fetches bytes (from a directory, a mirror, an edge) and feeds them in
//! order; every check happens here against one reference time fixed for the whole
//! refresh, so an attacker cannot make part of a refresh see a different clock. What
//! this stops, by TUF's attack names: arbitrary installation (signatures and
//! thresholds over distinct keys), rollback (versions never go down, for every role),
//! indefinite freeze (expiry), mix-and-match (snapshot pins targets, timestamp pins
//! snapshot by version, length and hash), endless data (lengths are checked before
//! parsing when pinned; callers cap sizes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest as _, Sha256, Sha512};

use crate::canonical::to_canonical_json;
use crate::keys::KeyId;
use crate::time::UtcTime;
use crate::tuf::metadata::{
    MetaFile, Role, RoleDocument, Root, Signature, Snapshot, TargetFile, Targets, Timestamp,
};

/// Why metadata or a target was refused. Each names the role or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    /// Not JSON, or not the shape of the role's metadata.
    #[error("{role} metadata is malformed: {detail}")]
    Malformed {
        /// The role.
        role: Role,
        /// What is wrong.
        detail: String,
    },
    /// Fewer valid signatures from distinct keys of the role than its threshold.
    #[error("{role} metadata has {valid} valid signature(s) from {signer_role} keys; threshold is {threshold}")]
    Unsigned {
        /// The role whose metadata was checked.
        role: Role,
        /// The role whose keys had to sign (root checks a new root with old keys too).
        signer_role: &'static str,
        /// Valid signatures from distinct keys.
        valid: u32,
        /// Required.
        threshold: u32,
    },
    /// A version that goes backwards or does not match what the parent pins.
    #[error("{role} version {got} refused: {why} (expected {expected})")]
    BadVersion {
        /// The role.
        role: Role,
        /// The version found.
        got: u64,
        /// What was expected.
        expected: String,
        /// Rollback, or mismatch with a pin.
        why: &'static str,
    },
    /// Past its expiry at the reference time.
    #[error("{role} metadata expired at {expires} (reference time {reference_time})")]
    Expired {
        /// The role.
        role: Role,
        /// Its expiry.
        expires: UtcTime,
        /// The refresh's reference time.
        reference_time: UtcTime,
    },
    /// A file whose length or hash differs from what signed metadata says.
    #[error("{what}: {detail}")]
    LengthOrHashMismatch {
        /// The file (`snapshot.json`, a target path).
        what: String,
        /// Which check failed.
        detail: String,
    },
    /// The parent metadata does not list a file that must be there.
    #[error("{parent} metadata does not list {name}")]
    MissingMeta {
        /// The listing role.
        parent: Role,
        /// The file name expected.
        name: String,
    },
    /// A call out of order (targets before snapshot, root after timestamp, …).
    #[error("cannot load {role} now: {why}")]
    OutOfOrder {
        /// The role being loaded.
        role: Role,
        /// What must come first.
        why: &'static str,
    },
    /// The target is not listed by the trusted targets metadata.
    #[error("target {0:?} is not listed in the signed targets metadata")]
    UnknownTarget(String),
    /// A metadata file the walk needs does not exist on the mirror.
    #[error("metadata/{0} does not exist on the mirror")]
    MissingFile(String),
    /// The repository's layout is one this client does not follow.
    #[error("{0}")]
    Layout(String),
}

/// Trusted metadata for one refresh.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    reference_time: UtcTime,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
}

struct Parsed<T> {
    document: T,
    canonical: Vec<u8>,
    signatures: Vec<Signature>,
}

fn parse<T: RoleDocument>(bytes: &[u8]) -> Result<Parsed<T>, TufError> {
    let role = T::ROLE;
    let malformed = |detail: String| TufError::Malformed { role, detail };
    let mut file: Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let object = file
        .as_object_mut()
        .ok_or_else(|| malformed("not a JSON object".into()))?;
    let signed = object
        .remove("signed")
        .ok_or_else(|| malformed("no \"signed\" field".into()))?;
    let signatures: Vec<Signature> = object
        .remove("signatures")
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| malformed(format!("bad \"signatures\": {e}")))?
        .ok_or_else(|| malformed("no \"signatures\" field".into()))?;
    let mut seen = BTreeSet::new();
    if let Some(dup) = signatures.iter().find(|s| !seen.insert(&s.keyid)) {
        return Err(malformed(format!("two signatures by key {}", dup.keyid)));
    }
    let canonical = to_canonical_json(&signed).map_err(|e| malformed(e.to_string()))?;
    let type_name = signed
        .get("_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if type_name != role.name() {
        return Err(malformed(format!(
            "_type is {type_name:?}, expected {:?}",
            role.name()
        )));
    }
    let spec_version = signed
        .get("spec_version")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    check_spec_version(role, &spec_version)?;
    let document: T = serde_json::from_value(signed).map_err(|e| malformed(e.to_string()))?;
    Ok(Parsed {
        document,
        canonical,
        signatures,
    })
}

impl<T: RoleDocument> Parsed<T> {
    /// Checks that a threshold of `signer`'s keys in `root` signed this document.
    fn check_signed_by(&self, root: &Root, signer: Role) -> Result<(), TufError> {
        check_signatures(root, signer, T::ROLE, &self.canonical, &self.signatures)
    }
}

/// Reads a role document without checking signatures, versions or expiry: for the
/// publisher reading back its own directory, never for a client deciding what to trust.
pub fn parse_unverified<T: RoleDocument>(bytes: &[u8]) -> Result<T, TufError> {
    parse::<T>(bytes).map(|parsed| parsed.document)
}

/// Counts distinct keys of `signer` in `root` with a valid signature; errors below
/// threshold. Distinct means distinct public keys, not distinct key ids: a root that
/// lists one key under two ids must not let one signature count twice.
fn check_signatures(
    root: &Root,
    signer: Role,
    role: Role,
    canonical: &[u8],
    signatures: &[Signature],
) -> Result<(), TufError> {
    let keys = root.role(signer).ok_or_else(|| TufError::Malformed {
        role: Role::Root,
        detail: format!("no {signer} role"),
    })?;
    let allowed: BTreeSet<&KeyId> = keys.keyids.iter().collect();
    let valid = signatures
        .iter()
        .filter(|s| allowed.contains(&s.keyid))
        .filter_map(|s| {
            let public = root.keys.get(&s.keyid).and_then(|k| k.public_key().ok())?;
            let signature = hex::decode(&s.sig).ok()?;
            public
                .verify(canonical, &signature)
                .then(|| public.to_hex())
        })
        .collect::<BTreeSet<_>>()
        .len();
    let valid = u32::try_from(valid).unwrap_or(u32::MAX);
    if valid < keys.threshold {
        return Err(TufError::Unsigned {
            role,
            signer_role: signer.name(),
            valid,
            threshold: keys.threshold,
        });
    }
    Ok(())
}

/// The major version of the TUF specification we implement.
const SPEC_MAJOR: &str = "1";

fn check_spec_version(role: Role, spec_version: &str) -> Result<(), TufError> {
    if spec_version.split('.').next() != Some(SPEC_MAJOR) {
        return Err(TufError::Malformed {
            role,
            detail: format!("spec_version {spec_version:?} is not a 1.x version of TUF"),
        });
    }
    Ok(())
}

fn check_root_shape(root: &Root) -> Result<(), TufError> {
    let malformed = |detail: String| TufError::Malformed {
        role: Role::Root,
        detail,
    };
    check_spec_version(Role::Root, &root.spec_version)?;
    for role in Role::ALL {
        let keys = root
            .role(role)
            .ok_or_else(|| malformed(format!("roles has no {role}")))?;
        if keys.threshold == 0 {
            return Err(malformed(format!("{role} threshold is 0")));
        }
        if let Some(missing) = keys.keyids.iter().find(|id| !root.keys.contains_key(*id)) {
            return Err(malformed(format!(
                "{role} lists key {missing} that is not in keys"
            )));
        }
    }
    Ok(())
}

/// Checks `bytes` against a pinned length and any hashes we can compute.
pub fn check_length_and_hashes(
    what: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<(), TufError> {
    let mismatch = |detail: String| TufError::LengthOrHashMismatch {
        what: what.to_owned(),
        detail,
    };
    if let Some(length) = length {
        if bytes.len() as u64 != length {
            return Err(mismatch(format!(
                "length is {} bytes, signed metadata says {length}",
                bytes.len()
            )));
        }
    }
    if let Some(hashes) = hashes {
        let mut checked = 0;
        for (algorithm, expected) in hashes {
            let actual = match algorithm.as_str() {
                "sha256" => hex::encode(Sha256::digest(bytes)),
                "sha512" => hex::encode(Sha512::digest(bytes)),
                _ => continue,
            };
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(mismatch(format!(
                    "{algorithm} is {actual}, signed metadata says {expected}"
                )));
            }
            checked += 1;
        }
        if checked == 0 {
            return Err(mismatch(
                "no supported hash algorithm (sha256, sha512) listed".into(),
            ));
        }
    }
    Ok(())
}

impl TrustedSet {
    /// Starts from a root the caller trusts (shipped with the client or given out of
    /// band). It must be signed by a threshold of its own root keys; expiry is
    /// checked when the timestamp is loaded, after any root rotation.
    pub fn new(root_bytes: &[u8], reference_time: UtcTime) -> Result<Self, TufError> {
        let parsed: Parsed<Root> = parse(root_bytes)?;
        check_root_shape(&parsed.document)?;
        parsed.check_signed_by(&parsed.document, Role::Root)?;
        Ok(Self {
            reference_time,
            root: parsed.document,
            timestamp: None,
            snapshot: None,
            targets: None,
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

    /// The trusted targets, once loaded.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    /// Rotates to the next root (`N+1.root.json`): signed by a threshold of the current
    /// root keys and of its own, with version exactly one more.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::OutOfOrder {
                role: Role::Root,
                why: "root must be updated before timestamp",
            });
        }
        let parsed: Parsed<Root> = parse(bytes)?;
        check_root_shape(&parsed.document)?;
        parsed.check_signed_by(&self.root, Role::Root)?;
        let expected = self
            .root
            .version
            .checked_add(1)
            .ok_or(TufError::BadVersion {
                role: Role::Root,
                got: parsed.document.version,
                expected: "a version after u64::MAX, which cannot exist".into(),
                why: "the trusted root's version is already the largest possible",
            })?;
        if parsed.document.version != expected {
            return Err(TufError::BadVersion {
                role: Role::Root,
                got: parsed.document.version,
                expected: expected.to_string(),
                why: "root versions must increase by one",
            });
        }
        parsed.check_signed_by(&parsed.document, Role::Root)?;
        self.root = parsed.document;
        Ok(())
    }

    fn check_not_expired(&self, role: Role, expires: UtcTime) -> Result<(), TufError> {
        if expires <= self.reference_time {
            return Err(TufError::Expired {
                role,
                expires,
                reference_time: self.reference_time,
            });
        }
        Ok(())
    }

    /// Loads `timestamp.json`. A version below the trusted one is a rollback; an
    /// equal version keeps the trusted copy. An expired timestamp is still kept (for
    /// rollback checks) but reported.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::OutOfOrder {
                role: Role::Timestamp,
                why: "timestamp must be loaded before snapshot",
            });
        }
        self.check_not_expired(Role::Root, self.root.expires)?;
        let parsed: Parsed<Timestamp> = parse(bytes)?;
        parsed.check_signed_by(&self.root, Role::Timestamp)?;
        let new = parsed.document;
        let new_meta = snapshot_meta(&new)?;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(TufError::BadVersion {
                    role: Role::Timestamp,
                    got: new.version,
                    expected: format!(">= {}", old.version),
                    why: "rollback",
                });
            }
            let old_meta = snapshot_meta(old)?;
            if new_meta.version < old_meta.version {
                return Err(TufError::BadVersion {
                    role: Role::Snapshot,
                    got: new_meta.version,
                    expected: format!(">= {}", old_meta.version),
                    why: "timestamp pins an older snapshot (rollback)",
                });
            }
            if new.version == old.version {
                return self.check_not_expired(Role::Timestamp, old.expires);
            }
        }
        let expires = new.expires;
        self.timestamp = Some(new);
        self.check_not_expired(Role::Timestamp, expires)
    }

    /// Loads the snapshot. `trusted` skips the length/hash pin (for a copy the client
    /// itself stored earlier); version and signatures are always checked.
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted: bool) -> Result<(), TufError> {
        if self.targets.is_some() {
            return Err(TufError::OutOfOrder {
                role: Role::Snapshot,
                why: "snapshot must be loaded before targets",
            });
        }
        let timestamp = self.timestamp.as_ref().ok_or(TufError::OutOfOrder {
            role: Role::Snapshot,
            why: "timestamp must be loaded first",
        })?;
        self.check_not_expired(Role::Timestamp, timestamp.expires)?;
        let pin = snapshot_meta(timestamp)?.clone();
        if !trusted {
            check_length_and_hashes("snapshot.json", bytes, pin.length, pin.hashes.as_ref())?;
        }
        let parsed: Parsed<Snapshot> = parse(bytes)?;
        parsed.check_signed_by(&self.root, Role::Snapshot)?;
        let new = parsed.document;
        if let Some(old) = &self.snapshot {
            for (name, old_file) in &old.meta {
                let new_file = new.meta.get(name).ok_or_else(|| TufError::MissingMeta {
                    parent: Role::Snapshot,
                    name: name.clone(),
                })?;
                if new_file.version < old_file.version {
                    return Err(TufError::BadVersion {
                        role: Role::Targets,
                        got: new_file.version,
                        expected: format!(">= {}", old_file.version),
                        why: "snapshot pins an older version (rollback)",
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot()
    }

    fn check_final_snapshot(&self) -> Result<(), TufError> {
        let (Some(timestamp), Some(snapshot)) = (&self.timestamp, &self.snapshot) else {
            return Err(TufError::OutOfOrder {
                role: Role::Snapshot,
                why: "timestamp and snapshot must be loaded first",
            });
        };
        self.check_not_expired(Role::Snapshot, snapshot.expires)?;
        let pinned = snapshot_meta(timestamp)?.version;
        if snapshot.version != pinned {
            return Err(TufError::BadVersion {
                role: Role::Snapshot,
                got: snapshot.version,
                expected: pinned.to_string(),
                why: "timestamp pins a different snapshot version",
            });
        }
        Ok(())
    }

    /// Loads the top-level targets metadata, pinned by the snapshot.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        self.check_final_snapshot()?;
        let snapshot = self.snapshot.as_ref().ok_or(TufError::OutOfOrder {
            role: Role::Targets,
            why: "snapshot must be loaded first",
        })?;
        let pin = snapshot
            .meta
            .get("targets.json")
            .ok_or_else(|| TufError::MissingMeta {
                parent: Role::Snapshot,
                name: "targets.json".into(),
            })?;
        check_length_and_hashes("targets.json", bytes, pin.length, pin.hashes.as_ref())?;
        let parsed: Parsed<Targets> = parse(bytes)?;
        parsed.check_signed_by(&self.root, Role::Targets)?;
        if parsed.document.version != pin.version {
            return Err(TufError::BadVersion {
                role: Role::Targets,
                got: parsed.document.version,
                expected: pin.version.to_string(),
                why: "snapshot pins a different targets version",
            });
        }
        self.check_not_expired(Role::Targets, parsed.document.expires)?;
        self.targets = Some(parsed.document);
        Ok(())
    }

    /// The signed description of a target.
    pub fn target(&self, path: &str) -> Result<&TargetFile, TufError> {
        self.targets
            .as_ref()
            .ok_or(TufError::OutOfOrder {
                role: Role::Targets,
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
            parent: Role::Timestamp,
            name: "snapshot.json".into(),
        })
}

#[cfg(test)]
mod tests;
