//! Swarms: who is in each torrent, sans IO. The server keeps several of these behind
//! separate locks, one per shard of the info-hash space.
//!
//! Each swarm is a vector of peers plus an index by address, so adding, updating and
//! removing are O(1) and picking peers is a random walk from a random start. Leechers
//! are sent seeders first (what they need most), seeders only leechers (they need
//! nothing from other seeders). Everything is bounded: swarms per shard and peers per
//! swarm; peers that stop announcing expire.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use swarmdrop_manifest::InfoHash;

use super::udp::{AnnounceEvent, ScrapeStats};

/// Limits of one shard.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most swarms.
    pub max_swarms: usize,
    /// Most peers in one swarm.
    pub max_peers_per_swarm: usize,
    /// Seconds a peer stays without announcing again.
    pub peer_ttl: u64,
}

/// A peer's address in 18 bytes (IPv4 as IPv4-mapped IPv6) instead of the 32 of a
/// `SocketAddr`: at a million peers the difference is tens of megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PeerKey {
    ip: [u8; 16],
    port: u16,
}

impl From<SocketAddr> for PeerKey {
    fn from(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        PeerKey {
            ip,
            port: addr.port(),
        }
    }
}

impl PeerKey {
    fn addr(self) -> SocketAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), self.port),
            None => SocketAddr::new(IpAddr::V6(v6), self.port),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    key: PeerKey,
    /// Unix seconds (u32 lasts until 2106).
    expires: u32,
    seeder: bool,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: Vec<Peer>,
    index: HashMap<PeerKey, u32>,
    seeders: usize,
    completed: u32,
}

fn until(now: u64, ttl: u64) -> u32 {
    u32::try_from(now.saturating_add(ttl)).unwrap_or(u32::MAX)
}

fn expired(peer: &Peer, now: u64) -> bool {
    u64::from(peer.expires) <= now
}

impl Swarm {
    fn remove_at(&mut self, at: usize) {
        let peer = self.peers.swap_remove(at);
        self.index.remove(&peer.key);
        if peer.seeder {
            self.seeders -= 1;
        }
        if let Some(moved) = self.peers.get(at) {
            self.index.insert(moved.key, at as u32);
        }
    }

    fn stats(&self) -> ScrapeStats {
        let seeders = self.seeders as u32;
        ScrapeStats {
            seeders,
            completed: self.completed,
            leechers: self.peers.len() as u32 - seeders,
        }
    }
}

/// What an announce changed and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Peers to hand back.
    pub peers: Vec<SocketAddr>,
    /// Counts after the announce.
    pub stats: ScrapeStats,
    /// True when this announce turned a leecher into a seeder (a completion).
    pub completed: bool,
}

/// Why an announce was refused by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SwarmFull {
    /// The shard holds its maximum of swarms.
    #[error("the tracker holds its maximum number of swarms")]
    TooManySwarms,
    /// This swarm holds its maximum of peers.
    #[error("this swarm is full")]
    TooManyPeers,
}

impl SwarmFull {
    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            SwarmFull::TooManySwarms => "too_many_swarms",
            SwarmFull::TooManyPeers => "swarm_full",
        }
    }
}

/// One shard of swarms.
#[derive(Debug)]
pub struct Swarms {
    swarms: HashMap<InfoHash, Swarm>,
    limits: Limits,
    peers: usize,
}

/// Approximate bytes one peer costs: its entry and its index slot (the hash map's
/// load factor and control bytes included).
pub const BYTES_PER_PEER: usize =
    std::mem::size_of::<Peer>() + (std::mem::size_of::<(PeerKey, u32)>() + 1) * 8 / 7;

impl Swarms {
    /// An empty shard.
    pub fn new(limits: Limits) -> Self {
        Self {
            swarms: HashMap::new(),
            limits,
            peers: 0,
        }
    }

