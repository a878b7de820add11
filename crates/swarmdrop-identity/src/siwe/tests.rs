use proptest::prelude::*;

use super::*;
use crate::eth::personal_sign;

const NOW: i64 = 1_800_000_000;

fn key() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap()
}

fn message() -> SiweMessage {
    SiweMessage {
        scheme: None,
        domain: "drop.example".into(),
        address: Address::from_verifying_key(key().verifying_key()),
        statement: Some("Sign in to the genesis drop.".into()),
        uri: "https://drop.example/login".into(),
        version: "1".into(),
        chain_id: 1,
        nonce: "abcdef123456".into(),
        issued_at: UtcTime::from_unix(NOW - 10).unwrap(),
        expiration_time: Some(UtcTime::from_unix(NOW + 600).unwrap()),
        not_before: None,
        request_id: Some("req-1".into()),
        resources: vec![
            "ipfs://bafy/abc".into(),
            "https://drop.example/terms".into(),
        ],
    }
}

fn expected() -> Expected<'static> {
    Expected {
        domain: "drop.example",
        uri: "https://drop.example/login",
        chain_id: 1,
        skew_seconds: 60,
        max_age_seconds: None,
    }
}

fn now() -> UtcTime {
    UtcTime::from_unix(NOW).unwrap()
}

fn signed(m: &SiweMessage) -> (String, String) {
    let text = m.to_text();
    let sig = personal_sign(&key(), text.as_bytes()).unwrap();
    (text, sig)
}

#[test]
fn round_trips_the_eip_example_shape() {
    let m = message();
    let text = m.to_text();
    assert!(text.starts_with("drop.example wants you to sign in with your Ethereum account:\n0x"));
    assert!(text.contains("\n\nSign in to the genesis drop.\n\nURI: https://drop.example/login\nVersion: 1\nChain ID: 1\nNonce: abcdef123456\n"));
    assert!(text.ends_with("Resources:\n- ipfs://bafy/abc\n- https://drop.example/terms"));
    assert_eq!(SiweMessage::parse(&text).unwrap(), m);
}

#[test]
fn without_statement_both_layouts_parse() {
    let mut m = message();
    m.statement = None;
    let text = m.to_text();
    assert!(text.contains("\n\n\nURI: "));
    assert_eq!(SiweMessage::parse(&text).unwrap(), m);
    let older = text.replace("\n\n\nURI: ", "\n\nURI: ");
    assert_eq!(SiweMessage::parse(&older).unwrap(), m);
}

#[test]
fn a_good_message_checks() {
    let m = message();
    let (text, sig) = signed(&m);
    let parsed = SiweMessage::parse(&text).unwrap();
    parsed.check(&text, &sig, &expected(), now()).unwrap();
}

#[test]
fn each_refusal_has_its_code() {
    let (text, sig) = signed(&message());
    let m = SiweMessage::parse(&text).unwrap();
    let code = |e: Expected<'_>, at: i64| {
        m.check(&text, &sig, &e, UtcTime::from_unix(at).unwrap())
            .unwrap_err()
            .code()
    };
    assert_eq!(
        code(
            Expected {
                domain: "evil.example",
                ..expected()
            },
            NOW
        ),
        "domain_mismatch"
    );
    assert_eq!(
        code(
            Expected {
                uri: "https://drop.example/other",
                ..expected()
            },
            NOW
        ),
        "uri_mismatch"
    );
    assert_eq!(
        code(
            Expected {
                chain_id: 137,
                ..expected()
            },
            NOW
        ),
        "chain_mismatch"
    );
    assert_eq!(code(expected(), NOW + 700), "expired");
    assert_eq!(code(expected(), NOW - 1000), "not_yet_valid");
    assert_eq!(
        code(
            Expected {
                max_age_seconds: Some(5),
                skew_seconds: 0,
                ..expected()
            },
            NOW
        ),
        "expired"
    );
    let other = k256::ecdsa::SigningKey::from_slice(&[4u8; 32]).unwrap();
    let forged = personal_sign(&other, text.as_bytes()).unwrap();
    assert_eq!(
        m.check(&text, &forged, &expected(), now())
            .unwrap_err()
            .code(),
        "bad_signature"
    );
    assert_eq!(
        m.check(&text, "0xdead", &expected(), now())
            .unwrap_err()
            .code(),
        "bad_signature"
    );
    // A signature over different text (one changed character) does not transfer.
    let tampered = text.replace("Chain ID: 1", "Chain ID: 2");
    let m2 = SiweMessage::parse(&tampered).unwrap();
    assert_eq!(
        m2.check(
            &tampered,
            &sig,
            &Expected {
                chain_id: 2,
                ..expected()
            },
            now()
        )
        .unwrap_err()
        .code(),
        "bad_signature"
    );
}

