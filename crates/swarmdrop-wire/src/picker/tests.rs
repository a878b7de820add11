use proptest::prelude::*;

use super::*;

const PIECE: u32 = 4 * BLOCK;

fn picker(pieces: u32) -> Picker {
    // The last piece is short: half a block.
    let total = u64::from(PIECE) * u64::from(pieces - 1) + u64::from(BLOCK / 2);
    Picker::new(total, PIECE, pieces).unwrap()
}

/// One full piece of four blocks.
fn one_piece() -> Picker {
    Picker::new(u64::from(PIECE), PIECE, 1).unwrap()
}

#[test]
fn shapes_are_checked() {
    assert_eq!(
        Picker::new(100, 1000, 1).unwrap_err(),
        PickerError::PieceLength(1000)
    );
    assert!(matches!(
        Picker::new(u64::from(PIECE) * 3, PIECE, 2),
        Err(PickerError::Shape { .. })
    ));
    let p = picker(3);
    assert_eq!((p.piece_size(0), p.piece_size(2)), (PIECE, BLOCK / 2));
}

#[test]
fn rarest_first_then_priority_then_deadline() {
    // Pieces 0-2 are full (four blocks); piece 3 is the short last one.
    let all = Bitfield::full(4);
    let mut p = picker(4);
    for (index, holders) in [(0u32, 3u16), (1, 1), (2, 2), (3, 3)] {
        for _ in 0..holders {
            p.peer_has(index);
        }
    }
    assert_eq!(p.pick(1, &all, 1, 0)[0].index, 1, "rarest first");
    p.set_priority(2, 5);
    assert_eq!(
        p.pick(2, &all, 1, 0)[0].index,
        1,
        "a started piece is finished first"
    );
    let mut fresh = picker(4);
    fresh.set_priority(2, 5);
    assert_eq!(
        fresh.pick(1, &all, 1, 0)[0].index,
        2,
        "priority before rarity"
    );
    let mut urgent = picker(4);
    urgent.set_priority(2, 5);
    urgent.set_deadline(0, Some(100));
    assert_eq!(
        urgent.pick(1, &all, 1, 0)[0].index,
        0,
        "a deadline beats priority"
    );
    urgent.set_priority(3, 0);
    let only_three = {
        let mut f = Bitfield::empty(4);
        f.set(3);
        f
    };
    assert!(
        urgent.pick(3, &only_three, 10, 0).is_empty(),
        "priority 0 is never fetched"
    );
}

#[test]
fn endgame_duplicates_and_cancels() {
    let mut p = one_piece();
    let all = Bitfield::full(1);
    let first = p.pick(1, &all, 10, 0);
    assert_eq!(first.len(), 4);
    assert!(p.in_endgame());
    let dup = p.pick(2, &all, 10, 0);
    assert_eq!(dup, first, "endgame asks another peer for the same blocks");
    assert!(
        p.pick(2, &all, 10, 0).is_empty(),
        "never twice from one peer"
    );
    let got = p.block_received(2, first[0]);
    assert_eq!(got.cancel, vec![(1, first[0])]);
    assert!(!got.unexpected);
    let late = p.block_received(1, first[0]);
    assert!(
        late.unexpected && late.late,
        "the cancelled copy is unexpected, and late rather than unrequested"
    );
    for block in &first[1..] {
        let outcome = p.block_received(1, *block);
        if block == first.last().unwrap() {
            assert_eq!(outcome.piece_complete, Some(0));
        }
    }
    p.piece_verified(0);
    assert!(p.complete());
}

#[test]
fn a_withdrawn_piece_frees_its_blocks_and_its_late_blocks_are_no_strikes() {
    let mut p = picker(3);
    let all = Bitfield::full(3);
    let asked = p.pick(1, &all, 64, 0);
    assert_eq!(asked.len(), 9, "two pieces of four blocks, one of one");
    let (mut first, other): (Vec<BlockRef>, Vec<BlockRef>) =
        asked.iter().partition(|b| b.index == 0);
    first.sort_by_key(|b| b.begin);
    let index = 0;
    assert!(p.block_received(1, first[0]).piece_complete.is_none());
    assert_eq!(p.piece_progress(index), (1, 4));
    let withdrawn = p.withdraw_piece(index);
    assert_eq!(
        withdrawn,
        first[1..].iter().map(|b| (1, *b)).collect::<Vec<_>>()
    );
    assert_eq!(
        p.outstanding(1),
        other.len(),
        "the other piece's asks stand"
    );
    assert!(!p.was_requested(1, &first[1]));
    let late = p.block_received(1, first[1]);
    assert!(
        late.late && !late.unexpected,
        "sent before the cancel arrived, and used: the piece still lacks it"
    );
    assert_eq!(p.piece_progress(index), (2, 4));
    // Its free blocks go to whoever is asked next.
    let again = p.pick(2, &all, 64, 0);
    assert_eq!(again, first[2..].to_vec());
    assert_eq!(p.piece_progress(1), (0, 4));
}

