//! A torrent steered from outside, as the hybrid client drives it: it asks peers only for
//! the pieces it is told to, and takes pieces verified elsewhere (announcing them).

use bytes::Bytes;

use super::swarm_tests::{info_for, MemoryStore, PIECE};
use super::*;

pub(super) const PIECES: u32 = 8;

/// A torrent of the test content with peer id `[id; 20]`: the full content, or none.
pub(super) fn torrent(
    content: &[u8],
    full: bool,
    id: u8,
    config: TorrentConfig,
) -> Torrent<MemoryStore> {
    let store = MemoryStore {
        data: if full {
            content.to_vec()
        } else {
            vec![0; content.len()]
        },
        corrupt: false,
    };
    let have = if full {
        Bitfield::full(PIECES)
    } else {
        Bitfield::empty(PIECES)
    };
    Torrent::new(
        info_for(content, [9; 20]),
        config,
        [id; 20],
        store,
        &have,
        u64::from(id),
    )
    .unwrap()
}

fn pair() -> (Torrent<MemoryStore>, Torrent<MemoryStore>, Vec<u8>) {
    let content: Vec<u8> = (0..PIECE * PIECES).map(|i| (i % 251) as u8).collect();
    let seed = torrent(&content, true, 1, TorrentConfig::default());
    let leech = torrent(&content, false, 2, TorrentConfig::default());
    (seed, leech, content)
}

/// Moves bytes both ways for `steps` rounds of 10 ms.
fn exchange(seed: &mut Torrent<MemoryStore>, leech: &mut Torrent<MemoryStore>, steps: u64) {
    for step in 0..steps {
        let now = step * 10;
        seed.handle_timeout(now);
        leech.handle_timeout(now);
        loop {
            let to_leech = seed.poll_transmit(2, now);
            let to_seed = leech.poll_transmit(1, now);
            if to_leech.is_empty() && to_seed.is_empty() {
                break;
            }
            leech.handle_bytes(1, now, &to_leech);
            seed.handle_bytes(2, now, &to_seed);
        }
    }
}

#[test]
fn only_wanted_pieces_are_asked_of_peers() {
    let (mut seed, mut leech, content) = pair();
    leech.want_nothing();
    seed.add_peer(2, 0);
    leech.add_peer(1, 0);
    exchange(&mut seed, &mut leech, 50);
    assert_eq!(leech.have().count(), 0, "nothing was wanted yet");
    assert!(
        leech.available().iter().all(|a| *a),
        "the seed holds every piece"
    );
    leech.want_piece(3, true, Some(100));
    exchange(&mut seed, &mut leech, 50);
    assert_eq!(leech.have().count(), 1);
    assert!(leech.have().has(3));
    let start = 3 * PIECE as usize;
    assert_eq!(
        leech.store_mut().data[start..start + PIECE as usize],
        content[start..start + PIECE as usize]
    );
}

#[test]
fn a_piece_from_elsewhere_is_written_and_announced() {
    let (mut seed, mut leech, content) = pair();
    leech.want_nothing();
    seed.add_peer(2, 0);
    leech.add_peer(1, 0);
    exchange(&mut seed, &mut leech, 5);
    let start = 5 * PIECE as usize;
    leech.piece_from_elsewhere(
        5,
        Bytes::copy_from_slice(&content[start..start + PIECE as usize]),
    );
    assert!(leech.have().has(5));
    assert!(std::iter::from_fn(|| leech.poll_event())
        .any(|e| matches!(e, TorrentEvent::PieceVerified(5))));
    assert_eq!(
        leech.store_mut().data[start..start + PIECE as usize],
        content[start..start + PIECE as usize]
    );
    // The leecher announces it: `have 5` is on its way to the seed.
    let announced = leech.poll_transmit(1, 60);
    assert!(
        announced
            .windows(9)
            .any(|w| w == [0, 0, 0, 5, 4, 0, 0, 0, 5]),
        "no have(5) in {announced:?}"
    );
    // A second delivery of a held piece changes nothing.
    leech.piece_from_elsewhere(5, Bytes::from_static(b"junk"));
    assert_eq!(
        leech.store_mut().data[start..start + PIECE as usize],
        content[start..start + PIECE as usize]
    );
    leech.piece_from_elsewhere(PIECES + 3, Bytes::from_static(b"past the end"));
}

#[test]
fn a_peer_that_wants_nothing_more_gives_its_slot_back_at_once() {
    let (_, first, content) = pair();
    let second = torrent(&content, false, 3, TorrentConfig::default());
    // One upload slot: the first leech takes it; the second waits, choked. Rounds of
    // 10 s, so that no rechoke in the five seconds below hands the slot over instead.
    let one_slot = TorrentConfig {
        upload_slots: 1,
        rechoke_every: 10_000,
        ..TorrentConfig::default()
    };
    let mut seed = torrent(&content, true, 1, one_slot);
    let mut leeches = [(2, first), (3, second)];
    for (key, leech) in &mut leeches {
        seed.add_peer(*key, 0);
        leech.add_peer(1, 0);
    }
    // Five seconds, half a rechoke round.
    for step in 0..500 {
        let now = step * 10;
        seed.handle_timeout(now);
        for (key, leech) in &mut leeches {
            leech.handle_timeout(now);
            loop {
                let to_leech = seed.poll_transmit(*key, now);
                let to_seed = leech.poll_transmit(1, now);
                if to_leech.is_empty() && to_seed.is_empty() {
                    break;
                }
                leech.handle_bytes(1, now, &to_leech);
                seed.handle_bytes(*key, now, &to_seed);
            }
        }
    }
    // The first, complete, lost interest; its slot went to the second straight away
    // rather than at the next round (ten seconds in).
    for (key, leech) in &mut leeches {
        assert!(leech.complete(), "leech {key} incomplete after 5 s");
        assert!(leech.store_mut().data == content);
    }
}

#[test]
fn leechers_progress_counts_the_peers_still_downloading_not_seeds() {
    let content: Vec<u8> = (0..PIECE * PIECES).map(|i| (i % 251) as u8).collect();
    // A seed is no leecher: with only a seed connected there is no one to compare with.
    let (mut seed, mut leech, _) = pair();
    assert_eq!(leech.leechers_progress(), None, "nobody connected");
    seed.add_peer(2, 0);
    leech.add_peer(1, 0);
    exchange(&mut seed, &mut leech, 5);
    assert_eq!(leech.leechers_progress(), None);
    // A peer holding three pieces of eight is three eighths of the way.
    let mut three_of_eight = Bitfield::empty(PIECES);
    for index in [0, 2, 5] {
        three_of_eight.set(index);
    }
    let store = MemoryStore {
        data: content.clone(),
        corrupt: false,
    };
    let mut partial = Torrent::new(
        info_for(&content, [9; 20]),
        TorrentConfig::default(),
        [3; 20],
        store,
        &three_of_eight,
        3,
    )
    .unwrap();
    let mut other = torrent(&content, false, 4, TorrentConfig::default());
    partial.add_peer(2, 0);
    other.add_peer(1, 0);
    exchange(&mut partial, &mut other, 5);
    assert_eq!(other.leechers_progress(), Some((3.0 / 8.0, 1)));
}
