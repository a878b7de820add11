//! The TUF client workflow as a sans-IO state machine: it says which metadata file to
//! fetch next, is handed the bytes (or told the file does not exist), and walks root
//! rotations → timestamp → snapshot → targets through [`TrustedSet`], which does every
//! signature, version, expiry, length and hash check against one reference time.
//!
//! The caller does the fetching (from an edge, the origin, a directory), so the same walk
//! serves `swarmdrop get` and any other client.

use super::metadata::Role;
use super::trusted::{TrustedSet, TufError};
use crate::UtcTime;

/// Most root rotations followed in one refresh (TUF's "fast-forward" bound).
pub const MAX_ROOT_ROTATIONS: u64 = 256;
/// Largest root, timestamp or snapshot file accepted ("endless data").
pub const MAX_METADATA_BYTES: usize = 16 << 20;

/// A file the updater needs, named as it is published (consistent snapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The name under `metadata/`, like `3.root.json` or `timestamp.json`.
    pub name: String,
    /// Refuse a body longer than this.
    pub max_bytes: usize,
    /// Whether "not found" is an answer (the next root) or an error.
    pub optional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    NextRoot,
    Timestamp,
    Snapshot(u64),
    Targets(u64),
    Done,
}

/// Walks one refresh.
#[derive(Debug)]
pub struct Updater {
    set: TrustedSet,
    step: Step,
    rotations: u64,
    /// Verified roots, oldest first (the first is the anchor): what a client keeps.
    roots: Vec<Vec<u8>>,
}

impl Updater {
    /// Starts from a trusted root (obtained out of band, or kept from the last refresh),
    /// with `reference_time` for every expiry check of this refresh.
    pub fn new(trusted_root: &[u8], reference_time: UtcTime) -> Result<Self, TufError> {
        Ok(Updater {
            set: TrustedSet::new(trusted_root, reference_time)?,
            step: Step::NextRoot,
            rotations: 0,
            roots: vec![trusted_root.to_vec()],
        })
    }

    /// The file to fetch next, or `None` when the walk is complete.
    pub fn next(&self) -> Option<Need> {
        let need = |name: String, optional| Need {
            name,
            max_bytes: MAX_METADATA_BYTES,
            optional,
        };
        match self.step {
            Step::NextRoot => Some(need(
                format!("{}.root.json", self.set.root().version.saturating_add(1)),
                true,
            )),
            Step::Timestamp => Some(need("timestamp.json".into(), false)),
            Step::Snapshot(v) => Some(need(format!("{v}.snapshot.json"), false)),
            Step::Targets(v) => Some(need(format!("{v}.targets.json"), false)),
            Step::Done => None,
        }
    }

    /// Hands over the file [`Updater::next`] asked for: its bytes, or `None` if the
    /// server said it does not exist.
    pub fn supply(&mut self, bytes: Option<&[u8]>) -> Result<(), TufError> {
        match (self.step, bytes) {
            (Step::NextRoot, Some(bytes)) => {
                self.set.update_root(bytes)?;
                self.roots.push(bytes.to_vec());
                self.rotations += 1;
                if self.rotations >= MAX_ROOT_ROTATIONS {
                    self.after_roots()?;
                }
            }
            (Step::NextRoot, None) => self.after_roots()?,
            (Step::Timestamp, Some(bytes)) => {
                self.set.update_timestamp(bytes)?;
                let version = self.meta_version(Role::Timestamp, "snapshot.json")?;
                self.step = Step::Snapshot(version);
            }
            (Step::Snapshot(_), Some(bytes)) => {
                self.set.update_snapshot(bytes, false)?;
                let version = self.meta_version(Role::Snapshot, "targets.json")?;
                self.step = Step::Targets(version);
            }
            (Step::Targets(_), Some(bytes)) => {
                self.set.update_targets(bytes)?;
                self.step = Step::Done;
            }
            (Step::Done, _) => {}
            (step, None) => {
                return Err(TufError::MissingFile(match step {
                    Step::Timestamp => "timestamp.json".into(),
                    Step::Snapshot(v) => format!("{v}.snapshot.json"),
                    Step::Targets(v) => format!("{v}.targets.json"),
                    Step::NextRoot | Step::Done => String::new(),
                }))
            }
        }
        Ok(())
    }

    fn after_roots(&mut self) -> Result<(), TufError> {
        if !self.set.root().consistent_snapshot {
            return Err(TufError::Layout(
                "the root does not use consistent snapshots".into(),
            ));
        }
        self.step = Step::Timestamp;
        Ok(())
    }

    fn meta_version(&self, parent: Role, name: &str) -> Result<u64, TufError> {
        let meta = match parent {
            Role::Timestamp => self.set.timestamp().and_then(|t| t.meta.get(name)),
            _ => self.set.snapshot().and_then(|s| s.meta.get(name)),
        };
        meta.map(|m| m.version)
            .ok_or_else(|| TufError::MissingMeta {
                parent,
                name: name.into(),
            })
    }

    /// Whether the walk is complete.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The verified roots of this refresh, oldest first.
    pub fn roots(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// The trusted metadata (complete once [`Updater::is_done`]).
    pub fn trusted(&self) -> &TrustedSet {
        &self.set
    }

    /// Takes the trusted metadata.
    pub fn into_trusted(self) -> TrustedSet {
        self.set
    }
}
