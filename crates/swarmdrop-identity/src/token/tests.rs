use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_800_000_000;

fn at(offset: i64) -> UtcTime {
    UtcTime::from_unix(NOW + offset).unwrap()
}

fn issuer() -> TokenIssuer {
    TokenIssuer::new(SigningKey::from_seed([21; 32]), "swarmdrop-gateway")
}

fn issue(issuer: &TokenIssuer) -> (String, Claims) {
    issuer.issue(
        "jti-1".into(),
        "0xabc".into(),
        "genesis",
        vec!["keyframe".into(), "bulk".into()],
        Tier::Wallet,
        vec![],
        at(0),
        600,
    )
}

fn verifier(issuer: &TokenIssuer) -> TokenVerifier {
    TokenVerifier::new()
        .with_key(issuer.public())
        .for_drop("genesis")
}

#[test]
fn issued_tokens_verify_offline() {
    let issuer = issuer();
    let (token, claims) = issue(&issuer);
    let verified = verifier(&issuer)
        .verify(&token, at(10), Some("bulk"))
        .unwrap();
    assert_eq!(verified, claims);
    assert_eq!(verified.exp, at(600));
}

#[test]
fn each_refusal_has_its_reason() {
    let issuer = issuer();
    let (token, _) = issue(&issuer);
    let v = verifier(&issuer);
    let code = |v: &TokenVerifier, t: &str, when: i64, class: Option<&str>| {
        v.verify(t, at(when), class).unwrap_err().code()
    };
    assert_eq!(code(&v, &token, 600, None), "expired");
    assert_eq!(code(&v, &token, -10, None), "not_yet_valid");
    assert_eq!(code(&v, &token, 1, Some("checkout")), "class_not_allowed");
    assert_eq!(
        code(&verifier(&issuer).for_drop("other"), &token, 1, None),
        "wrong_drop"
    );
    assert_eq!(
        code(
            &v.clone().with_revocations(["jti-1".to_owned()]),
            &token,
            1,
            None
        ),
        "revoked"
    );
    let stranger = TokenIssuer::new(SigningKey::from_seed([22; 32]), "x");
    assert_eq!(
        code(
            &TokenVerifier::new().with_key(stranger.public()),
            &token,
            1,
            None
        ),
        "unknown_key"
    );
    assert_eq!(code(&v, "v4.public.garbage", 1, None), "malformed");
    assert_eq!(code(&v, "not a token", 1, None), "malformed");
    // A forged footer naming our key id over another key's signature.
    let forged = paseto::sign(
        &SigningKey::from_seed([22; 32]),
        b"{}",
        format!("{{\"kid\":\"{}\"}}", issuer.kid()).as_bytes(),
    );
    assert_eq!(code(&v, &forged, 1, None), "bad_signature");
    // Leeway admits a little clock difference.
    assert!(v
        .clone()
        .with_leeway(30)
        .verify(&token, at(610), None)
        .is_ok());
}

#[test]
fn key_rotation_accepts_both_keys() {
    let old = issuer();
    let new = TokenIssuer::new(SigningKey::from_seed([23; 32]), "swarmdrop-gateway");
    let both = TokenVerifier::new()
        .with_key(old.public())
        .with_key(new.public());
    assert!(both.verify(&issue(&old).0, at(1), None).is_ok());
    assert!(both.verify(&issue(&new).0, at(1), None).is_ok());
}

proptest! {
    /// Flipping any single bit of a token makes it fail verification.
    #[test]
    fn any_flipped_bit_is_refused(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let issuer = issuer();
        let (token, _) = issue(&issuer);
        let mut bytes = token.into_bytes();
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        // Base64 without padding has slack bits in its last character; a flip there that
        // decodes to the same bytes is the same token.
        let same = crate::paseto::Untrusted::parse(&tampered).ok() == crate::paseto::Untrusted::parse(&issue(&issuer).0).ok();
        let result = verifier(&issuer).verify(&tampered, at(1), None);
        prop_assert!(same || result.is_err());
    }

    #[test]
    fn claims_round_trip(sub in "[a-zA-Z0-9:]{1,40}", classes in proptest::collection::vec("[a-z]{1,10}", 0..5), life in 1u64..100_000) {
        let issuer = issuer();
        let (token, claims) = issuer.issue("j".into(), sub, "genesis", classes, Tier::Anonymous, vec!["x".into()], at(0), life);
        prop_assert_eq!(verifier(&issuer).verify(&token, at(0), None).unwrap(), claims);
    }

    #[test]
    fn verify_never_panics(token in "\\PC{0,200}") {
        let _ = verifier(&issuer()).verify(&token, at(0), None);
    }
}

#[test]
fn refreshes_keep_the_session_and_end_with_it() {
    let issuer = issuer();
    let (_, first) = issue(&issuer);
    let session = 1000;
    let (token, second) = issuer.refresh(&first, at(500), 600, session).unwrap();
    assert_eq!(
        (&second.jti, &second.sub, second.auth_time),
        (&first.jti, &first.sub, first.auth_time)
    );
    assert_eq!(
        (second.iat, second.exp),
        (at(500), at(1000)),
        "capped at the session end"
    );
    assert_eq!(
        verifier(&issuer).verify(&token, at(600), None).unwrap(),
        second
    );
    // Revoking the session id revokes every token of the session.
    let revoked = verifier(&issuer).with_revocations([first.jti.clone()]);
    assert_eq!(
        revoked.verify(&token, at(600), None).unwrap_err().code(),
        "revoked"
    );
    assert_eq!(
        issuer.refresh(&second, at(1000), 600, session).unwrap_err(),
        TokenRejection::SessionEnded(at(1000))
    );
}
