//! DSSE envelopes (Dead Simple Signing Envelope, v1): a payload, its type, and
//! signatures over the pre-authentication encoding `PAE(type, payload)`, so a
//! signature can never be replayed as a signature over a different payload type.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the payload.
    pub payload: String,
    /// The payload's media type.
    pub payload_type: String,
    /// Signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The signing key's id (some verifiers require it).
    pub keyid: KeyId,
    /// Base64 of the signature.
    pub sig: String,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// Not a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// The payload type is not the one expected.
    #[error("DSSE payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
    /// Fewer valid signatures from distinct trusted keys than required.
    #[error(
        "DSSE envelope has {valid} valid signature(s) from trusted keys; {threshold} required"
    )]
    Unsigned {
        /// Valid signatures from distinct trusted keys.
        valid: usize,
        /// Required.
        threshold: usize,
    },
}

/// `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An envelope around `payload` signed by each key.
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[&SigningKey]) -> Self {
        let message = pae(payload_type, payload);
        let b64 = base64::engine::general_purpose::STANDARD;
        Self {
            payload: b64.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: keys
                .iter()
                .map(|key| EnvelopeSignature {
                    keyid: key.public().key_id(),
                    sig: b64.encode(key.sign(&message)),
                })
                .collect(),
        }
    }

    /// Parses an envelope from JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))
    }

    /// The decoded payload, without checking signatures.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| DsseError::Malformed(format!("payload is not base64: {e}")))
    }

    /// Checks the type and that at least `threshold` distinct trusted keys signed;
    /// returns the payload.
    pub fn verify(
        &self,
        expected_type: &str,
        trusted: &[(KeyId, PublicKey)],
        threshold: usize,
    ) -> Result<Vec<u8>, DsseError> {
        if self.payload_type != expected_type {
            return Err(DsseError::PayloadType {
                found: self.payload_type.clone(),
                expected: expected_type.to_owned(),
            });
        }
        let payload = self.payload_bytes()?;
        let message = pae(&self.payload_type, &payload);
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut valid: Vec<&KeyId> = Vec::new();
        for signature in &self.signatures {
            let Ok(sig) = b64.decode(&signature.sig) else {
                continue;
            };
            let key = trusted.iter().find(|(id, _)| *id == signature.keyid);
            if let Some((id, public)) = key {
                if public.verify(&message, &sig) && !valid.contains(&id) {
                    valid.push(id);
                }
            }
        }
        if valid.len() < threshold.max(1) {
            return Err(DsseError::Unsigned {
                valid: valid.len(),
                threshold: threshold.max(1),
            });
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = SigningKey::from_seed([4; 32]);
        let trusted = [(key.public().key_id(), key.public())];
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &[&key]);
        assert_eq!(
            envelope.verify(IN_TOTO_PAYLOAD_TYPE, &trusted, 1).unwrap(),
            b"{\"a\":1}"
        );
        let mut tampered = envelope.clone();
        tampered.payload = base64::engine::general_purpose::STANDARD.encode(b"{\"a\":2}");
        assert!(matches!(
            tampered.verify(IN_TOTO_PAYLOAD_TYPE, &trusted, 1),
            Err(DsseError::Unsigned { valid: 0, .. })
        ));
        assert!(matches!(
            envelope.verify("text/plain", &trusted, 1),
            Err(DsseError::PayloadType { .. })
        ));
        let other = SigningKey::from_seed([5; 32]);
        let untrusted = [(other.public().key_id(), other.public())];
        assert!(envelope
            .verify(IN_TOTO_PAYLOAD_TYPE, &untrusted, 1)
            .is_err());
    }
}
