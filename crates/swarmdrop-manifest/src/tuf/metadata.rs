//! Role documents as they appear under `signed`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, TufKey};
use crate::model::{ClassName, InfoHash, PathKind};
use crate::time::UtcTime;

/// The TUF specification version we write.
pub const SPEC_VERSION: &str = "1.0.31";

/// The four top-level roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Root of trust: lists the keys of every role.
    Root,
    /// Lists the target files.
    Targets,
    /// Pins the version of targets metadata.
    Snapshot,
    /// Pins the snapshot; short-lived, re-signed often.
    Timestamp,
}

impl Role {
    /// Every role, root first.
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    /// The role name as metadata writes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }

    /// The unversioned file name, `root.json` and so on.
    pub fn file_name(self) -> String {
        format!("{}.json", self.name())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One signature of a metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Which key signed.
    pub keyid: KeyId,
    /// Hex of the signature over the canonical JSON of `signed`.
    pub sig: String,
}

/// The keys and threshold of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key ids allowed to sign for the role.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
}

/// `root.json`'s signed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version, from 1.
    pub version: u64,
    /// Expiry.
    pub expires: UtcTime,
    /// Whether files are published under versioned and hash-prefixed names.
    pub consistent_snapshot: bool,
    /// Every key of every role.
    pub keys: BTreeMap<KeyId, TufKey>,
    /// Keys and threshold per role.
    pub roles: BTreeMap<String, RoleKeys>,
}

impl Root {
    /// The keys and threshold of `role`.
    pub fn role(&self, role: Role) -> Option<&RoleKeys> {
        self.roles.get(role.name())
    }
}

/// A file pinned by version (and optionally length and hashes) in timestamp or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The pinned version.
    pub version: u64,
    /// Length in bytes, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Hashes by algorithm name, if pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

/// `timestamp.json`'s signed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry.
    pub expires: UtcTime,
    /// Exactly `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
}

/// `snapshot.json`'s signed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry.
    pub expires: UtcTime,
    /// `targets.json` and any delegated roles' files.
    pub meta: BTreeMap<String, MetaFile>,
}

/// One target file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes by algorithm name (we write `sha256`).
    pub hashes: BTreeMap<String, String>,
    /// Application data; ours is a [`TargetCustom`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

impl TargetFile {
    /// The swarmdrop part of `custom`, if present and well-formed.
    pub fn swarmdrop(&self) -> Option<TargetCustom> {
        self.custom
            .as_ref()
            .and_then(|c| serde_json::from_value(c.clone()).ok())
    }
}

/// What swarmdrop records about each target in its `custom` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCustom {
    /// The asset's class.
    pub class: ClassName,
    /// The class's latency budget.
    pub budget_ms: u64,
    /// The class's paths, in preference order.
    pub paths: Vec<PathKind>,
    /// BitTorrent details, for classes that allow `p2p`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<P2pInfo>,
    /// The class is live: a client following the drop polls `timestamp.json` this often
    /// (milliseconds) for new versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_ms: Option<u64>,
    /// Edges with a free slot also take pieces while the swarm carries the class (the
    /// policy's `spare_edges`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spare_edges: bool,
}

/// How to fetch a target from the swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2pInfo {
    /// The v1 infohash of the asset's torrent.
    pub infohash: InfoHash,
    /// The torrent's piece length.
    pub piece_length: u32,
    /// Where the `.torrent` is, relative to the published root.
    pub torrent: String,
    /// A magnet link with trackers and webseeds.
    pub magnet: String,
    /// The file's SHA-256 state at each boundary between pieces, hex (32 bytes each):
    /// a client checks each piece against them as it arrives, in any order, and so
    /// the whole file against its signed SHA-256 without reading it back
    /// ([`crate::midstates`]). Older packs lack it; clients then hash the file whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_midstates: Option<String>,
}

/// `targets.json`'s signed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry.
    pub expires: UtcTime,
    /// Target files by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Roles this one hands parts of the target namespace to (swarmdrop's publisher does
    /// not delegate yet; clients follow delegations wherever they appear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
}

/// The `delegations` of a targets role: the delegates' keys, and either an ordered list
/// of roles or succinct hash bins (TAP 15), never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Every delegate's keys.
    pub keys: BTreeMap<KeyId, TufKey>,
    /// Delegated roles, in the order the search visits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hash-bin roles named by a prefix and the leading bits of a path's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
}

/// One delegated role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// The role's name (also its metadata file's name, quoted).
    pub name: String,
    /// Keys allowed to sign for it.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
    /// A match here ends the search: later roles are not consulted.
    pub terminating: bool,
    /// Path patterns (`fnmatch` per `/`-separated segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of the SHA-256 of target paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
}

/// TAP 15's succinct hash-bin delegation: `2^bit_length` roles named
/// `{name_prefix}-{bin:0N x}`, all with the same keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Keys allowed to sign for every bin.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u32,
    /// How many leading bits of the path hash pick the bin (1..=32).
    pub bit_length: u32,
    /// The bins' common name prefix.
    pub name_prefix: String,
}

/// A role document with its role, for generic code.
pub trait RoleDocument: Serialize + for<'de> Deserialize<'de> {
    /// Which role this document is.
    const ROLE: Role;
}

macro_rules! role_document {
    ($ty:ty, $role:expr) => {
        impl RoleDocument for $ty {
            const ROLE: Role = $role;
        }
    };
}

role_document!(Root, Role::Root);
role_document!(Targets, Role::Targets);
role_document!(Snapshot, Role::Snapshot);
role_document!(Timestamp, Role::Timestamp);
