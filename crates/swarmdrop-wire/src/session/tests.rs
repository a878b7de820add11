use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

const HASH: [u8; 20] = [7; 20];

fn pair() -> (Session, Session) {
    let a = Session::new(SessionConfig::new(HASH, [1; 20], 10), 0);
    let b = Session::new(SessionConfig::new(HASH, [2; 20], 10), 0);
    (a, b)
}

/// Moves everything queued in `from` into `to`.
fn pipe(from: &mut Session, to: &mut Session, now: Millis) -> Result<(), Close> {
    let mut bytes = Vec::new();
    loop {
        let chunk = from.poll_transmit(now);
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    to.handle_bytes(now, &bytes)
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn connected() -> (Session, Session) {
    let (mut a, mut b) = pair();
    pipe(&mut a, &mut b, 0).unwrap();
    pipe(&mut b, &mut a, 0).unwrap();
    events(&mut a);
    events(&mut b);
    (a, b)
}

#[test]
fn handshake_bitfield_request_piece() {
    let (mut a, mut b) = pair();
    pipe(&mut a, &mut b, 0).unwrap();
    assert_eq!(events(&mut b), vec![Event::Connected { peer_id: [1; 20] }]);
    assert!(b.peer_fast() && b.peer_extended());
    pipe(&mut b, &mut a, 0).unwrap();
    events(&mut a);
    // b seeds: have-all, unchoke; a asks for a block.
    b.send(Message::HaveAll);
    b.send(Message::Unchoke);
    pipe(&mut b, &mut a, 1).unwrap();
    assert_eq!(
        events(&mut a),
        vec![
            Event::Has(HasUpdate::All(Bitfield::full(10))),
            Event::Choked(false)
        ]
    );
    let block = BlockRef {
        index: 3,
        begin: 0,
        length: 16384,
    };
    a.send(Message::Interested);
    a.send(Message::Request(block));
    pipe(&mut a, &mut b, 2).unwrap();
    // a announced nothing before its first core message: BEP 6 wants one of
    // bitfield/have-all/have-none first, so the session said have-none.
    assert_eq!(
        events(&mut b),
        vec![
            Event::Has(HasUpdate::All(Bitfield::empty(10))),
            Event::Interested(true),
            Event::Request(block)
        ]
    );
    assert_eq!(b.pending_peer_requests(), 1);
    b.send(Message::Piece {
        index: 3,
        begin: 0,
        data: Bytes::from(vec![5u8; 16384]),
    });
    assert_eq!(b.pending_peer_requests(), 0);
    pipe(&mut b, &mut a, 3).unwrap();
    assert!(matches!(&events(&mut a)[..], [Event::Block { block: got, .. }] if *got == block));
    assert_eq!((a.downloaded, b.uploaded), (16384, 16384));
}

#[test]
fn choked_requests_are_rejected_and_choking_drops_the_queue() {
    let (mut a, mut b) = connected();
    let block = BlockRef {
        index: 1,
        begin: 0,
        length: 16384,
    };
    a.send(Message::Request(block));
    pipe(&mut a, &mut b, 1).unwrap();
    let none = Event::Has(HasUpdate::All(Bitfield::empty(10)));
    assert_eq!(
        events(&mut b),
        std::slice::from_ref(&none),
        "a choked request is not served"
    );
    pipe(&mut b, &mut a, 1).unwrap();
    // The reject is b's first core message: have-none goes before it.
    assert_eq!(events(&mut a), vec![none, Event::Rejected(block)]);
    b.send(Message::Unchoke);
    a.send(Message::Request(block));
    pipe(&mut a, &mut b, 2).unwrap();
    assert_eq!(b.pending_peer_requests(), 1);
    b.send(Message::Choke);
    assert_eq!(b.pending_peer_requests(), 0);
    pipe(&mut b, &mut a, 3).unwrap();
    assert_eq!(
        events(&mut a),
        vec![
            Event::Choked(false),
            Event::Choked(true),
            Event::Rejected(block)
        ]
    );
}

fn block_one() -> BlockRef {
    BlockRef {
        index: 1,
        begin: 0,
        length: 16384,
    }
}

#[test]
fn a_cancelled_request_is_answered_with_a_reject_under_bep_6() {
    let (mut a, mut b) = connected();
    b.send(Message::Unchoke);
    pipe(&mut b, &mut a, 1).unwrap();
    events(&mut a);
    a.send(Message::Request(block_one()));
    pipe(&mut a, &mut b, 1).unwrap();
    events(&mut b);
    a.send(Message::Cancel(block_one()));
    pipe(&mut a, &mut b, 2).unwrap();
    assert_eq!(events(&mut b), vec![Event::Cancelled(block_one())]);
    assert_eq!(b.pending_peer_requests(), 0);
    pipe(&mut b, &mut a, 3).unwrap();
    assert_eq!(
        events(&mut a),
        vec![Event::Rejected(block_one())],
        "BEP 6: exactly one answer per request, a cancelled one too"
    );
    // A cancel of a block already sent (or never asked) gets nothing: the block was
    // its answer.
    a.send(Message::Cancel(block_one()));
    pipe(&mut a, &mut b, 4).unwrap();
    assert!(events(&mut b).is_empty());
    assert!(b.poll_transmit(4).is_empty());
}

#[test]
fn without_bep_6_a_cancel_gets_no_answer() {
    let mut b = connected_to_a_plain_peer();
    assert!(!b.peer_fast());
    b.send(Message::Unchoke);
    while !b.poll_transmit(0).is_empty() {}
    let mut wire = BytesMut::new();
    Message::Request(block_one()).encode(&mut wire);
    Message::Cancel(block_one()).encode(&mut wire);
    b.handle_bytes(1, &wire).unwrap();
    assert_eq!(
        events(&mut b)[1..],
        [Event::Request(block_one()), Event::Cancelled(block_one())]
    );
    assert!(
        b.poll_transmit(1).is_empty(),
        "no reject to a peer without BEP 6"
    );
}

#[test]
fn a_choke_keeps_requests_for_pieces_allowed_fast() {
    let (mut a, mut b) = connected();
    let fast = BlockRef {
        index: 2,
        begin: 0,
        length: 16384,
    };
    let other = BlockRef { index: 3, ..fast };
    b.send(Message::AllowedFast(2));
    b.send(Message::Unchoke);
    pipe(&mut b, &mut a, 1).unwrap();
    a.send(Message::Request(fast));
    a.send(Message::Request(other));
    pipe(&mut a, &mut b, 2).unwrap();
    b.send(Message::Choke);
    assert!(
        b.peer_request_pending(&fast),
        "allowed fast: still to be served"
    );
    assert!(!b.peer_request_pending(&other), "dropped by the choke");
    pipe(&mut b, &mut a, 3).unwrap();
    let told = events(&mut a);
    assert!(told.contains(&Event::Rejected(other)) && !told.contains(&Event::Rejected(fast)));
}

/// Writes some bytes a peer sends.
type Sends = Box<dyn Fn(&mut BytesMut)>;

#[test]
fn bad_input_closes_with_a_reason() {
    let cases: Vec<(&str, Sends)> = vec![
        ("bad_piece_index", Box::new(|b| Message::Have(10).encode(b))),
        (
            "bad_bitfield",
            Box::new(|b| Message::Bitfield(Bytes::from_static(&[0xff])).encode(b)),
        ),
        (
            "bad_bitfield",
            Box::new(|b| Message::Bitfield(Bytes::from_static(&[0xff, 0xff])).encode(b)),
        ),
        (
            "message_too_long",
            Box::new(|b| b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff])),
        ),
        (
            "bad_piece_index",
            Box::new(|b| {
                Message::Piece {
                    index: 99,
                    begin: 0,
                    data: Bytes::from_static(b"x"),
                }
                .encode(b)
            }),
        ),
        (
            "late_bitfield",
            Box::new(|b| {
                Message::Interested.encode(b);
                Message::Bitfield(Bytes::from_static(&[0, 0])).encode(b);
            }),
        ),
        (
            "bad_extension",
            Box::new(|b| {
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"garbage"),
                }
                .encode(b)
            }),
        ),
    ];
    for (code, write) in cases {
        let (mut a, _) = connected();
        let mut bytes = BytesMut::new();
        write(&mut bytes);
        assert_eq!(a.handle_bytes(5, &bytes).map_err(|c| c.code), Err(code));
    }
    // A handshake for another torrent.
    let mut a = Session::new(SessionConfig::new(HASH, [1; 20], 10), 0);
    let mut other = BytesMut::new();
    Handshake::new([9; 20], [3; 20]).encode(&mut other);
    assert_eq!(
        a.handle_bytes(0, &other).map_err(|c| c.code),
        Err("wrong_infohash")
    );
}