    /// Records an announce from `addr` at `now` (seconds) and picks up to `want` peers
    /// using `random` (any u64 from the caller's RNG).
    #[allow(clippy::too_many_arguments)]
    pub fn announce(
        &mut self,
        now: u64,
        info_hash: InfoHash,
        addr: SocketAddr,
        left: u64,
        event: AnnounceEvent,
        want: usize,
        random: u64,
    ) -> Result<AnnounceOutcome, SwarmFull> {
        if !self.swarms.contains_key(&info_hash) {
            if event == AnnounceEvent::Stopped {
                return Ok(AnnounceOutcome {
                    peers: vec![],
                    stats: ScrapeStats::default(),
                    completed: false,
                });
            }
            if self.swarms.len() >= self.limits.max_swarms {
                self.expire(now);
                if self.swarms.len() >= self.limits.max_swarms {
                    return Err(SwarmFull::TooManySwarms);
                }
            }
        }
        let swarm = self.swarms.entry(info_hash).or_default();
        let seeder = left == 0;
        let mut completed = false;
        let key = PeerKey::from(addr);
        match (swarm.index.get(&key).map(|at| *at as usize), event) {
            (Some(at), AnnounceEvent::Stopped) => {
                swarm.remove_at(at);
                self.peers -= 1;
            }
            (None, AnnounceEvent::Stopped) => {}
            (Some(at), _) => {
                let peer = &mut swarm.peers[at];
                if seeder && !peer.seeder {
                    swarm.seeders += 1;
                    completed = true;
                } else if !seeder && peer.seeder {
                    swarm.seeders -= 1;
                }
                peer.seeder = seeder;
                peer.expires = until(now, self.limits.peer_ttl);
            }
            (None, _) => {
                if swarm.peers.len() >= self.limits.max_peers_per_swarm {
                    // Make room from the dead before refusing the living.
                    let before = swarm.peers.len();
                    let mut at = 0;
                    while at < swarm.peers.len() {
                        if expired(&swarm.peers[at], now) {
                            swarm.remove_at(at);
                        } else {
                            at += 1;
                        }
                    }
                    self.peers -= before - swarm.peers.len();
                    if swarm.peers.len() >= self.limits.max_peers_per_swarm {
                        return Err(SwarmFull::TooManyPeers);
                    }
                }
                swarm.index.insert(key, swarm.peers.len() as u32);
                swarm.peers.push(Peer {
                    key,
                    seeder,
                    expires: until(now, self.limits.peer_ttl),
                });
                if seeder {
                    swarm.seeders += 1;
                }
                self.peers += 1;
            }
        }
        if event == AnnounceEvent::Completed && seeder {
            completed = true;
        }
        if completed {
            swarm.completed = swarm.completed.saturating_add(1);
        }
        let peers = if event == AnnounceEvent::Stopped {
            Vec::new()
        } else {
            pick(swarm, key, seeder, want, random, now)
        };
        let stats = swarm.stats();
        if swarm.peers.is_empty() {
            self.swarms.remove(&info_hash);
        }
        Ok(AnnounceOutcome {
            peers,
            stats,
            completed,
        })
    }

    /// Scrape numbers of a swarm (zeros for one we do not hold).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// Removes peers whose time is up, and empty swarms.
    pub fn expire(&mut self, now: u64) {
        let mut removed = 0;
        self.swarms.retain(|_, swarm| {
            let mut at = 0;
            while at < swarm.peers.len() {
                if expired(&swarm.peers[at], now) {
                    swarm.remove_at(at);
                    removed += 1;
                } else {
                    at += 1;
                }
            }
            !swarm.peers.is_empty()
        });
        self.peers -= removed;
    }

    /// Swarms held.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers held.
    pub fn peer_count(&self) -> usize {
        self.peers
    }
}

