//! PASETO v4.public, the token format (paseto-standard, Version 4, `public`):
//! `v4.public.` ‖ base64url(message ‖ Ed25519 signature) [‖ `.` ‖ base64url(footer)],
//! the signature covering `PAE("v4.public.", message, footer, implicit)`.
//!
//! The envelope is the standard one, byte for byte: the tests check it against the
//! pasetors crate both ways. We sign and verify it on ed25519-dalek with strict
//! verification, as the rest of swarmdrop does; see docs/design/0003-identity.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use swarmdrop_manifest::keys::{PublicKey, SigningKey};

const HEADER: &str = "v4.public.";
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A token that is not a well-formed v4.public token, or whose signature fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasetoError {
    /// Wrong header, bad base64, too short or too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
}

/// Pre-authentication encoding: LE64(count) then LE64(len) ‖ piece for each piece.
pub fn pae(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + pieces.iter().map(|p| 8 + p.len()).sum::<usize>());
    out.extend_from_slice(&(pieces.len() as u64 & (u64::MAX >> 1)).to_le_bytes());
    for piece in pieces {
        out.extend_from_slice(&(piece.len() as u64 & (u64::MAX >> 1)).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// Signs `message` with `footer` (may be empty) into a v4.public token.
pub fn sign(key: &SigningKey, message: &[u8], footer: &[u8]) -> String {
    sign_with_implicit(key, message, footer, b"")
}

/// Like [`sign`], binding the signature to an implicit assertion: data both sides know
/// that is never sent, so a token made for one purpose cannot verify for another.
pub fn sign_with_implicit(
    key: &SigningKey,
    message: &[u8],
    footer: &[u8],
    implicit: &[u8],
) -> String {
    let signature = key.sign(&pae(&[HEADER.as_bytes(), message, footer, implicit]));
    let mut body = Vec::with_capacity(message.len() + 64);
    body.extend_from_slice(message);
    body.extend_from_slice(&signature);
    let mut token = format!("{HEADER}{}", URL_SAFE_NO_PAD.encode(body));
    if !footer.is_empty() {
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(footer));
    }
    token
}

/// A token split into its parts, signature not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    message: Vec<u8>,
    signature: [u8; 64],
    footer: Vec<u8>,
}

