//! Wallet sign-in: a secp256k1 key from a key file, an EIP-4361 message for a nonce the
//! gateway issued, signed as a wallet's `personal_sign` would, exchanged for a token.
//!
//! The key file holds one private key as 64 hex digits (optionally `0x`-prefixed;
//! surrounding whitespace ignored), as `swarmdrop wallet new` and eth-account's
//! `Account.create().key.hex()` write it. Nothing else is accepted, and no error ever
//! repeats the file's content: a key pasted into the wrong file must not land in a log.

use std::io::{Read as _, Write as _};
use std::path::Path;

use k256::ecdsa::SigningKey;
use serde::Deserialize;
use swarmdrop_identity::eth::{personal_sign, Address};
use swarmdrop_identity::siwe::SiweMessage;
use swarmdrop_manifest::UtcTime;

use super::{gateway_url, get_json, post, solve, token_from, Challenge};
use crate::ClientError;

/// Longest key file read (a key is 66 bytes; the rest may only be whitespace).
const MAX_KEY_FILE: u64 = 4096;
/// How long a signed message stays usable (the gateway also caps its age).
const MESSAGE_LIFETIME: u64 = 300;
/// The statement the message shows the wallet's owner.
pub const STATEMENT: &str = "Sign in to fetch the drop with swarmdrop.";

/// A wallet's private key. Its `Debug` shows the address only.
pub struct WalletKey(SigningKey);

impl std::fmt::Debug for WalletKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WalletKey")
            .field(&self.address().to_checksummed())
            .finish()
    }
}

/// Why a key file's text is not a key; never includes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 64 hex digits long.
    #[error("expected a secp256k1 private key as 64 hex digits (optionally 0x-prefixed), found {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("expected a secp256k1 private key as 64 hex digits, found a character that is not a hex digit")]
    NotHex,
    /// Zero, or not below the curve order.
    #[error("not a valid secp256k1 private key (zero, or not below the curve order)")]
    OutOfRange,
}

impl WalletKey {
    /// Reads a key from a key file's text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if digits.len() != 64 {
            return Err(KeyError::Length(digits.chars().count()));
        }
        let bytes = hex::decode(digits).map_err(|_| KeyError::NotHex)?;
        SigningKey::from_slice(&bytes)
            .map(Self)
            .map_err(|_| KeyError::OutOfRange)
    }

    /// Reads the key file at `path`; errors name the file, never its content.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let named =
            |detail: String| ClientError::Usage(format!("--wallet {}: {detail}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| named(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| named(format!("not a key file ({})", e.kind())))?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(named(format!(
                "larger than {MAX_KEY_FILE} bytes; not a key file"
            )));
        }
        Self::parse(&text).map_err(|e| named(e.to_string()))
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, ClientError> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes)
                .map_err(|e| ClientError::Io(format!("the OS random number generator: {e}")))?;
            // Out of range about once in 2^128 draws; draw again.
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Ok(Self(key));
            }
        }
    }

    /// The key's address.
    pub fn address(&self) -> Address {
        Address::from_verifying_key(self.0.verifying_key())
    }

    /// Writes the key to a new file at `path` (mode 0600, `0x` and 64 hex digits). An
    /// existing file is replaced only with `force`.
    pub fn write_new(&self, path: &Path, force: bool) -> Result<(), ClientError> {
        let named = |e: std::io::Error| ClientError::Io(format!("{}: {e}", path.display()));
        if !force && path.symlink_metadata().is_ok() {
            return Err(ClientError::Usage(format!(
                "{} exists; pass --force to replace it (the key in it is gone for good)",
                path.display()
            )));
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(named)?;
        // A replaced file keeps its old mode; make it private too.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(named)?;
        let text = format!("0x{}\n", hex::encode(self.0.to_bytes()));
        file.write_all(text.as_bytes()).map_err(named)?;
        file.sync_all().map_err(named)
    }
}

/// `GET /auth/nonce`: the nonce, and what the gateway will hold the message to.
#[derive(Debug, Deserialize)]
pub(crate) struct NonceAnswer {
    pub(crate) nonce: String,
    #[serde(default)]
    pub(crate) domain: Option<String>,
    #[serde(default)]
    pub(crate) uri: Option<String>,
    #[serde(default)]
    pub(crate) chain_id: Option<u64>,
}

/// The EIP-4361 message for `answer`, signed in by `address`, issued `now`.
pub(crate) fn message_for(
    answer: &NonceAnswer,
    address: Address,
    now: UtcTime,
) -> Result<SiweMessage, ClientError> {
    let missing = |what: &str| {
        ClientError::Gateway(format!(
            "the nonce answer does not name the sign-in {what} (a gateway older than this client?)"
        ))
    };
    Ok(SiweMessage {
        scheme: None,
        domain: answer.domain.clone().ok_or_else(|| missing("domain"))?,
        address,
        statement: Some(STATEMENT.to_owned()),
        uri: answer.uri.clone().ok_or_else(|| missing("URI"))?,
        version: "1".to_owned(),
        chain_id: answer.chain_id.ok_or_else(|| missing("chain id"))?,
        nonce: answer.nonce.clone(),
        issued_at: now,
        expiration_time: Some(now.plus_seconds(MESSAGE_LIFETIME)),
        not_before: None,
        request_id: None,
        resources: Vec::new(),
    })
}

#[derive(Deserialize)]
struct Refusal {
    error: String,
    #[serde(flatten)]
    challenge: Option<Challenge>,
}

