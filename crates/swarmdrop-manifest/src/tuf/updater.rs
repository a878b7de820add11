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
use super::metadata::{Role, TargetFile};
use super::quote::{quote_path, quote_segment};
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
    /// Delete these kept files (unversioned names): the new root rotated the timestamp
    /// or snapshot keys, so the version floors the kept copies set may have been pushed
    /// by a compromised key (fast-forward recovery, specification 5.3.11). Answer `None`.
    Forget {
        /// The file names under the caller's metadata directory.
        files: Vec<String>,
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
            Request::Forget { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    NextRoot,
    Forget,
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
    result: Option<Option<TargetFile>>,
}

/// Walks one refresh, then any number of target searches.
#[derive(Debug)]
pub struct Updater {
    set: TrustedSet,
    config: UpdaterConfig,
    step: Step,
    rotations: u64,
    /// Verified roots, oldest first (the first is the anchor).
    roots: Vec<Vec<u8>>,
    search: Option<Search>,
    /// The root trusted when the refresh began, to tell which keys rotated.
    first_root: super::metadata::Root,
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
            first_root: set.root().clone(),
            set,
            config,
            step: Step::NextRoot,
            rotations: 0,
            roots: vec![trusted_root.to_vec()],
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
            Step::Forget => Some(Request::Forget {
                files: vec!["timestamp.json".into(), "snapshot.json".into()],
            }),
            Step::LocalTimestamp => Some(local("timestamp", self.config.timestamp_max_bytes)),
            Step::RemoteTimestamp => Some(remote(
                "timestamp",
                None,
                self.config.timestamp_max_bytes,
                false,
            )),
            // A kept copy is an older version, so the new pin's length does not bound
            // it; the configured cap does.
            Step::LocalSnapshot => Some(local("snapshot", self.config.snapshot_max_bytes)),
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
            Step::LocalTargets { role, .. } => Some(local(role, self.config.targets_max_bytes)),
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
    /// none. Returns the unversioned file name to keep the bytes under when they became
    /// trusted (a remote file that verified), else `None`.
    pub fn supply(&mut self, bytes: Option<&[u8]>) -> Result<Option<String>, TufError> {
        let request = self.next();
        if let (Some(request), Some(bytes)) = (&request, bytes) {
            if bytes.len() > request.max_bytes() {
                let too_large = TufError::TooLarge {
                    file: match request {
                        Request::Local { file, .. } => file.clone(),
                        Request::Remote { path, .. } => path.clone(),
                        Request::Forget { .. } => String::new(),
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
        let persist = |role: &str| Some(format!("{}.json", quote_segment(role)));
        match (self.step.clone(), bytes) {
            (Step::NextRoot, Some(bytes)) => {
                self.set.update_root(bytes)?;
                self.roots.push(bytes.to_vec());
                self.rotations += 1;
                if self.rotations >= self.config.max_root_rotations {
                    self.after_roots();
                }
                Ok(persist("root"))
            }
            (Step::NextRoot, None) => {
                self.after_roots();
                Ok(None)
            }
            (Step::Forget, _) => {
                self.step = Step::RemoteTimestamp;
                Ok(None)
            }
            (Step::LocalTimestamp, bytes) => {
                if let Some(bytes) = bytes {
                    if let Err(e) = self.set.update_timestamp(bytes) {
                        self.notes
                            .push(format!("local timestamp.json not used: {e}"));
                    }
                }
                self.step = Step::RemoteTimestamp;
                Ok(None)
            }
            (Step::RemoteTimestamp, Some(bytes)) => {
                let updated = self.set.update_timestamp(bytes)?;
                self.step = Step::LocalSnapshot;
                Ok(if updated == Updated::New {
                    persist("timestamp")
                } else {
                    None
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
                Ok(None)
            }
            (Step::RemoteSnapshot, Some(bytes)) => {
                self.set.update_snapshot(bytes, false)?;
                self.step = self.targets_step("targets", "root");
                Ok(persist("snapshot"))
            }
            (Step::LocalTargets { role, delegator }, bytes) => {
                let kept = bytes.map(|b| self.set.update_delegated_targets(b, &role, &delegator));
                match kept {
                    Some(Ok(())) => self.after_targets(&role, &delegator)?,
                    Some(Err(e)) => {
                        self.notes.push(format!("local {role}.json not used: {e}"));
                        self.step = Step::RemoteTargets { role, delegator };
                    }
                    None => self.step = Step::RemoteTargets { role, delegator },
                }
                Ok(None)
            }
            (Step::RemoteTargets { role, delegator }, Some(bytes)) => {
                self.set
                    .update_delegated_targets(bytes, &role, &delegator)?;
                self.after_targets(&role, &delegator)?;
                Ok(persist(&role))
            }
            (Step::Idle, _) => Ok(None),
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

    /// After the last root: kept timestamp and snapshot are forgotten if the root that
    /// was trusted at the start had other keys for either role.
    fn after_roots(&mut self) {
        let current = self.set.root();
        let rotated = [Role::Timestamp, Role::Snapshot].iter().any(|role| {
            let keyids = |root: &super::metadata::Root| {
                root.role(*role)
                    .map(|r| r.keyids.iter().cloned().collect::<BTreeSet<_>>())
            };
            keyids(current) != keyids(&self.first_root)
        });
        self.step = if rotated {
            Step::Forget
        } else {
            Step::LocalTimestamp
        };
    }

    /// The step that loads `role` (local copy first) unless it is already trusted.
    fn targets_step(&self, role: &str, delegator: &str) -> Step {
        Step::LocalTargets {
            role: role.to_owned(),
            delegator: delegator.to_owned(),
        }
    }

    /// `role` is trusted: the refresh is over, or the search goes on.
    fn after_targets(&mut self, role: &str, delegator: &str) -> Result<(), TufError> {
        self.step = Step::Idle;
        if self.search.is_some() {
            self.visit(role, delegator);
            self.advance()?;
        }
        Ok(())
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
        self.advance()
    }

    /// Runs the search until it needs a file or ends.
    fn advance(&mut self) -> Result<(), TufError> {
        loop {
            let Some(search) = &mut self.search else {
                return Ok(());
            };
            if search.result.is_some() {
                return Ok(());
            }
            if search.visited.len() > self.config.max_delegations || search.stack.is_empty() {
                search.result = Some(None);
                return Ok(());
            }
            let Some((role, delegator)) = search.stack.pop() else {
                continue;
            };
            if search.visited.contains(&(role.clone(), delegator.clone())) {
                continue;
            }
            if self.set.targets_role(&role).is_some() {
                self.set.check_delegated_by(&role, &delegator)?;
                self.visit(&role, &delegator);
                continue;
            }
            self.step = self.targets_step(&role, &delegator);
            return Ok(());
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
            search.result = Some(Some(found.clone()));
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
    /// description, or `None` if no trusted role lists it.
    pub fn search_result(&self) -> Option<Option<&TargetFile>> {
        self.search
            .as_ref()
            .and_then(|s| s.result.as_ref())
            .map(Option::as_ref)
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

    /// The verified roots of this refresh, oldest first.
    pub fn roots(&self) -> &[Vec<u8>] {
        &self.roots
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