#[test]
fn extension_handshakes_may_come_before_the_bitfield() {
    let (mut a, _) = connected();
    let mut bytes = BytesMut::new();
    Message::Extended {
        id: 0,
        payload: Bytes::from(crate::extension::ExtendedHandshake::ours(None, None, 250).encode()),
    }
    .encode(&mut bytes);
    Message::HaveNone.encode(&mut bytes);
    a.handle_bytes(1, &bytes).unwrap();
    assert!(matches!(
        &events(&mut a)[..],
        [Event::Extensions(_), Event::Has(_)]
    ));
}

fn has_updates(s: &mut Session) -> Vec<HasUpdate> {
    events(s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Has(update) => Some(update),
            _ => None,
        })
        .collect()
}

#[test]
fn our_pieces_sent_after_another_message_go_out_as_haves() {
    let (mut a, mut b) = connected();
    a.send(Message::Have(3));
    // Pieces 0 and 9 of 10.
    a.send(Message::Bitfield(Bytes::from_static(&[0x80, 0x40])));
    pipe(&mut a, &mut b, 1).unwrap();
    assert_eq!(
        has_updates(&mut b),
        vec![
            HasUpdate::All(Bitfield::empty(10)),
            HasUpdate::Piece(3),
            HasUpdate::Piece(0),
            HasUpdate::Piece(9)
        ]
    );
    a.send(Message::HaveNone);
    a.send(Message::HaveAll);
    pipe(&mut a, &mut b, 2).unwrap();
    assert_eq!(b.peer_has, Bitfield::full(10));
}

