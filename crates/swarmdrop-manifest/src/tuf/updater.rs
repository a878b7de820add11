//! The TUF client workflow as a sans-IO state machine.
//!
//! It says which file it needs next — a trusted copy kept from an earlier refresh
//! ([`Request::Local`]) or a file from the repository ([`Request::Remote`]) — is handed
//! the bytes (or told there are none), and walks root rotations → timestamp → snapshot
//! → targets through [`TrustedSet`], which does every signature, version, expiry, length
//! and hash check against one reference time. After the refresh it can search the
//! delegation graph for a target the same way. Each remote file that becomes trusted is
//! named back to the caller to keep, under its unversioned name.
//!
//! The caller does the fetching (from an edge, the origin, a directory), so the same walk
//! serves `swarmdrop get`, `swarmdrop tuf-client` and any other client.

use std::collections::BTreeSet;

use super::delegation::delegates_for;
use super::errors::TufError;
use super::metadata::{Role, Root, TargetFile};
use super::quote::{quote_path, quote_segment};
use super::signatures::VerifyingKey;
use super::trusted::{TrustedSet, Updated};
use crate::UtcTime;

/// Limits of one refresh; the defaults are python-tuf's, so the two clients accept the
/// same repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdaterConfig {
    /// Most root rotations followed in one refresh (fast-forward through many at once is
    /// allowed, without end is not).
    pub max_root_rotations: u64,
    /// Most targets roles visited looking for one target.
    pub max_delegations: usize,
    /// Largest `N.root.json` accepted.
    pub root_max_bytes: usize,
    /// Largest `timestamp.json` accepted.
    pub timestamp_max_bytes: usize,
    /// Largest snapshot accepted when the timestamp pins no length.
    pub snapshot_max_bytes: usize,
    /// Largest targets file accepted when the snapshot pins no length.
    pub targets_max_bytes: usize,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_bytes: 512_000,
            timestamp_max_bytes: 16_384,
            snapshot_max_bytes: 2_000_000,
            targets_max_bytes: 5_000_000,
        }
    }
}

/// What the caller must do with its metadata directory after a file was supplied, in
/// this order: delete `forget`, then keep the supplied bytes as `keep`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Supplied {
    /// Kept files to delete first: the new root rotated keys away from the timestamp or
    /// snapshot role, so the version floors they set may have been pushed with a stolen
    /// key (fast-forward recovery, specification 5.3.11). Deleting them before the new
    /// root is kept means a crash in between only repeats the rotation.
    pub forget: Vec<String>,
    /// The unversioned file name to keep the supplied bytes under, when they became
    /// trusted.
    pub keep: Option<String>,
}

impl Supplied {
    fn keep(file: String) -> Self {
        Supplied {
            forget: Vec::new(),
            keep: Some(file),
        }
    }
}

/// A file the updater needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The copy kept from an earlier refresh, by its unversioned file name
    /// (`timestamp.json`, `<quoted role>.json`). Answer `None` if there is none: a
    /// missing or bad local copy only means it is fetched again.
    Local {
        /// The role.
        role: String,
        /// The file name under the caller's metadata directory.
        file: String,
        /// Read no more than this.
        max_bytes: usize,
    },
    /// A file under the repository's metadata URL.
    Remote {
        /// The role.
        role: String,
        /// The path relative to the metadata URL, quoted (`3.root.json`,
        /// `timestamp.json`, `7.a%2Fb.json`).
        path: String,
        /// Refuse a body longer than this (endless data).
        max_bytes: usize,
        /// Whether "not found" is an answer (there is no next root) or an error.
        missing_ok: bool,
    },
}