/// Up to `want` live peers other than `me`: for a leecher seeders first, then leechers;
/// for a seeder, leechers only. Each group is walked from a random start.
fn pick(
    swarm: &Swarm,
    me: PeerKey,
    me_seeder: bool,
    want: usize,
    random: u64,
    now: u64,
) -> Vec<SocketAddr> {
    let n = swarm.peers.len();
    if n == 0 || want == 0 {
        return Vec::new();
    }
    let start = (random % n as u64) as usize;
    let mut out = Vec::with_capacity(want.min(n));
    let groups: &[bool] = if me_seeder { &[false] } else { &[true, false] };
    for &wanted_seeder in groups {
        for k in 0..n {
            if out.len() == want {
                return out;
            }
            let peer = &swarm.peers[(start + k) % n];
            if peer.seeder == wanted_seeder && peer.key != me && !expired(peer, now) {
                out.push(peer.key.addr());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            max_swarms: 4,
            max_peers_per_swarm: 3,
            peer_ttl: 100,
        }
    }

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + i))
    }

    const H: InfoHash = InfoHash([1; 20]);

    #[test]
    fn leechers_get_seeders_first_and_never_themselves() {
        let mut s = Swarms::new(Limits {
            max_peers_per_swarm: 100,
            ..limits()
        });
        for i in 0..5 {
            s.announce(0, H, addr(i), 10, AnnounceEvent::Started, 50, 0)
                .unwrap();
        }
        s.announce(0, H, addr(9), 0, AnnounceEvent::Started, 50, 0)
            .unwrap();
        let out = s
            .announce(0, H, addr(0), 10, AnnounceEvent::None, 2, 3)
            .unwrap();
        assert_eq!(out.peers[0], addr(9));
        assert!(!out.peers.contains(&addr(0)));
        assert_eq!((out.stats.seeders, out.stats.leechers), (1, 5));
        let seeder_view = s
            .announce(0, H, addr(9), 0, AnnounceEvent::None, 50, 1)
            .unwrap();
        assert_eq!(seeder_view.peers.len(), 5);
    }

    #[test]
    fn completion_stop_and_expiry() {
        let mut s = Swarms::new(limits());
        s.announce(0, H, addr(1), 10, AnnounceEvent::Started, 10, 0)
            .unwrap();
        let done = s
            .announce(1, H, addr(1), 0, AnnounceEvent::Completed, 10, 0)
            .unwrap();
        assert!(done.completed);
        assert_eq!(
            s.scrape(&H),
            ScrapeStats {
                seeders: 1,
                completed: 1,
                leechers: 0
            }
        );
        s.announce(2, H, addr(1), 0, AnnounceEvent::Stopped, 10, 0)
            .unwrap();
        assert_eq!((s.swarm_count(), s.peer_count()), (0, 0));
        s.announce(0, H, addr(2), 10, AnnounceEvent::Started, 10, 0)
            .unwrap();
        s.expire(200);
        assert_eq!((s.swarm_count(), s.peer_count()), (0, 0));
    }

    #[test]
    fn addresses_survive_the_compact_form() {
        for text in [
            "127.0.0.1:6881",
            "[::1]:6881",
            "[2001:db8::7]:1",
            "10.1.2.3:65535",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(PeerKey::from(addr).addr(), addr);
        }
        const { assert!(BYTES_PER_PEER < 64) };
    }

    #[test]
    fn limits_hold() {
        let mut s = Swarms::new(limits());
        for i in 0..3 {
            s.announce(0, H, addr(i), 10, AnnounceEvent::Started, 10, 0)
                .unwrap();
        }
        assert_eq!(
            s.announce(0, H, addr(3), 10, AnnounceEvent::Started, 10, 0),
            Err(SwarmFull::TooManyPeers)
        );
        // Expired peers make room.
        assert!(s
            .announce(150, H, addr(3), 10, AnnounceEvent::Started, 10, 0)
            .is_ok());
        for i in 0..3u8 {
            s.announce(
                150,
                InfoHash([10 + i; 20]),
                addr(1),
                10,
                AnnounceEvent::Started,
                10,
                0,
            )
            .unwrap();
        }
        assert_eq!(
            s.announce(
                150,
                InfoHash([50; 20]),
                addr(1),
                10,
                AnnounceEvent::Started,
                10,
                0
            ),
            Err(SwarmFull::TooManySwarms)
        );
    }

    proptest! {
        /// Counts always match the peers held, whatever the sequence of announces.
        #[test]
        fn counts_stay_consistent(ops in proptest::collection::vec((0u8..3, 0u16..6, any::<bool>(), 0u8..4, 0u64..300), 1..200)) {
            let mut s = Swarms::new(Limits { max_swarms: 2, max_peers_per_swarm: 4, peer_ttl: 50 });
            for (hash, peer, seeder, event, now) in ops {
                let event = [AnnounceEvent::None, AnnounceEvent::Completed, AnnounceEvent::Started, AnnounceEvent::Stopped][event as usize];
                let _ = s.announce(now, InfoHash([hash; 20]), addr(peer), u64::from(!seeder), event, 3, now);
                let held: usize = s.swarms.values().map(|w| w.peers.len()).sum();
                prop_assert_eq!(held, s.peer_count());
                for swarm in s.swarms.values() {
                    prop_assert_eq!(swarm.peers.iter().filter(|p| p.seeder).count(), swarm.seeders);
                    prop_assert!(swarm.peers.len() <= 4);
                    for (at, p) in swarm.peers.iter().enumerate() {
                        prop_assert_eq!(swarm.index.get(&p.key), Some(&(at as u32)));
                    }
                }
                prop_assert!(s.swarm_count() <= 2);
            }
        }
    }
}