impl Untrusted {
    /// Splits and decodes a token.
    pub fn parse(token: &str) -> Result<Self, PasetoError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(PasetoError::Malformed("longer than 8 KiB"));
        }
        let rest = token
            .strip_prefix(HEADER)
            .ok_or(PasetoError::Malformed("not a v4.public token"))?;
        let (body, footer) = match rest.split_once('.') {
            Some((body, footer)) => (body, Some(footer)),
            None => (rest, None),
        };
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| PasetoError::Malformed("body is not base64url"))?;
        if body.len() < 64 {
            return Err(PasetoError::Malformed("shorter than a signature"));
        }
        let footer = match footer {
            Some("") => return Err(PasetoError::Malformed("empty footer part")),
            Some(f) => URL_SAFE_NO_PAD
                .decode(f)
                .map_err(|_| PasetoError::Malformed("footer is not base64url"))?,
            None => Vec::new(),
        };
        let (message, signature) = body.split_at(body.len() - 64);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(signature);
        Ok(Untrusted {
            message: message.to_vec(),
            signature: sig,
            footer,
        })
    }

    /// The footer, unauthenticated until [`Untrusted::verify`] succeeds: use it only to
    /// choose the key.
    pub fn footer(&self) -> &[u8] {
        &self.footer
    }

    /// The message, unauthenticated until [`Untrusted::verify`] succeeds: use it only to
    /// choose how to verify.
    pub fn unverified_message(&self) -> &[u8] {
        &self.message
    }

    /// Checks the signature; on success returns the authenticated message.
    pub fn verify(&self, key: &PublicKey) -> Result<&[u8], PasetoError> {
        self.verify_with_implicit(key, b"")
    }

    /// Checks the signature over the token and `implicit` (see [`sign_with_implicit`]).
    pub fn verify_with_implicit(
        &self,
        key: &PublicKey,
        implicit: &[u8],
    ) -> Result<&[u8], PasetoError> {
        let signed = pae(&[HEADER.as_bytes(), &self.message, &self.footer, implicit]);
        if key.verify(&signed, &self.signature) {
            Ok(&self.message)
        } else {
            Err(PasetoError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
    use pasetors::token::UntrustedToken;
    use pasetors::version4::{PublicToken, V4};
    use pasetors::Public;

    fn keys() -> (SigningKey, AsymmetricSecretKey<V4>, AsymmetricPublicKey<V4>) {
        let ours = SigningKey::from_seed([11; 32]);
        let public = hex::decode(ours.public().to_hex()).unwrap();
        let mut secret = vec![11u8; 32];
        secret.extend_from_slice(&public);
        (
            ours,
            AsymmetricSecretKey::<V4>::from(&secret).unwrap(),
            AsymmetricPublicKey::<V4>::from(&public).unwrap(),
        )
    }

    #[test]
    fn pae_matches_the_spec_examples() {
        assert_eq!(pae(&[]), b"\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            pae(&[b""]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(
            pae(&[b"test"]),
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00test"
        );
    }

    #[test]
    fn byte_identical_to_pasetors_and_verifiable_by_it() {
        let (ours, secret, public) = keys();
        for footer in [&b""[..], br#"{"kid":"k1"}"#] {
            let message = br#"{"sub":"0xabc","exp":"2030-01-01T00:00:00Z"}"#;
            let token = sign(&ours, message, footer);
            let theirs = PublicToken::sign(
                &secret,
                message,
                (!footer.is_empty()).then_some(footer),
                None,
            )
            .unwrap();
            assert_eq!(token, theirs);
            let untrusted = UntrustedToken::<Public, V4>::try_from(token.as_str()).unwrap();
            let trusted = PublicToken::verify(
                &public,
                &untrusted,
                (!footer.is_empty()).then_some(footer),
                None,
            )
            .unwrap();
            assert_eq!(trusted.payload().as_bytes(), message);
        }
    }

    #[test]
    fn implicit_assertions_match_pasetors_and_bind_the_signature() {
        let (ours, secret, public) = keys();
        let (message, footer, implicit) = (b"{\"d\":\"x\"}", b"{\"kid\":\"k\"}", b"purpose");
        let token = sign_with_implicit(&ours, message, footer, implicit);
        let theirs = PublicToken::sign(&secret, message, Some(footer), Some(implicit)).unwrap();
        assert_eq!(token, theirs);
        let untrusted = UntrustedToken::<Public, V4>::try_from(token.as_str()).unwrap();
        assert!(PublicToken::verify(&public, &untrusted, Some(footer), Some(implicit)).is_ok());
        let ours_parsed = Untrusted::parse(&token).unwrap();
        assert_eq!(ours_parsed.unverified_message(), message);
        assert!(ours_parsed
            .verify_with_implicit(&ours.public(), implicit)
            .is_ok());
        // Without the assertion (or with another) the same token does not verify.
        assert_eq!(
            ours_parsed.verify(&ours.public()),
            Err(PasetoError::BadSignature)
        );
        assert_eq!(
            ours_parsed.verify_with_implicit(&ours.public(), b"other"),
            Err(PasetoError::BadSignature)
        );
    }

    #[test]
    fn verifies_pasetors_tokens_and_refuses_tampering() {
        let (ours, secret, _) = keys();
        let token =
            PublicToken::sign(&secret, b"{\"a\":1}", Some(b"{\"kid\":\"x\"}"), None).unwrap();
        let untrusted = Untrusted::parse(&token).unwrap();
        assert_eq!(untrusted.footer(), b"{\"kid\":\"x\"}");
        assert_eq!(untrusted.verify(&ours.public()).unwrap(), b"{\"a\":1}");
        let other = SigningKey::from_seed([12; 32]).public();
        assert_eq!(untrusted.verify(&other), Err(PasetoError::BadSignature));
        // Change one character of the body: the signature no longer verifies.
        let body_start = HEADER.len() + 2;
        let mut chars: Vec<char> = token.chars().collect();
        chars[body_start] = if chars[body_start] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(Untrusted::parse(&tampered)
            .and_then(|u| u.verify(&ours.public()).map(|_| ()))
            .is_err());
        for bad in [
            "",
            "v4.local.abc",
            "v4.public.",
            "v4.public.!!!",
            "v4.public.AAAA",
            "v3.public.AAAA",
        ] {
            assert!(
                matches!(Untrusted::parse(bad), Err(PasetoError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
