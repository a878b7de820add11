//! The deterministic swarm: 50 torrents in one process, joined by emulated links with a
//! fake clock. One seeder, one liar that claims every piece and sends corrupted blocks,
//! 48 honest leechers. Every random choice comes from one seed, so a run is reproducible.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use sha1::{Digest as _, Sha1};

use super::*;

pub(super) const PIECE: u32 = 32 * 1024;
const PIECES: u32 = 48;
const PEERS: u32 = 50;
const SEEDER: PeerKey = 0;
const LIAR: PeerKey = 1;
/// Milliseconds per step.
const STEP: Millis = 10;

pub(super) struct MemoryStore {
    pub(super) data: Vec<u8>,
    /// Flip a byte of every block read (the liar).
    pub(super) corrupt: bool,
}

impl Store for MemoryStore {
    fn read(&mut self, block: BlockRef) -> Option<Bytes> {
        let start = block.index as usize * PIECE as usize + block.begin as usize;
        let mut bytes = self
            .data
            .get(start..start + block.length as usize)?
            .to_vec();
        if self.corrupt {
            bytes[0] ^= 0xff;
        }
        Some(Bytes::from(bytes))
    }
    fn write(&mut self, block: BlockRef, data: &[u8]) {
        let start = block.index as usize * PIECE as usize + block.begin as usize;
        if let Some(slot) = self.data.get_mut(start..start + data.len()) {
            slot.copy_from_slice(data);
        }
    }
    fn piece(&mut self, index: u32, length: u32) -> Option<Vec<u8>> {
        let start = index as usize * PIECE as usize;
        self.data
            .get(start..start + length as usize)
            .map(<[u8]>::to_vec)
    }
}

struct Link {
    /// Bytes in flight, in order.
    queue: Vec<u8>,
    /// Bytes per step this direction carries.
    rate: usize,
}

