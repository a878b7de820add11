//! A repository in memory for the updater's tests: every role's document, its signing
//! keys, and a publish step that writes the files a server would hold (consistent
//! snapshots or not). Tests change a document, republish, and run a client against it.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use super::metadata::{
    DelegatedRole, Delegations, MetaFile, Role, RoleKeys, Root, Snapshot, TargetFile, Targets,
    Timestamp, SPEC_VERSION,
};
use super::quote::quote_segment;
use super::sign::sign_metadata;
use super::updater::{Request, Updater, UpdaterConfig};
use super::TufError;
use crate::keys::SigningKey;
use crate::time::UtcTime;

pub(crate) const NOW: i64 = 1_800_000_000;

pub(crate) fn now() -> UtcTime {
    UtcTime::from_unix(NOW).unwrap()
}

pub(crate) fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

fn target_file(bytes: &[u8]) -> TargetFile {
    let mut hashes = BTreeMap::new();
    hashes.insert("sha256".into(), hex::encode(Sha256::digest(bytes)));
    TargetFile {
        length: bytes.len() as u64,
        hashes,
        custom: None,
    }
}

pub(crate) struct Repo {
    pub(crate) root: Root,
    pub(crate) timestamp: Timestamp,
    pub(crate) snapshot: Snapshot,
    /// `targets` and every delegated role, by name.
    pub(crate) targets: BTreeMap<String, Targets>,
    /// Signing keys by role name.
    pub(crate) signers: BTreeMap<String, Vec<SigningKey>>,
    /// Every root version published so far.
    pub(crate) roots: BTreeMap<u64, Vec<u8>>,
    /// What the server holds, by path under the metadata URL.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

fn expires(days: i64) -> UtcTime {
    UtcTime::from_unix(NOW + days * 86_400).unwrap()
}

fn targets_doc() -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: expires(30),
        targets: BTreeMap::new(),
        delegations: None,
    }
}

impl Repo {
    /// A repository with one ed25519 key per top-level role (seeds 1..=4).
    pub(crate) fn new(consistent: bool) -> Self {
        let mut repo = Repo {
            root: Root {
                type_: "root".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires: expires(365),
                consistent_snapshot: consistent,
                keys: BTreeMap::new(),
                roles: BTreeMap::new(),
            },
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires: expires(1),
                meta: BTreeMap::new(),
            },
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires: expires(7),
                meta: BTreeMap::new(),
            },
            targets: BTreeMap::from([("targets".to_owned(), targets_doc())]),
            signers: BTreeMap::new(),
            roots: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        for (seed, role) in [
            (1, Role::Root),
            (2, Role::Targets),
            (3, Role::Snapshot),
            (4, Role::Timestamp),
        ] {
            repo.set_top_level_keys(role, vec![key(seed)], 1);
        }
        repo.publish_root();
        repo.publish();
        repo
    }

    /// Replaces a top-level role's keys (and threshold) in root.
    pub(crate) fn set_top_level_keys(&mut self, role: Role, keys: Vec<SigningKey>, threshold: u32) {
        let keyids = keys.iter().map(|k| k.public().key_id()).collect();
        for k in &keys {
            self.root
                .keys
                .insert(k.public().key_id(), k.public().to_tuf_key());
        }
        self.root
            .roles
            .insert(role.name().into(), RoleKeys { keyids, threshold });
        self.signers.insert(role.name().into(), keys);
    }

    /// Signs root with the current root keys and `extra` (the previous root's keys,
    /// when rotating), publishes it as `N.root.json`.
    pub(crate) fn publish_root_signed_by(&mut self, signers: &[&SigningKey]) {
        let bytes = sign_metadata(&self.root, signers).unwrap();
        self.files
            .insert(format!("{}.root.json", self.root.version), bytes.clone());
        self.files.insert("root.json".into(), bytes.clone());
        self.roots.insert(self.root.version, bytes);
    }

    pub(crate) fn publish_root(&mut self) {
        let keys = self.signers["root"].clone();
        let refs: Vec<&SigningKey> = keys.iter().collect();
        self.publish_root_signed_by(&refs);
    }

    /// Bumps root to the next version with `keys` for `role`, signed by old and new
    /// root keys, and publishes it.
    pub(crate) fn rotate(&mut self, role: Role, keys: Vec<SigningKey>, threshold: u32) {
        let old = self.signers["root"].clone();
        self.root.version += 1;
        self.set_top_level_keys(role, keys, threshold);
        let new = self.signers["root"].clone();
        let refs: Vec<&SigningKey> = old.iter().chain(new.iter()).collect();
        self.publish_root_signed_by(&refs);
    }

    /// Adds a target to a targets role.
    pub(crate) fn add_target(&mut self, role: &str, path: &str, bytes: &[u8]) {
        self.targets
            .get_mut(role)
            .unwrap()
            .targets
            .insert(path.into(), target_file(bytes));
    }

    /// Delegates `child` from `parent`, signed by `keys`.
    pub(crate) fn delegate(
        &mut self,
        parent: &str,
        child: &str,
        paths: &[&str],
        terminating: bool,
        keys: Vec<SigningKey>,
    ) {
        let doc = self.targets.get_mut(parent).unwrap();
        let delegations = doc.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
        });
        for k in &keys {
            delegations
                .keys
                .insert(k.public().key_id(), k.public().to_tuf_key());
        }
        delegations
            .roles
            .get_or_insert_with(Vec::new)
            .push(DelegatedRole {
                name: child.into(),
                keyids: keys.iter().map(|k| k.public().key_id()).collect(),
                threshold: 1,
                terminating,
                paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
                path_hash_prefixes: None,
            });
        self.targets.insert(child.into(), targets_doc());
        self.signers.insert(child.into(), keys);
    }

    /// Signs every targets role, the snapshot and the timestamp as they are now, and
    /// publishes them (versions are whatever the documents say).
    pub(crate) fn publish(&mut self) {
        let consistent = self.root.consistent_snapshot;
        self.snapshot.meta.clear();
        for (name, doc) in self.targets.clone() {
            let bytes = self.sign(&name, &doc);
            self.snapshot.meta.insert(
                format!("{name}.json"),
                MetaFile {
                    version: doc.version,
                    length: None,
                    hashes: None,
                },
            );
            let file = format!("{}.json", quote_segment(&name));
            let path = if consistent {
                format!("{}.{file}", doc.version)
            } else {
                file
            };
            self.files.insert(path, bytes);
        }
        let snapshot = self.sign("snapshot", &self.snapshot.clone());
        let path = if consistent {
            format!("{}.snapshot.json", self.snapshot.version)
        } else {
            "snapshot.json".into()
        };
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile {
                version: self.snapshot.version,
                length: Some(snapshot.len() as u64),
                hashes: Some(BTreeMap::from([(
                    "sha256".to_owned(),
                    hex::encode(Sha256::digest(&snapshot)),
                )])),
            },
        );
        self.files.insert(path, snapshot);
        let timestamp = self.sign("timestamp", &self.timestamp.clone());
        self.files.insert("timestamp.json".into(), timestamp);
    }

    pub(crate) fn sign<T: serde::Serialize>(&self, role: &str, doc: &T) -> Vec<u8> {
        let keys: Vec<&SigningKey> = self.signers[role].iter().collect();
        sign_metadata(doc, &keys).unwrap()
    }

    /// The first root, as a client is given it out of band.
    pub(crate) fn trusted_root(&self) -> Vec<u8> {
        self.roots[&1].clone()
    }
}

