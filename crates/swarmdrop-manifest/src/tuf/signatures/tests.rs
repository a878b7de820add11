//! Signatures made by securesystemslib / pyca cryptography (kept in
//! `testdata/signatures.json`), checked by our verifiers.

use super::*;

const MESSAGE: &[u8] = br#"{"_type":"root","version":1}"#;

fn vector(name: &str) -> (TufKey, Vec<u8>) {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/signatures.json")).unwrap();
    let entry = &all[name];
    let key: TufKey = serde_json::from_value(entry["key"].clone()).unwrap();
    let sig = hex::decode(entry["sig"].as_str().unwrap()).unwrap();
    (key, sig)
}

#[test]
fn other_implementations_signatures_verify() {
    for name in [
        "ecdsa",
        "rsa",
        "pkcs1",
        "pss_max",
        "pss_salt0",
        "pss_salt20",
    ] {
        let (key, sig) = vector(name);
        let verifying = VerifyingKey::from_tuf(&key).unwrap();
        assert!(verifying.verify(MESSAGE, &sig), "{name}");
        assert!(!verifying.verify(b"another message", &sig), "{name}");
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        assert!(!verifying.verify(MESSAGE, &flipped), "{name}");
        assert!(!verifying.verify(MESSAGE, &[]), "{name}");
    }
}

#[test]
fn a_signature_under_the_wrong_scheme_fails() {
    // The same RSA key declared PSS cannot pass a PKCS#1 v1.5 signature, and back.
    let (mut key, sig) = vector("pkcs1");
    key.scheme = "rsassa-pss-sha256".into();
    assert!(!VerifyingKey::from_tuf(&key).unwrap().verify(MESSAGE, &sig));
    let (mut key, sig) = vector("rsa");
    key.scheme = "rsa-pkcs1v15-sha256".into();
    assert!(!VerifyingKey::from_tuf(&key).unwrap().verify(MESSAGE, &sig));
}

#[test]
fn unknown_schemes_and_bad_keys_are_named() {
    let (mut key, _) = vector("ecdsa");
    key.scheme = "ecdsa-sha2-nistp384".into();
    assert!(matches!(
        VerifyingKey::from_tuf(&key),
        Err(KeyError::Unsupported { .. })
    ));
    let (mut key, _) = vector("rsa");
    key.keyval.public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into();
    assert!(matches!(
        VerifyingKey::from_tuf(&key),
        Err(KeyError::BadPublicKey(_))
    ));
}

#[test]
fn one_key_has_one_identity_however_it_is_listed() {
    let (key, _) = vector("pkcs1");
    let (mut pss, _) = vector("pss_max");
    assert_eq!(
        VerifyingKey::from_tuf(&key).unwrap().identity(),
        VerifyingKey::from_tuf(&pss).unwrap().identity()
    );
    pss.keyval.public = vector("rsa").0.keyval.public;
    assert_ne!(
        VerifyingKey::from_tuf(&key).unwrap().identity(),
        VerifyingKey::from_tuf(&pss).unwrap().identity()
    );
}