#[test]
fn extension_messages_leave_the_bitfield_first() {
    let (mut a, mut b) = connected();
    a.send(Message::KeepAlive);
    a.send(Message::Extended {
        id: 3,
        payload: Bytes::from_static(b"x"),
    });
    a.send(Message::Bitfield(Bytes::from_static(&[0x80, 0])));
    pipe(&mut a, &mut b, 1).unwrap();
    let mut expected = Bitfield::empty(10);
    expected.set(0);
    assert_eq!(has_updates(&mut b), vec![HasUpdate::All(expected)]);
}

/// `b` connected to a peer without BEP 6 (nor BEP 10).
fn connected_to_a_plain_peer() -> Session {
    let mut b = Session::new(SessionConfig::new(HASH, [2; 20], 10), 0);
    let mut wire = BytesMut::new();
    Handshake {
        reserved: [0; 8],
        info_hash: HASH,
        peer_id: [1; 20],
    }
    .encode(&mut wire);
    b.handle_bytes(0, &wire).unwrap();
    while !b.poll_transmit(0).is_empty() {}
    b
}

fn sent(s: &mut Session) -> Vec<u8> {
    std::iter::from_fn(|| Some(s.poll_transmit(1)).filter(|c| !c.is_empty()))
        .flat_map(|c| c.to_vec())
        .collect()
}

fn encoded(messages: &[Message]) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    for m in messages {
        m.encode(&mut bytes);
    }
    bytes.to_vec()
}

#[test]
fn a_peer_without_bep_6_is_told_have_all_as_a_bitfield_and_have_none_not_at_all() {
    let mut b = connected_to_a_plain_peer();
    b.send(Message::HaveNone);
    assert!(sent(&mut b).is_empty(), "no pieces: no bitfield (BEP 3)");
    b.send(Message::HaveAll);
    let full = Bytes::copy_from_slice(Bitfield::full(10).as_bytes());
    assert_eq!(sent(&mut b), encoded(&[Message::Bitfield(full)]));

    // Nor is it told have-none before a first core message.
    let mut b = connected_to_a_plain_peer();
    b.send(Message::Interested);
    assert_eq!(sent(&mut b), encoded(&[Message::Interested]));
}

