//! Why metadata or a target was refused.

use crate::time::UtcTime;

/// Why metadata or a target was refused. Each names the role or file; role names are
/// strings because delegated roles are named by their delegators, not by this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    /// Not JSON, or not the shape of the role's metadata.
    #[error("{role} metadata is malformed: {detail}")]
    Malformed {
        /// The role.
        role: String,
        /// What is wrong.
        detail: String,
    },
    /// Fewer valid signatures from distinct keys of the role than its threshold.
    #[error("{role} metadata has {valid} valid signature(s) from distinct keys that {signers}; threshold is {threshold}")]
    Unsigned {
        /// The role whose metadata was checked.
        role: String,
        /// Whose list of keys applied, e.g. `root lists for timestamp`.
        signers: String,
        /// Valid signatures from distinct keys.
        valid: u32,
        /// Required.
        threshold: u32,
    },
    /// A version that goes backwards or does not match what the parent pins.
    #[error("{role} version {got} refused: {why} (expected {expected})")]
    BadVersion {
        /// The role.
        role: String,
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
        role: String,
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
        parent: String,
        /// The file name expected.
        name: String,
    },
    /// A call out of order (targets before snapshot, root after timestamp, …).
    #[error("cannot load {role} now: {why}")]
    OutOfOrder {
        /// The role being loaded.
        role: String,
        /// What must come first.
        why: &'static str,
    },
    /// The target is not listed by the trusted targets metadata.
    #[error("target {0:?} is not listed in the signed targets metadata")]
    UnknownTarget(String),
    /// A metadata file the walk needs does not exist on the mirror.
    #[error("metadata/{0} does not exist on the mirror")]
    MissingFile(String),
    /// A metadata file larger than the walk accepts for it (endless data).
    #[error("{file} is larger than the {limit} bytes accepted for it")]
    TooLarge {
        /// The file.
        file: String,
        /// The cap.
        limit: usize,
    },
    /// A delegated role its delegator does not delegate to.
    #[error("{delegator} does not delegate to {role}")]
    NotDelegated {
        /// The role loaded.
        role: String,
        /// The role it was loaded as a delegate of.
        delegator: String,
    },
}