#[test]
fn malformed_messages_say_why() {
    let text = message().to_text();
    for (from, to, why) in [
        ("Nonce: abcdef123456\n", "", "Nonce"),
        ("Nonce: abcdef123456", "Nonce: short", "nonce"),
        ("Version: 1", "Version: 2", "version"),
        ("Chain ID: 1", "Chain ID: one", "chain id"),
        ("Issued At: ", "Issued At: yesterday", "Issued At"),
        (
            " wants you to sign in",
            " would like you to sign in",
            "first line",
        ),
        ("URI: https://drop.example/login", "URI: not a uri", "URI"),
    ] {
        let bad = text.replacen(from, to, 1);
        let err = SiweMessage::parse(&bad).unwrap_err();
        assert_eq!(err.code(), "malformed_message");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let lower = text.replace(
        &message().address.to_checksummed(),
        &message().address.to_checksummed().to_lowercase(),
    );
    assert!(SiweMessage::parse(&lower)
        .unwrap_err()
        .to_string()
        .contains("EIP-55"));
    assert!(SiweMessage::parse(&format!("{text}\nextra")).is_err());
    assert!(SiweMessage::parse(&"x".repeat(MAX_MESSAGE_BYTES + 1)).is_err());
    assert!(SiweMessage::parse("").is_err());
}

fn arb_message() -> impl Strategy<Value = SiweMessage> {
    (
        "[a-z]{1,10}\\.[a-z]{2,5}(:[0-9]{2,4})?",
        proptest::option::of("[A-Za-z0-9 .,!?'-]{1,80}"),
        "https://[a-z]{1,10}\\.example/[a-z]{0,10}",
        any::<u64>(),
        "[A-Za-z0-9]{8,40}",
        0i64..4_000_000_000,
        proptest::option::of(0i64..4_000_000_000),
        proptest::option::of("[A-Za-z0-9-]{1,20}"),
        proptest::collection::vec("https://[a-z]{1,8}\\.example/[a-z0-9]{0,8}", 0..4),
        any::<[u8; 20]>(),
    )
        .prop_map(
            |(
                domain,
                statement,
                uri,
                chain_id,
                nonce,
                issued,
                expires,
                request_id,
                resources,
                address,
            )| SiweMessage {
                scheme: None,
                domain,
                address: Address(address),
                statement,
                uri,
                version: "1".into(),
                chain_id,
                nonce,
                issued_at: UtcTime::from_unix(issued).unwrap(),
                expiration_time: expires.map(|e| UtcTime::from_unix(e).unwrap()),
                not_before: None,
                request_id,
                resources,
            },
        )
}

proptest! {
    #[test]
    fn format_then_parse_is_identity(m in arb_message()) {
        prop_assert_eq!(SiweMessage::parse(&m.to_text()).unwrap(), m);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,300}") {
        let _ = SiweMessage::parse(&text);
    }

    #[test]
    fn mutations_never_panic(m in arb_message(), cut in 0usize..400, insert in "[\\n a-zA-Z0-9:./-]{0,6}") {
        let mut text = m.to_text();
        let cut = cut.min(text.len());
        if text.is_char_boundary(cut) {
            text.insert_str(cut, &insert);
        }
        let _ = SiweMessage::parse(&text);
    }
}
