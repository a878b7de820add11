//! The choker, sans IO: every round (10 s in BEP 3's terms; the torrent's
//! `rechoke_every`, 3 s by default) it decides which peers we upload to.
//!
//! Leeching: tit-for-tat. The interested peers that upload to us fastest get the regular
//! slots, and one more slot goes to an optimistic unchoke, moved to another choked peer
//! every few rounds, so that newcomers get a chance to prove themselves. Seeding: nobody
//! uploads to us, so slots rotate round robin: each round the peers that waited longest
//! since their last turn get it, the faster ones first among equals. A cap on unchoked
//! peers holds either way.

use std::collections::HashMap;

use crate::picker::PeerKey;

/// What the choker knows of a peer this round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerRates {
    /// The caller's key for the peer.
    pub key: PeerKey,
    /// True when the peer wants something we have.
    pub interested: bool,
    /// Bytes per second it sent us lately.
    pub download_rate: f64,
    /// Bytes per second we sent it lately.
    pub upload_rate: f64,
}

/// Decides who is unchoked.
#[derive(Debug, Clone)]
pub struct Choker {
    slots: usize,
    optimistic_every: u64,
    round: u64,
    optimistic: Option<PeerKey>,
    last_turn: HashMap<PeerKey, u64>,
}

impl Choker {
    /// At most `slots` peers unchoked (one of them optimistic when leeching); the
    /// optimistic slot moves every `optimistic_every` rounds.
    pub fn new(slots: usize, optimistic_every: u64) -> Self {
        Self {
            slots: slots.max(1),
            optimistic_every: optimistic_every.max(1),
            round: 0,
            optimistic: None,
            last_turn: HashMap::new(),
        }
    }

    /// The peer holding the optimistic slot, if any.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// One round: the peers to have unchoked (everyone else choked). `random` picks the
    /// optimistic peer when it moves.
    pub fn rechoke(&mut self, peers: &[PeerRates], seeding: bool, random: u64) -> Vec<PeerKey> {
        self.round += 1;
        let present: std::collections::HashSet<PeerKey> = peers.iter().map(|p| p.key).collect();
        self.last_turn.retain(|key, _| present.contains(key));
        let mut interested: Vec<&PeerRates> = peers.iter().filter(|p| p.interested).collect();
        let unchoked = if seeding {
            self.optimistic = None;
            // Longest wait since a turn first (never is longest), then the faster.
            interested.sort_by(|a, b| {
                let turn = |p: &PeerRates| self.last_turn.get(&p.key).copied();
                turn(a)
                    .cmp(&turn(b))
                    .then(b.upload_rate.total_cmp(&a.upload_rate))
                    .then(a.key.cmp(&b.key))
            });
            interested
                .iter()
                .take(self.slots)
                .map(|p| p.key)
                .collect::<Vec<_>>()
        } else {
            interested.sort_by(|a, b| {
                b.download_rate
                    .total_cmp(&a.download_rate)
                    .then(a.key.cmp(&b.key))
            });
            let regular = self
                .slots
                .saturating_sub(1)
                .max(if self.slots == 1 { 1 } else { 0 });
            let mut chosen: Vec<PeerKey> = interested.iter().take(regular).map(|p| p.key).collect();
            let still_valid = self
                .optimistic
                .filter(|key| interested.iter().any(|p| p.key == *key) && !chosen.contains(key));
            let due = self.round % self.optimistic_every == 1 || self.optimistic_every == 1;
            self.optimistic = match still_valid {
                Some(key) if !due => Some(key),
                _ => {
                    let candidates: Vec<PeerKey> = interested
                        .iter()
                        .map(|p| p.key)
                        .filter(|k| !chosen.contains(k))
                        .collect();
                    (!candidates.is_empty())
                        .then(|| candidates[(random % candidates.len() as u64) as usize])
                }
            };
            if chosen.len() < self.slots {
                if let Some(key) = self.optimistic {
                    chosen.push(key);
                }
            }
            chosen
        };
        for key in &unchoked {
            self.last_turn.insert(*key, self.round);
        }
        unchoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(key: PeerKey, interested: bool, down: f64, up: f64) -> PeerRates {
        PeerRates {
            key,
            interested,
            download_rate: down,
            upload_rate: up,
        }
    }

    #[test]
    fn leeching_is_tit_for_tat_plus_one_optimistic() {
        let mut choker = Choker::new(3, 3);
        let peers = [
            peer(1, true, 100.0, 0.0),
            peer(2, true, 500.0, 0.0),
            peer(3, true, 300.0, 0.0),
            peer(4, true, 0.0, 0.0),
            peer(5, false, 900.0, 0.0),
        ];
        let unchoked = choker.rechoke(&peers, false, 0);
        assert_eq!(&unchoked[..2], &[2, 3], "the two fastest uploaders");
        assert_eq!(unchoked.len(), 3);
        let optimistic = choker.optimistic().unwrap();
        assert!([1, 4].contains(&optimistic) && unchoked.contains(&optimistic));
        assert!(!unchoked.contains(&5), "not interested: not unchoked");
        // The optimistic slot stays put between moves.
        assert_eq!(choker.rechoke(&peers, false, 1).last(), Some(&optimistic));
    }

    #[test]
    fn seeding_rotates_so_everyone_gets_a_turn() {
        let mut choker = Choker::new(2, 3);
        let peers: Vec<PeerRates> = (1..=5).map(|k| peer(k, true, 0.0, f64::from(k))).collect();
        let mut served = std::collections::HashSet::new();
        for round in 0..3 {
            let unchoked = choker.rechoke(&peers, true, round);
            assert_eq!(unchoked.len(), 2);
            served.extend(unchoked);
        }
        assert_eq!(
            served.len(),
            5,
            "every interested peer had a turn in three rounds"
        );
    }

    proptest! {
        #[test]
        fn the_cap_holds_and_only_the_interested_are_unchoked(
            slots in 1usize..6,
            peers in proptest::collection::vec((any::<bool>(), 0.0f64..1e6, 0.0f64..1e6), 0..20),
            rounds in 1usize..10,
            seeding in any::<bool>(),
        ) {
            let peers: Vec<PeerRates> = peers
                .iter()
                .enumerate()
                .map(|(k, (i, d, u))| peer(k as PeerKey, *i, *d, *u))
                .collect();
            let mut choker = Choker::new(slots, 3);
            for round in 0..rounds {
                let unchoked = choker.rechoke(&peers, seeding, round as u64);
                prop_assert!(unchoked.len() <= slots);
                let unique: std::collections::HashSet<_> = unchoked.iter().collect();
                prop_assert_eq!(unique.len(), unchoked.len());
                for key in &unchoked {
                    prop_assert!(peers[*key as usize].interested);
                }
                let interested = peers.iter().filter(|p| p.interested).count();
                prop_assert_eq!(unchoked.len(), interested.min(slots));
            }
        }
    }
}
