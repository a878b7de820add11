//! TUF 1.0 metadata: the four top-level roles, signing, and verification.
//!
//! [`metadata`] holds the role documents as serde types; [`sign`] turns a role
//! document into a signed file; [`trusted::TrustedSet`] is the client's walk from a
//! trusted root through timestamp, snapshot and targets, fed bytes and a fixed
//! reference time, shaped like python-tuf's `TrustedMetadataSet` so the same rules
//! (thresholds over unique keys, version and rollback checks, expiry) hold everywhere.

mod checks;
pub mod delegation;
mod errors;
pub mod metadata;
pub mod quote;
pub mod release;
pub mod sign;
pub mod signatures;
#[cfg(test)]
mod testrepo;
pub mod trusted;
pub mod updater;

pub use checks::{check_length_and_hashes, parse_unverified};
pub use errors::TufError;
pub use metadata::{
    DelegatedRole, Delegations, MetaFile, P2pInfo, Role, RoleKeys, Root, Signature, Snapshot,
    SuccinctRoles, TargetCustom, TargetFile, Targets, Timestamp, SPEC_VERSION,
};
pub use sign::{sign_metadata, SignError};
pub use trusted::TrustedSet;