#[test]
fn what_is_wanted_decides_interest_and_completion() {
    let mut p = picker(4);
    let only = |index: u32| {
        let mut f = Bitfield::empty(4);
        f.set(index);
        f
    };
    assert!(p.wants_any_of(&only(2)));
    p.set_priority(2, 0);
    assert!(!p.wants(2) && !p.wants_any_of(&only(2)));
    p.set_priority(2, 3);
    assert!(p.wants_any_of(&only(2)));
    p.piece_verified(1);
    assert!(!p.wants_any_of(&only(1)), "a piece held is not wanted");
    p.set_priority(1, 1);
    assert!(!p.wants(1), "not even when asked for again");
    for index in [0, 2, 3] {
        assert!(!p.complete());
        p.piece_verified(index);
    }
    assert!(p.complete());
    assert!(!p.wants_any_of(&Bitfield::full(4)));
}

#[test]
fn unrequested_and_malformed_blocks_are_unexpected() {
    let mut p = picker(2);
    let never = BlockRef {
        index: 0,
        begin: 0,
        length: BLOCK,
    };
    assert!(p.block_received(9, never).unexpected);
    let all = Bitfield::full(2);
    let asked = p.pick(1, &all, 1, 0)[0];
    let wrong_length = BlockRef {
        length: 100,
        ..asked
    };
    assert!(p.block_received(1, wrong_length).unexpected);
    let past_end = BlockRef { index: 99, ..asked };
    assert!(p.block_received(1, past_end).unexpected);
    let beyond_its_piece = BlockRef {
        begin: 64 * BLOCK,
        ..asked
    };
    assert!(p.block_received(1, beyond_its_piece).unexpected);
}

#[test]
fn blocks_sent_after_a_choke_are_late_and_used_when_still_needed() {
    let mut p = one_piece();
    let all = Bitfield::full(1);
    let asked = p.pick(1, &all, 10, 0);
    p.peer_choked(1);
    assert_eq!(p.outstanding(1), 0);
    let again = p.pick(2, &all, 2, 0);
    assert_eq!(again, asked[..2], "choked requests are free for others");
    // Peer 1 had queued its blocks before the choke: they still come.
    let used = p.block_received(1, asked[0]);
    assert!(
        used.late && !used.unexpected,
        "a late block we still need is used"
    );
    assert_eq!(
        used.cancel,
        vec![(2, asked[0])],
        "and peer 2's copy is cancelled"
    );
    let dropped = p.block_received(2, asked[0]);
    assert!(
        dropped.late && dropped.unexpected,
        "peer 2's cancelled copy is late"
    );
    let replay = p.block_received(1, asked[0]);
    assert!(
        replay.unexpected && !replay.late,
        "one copy per ask: a replay counts as unrequested"
    );
    assert!(
        p.block_received(1, asked[1]).late,
        "each ask may be answered late once"
    );
    assert!(
        !p.block_received(3, asked[2]).late,
        "peer 3 was never asked"
    );
    p.request_failed(1, asked[2]);
    assert!(
        !p.block_received(1, asked[2]).late,
        "a rejected ask was answered: the block after it is unrequested"
    );
    p.peer_gone(1);
    assert_eq!(
        p.unanswered(1, &asked[3]),
        0,
        "a departed peer's asks are forgotten"
    );
    assert!(!p.block_received(1, asked[3]).late);
}

#[test]
fn failed_pieces_and_departed_peers_free_their_blocks() {
    let mut p = one_piece();
    let all = Bitfield::full(1);
    let blocks = p.pick(1, &all, 10, 0);
    p.peer_gone(1);
    assert_eq!(p.outstanding(1), 0);
    assert_eq!(
        p.pick(2, &all, 10, 0),
        blocks,
        "a departed peer's blocks are free again"
    );
    for b in &blocks {
        p.block_received(2, *b);
    }
    p.piece_failed(0);
    assert_eq!(
        p.pick(3, &all, 10, 0).len(),
        4,
        "a failed piece is fetched again"
    );
}

