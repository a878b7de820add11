//! Ethereum's pieces of sign-in: Keccak-256, EIP-191 `personal_sign` hashing, EIP-55
//! checksummed addresses, and recovering the signer of a 65-byte signature.

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest as _, Keccak256};

/// A 20-byte Ethereum address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

/// Why an address or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EthError {
    /// Not `0x` and 40 hex digits.
    #[error("{0:?} is not an Ethereum address (0x and 40 hex digits)")]
    BadAddress(String),
    /// Mixed case that is not the EIP-55 checksum.
    #[error("{0} does not carry a valid EIP-55 checksum")]
    BadChecksum(String),
    /// Not 65 bytes of 0x-hex, or an invalid r, s or v.
    #[error("signature is not a valid 65-byte secp256k1 signature: {0}")]
    BadSignature(&'static str),
}

/// Keccak-256.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The EIP-191 version 0x45 hash `personal_sign` signs:
/// `keccak256("\x19Ethereum Signed Message:\n" + len(message) + message)`.
pub fn personal_message_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

impl Address {
    /// Parses `0x` + 40 hex digits. All-lowercase or all-uppercase hex is accepted
    /// as unchecksummed; mixed case must be the EIP-55 checksum.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        let digits = text
            .strip_prefix("0x")
            .filter(|d| d.len() == 40)
            .ok_or_else(|| EthError::BadAddress(text.chars().take(64).collect()))?;
        let bytes = hex::decode(digits)
            .map_err(|_| EthError::BadAddress(text.chars().take(64).collect()))?;
        let mut out = [0u8; 20];
        out.copy_from_slice(&bytes);
        let address = Address(out);
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksummed() != text {
            return Err(EthError::BadChecksum(text.to_owned()));
        }
        Ok(address)
    }

    /// True when `text` is exactly this address in EIP-55 form.
    pub fn is_checksummed(text: &str) -> bool {
        Address::parse(text).is_ok_and(|a| a.to_checksummed() == text)
    }

    /// The EIP-55 mixed-case form.
    pub fn to_checksummed(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (4 * (1 - i % 2))) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The address of a public key: the last 20 bytes of Keccak-256 of its point.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        let hash = keccak256(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

/// Parses a 0x-hex 65-byte signature `r ‖ s ‖ v` (v = 27/28, or 0/1).
pub fn parse_signature(text: &str) -> Result<(Signature, RecoveryId), EthError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 130 {
        return Err(EthError::BadSignature("expected 65 bytes (130 hex digits)"));
    }
    let bytes = hex::decode(digits).map_err(|_| EthError::BadSignature("not hex"))?;
    let signature = Signature::from_slice(&bytes[..64])
        .map_err(|_| EthError::BadSignature("r or s out of range"))?;
    // High-s signatures are malleable twins of low-s ones (EIP-2); wallets never make them.
    if signature.normalize_s().is_some() {
        return Err(EthError::BadSignature(
            "s is in the upper half of the curve order",
        ));
    }
    let v = match bytes[64] {
        27 | 28 => bytes[64] - 27,
        0 | 1 => bytes[64],
        _ => return Err(EthError::BadSignature("v must be 27, 28, 0 or 1")),
    };
    let recovery = RecoveryId::from_byte(v).ok_or(EthError::BadSignature("bad recovery id"))?;
    Ok((signature, recovery))
}

/// The address whose key made `signature` over the EIP-191 hash of `message`.
pub fn recover_personal_signer(message: &[u8], signature: &str) -> Result<Address, EthError> {
    let (signature, recovery) = parse_signature(signature)?;
    let hash = personal_message_hash(message);
    let key = VerifyingKey::recover_from_prehash(&hash, &signature, recovery)
        .map_err(|_| EthError::BadSignature("no key recovers from it"))?;
    Ok(Address::from_verifying_key(&key))
}

/// Signs like a wallet's `personal_sign` (for tests and benchmarks): 0x-hex `r‖s‖v`.
pub fn personal_sign(key: &k256::ecdsa::SigningKey, message: &[u8]) -> Result<String, EthError> {
    let hash = personal_message_hash(message);
    let (signature, recovery) = key
        .sign_prehash_recoverable(&hash)
        .map_err(|_| EthError::BadSignature("signing failed"))?;
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(27 + recovery.to_byte());
    Ok(format!("0x{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_test_vectors() {
        // From EIP-55.
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address = Address::parse(text).unwrap();
            assert_eq!(address.to_checksummed(), text);
            assert!(Address::is_checksummed(text));
        }
        assert!(Address::parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_ok());
        assert!(!Address::is_checksummed(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        ));
        assert!(matches!(
            Address::parse("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(EthError::BadChecksum(_))
        ));
        assert!(Address::parse("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_err());
    }

    #[test]
    fn known_key_has_known_address() {
        // Private key 1 is the generator; its address is well known.
        let mut scalar = [0u8; 32];
        scalar[31] = 1;
        let key = k256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let address = Address::from_verifying_key(key.verifying_key());
        assert_eq!(
            address.to_checksummed(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn sign_and_recover() {
        let key = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let signature = personal_sign(&key, b"hello").unwrap();
        let signer = recover_personal_signer(b"hello", &signature).unwrap();
        assert_eq!(signer, Address::from_verifying_key(key.verifying_key()));
        assert_ne!(
            recover_personal_signer(b"hellO", &signature).ok(),
            Some(signer)
        );
        assert!(recover_personal_signer(b"hello", "0x1234").is_err());
        let mut bad_v = signature.clone();
        bad_v.replace_range(130..132, "05");
        assert!(recover_personal_signer(b"hello", &bad_v).is_err());
    }
}