impl Request {
    /// The most bytes to read for this file.
    pub fn max_bytes(&self) -> usize {
        match self {
            Request::Local { max_bytes, .. } | Request::Remote { max_bytes, .. } => *max_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    NextRoot,
    LocalTimestamp,
    RemoteTimestamp,
    LocalSnapshot,
    RemoteSnapshot,
    LocalTargets { role: String, delegator: String },
    RemoteTargets { role: String, delegator: String },
    Idle,
}

/// A search for one target through the delegation graph (pre-order, depth first).
#[derive(Debug, Clone)]
struct Search {
    target: String,
    /// (role, delegator) pairs still to visit; the next is at the end.
    stack: Vec<(String, String)>,
    visited: BTreeSet<(String, String)>,
    /// Found, not found, or a role on the way that could not be trusted.
    result: Option<Result<Option<TargetFile>, TufError>>,
}

/// Whether `new` took away a key of the timestamp or snapshot role that `old` trusted
/// (compared by key material, not key id): adding a key is not a rotation, and a key id
/// reused for another key is.
fn keys_rotated_away(old: &Root, new: &Root) -> bool {
    let material = |root: &Root, role: Role| -> BTreeSet<Vec<u8>> {
        root.role(role)
            .map(|r| {
                r.keyids
                    .iter()
                    .filter_map(|id| root.keys.get(id))
                    .map(|key| match VerifyingKey::from_tuf(key) {
                        Ok(verifying) => verifying.identity(),
                        Err(_) => format!("{}:{}", key.keytype, key.keyval.public).into_bytes(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    [Role::Timestamp, Role::Snapshot]
        .into_iter()
        .any(|role| !material(old, role).is_subset(&material(new, role)))
}

/// Walks one refresh, then any number of target searches.
#[derive(Debug)]
pub struct Updater {
    set: TrustedSet,
    config: UpdaterConfig,
    step: Step,
    rotations: u64,
    search: Option<Search>,
    /// A rotation took keys away from timestamp or snapshot: kept copies are not read.
    forgotten: bool,
    /// Local copies that were not used, and why: for a verbose log.
    notes: Vec<String>,
}

impl Updater {
    /// Starts from a trusted root (obtained out of band, or kept from the last refresh),
    /// with `reference_time` for every expiry check of this refresh.
    pub fn new(
        trusted_root: &[u8],
        reference_time: UtcTime,
        config: UpdaterConfig,
    ) -> Result<Self, TufError> {
        let set = TrustedSet::new(trusted_root, reference_time)?;
        Ok(Updater {
            forgotten: false,
            set,
            config,
            step: Step::NextRoot,
            rotations: 0,
            search: None,
            notes: Vec::new(),
        })
    }

    /// The file to fetch next, or `None` when the refresh (and any search) is complete.
    pub fn next(&self) -> Option<Request> {
        let consistent = self.set.root().consistent_snapshot;
        let remote = |role: &str, version: Option<u64>, max_bytes: usize, missing_ok: bool| {
            let file = format!("{}.json", quote_segment(role));
            Request::Remote {
                role: role.to_owned(),
                path: match version {
                    Some(v) => format!("{v}.{file}"),
                    None => file,
                },
                max_bytes,
                missing_ok,
            }
        };
        let local = |role: &str, max_bytes: usize| Request::Local {
            role: role.to_owned(),
            file: format!("{}.json", quote_segment(role)),
            max_bytes,
        };
        match &self.step {
            Step::NextRoot => Some(remote(
                "root",
                Some(self.set.root().version.saturating_add(1)),
                self.config.root_max_bytes,
                true,
            )),
            Step::LocalTimestamp => Some(local("timestamp", self.config.timestamp_max_bytes)),
            Step::RemoteTimestamp => Some(remote(
                "timestamp",
                None,
                self.config.timestamp_max_bytes,
                false,
            )),
            // A kept copy is an older version, so the new pin's length does not bound
            // it: the larger of the pin and the configured cap does.
            Step::LocalSnapshot => Some(local(
                "snapshot",
                self.snapshot_max().max(self.config.snapshot_max_bytes),
            )),
            Step::RemoteSnapshot => {
                let version = self
                    .set
                    .timestamp()
                    .and_then(|t| t.meta.get("snapshot.json"))
                    .map(|m| m.version);
                Some(remote(
                    "snapshot",
                    version.filter(|_| consistent),
                    self.snapshot_max(),
                    false,
                ))
            }
            Step::LocalTargets { role, .. } => Some(local(
                role,
                self.targets_max(role).max(self.config.targets_max_bytes),
            )),
            Step::RemoteTargets { role, .. } => {
                let version = self
                    .set
                    .snapshot()
                    .and_then(|s| s.meta.get(&format!("{role}.json")))
                    .map(|m| m.version);
                Some(remote(
                    role,
                    version.filter(|_| consistent),
                    self.targets_max(role),
                    false,
                ))
            }
            Step::Idle => None,
        }
    }

    fn snapshot_max(&self) -> usize {
        self.set
            .timestamp()
            .and_then(|t| t.meta.get("snapshot.json"))
            .and_then(|m| m.length)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(self.config.snapshot_max_bytes)
    }

    fn targets_max(&self, role: &str) -> usize {
        self.set
            .snapshot()
            .and_then(|s| s.meta.get(&format!("{role}.json")))
            .and_then(|m| m.length)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(self.config.targets_max_bytes)
    }

    /// Hands over the file [`Updater::next`] asked for: its bytes, or `None` if there is
    /// none. Says what to delete and what to keep (a remote file that verified). On an
    /// error the step is unchanged, so the caller may supply the same file from another
    /// mirror: only files that verified ever change what is trusted.
    pub fn supply(&mut self, bytes: Option<&[u8]>) -> Result<Supplied, TufError> {
        let request = self.next();
        if let (Some(request), Some(bytes)) = (&request, bytes) {
            if bytes.len() > request.max_bytes() {
                let too_large = TufError::TooLarge {
                    file: match request {
                        Request::Local { file, .. } => file.clone(),
                        Request::Remote { path, .. } => path.clone(),
                    },
                    limit: request.max_bytes(),
                };
                if matches!(request, Request::Local { .. }) {
                    self.notes.push(too_large.to_string());
                    return self.supply(None);
                }
                return Err(too_large);
            }
        }
        let missing = |path: &str| TufError::MissingFile(path.to_owned());
        let persist = |role: &str| Supplied::keep(format!("{}.json", quote_segment(role)));
        match (self.step.clone(), bytes) {
            (Step::NextRoot, Some(bytes)) => {
                let previous = self.set.root().clone();
                self.set.update_root(bytes)?;
                self.rotations += 1;
                let mut supplied = persist("root");
                if keys_rotated_away(&previous, self.set.root()) {
                    supplied.forget = vec!["timestamp.json".into(), "snapshot.json".into()];
                    self.forgotten = true;
                }
                if self.rotations >= self.config.max_root_rotations {
                    self.after_roots();
                }
                Ok(supplied)
            }
            (Step::NextRoot, None) => {
                self.after_roots();
                Ok(Supplied::default())
            }
            (Step::LocalTimestamp, bytes) => {
                if let Some(bytes) = bytes {
                    if let Err(e) = self.set.update_timestamp(bytes) {
                        self.notes
                            .push(format!("local timestamp.json not used: {e}"));
                    }
                }
                self.step = Step::RemoteTimestamp;
                Ok(Supplied::default())
            }
            (Step::RemoteTimestamp, Some(bytes)) => {
                let updated = self.set.update_timestamp(bytes)?;
                self.step = if self.forgotten {
                    Step::RemoteSnapshot
                } else {
                    Step::LocalSnapshot
                };
                Ok(if updated == Updated::New {
                    persist("timestamp")
                } else {
                    Supplied::default()
                })
            }
            (Step::LocalSnapshot, bytes) => {
                let kept = bytes.map(|b| self.set.update_snapshot(b, true));
                self.step = match kept {
                    Some(Ok(())) => self.targets_step("targets", "root"),
                    Some(Err(e)) => {
                        self.notes
                            .push(format!("local snapshot.json not used: {e}"));
                        Step::RemoteSnapshot
                    }
                    None => Step::RemoteSnapshot,
                };
                Ok(Supplied::default())
            }
            (Step::RemoteSnapshot, Some(bytes)) => {
                self.set.update_snapshot(bytes, false)?;
                self.step = self.targets_step("targets", "root");
                Ok(persist("snapshot"))
            }
            (Step::LocalTargets { role, delegator }, bytes) => {
                let kept = bytes.map(|b| self.set.update_delegated_targets(b, &role, &delegator));
                match kept {
                    Some(Ok(())) => self.after_targets(&role, &delegator),
                    Some(Err(e)) => {
                        self.notes.push(format!("local {role}.json not used: {e}"));
                        self.step = Step::RemoteTargets { role, delegator };
                    }
                    None => self.step = Step::RemoteTargets { role, delegator },
                }
                Ok(Supplied::default())
            }
            (Step::RemoteTargets { role, delegator }, Some(bytes)) => {
                self.set
                    .update_delegated_targets(bytes, &role, &delegator)?;
                self.after_targets(&role, &delegator);
                Ok(persist(&role))
            }
            (Step::Idle, _) => Ok(Supplied::default()),
            (Step::RemoteTimestamp, None) => Err(missing("timestamp.json")),
            (Step::RemoteSnapshot | Step::RemoteTargets { .. }, None) => {
                let path = match request {
                    Some(Request::Remote { path, .. }) => path,
                    _ => String::new(),
                };
                Err(missing(&path))
            }
        }
    }

    /// After the last root: the kept timestamp next, unless a rotation made it
    /// untrustworthy.
    fn after_roots(&mut self) {
        self.step = if self.forgotten {
            Step::RemoteTimestamp
        } else {
            Step::LocalTimestamp
        };
    }

    /// The step that loads `role`, its kept copy first.
    fn targets_step(&self, role: &str, delegator: &str) -> Step {
        Step::LocalTargets {
            role: role.to_owned(),
            delegator: delegator.to_owned(),
        }
    }

    /// `role` is trusted: the refresh is over, or the search goes on. A search that
    /// fails from here on keeps its error in the result, so the role that just verified
    /// is still kept by the caller.
    fn after_targets(&mut self, role: &str, delegator: &str) {
        self.step = Step::Idle;
        if self.search.is_some() {
            self.visit(role, delegator);
            self.advance();
        }
    }

    /// Whether the refresh is complete (every top-level role trusted).
    pub fn is_refreshed(&self) -> bool {
        self.set.targets().is_some()
    }

    /// Starts looking for `target` through the delegation graph; call [`Updater::next`]
    /// and [`Updater::supply`] until it returns `None`, then read
    /// [`Updater::search_result`]. The refresh must be complete.
    pub fn find_target(&mut self, target: &str) -> Result<(), TufError> {
        if !self.is_refreshed() || self.step != Step::Idle {
            return Err(TufError::OutOfOrder {
                role: Role::Targets.name().into(),
                why: "the refresh must complete before a target is looked up",
            });
        }
        self.search = Some(Search {
            target: target.to_owned(),
            stack: vec![("targets".into(), "root".into())],
            visited: BTreeSet::new(),
            result: None,
        });
        self.advance();
        Ok(())
    }

    /// Runs the search until it needs a file or ends.
    fn advance(&mut self) {
        loop {
            let Some(search) = &mut self.search else {
                return;
            };
            if search.result.is_some() {
                return;
            }
            if search.visited.len() > self.config.max_delegations || search.stack.is_empty() {
                search.result = Some(Ok(None));
                return;
            }
            let Some((role, delegator)) = search.stack.pop() else {
                continue;
            };
            if search.visited.contains(&(role.clone(), delegator.clone())) {
                continue;
            }
            if self.set.targets_role(&role).is_some() {
                if let Err(e) = self.set.check_delegated_by(&role, &delegator) {
                    search.result = Some(Err(e));
                    return;
                }
                self.visit(&role, &delegator);
                continue;
            }
            // A delegated role the snapshot does not list cannot be trusted: say so
            // without fetching anything.
            let file = format!("{role}.json");
            if !self
                .set
                .snapshot()
                .is_some_and(|s| s.meta.contains_key(&file))
            {
                search.result = Some(Err(TufError::MissingMeta {
                    parent: Role::Snapshot.name().into(),
                    name: file,
                }));
                return;
            }
            self.step = self.targets_step(&role, &delegator);
            return;
        }
    }

    /// Looks at a trusted role: it lists the target (found), or its matching delegates go
    /// on the stack in order (a terminating match drops everything else still queued).
    fn visit(&mut self, role: &str, delegator: &str) {
        let Some(search) = &mut self.search else {
            return;
        };
        let Some(targets) = self.set.targets_role(role) else {
            return;
        };
        if let Some(found) = targets.targets.get(&search.target) {
            search.result = Some(Ok(Some(found.clone())));
            return;
        }
        search
            .visited
            .insert((role.to_owned(), delegator.to_owned()));
        let mut children = Vec::new();
        for delegate in targets
            .delegations
            .as_ref()
            .map(|d| delegates_for(d, &search.target))
            .unwrap_or_default()
        {
            children.push((delegate.name, role.to_owned()));
            if delegate.terminating {
                search.stack.clear();
                break;
            }
        }
        search.stack.extend(children.into_iter().rev());
    }

    /// The search's answer once [`Updater::next`] returns `None`: the target's signed
    /// description, `Ok(None)` if no trusted role lists it, or why a role on the way
    /// could not be trusted. `None` while the search still needs files.
    pub fn search_result(&self) -> Option<Result<Option<&TargetFile>, TufError>> {
        let result = self.search.as_ref()?.result.as_ref()?;
        Some(match result {
            Ok(found) => Ok(found.as_ref()),
            Err(e) => Err(e.clone()),
        })
    }

    /// Where a target is published under the targets URL: its quoted path, with the
    /// hash prefix on the file name when the root uses consistent snapshots.
    pub fn target_url_path(&self, path: &str, target: &TargetFile) -> String {
        let hash = target.hashes.values().next();
        match hash.filter(|_| self.set.root().consistent_snapshot) {
            Some(hash) => {
                let (dir, file) = match path.rsplit_once('/') {
                    Some((dir, file)) => (format!("{dir}/"), file),
                    None => (String::new(), path),
                };
                quote_path(&format!("{dir}{hash}.{file}"))
            }
            None => quote_path(path),
        }
    }

    /// Local copies that were not used this refresh, and why.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The trusted metadata.
    pub fn trusted(&self) -> &TrustedSet {
        &self.set
    }

    /// Takes the trusted metadata.
    pub fn into_trusted(self) -> TrustedSet {
        self.set
    }
}

#[cfg(test)]
mod tests;
