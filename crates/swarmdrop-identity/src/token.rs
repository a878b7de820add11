//! Token claims, issuing, and the offline verifier that edges and the tracker run.
//!
//! A token is a PASETO v4.public token whose footer names the signing key (`kid`),
//! so the gateway can rotate keys while verifiers accept every key it lists. The
//! verifier is pure: keys, revocations and the time come in, a verdict with a typed
//! reason comes out, in microseconds (one Ed25519 verification and a small JSON parse).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::keys::{PublicKey, SigningKey};
use swarmdrop_manifest::UtcTime;

use crate::paseto::{self, Untrusted};

/// How much the gateway trusts the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Solved a proof-of-work challenge, no identity.
    Anonymous,
    /// Signed in with a wallet.
    Wallet,
    /// A wallet on the drop's allowlist.
    Allowlisted,
    /// An edge or seeder with a key in the gateway config.
    Service,
}

impl Tier {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Wallet => "wallet",
            Tier::Allowlisted => "allowlisted",
            Tier::Service => "service",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Token id, for revocation.
    pub jti: String,
    /// Subject: a checksummed address, `anon:…` or `service:…`.
    pub sub: String,
    /// The drop it admits to.
    pub drop: String,
    /// Asset classes it may fetch.
    pub classes: Vec<String>,
    /// Trust tier.
    pub tier: Tier,
    /// Capabilities (`mint`, `seed`, …).
    pub caps: Vec<String>,
    /// When the holder signed in. Refreshes keep it, so a session has an absolute end
    /// however often it is refreshed.
    pub auth_time: UtcTime,
    /// Issued at.
    pub iat: UtcTime,
    /// Not before.
    pub nbf: UtcTime,
    /// Expires.
    pub exp: UtcTime,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer {
    kid: String,
}

/// Why a token was refused. [`TokenRejection::code`] is the stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a token we could read.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed by a key id we do not accept.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired at {0}")]
    Expired(UtcTime),
    /// Before its not-before time.
    #[error("token is not valid before {0}")]
    NotYetValid(UtcTime),
    /// For another drop.
    #[error("token is for drop {found:?}, not {expected:?}")]
    WrongDrop {
        /// In the token.
        found: String,
        /// Ours.
        expected: String,
    },
    /// The class asked for is not granted.
    #[error("token does not grant class {0:?}")]
    ClassNotAllowed(String),
    /// Revoked by id.
    #[error("token {0} is revoked")]
    Revoked(String),
    /// The session it belongs to is over; sign in again.
    #[error("the session ended at {0}; sign in again")]
    SessionEnded(UtcTime),
}

impl TokenRejection {
    /// The stable snake_case reason code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenRejection::Malformed(_) => "malformed",
            TokenRejection::UnknownKey(_) => "unknown_key",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::Expired(_) => "expired",
            TokenRejection::NotYetValid(_) => "not_yet_valid",
            TokenRejection::WrongDrop { .. } => "wrong_drop",
            TokenRejection::ClassNotAllowed(_) => "class_not_allowed",
            TokenRejection::Revoked(_) => "revoked",
            TokenRejection::SessionEnded(_) => "session_ended",
        }
    }
}

/// The key id of a public key: 16 hex digits of SHA-256 of its bytes.
pub fn key_id(key: &PublicKey) -> String {
    hex::encode(&Sha256::digest(key.to_bytes())[..8])
}

/// Signs tokens with one key.
pub struct TokenIssuer {
    key: SigningKey,
    kid: String,
    issuer: String,
}

impl TokenIssuer {
    /// An issuer signing with `key`, naming itself `issuer`.
    pub fn new(key: SigningKey, issuer: &str) -> Self {
        let kid = key_id(&key.public());
        Self {
            key,
            kid,
            issuer: issuer.to_owned(),
        }
    }

