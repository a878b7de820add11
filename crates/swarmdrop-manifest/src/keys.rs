//! Ed25519 keys: PEM files (PKCS#8 private, SPKI public, as OpenSSL writes them),
//! TUF key objects and key ids.
//!
//! The PEM forms are the fixed DER wrappings of RFC 8410, so `openssl pkey` reads our
//! key files and we read its. A TUF key id is the SHA-256 of the key object's
//! canonical JSON, the way securesystemslib computes it.

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_json;

const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A key file or key object that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or not the PEM label expected.
    #[error("not a PEM {expected} block")]
    NotPem {
        /// The label looked for, e.g. `PRIVATE KEY`.
        expected: &'static str,
    },
    /// PEM, but the DER inside is not an Ed25519 key.
    #[error("the {label} block is not an Ed25519 key (only Ed25519 is supported)")]
    NotEd25519 {
        /// The PEM label.
        label: &'static str,
    },
    /// A public key that is not a valid curve point, or hex of the wrong length.
    #[error("invalid Ed25519 public key: {0}")]
    BadPublicKey(String),
    /// A TUF key object with a key type or scheme other than ed25519.
    #[error("unsupported key type {keytype:?} / scheme {scheme:?} (supported: ed25519/ed25519)")]
    Unsupported {
        /// The key type given.
        keytype: String,
        /// The scheme given.
        scheme: String,
    },
}

/// An Ed25519 private key.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public().to_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key whose seed is these 32 bytes (callers draw them from the OS RNG).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Reads a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_decode(pem, "PRIVATE KEY")?;
        let seed = der
            .strip_prefix(&PKCS8_PREFIX[..])
            .and_then(|rest| <[u8; 32]>::try_from(rest).ok())
            .ok_or(KeyError::NotEd25519 {
                label: "PRIVATE KEY",
            })?;
        Ok(Self::from_seed(seed))
    }

    /// The PKCS#8 PEM encoding.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(self.inner.as_bytes());
        pem_encode("PRIVATE KEY", &der)
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// Signs `message`; Ed25519 signatures are deterministic.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(|inner| Self { inner })
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))
    }

    /// From 64 hex digits, as TUF's `keyval.public` holds it.
    pub fn from_hex(hex_text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(hex_text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| KeyError::BadPublicKey(format!("{hex_text:?} is not 64 hex digits")))?;
        Self::from_bytes(&bytes)
    }

    /// Reads an SPKI `PUBLIC KEY` PEM block.
    pub fn from_spki_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_decode(pem, "PUBLIC KEY")?;
        let bytes = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|rest| <[u8; 32]>::try_from(rest).ok())
            .ok_or(KeyError::NotEd25519 {
                label: "PUBLIC KEY",
            })?;
        Self::from_bytes(&bytes)
    }

    /// The SPKI PEM encoding.
    pub fn to_spki_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.inner.as_bytes());
        pem_encode("PUBLIC KEY", &der)
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// Lowercase hex of the 32 key bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.inner.as_bytes())
    }

    /// True when `signature` is a valid signature of `message` by this key. Strict
    /// verification: rejects small-order keys and non-canonical signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.inner.verify_strict(message, &signature).is_ok()
    }

    /// The TUF key object for this key.
    pub fn to_tuf_key(&self) -> TufKey {
        TufKey {
            keytype: "ed25519".to_owned(),
            scheme: "ed25519".to_owned(),
            keyval: KeyVal {
                public: self.to_hex(),
            },
        }
    }

    /// The TUF key id: SHA-256 of the key object's canonical JSON, in hex.
    pub fn key_id(&self) -> KeyId {
        self.to_tuf_key().key_id()
    }
}

/// A key id: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key as TUF metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TufKey {
    /// `ed25519`.
    pub keytype: String,
    /// `ed25519`.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
}

/// The `keyval` of a TUF key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key: hex for ed25519, PEM for ECDSA and RSA. Keys of other types may
    /// have none (empty here); they parse, and cannot sign.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public: String,
}

impl TufKey {
    /// The key id securesystemslib would compute.
    pub fn key_id(&self) -> KeyId {
        let value = serde_json::json!({
            "keytype": self.keytype,
            "scheme": self.scheme,
            "keyval": { "public": self.keyval.public },
        });
        // A JSON object of strings always has a canonical form.
        let bytes = to_canonical_json(&value).unwrap_or_default();
        KeyId(hex::encode(Sha256::digest(bytes)))
    }

    /// The usable public key, if the type and scheme are supported.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        if self.keytype != "ed25519" || self.scheme != "ed25519" {
            return Err(KeyError::Unsupported {
                keytype: self.keytype.clone(),
                scheme: self.scheme.clone(),
            });
        }
        PublicKey::from_hex(&self.keyval.public)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let not_pem = KeyError::NotPem { expected: label };
    let start = pem.find(&begin).ok_or(not_pem.clone())? + begin.len();
    let stop = pem[start..].find(&end).ok_or(not_pem.clone())? + start;
    let body: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| not_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_signs() {
        let key = SigningKey::from_seed([7; 32]);
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = PublicKey::from_spki_pem(&key.public().to_spki_pem()).unwrap();
        let sig = key.sign(b"drop");
        assert!(public.verify(b"drop", &sig));
        assert!(!public.verify(b"drip", &sig));
        assert!(!public.verify(b"drop", &sig[..63]));
    }

    #[test]
    fn rfc8032_test_vector_1() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(seed);
        assert_eq!(
            key.public().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign(b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn key_id_is_sha256_of_canonical_key() {
        let key = SigningKey::from_seed([1; 32]).public();
        let canonical = format!(
            "{{\"keytype\":\"ed25519\",\"keyval\":{{\"public\":\"{}\"}},\"scheme\":\"ed25519\"}}",
            key.to_hex()
        );
        assert_eq!(key.key_id().0, hex::encode(Sha256::digest(canonical)));
    }

    #[test]
    fn wrong_pem_is_named() {
        assert_eq!(
            SigningKey::from_pkcs8_pem("hello").unwrap_err(),
            KeyError::NotPem {
                expected: "PRIVATE KEY"
            }
        );
        let public_pem = SigningKey::from_seed([2; 32]).public().to_spki_pem();
        assert!(SigningKey::from_pkcs8_pem(&public_pem).is_err());
    }
}
