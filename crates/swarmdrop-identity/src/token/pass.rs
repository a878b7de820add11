//! Tracker passes: the compact form of a viewer token that fits where a full token
//! cannot, in a UDP tracker announce.
//!
//! BEP 41 carries the announce URL's path in options of at most 255 bytes each, and
//! libtorrent sends only one, so `/announce/<token>` must stay under 255 bytes. A full
//! token (subject, classes, tier, capabilities, three times) is about 500. A pass keeps
//! only what the tracker checks: a 64-bit tag of the drop, the expiry in Unix seconds
//! and the session id (`jti`, so revoking the token revokes its pass). It is a standard
//! PASETO v4.public token with the same key-id footer, signed with the implicit
//! assertion [`PASS_IMPLICIT`]: a pass never verifies as a full token, nor a full token
//! as a pass, so neither can be replayed where the other is expected.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::UtcTime;

use super::{Claims, Footer, TokenIssuer, TokenRejection, TokenVerifier};
use crate::paseto::{self, Untrusted};

/// The implicit assertion every pass is signed over.
pub const PASS_IMPLICIT: &[u8] = b"swarmdrop tracker pass v1";

/// The longest pass the gateway issues: `/announce/` plus a pass fits one BEP 41
/// option (255 bytes).
pub const MAX_PASS_BYTES: usize = 255 - "/announce/".len();

/// The 16-hex-digit tag a pass carries instead of the drop's name.
pub fn drop_tag(drop: &str) -> String {
    hex::encode(&Sha256::digest(drop.as_bytes())[..8])
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassClaims {
    /// [`drop_tag`] of the drop.
    d: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// The session id of the token it was cut from.
    j: String,
}

/// What a verified pass says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerPass {
    /// The session id (`jti`) of the token it was cut from.
    pub jti: String,
    /// Expiry.
    pub exp: UtcTime,
}

impl TokenIssuer {
    /// Cuts a tracker pass from the claims of a token this issuer just issued.
    pub fn issue_tracker_pass(&self, claims: &Claims) -> String {
        let message = serde_json::to_vec(&PassClaims {
            d: drop_tag(&claims.drop),
            e: claims.exp.unix(),
            j: claims.jti.clone(),
        })
        .unwrap_or_default();
        let footer = serde_json::to_vec(&Footer {
            kid: self.kid.clone(),
        })
        .unwrap_or_default();
        paseto::sign_with_implicit(&self.key, &message, &footer, PASS_IMPLICIT)
    }
}

