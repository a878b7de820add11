use super::*;
use proptest::prelude::*;

const INFO_HASH: [u8; 20] = [7; 20];

/// Runs both sides to completion, delivering bytes in chunks of `chunk` (the network may
/// split anywhere), and returns what each side ended with.
fn run(
    mut a: MseHandshake,
    mut b: MseHandshake,
    chunk: usize,
) -> (Result<Established, MseError>, Result<Established, MseError>) {
    let (mut done_a, mut done_b) = (None, None);
    for _ in 0..1000 {
        let to_b = a.take_transmit();
        for piece in to_b.chunks(chunk.max(1)) {
            if let Err(e) = b.handle_bytes(piece) {
                return (Err(e.clone()), Err(e));
            }
        }
        let to_a = b.take_transmit();
        for piece in to_a.chunks(chunk.max(1)) {
            if let Err(e) = a.handle_bytes(piece) {
                return (Err(e.clone()), Err(e));
            }
        }
        done_a = done_a.or_else(|| a.established());
        done_b = done_b.or_else(|| b.established());
        if done_a.is_some() && done_b.is_some() && to_a.is_empty() && to_b.is_empty() {
            break;
        }
    }
    (
        done_a.ok_or(MseError::NoSync),
        done_b.ok_or(MseError::NoSync),
    )
}

#[test]
fn rc4_matches_published_vectors() {
    for (key, plain, cipher) in [
        (&b"Key"[..], &b"Plaintext"[..], "bbf316e8d940af0ad3"),
        (b"Wiki", b"pedia", "1021bf0420"),
        (b"Secret", b"Attack at dawn", "45a01f645fc35b383552544b9bf5"),
    ] {
        let mut data = plain.to_vec();
        Rc4::new(key).apply(&mut data);
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, cipher);
    }
}

#[test]
fn rc4_matches_rfc6229_past_the_first_kilobyte() {
    // RFC 6229, 40-bit key 0x0102030405, keystream at offset 1024.
    let mut cipher = Rc4::new(&[1, 2, 3, 4, 5]);
    cipher.apply(&mut [0u8; 1024]);
    let mut stream = [0u8; 16];
    cipher.apply(&mut stream);
    let hex: String = stream.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "30abbcc7c20b01609f23ee2d5f6bb7df");
}

#[test]
fn plaintext_is_chosen_when_both_allow_it() {
    let a = MseHandshake::initiator(INFO_HASH, CRYPTO_PLAINTEXT | CRYPTO_RC4, [1; 20], &[9; 40]);
    let b = MseHandshake::responder(
        vec![[3; 20], INFO_HASH],
        CRYPTO_PLAINTEXT | CRYPTO_RC4,
        [2; 20],
        &[8; 100],
    );
    let (a, b) = run(a, b, 1500);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.method, b.method), (CRYPTO_PLAINTEXT, CRYPTO_PLAINTEXT));
    assert_eq!(b.info_hash, INFO_HASH);
    assert!(a.incoming.is_none() && b.outgoing.is_none());
}

#[test]
fn rc4_when_the_initiator_requires_it() {
    let a = MseHandshake::initiator(INFO_HASH, CRYPTO_RC4, [1; 20], &[]);
    let b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT | CRYPTO_RC4, [2; 20], &[]);
    let (a, b) = run(a, b, 7);
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.method, b.method), (CRYPTO_RC4, CRYPTO_RC4));
    let mut message = b"\x13BitTorrent protocol".to_vec();
    a.outgoing.as_mut().unwrap().apply(&mut message);
    assert_ne!(&message[..], b"\x13BitTorrent protocol");
    b.incoming.as_mut().unwrap().apply(&mut message);
    assert_eq!(&message[..], b"\x13BitTorrent protocol");
}

#[test]
fn an_unknown_torrent_is_refused() {
    let a = MseHandshake::initiator([5; 20], CRYPTO_PLAINTEXT, [1; 20], &[]);
    let b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT, [2; 20], &[]);
    assert_eq!(run(a, b, 64).1.unwrap_err(), MseError::UnknownTorrent);
}