/// A client: its kept metadata, and every request it made.
#[derive(Default)]
pub(crate) struct Client {
    pub(crate) local: BTreeMap<String, Vec<u8>>,
    pub(crate) requests: Vec<String>,
}

impl Client {
    pub(crate) fn new(root: Vec<u8>) -> Self {
        Client {
            local: BTreeMap::from([("root.json".to_owned(), root)]),
            requests: Vec::new(),
        }
    }

    /// One refresh, then a search for `target` if given.
    pub(crate) fn run(
        &mut self,
        repo: &Repo,
        target: Option<&str>,
        config: UpdaterConfig,
    ) -> Result<Option<TargetFile>, TufError> {
        self.requests.clear();
        let mut updater = Updater::new(&self.local["root.json"], now(), config)?;
        self.drive(&mut updater, repo)?;
        let Some(target) = target else {
            return Ok(None);
        };
        updater.find_target(target)?;
        self.drive(&mut updater, repo)?;
        updater
            .search_result()
            .map_or(Ok(None), |r| r.map(|found| found.cloned()))
    }

    /// A refreshed updater, to ask it questions.
    pub(crate) fn refreshed(&mut self, repo: &Repo) -> Result<Updater, TufError> {
        let mut updater = Updater::new(&self.local["root.json"], now(), UpdaterConfig::default())?;
        self.drive(&mut updater, repo)?;
        Ok(updater)
    }

    /// Looks `target` up with an updater that may have searched before.
    pub(crate) fn search(
        &mut self,
        updater: &mut Updater,
        repo: &Repo,
        target: &str,
    ) -> Result<Option<TargetFile>, TufError> {
        updater.find_target(target)?;
        self.drive(updater, repo)?;
        updater
            .search_result()
            .map_or(Ok(None), |r| r.map(|found| found.cloned()))
    }

    fn drive(&mut self, updater: &mut Updater, repo: &Repo) -> Result<(), TufError> {
        while let Some(request) = updater.next() {
            let bytes = match &request {
                Request::Local { file, .. } => self.local.get(file).cloned(),
                Request::Remote { path, .. } => {
                    self.requests.push(path.clone());
                    repo.files.get(path).cloned()
                }
            };
            let supplied = updater.supply(bytes.as_deref())?;
            for file in &supplied.forget {
                self.local.remove(file);
            }
            if let Some(file) = supplied.keep {
                self.local.insert(file, bytes.unwrap_or_default());
            }
        }
        Ok(())
    }
}
