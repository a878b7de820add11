//! Verifying TUF signatures for the schemes the ecosystem signs with.
//!
//! A key of any type may appear in metadata (a root can list keys for tools we do not
//! know); only keys we can verify can count toward a threshold. Public keys are in the
//! encodings securesystemslib writes: hex for ed25519, PEM SPKI for ECDSA and RSA.
//! Signatures are hex: raw 64 bytes for ed25519, DER for ECDSA, the RSA block for RSA.

use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest, Sha256};

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

/// RSA moduli we accept, in bits: below 2048 is forgeable in practice; the RSA crate
/// reads keys up to 4096 bits (larger ones would make each check slow enough to stall a
/// client on purpose).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

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
            Self::RsaPss(key) => verify_pss_any_salt(key, message, signature),
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

/// RSASSA-PSS verification with SHA-256 and MGF1-SHA-256 (RFC 8017 8.1.2 and 9.1.2),
/// recovering the salt length from the encoded block as OpenSSL's `PSS.AUTO` does:
/// signers choose it (digest length, maximum, or anything between), and python-tuf
/// accepts any.
fn verify_pss_any_salt(key: &rsa::RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    const H_LEN: usize = 32;
    let k = key.size();
    if signature.len() != k {
        return false;
    }
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= key.n() {
        return false;
    }
    let Ok(m) = rsa::hazmat::rsa_encrypt(key, &s) else {
        return false;
    };
    let em_bits = key.n().bits().saturating_sub(1);
    let em_len = em_bits.div_ceil(8);
    let m = m.to_bytes_be();
    if m.len() > em_len || em_len < H_LEN + 2 {
        return false;
    }
    let mut em = vec![0u8; em_len - m.len()];
    em.extend_from_slice(&m);
    if em[em_len - 1] != 0xbc {
        return false;
    }
    let db_len = em_len - H_LEN - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..H_LEN];
    let unused_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(unused_bits as u32).unwrap_or(0);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    let mut db = mgf1_sha256(h, db_len);
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    db[0] &= top_mask;
    let Some(separator) = db.iter().position(|&b| b != 0) else {
        return false;
    };
    if db[separator] != 0x01 {
        return false;
    }
    let salt = &db[separator + 1..];
    let mut prime = Sha256::new();
    prime.update([0u8; 8]);
    prime.update(Sha256::digest(message));
    prime.update(salt);
    prime.finalize().as_slice() == h
}

/// MGF1 with SHA-256 (RFC 8017 B.2.1).
fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
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