#[test]
fn no_common_method_is_refused() {
    let a = MseHandshake::initiator(INFO_HASH, CRYPTO_RC4, [1; 20], &[]);
    let b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT, [2; 20], &[]);
    assert!(matches!(
        run(a, b, 64).1.unwrap_err(),
        MseError::NoCommonMethod {
            offered: CRYPTO_RC4,
            allowed: CRYPTO_PLAINTEXT
        }
    ));
}

#[test]
fn degenerate_keys_are_refused() {
    for key in [
        [0u8; KEY_LEN],
        {
            let mut one = [0u8; KEY_LEN];
            one[KEY_LEN - 1] = 1;
            one
        },
        [0xff; KEY_LEN],
    ] {
        let mut b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT, [2; 20], &[]);
        assert_eq!(b.handle_bytes(&key), Err(MseError::BadKey));
    }
}

#[test]
fn garbage_fails_within_the_padding_bound() {
    let mut b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT, [2; 20], &[]);
    let mut key = [0x55u8; KEY_LEN];
    key[0] = 0x12;
    b.handle_bytes(&key).unwrap();
    let mut fed = 0;
    let outcome = loop {
        fed += 1;
        if let Err(e) = b.handle_bytes(&[0xAA]) {
            break e;
        }
        assert!(
            fed <= MAX_PAD + 20,
            "still waiting after {fed} bytes of garbage"
        );
    };
    assert_eq!(outcome, MseError::NoSync);
}

#[test]
fn a_wrong_verification_constant_is_refused() {
    let mut a = MseHandshake::initiator(INFO_HASH, CRYPTO_PLAINTEXT, [1; 20], &[]);
    let mut b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT, [2; 20], &[]);
    b.handle_bytes(&a.take_transmit()).unwrap();
    a.handle_bytes(&b.take_transmit()).unwrap();
    let mut offer = a.take_transmit();
    offer[40] ^= 1; // first byte of the encrypted verification constant
    assert_eq!(b.handle_bytes(&offer), Err(MseError::BadVerification));
}

#[test]
fn plain_handshakes_are_told_apart() {
    assert_eq!(
        is_plain_handshake(b"\x13BitTorrent protocol\0\0"),
        Some(true)
    );
    assert_eq!(is_plain_handshake(b"\x13BitTor"), None);
    assert_eq!(is_plain_handshake(b""), None);
    assert_eq!(is_plain_handshake(b"\x13BitTorrent protocoX"), Some(false));
    assert_eq!(is_plain_handshake(&[0x8f, 1, 2]), Some(false));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn both_sides_agree_however_the_bytes_are_split(
        key_a in any::<[u8; 20]>(),
        key_b in any::<[u8; 20]>(),
        pad_a in proptest::collection::vec(any::<u8>(), 0..=MAX_PAD),
        pad_b in proptest::collection::vec(any::<u8>(), 0..=MAX_PAD),
        offered in 1u32..=3,
        chunk in 1usize..700,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let a = MseHandshake::initiator(INFO_HASH, offered, key_a, &pad_a);
        let b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT | CRYPTO_RC4, key_b, &pad_b);
        let (a, b) = run(a, b, chunk);
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        prop_assert_eq!(a.method, b.method);
        prop_assert_eq!(a.method, if offered & CRYPTO_PLAINTEXT != 0 { CRYPTO_PLAINTEXT } else { CRYPTO_RC4 });
        for a_sends in [true, false] {
            let (from, to) = if a_sends { (&mut a, &mut b) } else { (&mut b, &mut a) };
            let mut sent = payload.clone();
            if let Some(cipher) = from.outgoing.as_mut() { cipher.apply(&mut sent) }
            if let Some(cipher) = to.incoming.as_mut() { cipher.apply(&mut sent) }
            prop_assert_eq!(&sent, &payload);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut b = MseHandshake::responder(vec![INFO_HASH], CRYPTO_PLAINTEXT | CRYPTO_RC4, [2; 20], &[]);
        let _ = b.handle_bytes(&bytes);
        prop_assert!(b.inbox.len() <= KEY_LEN + MAX_PAD + 20 + 14 + MAX_PAD + 2 + usize::from(u16::MAX));
    }
}