struct Outcome {
    completed_at: BTreeMap<PeerKey, Millis>,
    banned_by: Vec<(PeerKey, PeerKey)>,
    hash_failures: usize,
    /// Blocks held against an honest peer as never asked for.
    unrequested_from_honest: usize,
    /// Blocks that came after their request was withdrawn.
    late: usize,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The torrent of `content` in pieces of `PIECE`.
pub(super) fn info_for(content: &[u8], info_hash: [u8; 20]) -> TorrentInfo {
    TorrentInfo {
        info_hash,
        piece_length: PIECE,
        total_length: content.len() as u64,
        piece_hashes: content
            .chunks(PIECE as usize)
            .map(|piece| <[u8; 20]>::from(Sha1::digest(piece)))
            .collect(),
    }
}

fn run(seed: u64) -> Outcome {
    let mut rng = seed | 1;
    let content: Vec<u8> = (0..PIECE * PIECES)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let info = info_for(&content, [3; 20]);
    let mut torrents: Vec<Torrent<MemoryStore>> = (0..PEERS)
        .map(|key| {
            let seeds = key == SEEDER || key == LIAR;
            let store = MemoryStore {
                data: if seeds {
                    content.clone()
                } else {
                    vec![0; content.len()]
                },
                corrupt: key == LIAR,
            };
            let have = if seeds {
                Bitfield::full(PIECES)
            } else {
                Bitfield::empty(PIECES)
            };
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&key.to_be_bytes());
            Torrent::new(
                info.clone(),
                TorrentConfig::default(),
                id,
                store,
                &have,
                xorshift(&mut rng),
            )
            .unwrap()
        })
        .collect();
    // Each peer connects to the seeder, the liar, and six random others.
    let mut links: HashMap<(PeerKey, PeerKey), Link> = HashMap::new();
    let mut connect =
        |a: PeerKey, b: PeerKey, rng: &mut u64, torrents: &mut Vec<Torrent<MemoryStore>>| {
            if a == b || links.contains_key(&(a, b)) {
                return;
            }
            // 64 KiB/s to 1 MiB/s each way, per link.
            for (from, to) in [(a, b), (b, a)] {
                let rate = (655 + (xorshift(rng) % 9_830) as usize).max(1);
                links.insert(
                    (from, to),
                    Link {
                        queue: Vec::new(),
                        rate,
                    },
                );
            }
            torrents[a as usize].add_peer(b, 0);
            torrents[b as usize].add_peer(a, 0);
        };
    for key in 2..PEERS {
        connect(key, SEEDER, &mut rng, &mut torrents);
        connect(key, LIAR, &mut rng, &mut torrents);
        for _ in 0..6 {
            let other = 2 + (xorshift(&mut rng) % u64::from(PEERS - 2)) as PeerKey;
            connect(key, other, &mut rng, &mut torrents);
        }
    }
    let mut outcome = Outcome {
        completed_at: BTreeMap::new(),
        banned_by: Vec::new(),
        hash_failures: 0,
        unrequested_from_honest: 0,
        late: 0,
    };
    let mut order: Vec<(PeerKey, PeerKey)> = links.keys().copied().collect();
    order.sort_unstable();
    let mut now = 0;
    while now < 600_000 && outcome.completed_at.len() < (PEERS - 2) as usize {
        now += STEP;
        // Senders hand their bytes to the links; links deliver at their rate.
        for &(from, to) in &order {
            let Some(link) = links.get_mut(&(from, to)) else {
                continue;
            };
            loop {
                let bytes = torrents[from as usize].poll_transmit(to, now);
                if bytes.is_empty() {
                    break;
                }
                link.queue.extend_from_slice(&bytes);
            }
            let n = link.rate.min(link.queue.len());
            if n > 0 {
                let delivered: Vec<u8> = link.queue.drain(..n).collect();
                torrents[to as usize].handle_bytes(from, now, &delivered);
            }
        }
        for (key, torrent) in torrents.iter_mut().enumerate() {
            torrent.handle_timeout(now);
            while let Some(event) = torrent.poll_event() {
                match event {
                    TorrentEvent::Complete => {
                        outcome.completed_at.entry(key as PeerKey).or_insert(now);
                    }
                    TorrentEvent::Banned(peer) => outcome.banned_by.push((key as PeerKey, peer)),
                    TorrentEvent::HashFailed(_) => outcome.hash_failures += 1,
                    TorrentEvent::Closed(peer, _) => {
                        links.remove(&(key as PeerKey, peer));
                    }
                    TorrentEvent::Unrequested(peer) if peer != LIAR => {
                        outcome.unrequested_from_honest += 1
                    }
                    TorrentEvent::Late(_) => outcome.late += 1,
                    TorrentEvent::PieceVerified(_)
                    | TorrentEvent::Unrequested(_)
                    | TorrentEvent::CheckPiece { .. } => {}
                }
            }
        }
        // A closed connection is closed on both ends.
        order.retain(|pair| links.contains_key(pair) && links.contains_key(&(pair.1, pair.0)));
    }
    // Every honest leecher holds exactly the content.
    for key in 2..PEERS {
        let torrent = &mut torrents[key as usize];
        if torrent.complete() {
            assert_eq!(
                torrent.store_mut().data,
                content,
                "peer {key} completed with wrong bytes"
            );
        }
    }
    outcome
}

#[test]
fn fifty_peers_complete_and_the_liar_is_banned() {
    let outcome = run(0x5eed);
    eprintln!(
        "completed: {} (last at {} ms); hash failures {}; bans {:?}; late blocks {}",
        outcome.completed_at.len(),
        outcome.completed_at.values().max().copied().unwrap_or(0),
        outcome.hash_failures,
        outcome.banned_by,
        outcome.late
    );
    assert_eq!(
        outcome.unrequested_from_honest, 0,
        "honest peers answer only what was asked (late answers to cancels are not unrequested)"
    );
    assert_eq!(
        outcome.completed_at.len(),
        (PEERS - 2) as usize,
        "honest leechers that completed: {:?}",
        outcome.completed_at.keys().collect::<Vec<_>>()
    );
    assert!(
        outcome.hash_failures > 0,
        "the liar's pieces were caught by their hashes"
    );
    assert!(!outcome.banned_by.is_empty(), "the liar was banned");
    let mut banners: Vec<PeerKey> = outcome.banned_by.iter().map(|(by, _)| *by).collect();
    banners.sort_unstable();
    banners.dedup();
    assert_eq!(
        banners.len(),
        outcome.banned_by.len(),
        "a ban is reported once per peer"
    );
    for (by, banned) in &outcome.banned_by {
        assert_eq!(*banned, LIAR, "peer {by} banned an honest peer {banned}");
    }
}

#[test]
fn a_run_is_reproducible_from_its_seed() {
    let (a, b) = (run(42), run(42));
    assert_eq!(a.completed_at, b.completed_at);
    assert_eq!(a.banned_by, b.banned_by);
    assert_eq!(a.hash_failures, b.hash_failures);
}
