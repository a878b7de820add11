//! One error type for publishing, each variant naming the file or asset at fault.

use std::path::PathBuf;

use swarmdrop_manifest::dsse::DsseError;
use swarmdrop_manifest::keys::KeyError;
use swarmdrop_manifest::policy::PolicyError;
use swarmdrop_manifest::torrent::TorrentError;
use swarmdrop_manifest::tuf::{SignError, TufError};
use swarmdrop_manifest::ModelError;

/// What went wrong while generating keys, packing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is larger than we accept for its kind.
    #[error("{path}: {size} bytes is larger than the {limit}-byte limit for this kind of file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The policy file is wrong.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A key file is wrong.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        source: KeyError,
    },
    /// The key directory is incomplete, inconsistent or would be overwritten.
    #[error("{0}")]
    Keyset(String),
    /// An asset's name or type cannot be published.
    #[error("asset {path}: {problem}")]
    Asset {
        /// The asset's path on disk.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A drop path, name or hash is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The published directory is not what we expect (missing files, other keys).
    #[error("{0}")]
    Layout(String),
    /// Metadata failed verification; names the file.
    #[error("{file}: {source}")]
    Tuf {
        /// The metadata file or target.
        file: String,
        /// Why it was refused.
        source: TufError,
    },
    /// Metadata could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A torrent could not be built or does not match its asset.
    #[error("{file}: {source}")]
    Torrent {
        /// The torrent file.
        file: String,
        /// What is wrong.
        source: TorrentError,
    },
    /// A torrent or the provenance does not match the signed targets.
    #[error("{file}: {problem}")]
    Mismatch {
        /// The file.
        file: String,
        /// What differs.
        problem: String,
    },
    /// The provenance envelope failed verification.
    #[error("{file}: {source}")]
    Provenance {
        /// The envelope file.
        file: String,
        /// Why.
        source: DsseError,
    },
}

impl PublishError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
