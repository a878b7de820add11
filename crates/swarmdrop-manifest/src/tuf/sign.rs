//! Turning a role document into a signed metadata file.

use serde::Serialize;

use crate::canonical::{to_canonical_json, CanonicalError};
use crate::keys::SigningKey;
use crate::tuf::metadata::Signature;

/// A document that could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The document does not convert to JSON.
    #[error("metadata does not serialise: {0}")]
    Serialise(#[from] serde_json::Error),
    /// The document has no canonical form (a float somewhere).
    #[error("{0}")]
    Canonical(#[from] CanonicalError),
}

/// The metadata file bytes: `{"signatures": [...], "signed": document}`, pretty-printed
/// (the signature covers the canonical form, not the layout), one signature per key,
/// ordered by key id so the output is reproducible.
pub fn sign_metadata<T: Serialize>(
    document: &T,
    keys: &[&SigningKey],
) -> Result<Vec<u8>, SignError> {
    let signed = serde_json::to_value(document)?;
    let canonical = to_canonical_json(&signed)?;
    let mut signatures: Vec<Signature> = keys
        .iter()
        .map(|key| Signature {
            keyid: key.public().key_id(),
            sig: hex::encode(key.sign(&canonical)),
        })
        .collect();
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    signatures.dedup_by(|a, b| a.keyid == b.keyid);
    let file = serde_json::json!({ "signatures": signatures, "signed": signed });
    let mut bytes = serde_json::to_vec_pretty(&file)?;
    bytes.push(b'\n');
    Ok(bytes)
}
