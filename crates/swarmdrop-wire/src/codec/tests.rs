use bytes::{BufMut as _, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn round_trip(message: &Message) -> Message {
    let mut buf = BytesMut::new();
    message.encode(&mut buf);
    let decoded = Decoder.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "{message:?} left {} bytes", buf.len());
    decoded
}

#[test]
fn every_message_round_trips() {
    let b = BlockRef {
        index: 3,
        begin: 16384,
        length: 16384,
    };
    for message in [
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(7),
        Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
        Message::Request(b),
        Message::Piece {
            index: 1,
            begin: 0,
            data: Bytes::from(vec![9u8; 100]),
        },
        Message::Cancel(b),
        Message::Port(6881),
        Message::Suggest(4),
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(b),
        Message::AllowedFast(5),
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
        },
    ] {
        assert_eq!(round_trip(&message), message);
    }
}

#[test]
fn handshakes_round_trip_and_strangers_are_refused() {
    let ours = Handshake::new([1; 20], [2; 20]);
    assert!(ours.fast() && ours.extended());
    let mut buf = BytesMut::new();
    ours.encode(&mut buf);
    let mut partial = buf.split_to(30);
    assert_eq!(Handshake::decode(&mut partial), Ok(None));
    partial.unsplit(buf);
    assert_eq!(Handshake::decode(&mut partial), Ok(Some(ours)));
    let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert_eq!(Handshake::decode(&mut http), Err(WireError::NotBitTorrent));
    let mut wrong = BytesMut::from(&b"\x13BitTorrent protocoX"[..]);
    assert_eq!(Handshake::decode(&mut wrong), Err(WireError::NotBitTorrent));
}

#[test]
fn lengths_are_checked_before_buffering() {
    // 4 GiB: refused at the length prefix.
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(Decoder.decode(&mut buf), Err(WireError::TooLong(u32::MAX)));
    // A "have" claiming 1000 bytes: refused at the id, before the body arrives.
    let mut buf = BytesMut::new();
    buf.put_u32(1001);
    buf.put_u8(4);
    assert!(matches!(
        Decoder.decode(&mut buf),
        Err(WireError::BadLength { id: 4, len: 1000 })
    ));
    // A piece larger than the largest block.
    let mut buf = BytesMut::new();
    buf.put_u32(9 + MAX_BLOCK + 1);
    buf.put_u8(7);
    assert!(matches!(
        Decoder.decode(&mut buf),
        Err(WireError::BadLength { id: 7, .. })
    ));
    let mut buf = BytesMut::new();
    buf.put_u32(1);
    buf.put_u8(99);
    assert_eq!(Decoder.decode(&mut buf), Err(WireError::UnknownId(99)));
    // A request for 1 MiB.
    let mut buf = BytesMut::new();
    Message::Request(BlockRef {
        index: 0,
        begin: 0,
        length: 1 << 20,
    })
    .encode(&mut buf);
    assert_eq!(Decoder.decode(&mut buf), Err(WireError::BadBlock(1 << 20)));
}

proptest! {
    /// Any bytes, split anywhere: the decoder never panics, and what it accepts
    /// re-encodes to the bytes it consumed.
    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
        let mut buf = BytesMut::from(&data[..cut.min(data.len())]);
        let _ = Decoder.decode(&mut buf);
        let mut buf = BytesMut::from(&data[..]);
        let before = buf.len();
        if let Ok(Some(message)) = Decoder.decode(&mut buf) {
            let mut again = BytesMut::new();
            message.encode(&mut again);
            prop_assert_eq!(&again[..], &data[..before - buf.len()]);
        }
    }

    #[test]
    fn pieces_round_trip(index in any::<u32>(), begin in any::<u32>(), data in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let message = Message::Piece { index, begin, data: Bytes::from(data) };
        prop_assert_eq!(round_trip(&message), message);
    }
}