/// A wallet token from the gateway at `base`: nonce, message, signature, sign-in (with
/// the proof of work the gateway asks for when it is under load or suspicious).
pub async fn sign_in(
    base: &str,
    key: &WalletKey,
    now: UtcTime,
    source: Option<std::net::IpAddr>,
) -> Result<String, ClientError> {
    let base = gateway_url(base)?;
    let answer: NonceAnswer = get_json(&base, "auth/nonce", "a nonce", source).await?;
    let message = message_for(&answer, key.address(), now)?;
    let text = message.to_text();
    // The message is one the parser on the other side accepts (or the gateway's refusal
    // would be the first to say so).
    SiweMessage::parse(&text)
        .map_err(|e| ClientError::Gateway(format!("the nonce answer makes a bad message: {e}")))?;
    let signature = personal_sign(&key.0, text.as_bytes())
        .map_err(|e| ClientError::Gateway(format!("signing the message: {e}")))?;
    let mut request = serde_json::json!({ "message": text, "signature": signature });
    let what = "a wallet token";
    let (status, body) = post(&base, "auth/siwe", what, &request, source).await?;
    let asked = serde_json::from_slice::<Refusal>(&body).ok();
    match asked {
        Some(Refusal {
            error,
            challenge: Some(challenge),
        }) if status == 401 && error == "challenge_required" => {
            request["solution"] = solve(&challenge).await?.into();
            request["challenge"] = challenge.challenge.into();
            let (status, body) = post(&base, "auth/siwe", what, &request, source).await?;
            token_from(what, status, &body)
        }
        _ => token_from(what, status, &body),
    }
}

#[cfg(test)]
mod tests {
    use swarmdrop_identity::siwe::Expected;

    use super::*;

    // A well-known test key (Hardhat's account #0); never holds anything.
    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    #[test]
    fn key_files_in_every_accepted_form() {
        for text in [
            KEY.to_owned(),
            format!("0x{KEY}"),
            format!("0X{KEY}"),
            format!("  0x{KEY}\n"),
            format!("\n{}\r\n", KEY.to_uppercase()),
        ] {
            let key = WalletKey::parse(&text).unwrap();
            assert_eq!(key.address().to_checksummed(), ADDRESS);
        }
    }

    #[test]
    fn anything_else_is_refused_without_repeating_it() {
        let cases = [
            (KEY[..62].to_owned(), KeyError::Length(62)),
            (format!("{KEY}00"), KeyError::Length(66)),
            (format!("0x0x{}", &KEY[..62]), KeyError::NotHex),
            (String::new(), KeyError::Length(0)),
            (format!("{}zz", &KEY[..62]), KeyError::NotHex),
            (format!("{}é", &KEY[..62]), KeyError::NotHex),
            (format!("{}é", &KEY[..61]), KeyError::Length(62)),
            ("0".repeat(64), KeyError::OutOfRange),
            // The curve order n, and all ones: neither is below n.
            (
                "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141".into(),
                KeyError::OutOfRange,
            ),
            ("f".repeat(64), KeyError::OutOfRange),
        ];
        for (text, expected) in cases {
            let err = WalletKey::parse(&text).unwrap_err();
            assert_eq!(err, expected, "{text:?}");
            assert!(!err.to_string().contains(&KEY[..16]));
        }
        // Just below the order is a key.
        WalletKey::parse("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140")
            .unwrap();
        let debug = format!("{:?}", WalletKey::parse(KEY).unwrap());
        assert!(
            debug.contains(ADDRESS) && !debug.contains(&KEY[..16]),
            "{debug}"
        );
    }

    #[test]
    fn key_files_are_read_and_written_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.key");
        let key = WalletKey::generate().unwrap();
        key.write_new(&path, false).unwrap();
        assert_eq!(WalletKey::load(&path).unwrap().address(), key.address());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = WalletKey::generate().unwrap();
        let err = again.write_new(&path, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        again.write_new(&path, true).unwrap();
        assert_eq!(WalletKey::load(&path).unwrap().address(), again.address());
        std::fs::write(&path, format!("secret {KEY}")).unwrap();
        let err = WalletKey::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("wallet.key") && !err.contains(&KEY[..16]),
            "{err}"
        );
        let err = WalletKey::load(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none"), "{err}");
    }

    #[test]
    fn the_message_for_a_nonce_answer_passes_the_gateway_s_checks() {
        let answer: NonceAnswer = serde_json::from_str(
            r#"{"nonce": "a1b2c3d4e5f6a7b8c9d0e1f2", "expires_at": "2026-12-03T07:05:00Z",
                "domain": "drop.example", "uri": "https://drop.example/login", "chain_id": 10}"#,
        )
        .unwrap();
        let key = WalletKey::parse(KEY).unwrap();
        let now = UtcTime::from_unix(1_796_000_000).unwrap();
        let message = message_for(&answer, key.address(), now).unwrap();
        let text = message.to_text();
        assert!(text.starts_with("drop.example wants you to sign in with your Ethereum account:\n"));
        assert!(text.contains(&format!("\n{ADDRESS}\n\n{STATEMENT}\n\n")));
        assert!(
            text.contains("\nNonce: a1b2c3d4e5f6a7b8c9d0e1f2\n")
                && text.contains("\nChain ID: 10\n")
        );
        let parsed = SiweMessage::parse(&text).unwrap();
        assert_eq!(parsed, message);
        let signature = personal_sign(&key.0, text.as_bytes()).unwrap();
        let expected = Expected {
            domain: "drop.example",
            uri: "https://drop.example/login",
            chain_id: 10,
            skew_seconds: 60,
            max_age_seconds: Some(600),
        };
        parsed.check(&text, &signature, &expected, now).unwrap();
        // A gateway that does not say what it expects gets a clear error.
        let bare: NonceAnswer = serde_json::from_str(r#"{"nonce": "a1b2c3d4e5f6"}"#).unwrap();
        let err = message_for(&bare, key.address(), now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("domain"), "{err}");
    }
}