/// Whether an unverified token's message has the shape of a pass (decides only which
/// verification runs; both check a signature before anything is trusted).
fn looks_like_pass(untrusted: &Untrusted) -> bool {
    untrusted.unverified_message().starts_with(br#"{"d":"#)
}

impl TokenVerifier {
    /// Verifies a tracker pass at `now`: key, signature, drop, expiry, revocation.
    pub fn verify_tracker_pass(
        &self,
        pass: &str,
        now: UtcTime,
    ) -> Result<TrackerPass, TokenRejection> {
        let untrusted =
            Untrusted::parse(pass).map_err(|e| TokenRejection::Malformed(e.to_string()))?;
        let message = self.verify_signature(&untrusted, PASS_IMPLICIT)?;
        let claims: PassClaims = serde_json::from_slice(message)
            .map_err(|e| TokenRejection::Malformed(format!("pass claims: {e}")))?;
        if self.revoked.contains(&claims.j) {
            return Err(TokenRejection::Revoked(claims.j));
        }
        let exp = UtcTime::from_unix(claims.e)
            .map_err(|_| TokenRejection::Malformed("pass expiry is out of range".into()))?;
        if exp.plus_seconds(self.leeway_seconds) <= now {
            return Err(TokenRejection::Expired(exp));
        }
        if let Some(drop) = &self.drop {
            if claims.d != drop_tag(drop) {
                return Err(TokenRejection::WrongDrop {
                    found: format!("tag {}", claims.d),
                    expected: drop.clone(),
                });
            }
        }
        Ok(TrackerPass { jti: claims.j, exp })
    }

    /// What a tracker accepts: a full token or a pass. Returns who announces: the
    /// token's subject, or `session:<jti>` for a pass.
    pub fn verify_for_tracker(&self, token: &str, now: UtcTime) -> Result<String, TokenRejection> {
        let untrusted =
            Untrusted::parse(token).map_err(|e| TokenRejection::Malformed(e.to_string()))?;
        if looks_like_pass(&untrusted) {
            self.verify_tracker_pass(token, now)
                .map(|pass| format!("session:{}", pass.jti))
        } else {
            self.verify(token, now, None).map(|claims| claims.sub)
        }
    }

    /// Picks the key the footer names and checks the signature over `implicit`.
    pub(super) fn verify_signature<'t>(
        &self,
        untrusted: &'t Untrusted,
        implicit: &[u8],
    ) -> Result<&'t [u8], TokenRejection> {
        let footer: Footer = serde_json::from_slice(untrusted.footer())
            .map_err(|_| TokenRejection::Malformed("footer does not name a key (kid)".into()))?;
        let key = self
            .keys
            .get(&footer.kid)
            .ok_or_else(|| TokenRejection::UnknownKey(footer.kid.chars().take(64).collect()))?;
        untrusted
            .verify_with_implicit(key, implicit)
            .map_err(|_| TokenRejection::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Tier;
    use swarmdrop_manifest::keys::SigningKey;

    const NOW: i64 = 1_800_000_000;

    fn at(offset: i64) -> UtcTime {
        UtcTime::from_unix(NOW + offset).unwrap()
    }

    fn issued(issuer: &TokenIssuer, drop: &str) -> (String, Claims) {
        issuer.issue(
            "0123456789abcdef0123456789abcdef".into(),
            "0x52908400098527886E0F7030069857D2E4169EE7".into(),
            drop,
            vec!["keyframe".into(), "bulk".into(), "checkout".into()],
            Tier::Allowlisted,
            vec!["mint".into()],
            at(0),
            600,
        )
    }

    fn setup() -> (TokenIssuer, TokenVerifier) {
        let issuer = TokenIssuer::new(SigningKey::from_seed([5; 32]), "gw");
        let verifier = TokenVerifier::new()
            .with_key(issuer.public())
            .for_drop("genesis");
        (issuer, verifier)
    }

    #[test]
    fn passes_fit_one_bep41_option_and_verify() {
        let (issuer, verifier) = setup();
        let (token, claims) = issued(&issuer, "genesis");
        let pass = issuer.issue_tracker_pass(&claims);
        assert!(pass.len() <= MAX_PASS_BYTES, "{} bytes", pass.len());
        assert!(token.len() > MAX_PASS_BYTES);
        let verified = verifier.verify_tracker_pass(&pass, at(10)).unwrap();
        assert_eq!(
            (verified.jti.as_str(), verified.exp),
            (claims.jti.as_str(), claims.exp)
        );
        assert_eq!(
            verifier.verify_for_tracker(&pass, at(10)).unwrap(),
            format!("session:{}", claims.jti)
        );
        assert_eq!(
            verifier.verify_for_tracker(&token, at(10)).unwrap(),
            claims.sub
        );
    }

    #[test]
    fn passes_and_tokens_are_not_interchangeable() {
        let (issuer, verifier) = setup();
        let (token, claims) = issued(&issuer, "genesis");
        let pass = issuer.issue_tracker_pass(&claims);
        assert_eq!(
            verifier.verify(&pass, at(10), None).unwrap_err().code(),
            "bad_signature"
        );
        assert_eq!(
            verifier
                .verify_tracker_pass(&token, at(10))
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // A pass-shaped message signed as a plain token does not verify either way.
        let footer = format!(r#"{{"kid":"{}"}}"#, issuer.kid());
        let forged = paseto::sign(
            &issuer.key,
            format!(
                r#"{{"d":"{}","e":{},"j":"x"}}"#,
                drop_tag("genesis"),
                NOW + 600
            )
            .as_bytes(),
            footer.as_bytes(),
        );
        assert_eq!(
            verifier
                .verify_for_tracker(&forged, at(10))
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }

    #[test]
    fn passes_are_refused_for_the_usual_reasons() {
        let (issuer, verifier) = setup();
        let (_, claims) = issued(&issuer, "genesis");
        let pass = issuer.issue_tracker_pass(&claims);
        let refuse =
            |v: &TokenVerifier, p: &str, t| v.verify_tracker_pass(p, t).unwrap_err().code();
        assert_eq!(refuse(&verifier, &pass, at(600)), "expired");
        assert_eq!(
            refuse(
                &verifier.clone().with_revocations([claims.jti.clone()]),
                &pass,
                at(1)
            ),
            "revoked"
        );
        let (_, other) = issued(&issuer, "other-drop");
        assert_eq!(
            refuse(&verifier, &issuer.issue_tracker_pass(&other), at(1)),
            "wrong_drop"
        );
        let stranger = TokenIssuer::new(SigningKey::from_seed([6; 32]), "gw");
        assert_eq!(
            refuse(&verifier, &stranger.issue_tracker_pass(&claims), at(1)),
            "unknown_key"
        );
        let tampered = pass.replacen("v4.public.e", "v4.public.f", 1);
        assert!(verifier.verify_tracker_pass(&tampered, at(1)).is_err());
        assert_eq!(refuse(&verifier, "v4.public.", at(1)), "malformed");
    }
}
