//! TUF 1.0 metadata: the four top-level roles, signing, and verification.
//!
//! [`metadata`] holds the role documents as serde types; [`sign`] turns a role
//! document into a signed file; [`trusted::TrustedSet`] is the client's walk from a
//! trusted root through timestamp, snapshot and targets, fed bytes and a fixed
//! reference time, shaped like python-tuf's `TrustedMetadataSet` so the same rules
//! (thresholds over unique keys, version and rollback checks, expiry) hold everywhere.

pub mod metadata;
pub mod release;
pub mod sign;
pub mod trusted;
pub mod updater;

pub use metadata::{
    MetaFile, P2pInfo, Role, RoleKeys, Root, Signature, Snapshot, TargetCustom, TargetFile,
    Targets, Timestamp, SPEC_VERSION,
};
pub use sign::{sign_metadata, SignError};
pub use trusted::{check_length_and_hashes, parse_unverified, TrustedSet, TufError};