proptest! {
    /// Peers that answer in any order, fail requests and leave, with bad pieces now and
    /// then: the picker never asks a peer for a piece it lacks or we have, never asks one
    /// peer twice for a block outside endgame, and the download always completes.
    #[test]
    fn downloads_always_complete(
        pieces in 1u32..12,
        holders in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 12), 1..5),
        script in proptest::collection::vec((0usize..5, 0u8..10, any::<u64>()), 1..400),
    ) {
        let mut p = picker(pieces);
        // Peer 0 is a seeder, so completion is always possible.
        let mut fields = vec![Bitfield::full(pieces)];
        for h in &holders {
            let mut f = Bitfield::empty(pieces);
            for i in 0..pieces {
                if h[i as usize] { f.set(i); }
            }
            fields.push(f);
        }
        for f in &fields {
            p.peer_bitfield(f, true);
        }
        let mut inflight: Vec<(PeerKey, BlockRef)> = Vec::new();
        let mut late: Vec<(PeerKey, BlockRef)> = Vec::new();
        for (peer, action, random) in script {
            let peer = peer % fields.len();
            let key = peer as PeerKey;
            match action {
                0..=4 => {
                    let endgame = p.in_endgame();
                    for block in p.pick(key, &fields[peer], 4, random) {
                        prop_assert!(fields[peer].has(block.index) && !p.have().has(block.index));
                        prop_assert!(endgame || !inflight.iter().any(|(_, b)| *b == block));
                        prop_assert!(!inflight.contains(&(key, block)));
                        inflight.push((key, block));
                    }
                }
                5..=7 if !inflight.is_empty() => {
                    let (from, block) = inflight.remove((random as usize) % inflight.len());
                    let outcome = p.block_received(from, block);
                    inflight.retain(|entry| !outcome.cancel.contains(entry));
                    if let Some(index) = outcome.piece_complete {
                        // Every fifth completion fails its hash.
                        if random % 5 == 0 { p.piece_failed(index) } else { p.piece_verified(index) }
                    }
                }
                8 if !inflight.is_empty() => {
                    let (from, block) = inflight.remove((random as usize) % inflight.len());
                    p.request_failed(from, block);
                }
                9 if peer != 0 && random % 2 == 0 => {
                    p.peer_gone(key);
                    inflight.retain(|(from, _)| *from != key);
                    late.retain(|(from, _)| *from != key);
                }
                9 if peer != 0 => {
                    // A choke: the peer may still send what it had queued.
                    p.peer_choked(key);
                    for (from, block) in inflight.iter().filter(|(from, _)| *from == key) {
                        late.push((*from, *block));
                    }
                    inflight.retain(|(from, _)| *from != key);
                }
                _ if !late.is_empty() && random % 3 == 0 => {
                    let (from, block) = late.remove((random as usize) % late.len());
                    let asked_again = p.was_requested(from, &block);
                    let outcome = p.block_received(from, block);
                    prop_assert!(outcome.late != asked_again, "a block sent before the choke is late");
                    // Asked of it again since: this copy answers that request too.
                    inflight.retain(|entry| !outcome.cancel.contains(entry) && *entry != (from, block));
                    if let Some(index) = outcome.piece_complete {
                        p.piece_verified(index);
                    }
                }
                _ => {}
            }
        }
        // Whatever state the script left, the seeder alone finishes the download.
        for (from, block) in inflight.drain(..) {
            if from != 0 {
                p.request_failed(from, block);
            }
        }
        let mut rounds = 0;
        while !p.complete() {
            rounds += 1;
            prop_assert!(rounds < 1000, "no progress");
            let blocks = p.pick(0, &fields[0], 64, rounds);
            let outstanding_from_seeder: Vec<BlockRef> = blocks;
            for block in outstanding_from_seeder {
                if let Some(index) = p.block_received(0, block).piece_complete {
                    p.piece_verified(index);
                }
            }
            // Blocks the seeder was asked for during the script are delivered too.
            if p.outstanding(0) > 0 && p.pick(0, &fields[0], 64, rounds).is_empty() {
                p.peer_gone(0);
            }
        }
    }
}
