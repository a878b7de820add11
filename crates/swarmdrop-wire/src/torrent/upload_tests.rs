//! Answering requests as the socket takes them, and leaving a piece to another path: a
//! request still queued is withdrawn by a `cancel`, so the bytes of a piece another path
//! brings are not sent by peers too.

use bytes::Bytes;

use super::steered_tests::{torrent, PIECES};
use super::swarm_tests::{MemoryStore, PIECE};
use super::*;
use crate::codec::BLOCK;

/// A seed (key 1 to the leech) and a leech (key 2 to the seed) that wants nothing yet.
fn connected() -> (Torrent<MemoryStore>, Torrent<MemoryStore>) {
    let content: Vec<u8> = (0..PIECE * PIECES).map(|i| (i % 251) as u8).collect();
    let mut seed = torrent(&content, true, 1, TorrentConfig::default());
    let mut leech = torrent(&content, false, 2, TorrentConfig::default());
    leech.want_nothing();
    seed.add_peer(2, 0);
    leech.add_peer(1, 0);
    (seed, leech)
}

/// Moves bytes both ways at `now`; the seed answers requests with at most `budget`
/// bytes of blocks. Returns the bytes the seed sent.
fn exchange(
    seed: &mut Torrent<MemoryStore>,
    leech: &mut Torrent<MemoryStore>,
    now: Millis,
    mut budget: usize,
) -> usize {
    let mut sent = 0;
    seed.handle_timeout(now);
    leech.handle_timeout(now);
    loop {
        let to_leech = seed.poll_transmit_within(2, now, &mut budget);
        let to_seed = leech.poll_transmit(1, now);
        if to_leech.is_empty() && to_seed.is_empty() {
            return sent;
        }
        sent += to_leech.len();
        leech.handle_bytes(1, now, &to_leech);
        seed.handle_bytes(2, now, &to_seed);
    }
}

fn pending_at_seed(seed: &Torrent<MemoryStore>) -> usize {
    seed.peers[&2].session.pending_peer_requests()
}

#[test]
fn requests_wait_for_the_budget_and_are_answered_in_order() {
    let (mut seed, mut leech) = connected();
    for index in 0..PIECES {
        leech.want_piece(index, true, None);
    }
    // The handshake, the bitfield and the unchoke go through with no budget for blocks;
    // the requests wait at the seed.
    for step in 0..5 {
        exchange(&mut seed, &mut leech, step * 10, 0);
    }
    let asked = pending_at_seed(&seed);
    assert_eq!(
        asked,
        (PIECES * PIECE / BLOCK) as usize,
        "every block is asked"
    );
    assert_eq!(
        leech.have().count(),
        0,
        "no block went out without a budget"
    );
    // A budget of one block answers one block.
    let sent = exchange(&mut seed, &mut leech, 60, BLOCK as usize);
    assert!(
        sent >= BLOCK as usize && sent < 2 * BLOCK as usize,
        "{sent}"
    );
    assert_eq!(pending_at_seed(&seed), asked - 1);
    // Unlimited, the rest.
    for step in 7..20 {
        exchange(&mut seed, &mut leech, step * 10, usize::MAX);
    }
    assert_eq!(leech.have().count(), PIECES);
}

#[test]
fn a_piece_left_to_another_path_is_cancelled_and_never_sent() {
    let (mut seed, mut leech) = connected();
    for index in 0..PIECES {
        leech.want_piece(index, true, None);
    }
    for step in 0..5 {
        exchange(&mut seed, &mut leech, step * 10, 0);
    }
    assert!(leech.peers[&1].session.am_interested);
    // Another path takes pieces 0 and 5: their requests are withdrawn.
    leech.fetching_elsewhere(0);
    leech.fetching_elsewhere(5);
    exchange(&mut seed, &mut leech, 50, 0);
    assert_eq!(
        pending_at_seed(&seed),
        ((PIECES - 2) * PIECE / BLOCK) as usize,
        "the cancels reached the seed's queue"
    );
    let mut sent = 0;
    for step in 6..30 {
        sent += exchange(&mut seed, &mut leech, step * 10, usize::MAX);
    }
    assert_eq!(leech.have().count(), PIECES - 2);
    assert!(!leech.have().has(0) && !leech.have().has(5));
    assert!(
        sent < ((PIECES - 1) * PIECE) as usize,
        "{sent} bytes sent: more than the six pieces still asked for"
    );
    // Nothing else is wanted from the seed: the leech is no longer interested, and the
    // seed's slot is free for someone else.
    assert!(!leech.peers[&1].session.am_interested);
    assert!(!seed.peers[&2].session.peer_interested);
    // The other path failed: asked of peers again, the piece comes.
    leech.want_piece(5, true, None);
    for step in 30..40 {
        exchange(&mut seed, &mut leech, step * 10, usize::MAX);
    }
    assert!(leech.have().has(5));
    assert!(!leech.have().has(0));
}

#[test]
fn a_piece_half_in_stays_a_race() {
    let (mut seed, mut leech) = connected();
    leech.want_piece(2, true, None);
    for step in 0..5 {
        exchange(&mut seed, &mut leech, step * 10, 0);
    }
    // One of its two blocks arrives.
    exchange(&mut seed, &mut leech, 50, BLOCK as usize);
    assert_eq!(leech.picker.piece_progress(2), (1, 2));
    leech.fetching_elsewhere(2);
    assert_eq!(pending_at_seed(&seed), 1);
    for step in 6..10 {
        exchange(&mut seed, &mut leech, step * 10, usize::MAX);
    }
    assert!(leech.have().has(2), "the peer's copy was let finish");
}

#[test]
fn interest_follows_the_pieces_wanted() {
    let (mut seed, mut leech) = connected();
    for step in 0..3 {
        exchange(&mut seed, &mut leech, step * 10, usize::MAX);
    }
    assert!(
        !leech.peers[&1].session.am_interested,
        "the seed holds pieces we lack, but none we want"
    );
    leech.want_piece(4, true, None);
    exchange(&mut seed, &mut leech, 30, 0);
    assert!(leech.peers[&1].session.am_interested);
    assert!(seed.peers[&2].session.peer_interested);
    leech.want_piece(4, false, None);
    exchange(&mut seed, &mut leech, 40, 0);
    assert!(!leech.peers[&1].session.am_interested);
    assert!(!seed.peers[&2].session.peer_interested);
}

#[test]
fn a_piece_verified_during_a_handshake_goes_in_the_bitfield_not_a_have_before_it() {
    let content: Vec<u8> = (0..PIECE * PIECES).map(|i| (i % 251) as u8).collect();
    let mut seed = torrent(&content, true, 1, TorrentConfig::default());
    let mut leech = torrent(&content, false, 2, TorrentConfig::default());
    seed.add_peer(2, 0);
    leech.add_peer(1, 0);
    // The leech's handshake is out, the seed's not yet in: a piece arrives by HTTP.
    let piece = 3 * PIECE as usize..4 * PIECE as usize;
    leech.piece_from_elsewhere(3, Bytes::copy_from_slice(&content[piece]));
    for step in 0..5 {
        exchange(&mut seed, &mut leech, step * 10, 0);
    }
    let closed: Vec<TorrentEvent> = std::iter::from_fn(|| seed.poll_event())
        .filter(|e| matches!(e, TorrentEvent::Closed(..)))
        .collect();
    assert!(closed.is_empty(), "{closed:?}");
    assert!(seed.peers[&2].connected);
    assert!(
        seed.peers[&2].session.peer_has.has(3),
        "the piece is in the leech's bitfield"
    );
}
