//! Verifying TUF signatures for the schemes the ecosystem signs with.
//!
//! A key of any type may appear in metadata (a root can list keys for tools we do not
//! know); only keys we can verify can count toward a threshold. Public keys are in the
//! encodings securesystemslib writes: hex for ed25519, PEM SPKI for ECDSA and RSA.
//! Signatures are hex: raw 64 bytes for ed25519, DER for ECDSA, the RSA block for RSA.

use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

use crate::keys::{KeyError, PublicKey, TufKey};

/// A public key we can check signatures with.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// `ed25519` / `ed25519`.
    Ed25519(PublicKey),
    /// `ecdsa` (or `ecdsa-sha2-nistp256`) / `ecdsa-sha2-nistp256`.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// `rsa` / `rsassa-pss-sha256`.
    RsaPss(rsa::RsaPublicKey),
    /// `rsa` / `rsa-pkcs1v15-sha256`.
    RsaPkcs1v15(rsa::RsaPublicKey),
}

/// RSA moduli we accept, in bits: below 2048 is forgeable in practice, and above 16384
/// makes each verification cost seconds (a cheap way to stall a client).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=16384;

impl VerifyingKey {
    /// The verifying key for a TUF key object, or why it cannot be one.
    pub fn from_tuf(key: &TufKey) -> Result<Self, KeyError> {
        let unsupported = || KeyError::Unsupported {
            keytype: key.keytype.clone(),
            scheme: key.scheme.clone(),
        };
        let public = key.keyval.public.as_str();
        match (key.keytype.as_str(), key.scheme.as_str()) {
            ("ed25519", "ed25519") => PublicKey::from_hex(public).map(Self::Ed25519),
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                p256::ecdsa::VerifyingKey::from_public_key_pem(public)
                    .map(Self::EcdsaP256)
                    .map_err(|e| KeyError::BadPublicKey(format!("ecdsa P-256 PEM: {e}")))
            }
            ("rsa", "rsassa-pss-sha256") => rsa_public(public).map(Self::RsaPss),
            ("rsa", "rsa-pkcs1v15-sha256") => rsa_public(public).map(Self::RsaPkcs1v15),
            _ => Err(unsupported()),
        }
    }

    /// Whether `signature` is a valid signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519(key) => key.verify(message, signature),
            Self::EcdsaP256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_der(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Self::RsaPss(key) => {
                let hashed = Sha256::digest(message);
                // Signers pick the salt length: securesystemslib and most others use the
                // digest's length, some the most the modulus allows; try both.
                let max_salt = key.size().saturating_sub(Sha256::output_size() + 2);
                [Sha256::output_size(), max_salt].iter().any(|&salt| {
                    key.verify(rsa::Pss::new_with_salt::<Sha256>(salt), &hashed, signature)
                        .is_ok()
                })
            }
            Self::RsaPkcs1v15(key) => {
                let hashed = Sha256::digest(message);
                key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed, signature)
                    .is_ok()
            }
        }
    }

    /// The key's material, the same for the same key however it is listed: thresholds
    /// count distinct keys, so one key under two ids signs once.
    pub fn identity(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.to_bytes().to_vec(),
            Self::EcdsaP256(key) => key.to_encoded_point(true).as_bytes().to_vec(),
            Self::RsaPss(key) | Self::RsaPkcs1v15(key) => {
                let mut bytes = key.n().to_bytes_be();
                bytes.push(b':');
                bytes.extend(key.e().to_bytes_be());
                bytes
            }
        }
    }
}

fn rsa_public(pem: &str) -> Result<rsa::RsaPublicKey, KeyError> {
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| KeyError::BadPublicKey(format!("RSA PEM: {e}")))?;
    let bits = key.n().bits();
    if !RSA_BITS.contains(&bits) {
        return Err(KeyError::BadPublicKey(format!(
            "RSA modulus of {bits} bits (accepted: {}..={})",
            RSA_BITS.start(),
            RSA_BITS.end()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