#[test]
fn what_the_session_sends_on_its_own_counts_as_the_first_message() {
    // A reject to a request made while choked.
    let (mut a, mut b) = connected();
    a.send(Message::Request(block_one()));
    pipe(&mut a, &mut b, 1).unwrap();
    sent(&mut b);
    b.send(Message::HaveAll);
    let haves: Vec<Message> = (0..10).map(Message::Have).collect();
    assert_eq!(sent(&mut b), encoded(&haves));

    // A block answered: have-none first, then the block.
    let (_, mut b) = connected();
    b.answer_peer_request(block_one(), Bytes::from(vec![1u8; 16384]));
    let out = sent(&mut b);
    assert!(out.starts_with(&encoded(&[Message::HaveNone])));
    b.send(Message::Bitfield(Bytes::from_static(&[0x40, 0])));
    assert_eq!(sent(&mut b), encoded(&[Message::Have(1)]));

    // Keep-alives, the DHT port and extension messages do not count.
    let (_, mut b) = connected();
    b.send(Message::KeepAlive);
    b.send(Message::Port(6881));
    b.send(Message::HaveAll);
    assert_eq!(
        sent(&mut b),
        encoded(&[Message::KeepAlive, Message::Port(6881), Message::HaveAll])
    );
}

#[test]
fn a_request_flood_is_closed() {
    let (mut a, mut b) = connected();
    b.send(Message::Unchoke);
    for begin in 0..=500u32 {
        a.send(Message::Request(BlockRef {
            index: 0,
            begin: begin * 16384,
            length: 16384,
        }));
    }
    assert_eq!(
        pipe(&mut a, &mut b, 1).map_err(|c| c.code),
        Err("request_flood")
    );
}

#[test]
fn keepalives_and_idle_timeouts() {
    let (mut a, mut b) = connected();
    a.handle_timeout(59_999).unwrap();
    assert!(a.poll_transmit(59_999).is_empty());
    a.handle_timeout(60_000).unwrap();
    assert_eq!(&a.poll_transmit(60_000)[..], &[0, 0, 0, 0]);
    assert_eq!(
        a.handle_timeout(120_000).map_err(|c| c.code),
        Err("idle_timeout")
    );
    b.handle_bytes(100_000, &[0, 0, 0, 0]).unwrap();
    assert!(
        b.handle_timeout(150_000).is_ok(),
        "a keep-alive counts as hearing from the peer"
    );
}

proptest! {
    /// Bitfields, have-all/none, haves and other core messages to a BEP 6 peer, in any
    /// order: the peer accepts them all and knows exactly what was announced.
    #[test]
    fn whatever_order_we_announce_pieces_in_the_peer_accepts_it(
        sends in proptest::collection::vec((0u8..6, 0u32..10, any::<u16>()), 0..12),
    ) {
        let (mut a, mut b) = connected();
        let mut announced = Bitfield::empty(10);
        for (kind, index, bits) in sends {
            let message = match kind {
                0 => Message::Have(index),
                1 => {
                    // Ten pieces: the last six bits are spare and stay clear.
                    let bits = bits & 0xffc0;
                    Message::Bitfield(Bytes::copy_from_slice(&bits.to_be_bytes()))
                }
                2 => Message::HaveAll,
                3 => Message::HaveNone,
                4 => Message::Interested,
                _ => Message::KeepAlive,
            };
            match &message {
                Message::Have(i) => {
                    announced.set(*i);
                }
                Message::Bitfield(bytes) => {
                    let with = Bitfield::from_bytes(bytes, 10).unwrap();
                    (0..10).filter(|i| with.has(*i)).for_each(|i| {
                        announced.set(i);
                    });
                }
                Message::HaveAll => announced = Bitfield::full(10),
                _ => {}
            }
            a.send(message);
        }
        prop_assert!(pipe(&mut a, &mut b, 1).is_ok());
        prop_assert_eq!(&b.peer_has, &announced);
    }

    /// After a good handshake, any bytes: a close or events, never a panic, and the
    /// queue of the peer's requests never passes its bound.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), unchoke in any::<bool>()) {
        let (_, mut b) = connected();
        if unchoke {
            b.send(Message::Unchoke);
        }
        let _ = b.handle_bytes(1, &data);
        prop_assert!(b.pending_peer_requests() <= 500);
        while b.poll_event().is_some() {}
    }
}