    /// This issuer's key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key verifiers need.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// Issues a token; `jti` comes from the caller's RNG.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        jti: String,
        sub: String,
        drop: &str,
        classes: Vec<String>,
        tier: Tier,
        caps: Vec<String>,
        now: UtcTime,
        lifetime_seconds: u64,
    ) -> (String, Claims) {
        let claims = Claims {
            iss: self.issuer.clone(),
            jti,
            sub,
            drop: drop.to_owned(),
            classes,
            tier,
            caps,
            auth_time: now,
            iat: now,
            nbf: now,
            exp: now.plus_seconds(lifetime_seconds),
        };
        (self.sign(&claims), claims)
    }

    /// Issues the next token of `previous`'s session: the same id (so revoking it
    /// revokes the whole session), subject, grants and sign-in time, new times. The new
    /// token never outlives the session (`auth_time` + `session_seconds`), and a session
    /// that is over gets nothing.
    pub fn refresh(
        &self,
        previous: &Claims,
        now: UtcTime,
        lifetime_seconds: u64,
        session_seconds: u64,
    ) -> Result<(String, Claims), TokenRejection> {
        let session_end = previous.auth_time.plus_seconds(session_seconds);
        if session_end <= now {
            return Err(TokenRejection::SessionEnded(session_end));
        }
        let exp = now.plus_seconds(lifetime_seconds).min(session_end);
        let claims = Claims {
            iss: self.issuer.clone(),
            iat: now,
            nbf: now,
            exp,
            ..previous.clone()
        };
        Ok((self.sign(&claims), claims))
    }

    fn sign(&self, claims: &Claims) -> String {
        // Serialising a struct of strings, times and string lists cannot fail.
        let message = serde_json::to_vec(claims).unwrap_or_default();
        let footer = serde_json::to_vec(&Footer {
            kid: self.kid.clone(),
        })
        .unwrap_or_default();
        paseto::sign(&self.key, &message, &footer)
    }
}

/// Verifies tokens offline. Cheap to clone; rebuild it when keys or revocations change.
#[derive(Debug, Clone, Default)]
pub struct TokenVerifier {
    keys: BTreeMap<String, PublicKey>,
    revoked: BTreeSet<String>,
    drop: Option<String>,
    leeway_seconds: u64,
}

impl TokenVerifier {
    /// A verifier with no keys (it refuses everything until keys are added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts tokens signed by `key`, under its key id.
    pub fn with_key(mut self, key: PublicKey) -> Self {
        self.keys.insert(key_id(&key), key);
        self
    }

    /// Accepts only tokens for this drop.
    pub fn for_drop(mut self, drop: &str) -> Self {
        self.drop = Some(drop.to_owned());
        self
    }

    /// Tolerates this much clock difference on `exp` and `nbf`.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }

    /// Replaces the revoked token ids.
    pub fn with_revocations(mut self, revoked: impl IntoIterator<Item = String>) -> Self {
        self.revoked = revoked.into_iter().collect();
        self
    }

    /// Like [`TokenVerifier::verify`], also returning the id of the key that signed it.
    pub fn verify_with_kid(
        &self,
        token: &str,
        now: UtcTime,
        class: Option<&str>,
    ) -> Result<(Claims, String), TokenRejection> {
        let claims = self.verify(token, now, class)?;
        // The footer is authenticated now that the signature verified.
        let kid = Untrusted::parse(token)
            .ok()
            .and_then(|u| serde_json::from_slice::<Footer>(u.footer()).ok())
            .map(|f| f.kid)
            .unwrap_or_default();
        Ok((claims, kid))
    }

    /// Verifies `token` at `now`; with `class`, also that it grants that class.
    pub fn verify(
        &self,
        token: &str,
        now: UtcTime,
        class: Option<&str>,
    ) -> Result<Claims, TokenRejection> {
        let untrusted =
            Untrusted::parse(token).map_err(|e| TokenRejection::Malformed(e.to_string()))?;
        let message = self.verify_signature(&untrusted, b"")?;
        let claims: Claims = serde_json::from_slice(message)
            .map_err(|e| TokenRejection::Malformed(format!("claims: {e}")))?;
        if self.revoked.contains(&claims.jti) {
            return Err(TokenRejection::Revoked(claims.jti));
        }
        if claims.exp.plus_seconds(self.leeway_seconds) <= now {
            return Err(TokenRejection::Expired(claims.exp));
        }
        if claims.nbf > now.plus_seconds(self.leeway_seconds) {
            return Err(TokenRejection::NotYetValid(claims.nbf));
        }
        if let Some(drop) = &self.drop {
            if &claims.drop != drop {
                return Err(TokenRejection::WrongDrop {
                    found: claims.drop,
                    expected: drop.clone(),
                });
            }
        }
        if let Some(class) = class {
            if !claims.classes.iter().any(|c| c == class) {
                return Err(TokenRejection::ClassNotAllowed(class.to_owned()));
            }
        }
        Ok(claims)
    }
}

mod pass;
pub use pass::{drop_tag, TrackerPass, MAX_PASS_BYTES, PASS_IMPLICIT};

#[cfg(test)]
mod tests;
