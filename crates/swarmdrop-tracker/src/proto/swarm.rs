//! Swarms: who is in each torrent, sans IO. The server keeps several of these behind
//! separate locks, one per shard of the info-hash space.
//!
//! Each swarm keeps its seeders and its leechers in two vectors plus one index by
//! address, so adding, updating, moving between groups and removing are O(1), and
//! picking `want` peers costs O(want): a walk of the wanted group from a random start.
//! Leechers are sent seeders first (what they need most), seeders only leechers (they
//! need nothing from other seeders). Everything is bounded: swarms per shard and peers
//! per swarm; peers that stop announcing expire.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use swarmdrop_manifest::InfoHash;

use super::udp::{AnnounceEvent, ScrapeStats};

/// Maps keyed by what peers send. foldhash with a per-process random seed: several times
/// cheaper than SipHash on this hot path, and an attacker who cannot learn the seed cannot
/// aim collisions (peer keys also carry the sender's own address, which it cannot choose
/// freely past the connection-id check).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Limits of one shard.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most swarms.
    pub max_swarms: usize,
    /// Most peers in one swarm (at most 2^31).
    pub max_peers_per_swarm: usize,
    /// Most peers in one swarm from one address (an IPv4 address or an IPv6 /64);
    /// 0 turns the cap off. Without it one host could fill a swarm by varying its port.
    pub max_peers_per_origin: usize,
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

    fn is_ipv4(self) -> bool {
        self.ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }

    /// The host a peer counts against: its IPv4 address, or its IPv6 /64 (one
    /// subscriber's allocation, which it can fill with addresses at will).
    fn origin(self) -> Origin {
        let mut bytes = [0u8; 8];
        if self.is_ipv4() {
            bytes[4..].copy_from_slice(&self.ip[12..]);
            Origin(bytes, true)
        } else {
            bytes.copy_from_slice(&self.ip[..8]);
            Origin(bytes, false)
        }
    }
}

/// See [`PeerKey::origin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Origin([u8; 8], bool);

#[derive(Debug, Clone, Copy)]
struct Peer {
    key: PeerKey,
    /// Unix seconds (u32 lasts until 2106).
    expires: u32,
}

/// Where a peer sits: its group in the top bit, its position in the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u32);

const SEEDER_BIT: u32 = 1 << 31;

impl Slot {
    fn new(seeder: bool, at: usize) -> Self {
        Slot(at as u32 | if seeder { SEEDER_BIT } else { 0 })
    }
    fn seeder(self) -> bool {
        self.0 & SEEDER_BIT != 0
    }
    fn at(self) -> usize {
        (self.0 & !SEEDER_BIT) as usize
    }
}

#[derive(Debug, Default)]
struct Swarm {
    seeders: Vec<Peer>,
    leechers: Vec<Peer>,
    index: HashMap<PeerKey, Slot>,
    /// Peers per origin, kept only when the per-origin cap is on.
    origins: HashMap<Origin, u32>,
    count_origins: bool,
    completed: u32,
}

fn until(now: u64, ttl: u64) -> u32 {
    u32::try_from(now.saturating_add(ttl)).unwrap_or(u32::MAX)
}

fn expired(peer: &Peer, now: u64) -> bool {
    u64::from(peer.expires) <= now
}

impl Swarm {
    fn group(&mut self, seeder: bool) -> &mut Vec<Peer> {
        if seeder {
            &mut self.seeders
        } else {
            &mut self.leechers
        }
    }

    fn len(&self) -> usize {
        self.seeders.len() + self.leechers.len()
    }

    fn insert(&mut self, peer: Peer, seeder: bool) {
        let group = self.group(seeder);
        group.push(peer);
        let slot = Slot::new(seeder, group.len() - 1);
        self.index.insert(peer.key, slot);
        if self.count_origins {
            *self.origins.entry(peer.key.origin()).or_default() += 1;
        }
    }

    fn peers_of_origin(&self, key: PeerKey) -> usize {
        self.origins.get(&key.origin()).map_or(0, |n| *n as usize)
    }

    fn remove(&mut self, slot: Slot) -> Peer {
        let group = self.group(slot.seeder());
        let peer = group.swap_remove(slot.at());
        let moved = group.get(slot.at()).map(|p| p.key);
        self.index.remove(&peer.key);
        if let Some(moved) = moved {
            self.index.insert(moved, slot);
        }
        if self.count_origins {
            let origin = peer.key.origin();
            if let Some(n) = self.origins.get_mut(&origin) {
                *n -= 1;
                if *n == 0 {
                    self.origins.remove(&origin);
                }
            }
        }
        peer
    }

    /// Removes expired peers; returns how many.
    fn expire(&mut self, now: u64) -> usize {
        let mut removed = 0;
        for seeder in [true, false] {
            let mut at = 0;
            while at < self.group(seeder).len() {
                if expired(&self.group(seeder)[at], now) {
                    self.remove(Slot::new(seeder, at));
                    removed += 1;
                } else {
                    at += 1;
                }
            }
        }
        removed
    }

    fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            seeders: self.seeders.len() as u32,
            completed: self.completed,
            leechers: self.leechers.len() as u32,
        }
    }
}

/// One peer's announce, as the store sees it.
#[derive(Debug, Clone, Copy)]
pub struct PeerAnnounce {
    /// Source address with the announced port.
    pub addr: SocketAddr,
    /// Bytes left (0 means seeder).
    pub left: u64,
    /// Event.
    pub event: AnnounceEvent,
}

/// How to choose the peers handed back.
#[derive(Debug, Clone, Copy)]
pub struct PeerChoice {
    /// At most this many.
    pub want: usize,
    /// Any u64 from the caller's RNG: where each walk starts.
    pub random: u64,
    /// Only peers of the announcing peer's address family (UDP answers carry one).
    pub same_family_only: bool,
}

/// What an announce changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
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
    /// This swarm holds its maximum of peers from the announcing address.
    #[error("this swarm holds its maximum of peers from your address")]
    TooManyFromOrigin,
}

impl SwarmFull {
    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            SwarmFull::TooManySwarms => "too_many_swarms",
            SwarmFull::TooManyPeers => "swarm_full",
            SwarmFull::TooManyFromOrigin => "address_cap",
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
    std::mem::size_of::<Peer>() + (std::mem::size_of::<(PeerKey, Slot)>() + 1) * 8 / 7;

impl Swarms {
    /// An empty shard.
    pub fn new(limits: Limits) -> Self {
        Self {
            swarms: HashMap::default(),
            limits,
            peers: 0,
        }
    }

    /// Records `peer`'s announce at `now` (seconds) and appends the chosen peers to `out`.
    pub fn announce(
        &mut self,
        now: u64,
        info_hash: InfoHash,
        peer: PeerAnnounce,
        choice: PeerChoice,
        out: &mut Vec<SocketAddr>,
    ) -> Result<Announced, SwarmFull> {
        if !self.swarms.contains_key(&info_hash) {
            if peer.event == AnnounceEvent::Stopped {
                return Ok(Announced {
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
        let count_origins = self.limits.max_peers_per_origin > 0;
        let swarm = self.swarms.entry(info_hash).or_insert_with(|| Swarm {
            count_origins,
            ..Swarm::default()
        });
        let seeder = peer.left == 0;
        let mut completed = false;
        let key = PeerKey::from(peer.addr);
        let expires = until(now, self.limits.peer_ttl);
        match (swarm.index.get(&key).copied(), peer.event) {
            (Some(slot), AnnounceEvent::Stopped) => {
                swarm.remove(slot);
                self.peers -= 1;
            }
            (None, AnnounceEvent::Stopped) => {}
            (Some(slot), _) if slot.seeder() == seeder => {
                swarm.group(seeder)[slot.at()].expires = expires;
            }
            (Some(slot), _) => {
                swarm.remove(slot);
                swarm.insert(Peer { key, expires }, seeder);
                completed = seeder;
            }
            (None, _) => {
                if swarm.len() >= self.limits.max_peers_per_swarm {
                    // Make room from the dead before refusing the living.
                    self.peers -= swarm.expire(now);
                    if swarm.len() >= self.limits.max_peers_per_swarm {
                        return Err(SwarmFull::TooManyPeers);
                    }
                }
                let cap = self.limits.max_peers_per_origin;
                if cap > 0 && swarm.peers_of_origin(key) >= cap {
                    self.peers -= swarm.expire(now);
                    if swarm.peers_of_origin(key) >= cap {
                        return Err(SwarmFull::TooManyFromOrigin);
                    }
                }
                swarm.insert(Peer { key, expires }, seeder);
                self.peers += 1;
            }
        }
        if peer.event == AnnounceEvent::Completed && seeder {
            completed = true;
        }
        if completed {
            swarm.completed = swarm.completed.saturating_add(1);
        }
        if peer.event != AnnounceEvent::Stopped {
            pick(swarm, key, seeder, choice, now, out);
        }
        let stats = swarm.stats();
        if swarm.len() == 0 {
            self.swarms.remove(&info_hash);
        }
        Ok(Announced { stats, completed })
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
            removed += swarm.expire(now);
            swarm.len() > 0
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

/// Appends up to `choice.want` live peers other than `me` to `out`: for a leecher
/// seeders first, then leechers; for a seeder, leechers only. Each group is walked from
/// a random start and the walk stops as soon as enough are found.
fn pick(
    swarm: &Swarm,
    me: PeerKey,
    me_seeder: bool,
    choice: PeerChoice,
    now: u64,
    out: &mut Vec<SocketAddr>,
) {
    let wanted = out.len() + choice.want;
    let my_family = me.is_ipv4();
    let groups: [&[Peer]; 2] = if me_seeder {
        [&swarm.leechers, &[]]
    } else {
        [&swarm.seeders, &swarm.leechers]
    };
    for group in groups {
        let n = group.len();
        if n == 0 {
            continue;
        }
        let start = (choice.random % n as u64) as usize;
        let (tail, head) = (&group[start..], &group[..start]);
        for peer in tail.iter().chain(head) {
            if out.len() >= wanted {
                return;
            }
            if peer.key != me
                && !expired(peer, now)
                && (!choice.same_family_only || peer.key.is_ipv4() == my_family)
            {
                out.push(peer.key.addr());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            max_swarms: 4,
            max_peers_per_swarm: 3,
            max_peers_per_origin: 0,
            peer_ttl: 100,
        }
    }

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + i))
    }

    const H: InfoHash = InfoHash([1; 20]);

    /// Announces and returns the outcome with the peers handed back.
    #[allow(clippy::too_many_arguments)]
    fn go(
        s: &mut Swarms,
        now: u64,
        hash: InfoHash,
        addr: SocketAddr,
        left: u64,
        event: AnnounceEvent,
        want: usize,
        random: u64,
    ) -> Result<(Announced, Vec<SocketAddr>), SwarmFull> {
        let mut out = Vec::new();
        let choice = PeerChoice {
            want,
            random,
            same_family_only: false,
        };
        let peer = PeerAnnounce { addr, left, event };
        s.announce(now, hash, peer, choice, &mut out)
            .map(|a| (a, out))
    }

    #[test]
    fn leechers_get_seeders_first_and_never_themselves() {
        let mut s = Swarms::new(Limits {
            max_peers_per_swarm: 100,
            ..limits()
        });
        for i in 0..5 {
            go(&mut s, 0, H, addr(i), 10, AnnounceEvent::Started, 50, 0).unwrap();
        }
        go(&mut s, 0, H, addr(9), 0, AnnounceEvent::Started, 50, 0).unwrap();
        let (out, peers) = go(&mut s, 0, H, addr(0), 10, AnnounceEvent::None, 2, 3).unwrap();
        assert_eq!(peers[0], addr(9));
        assert!(!peers.contains(&addr(0)));
        assert_eq!((out.stats.seeders, out.stats.leechers), (1, 5));
        let (_, seeder_view) = go(&mut s, 0, H, addr(9), 0, AnnounceEvent::None, 50, 1).unwrap();
        assert_eq!(seeder_view.len(), 5);
    }

    #[test]
    fn answers_keep_to_the_family_when_asked() {
        let mut s = Swarms::new(Limits {
            max_peers_per_swarm: 100,
            ..limits()
        });
        let v6: SocketAddr = "[2001:db8::1]:7000".parse().unwrap();
        go(&mut s, 0, H, v6, 0, AnnounceEvent::Started, 50, 0).unwrap();
        go(&mut s, 0, H, addr(1), 0, AnnounceEvent::Started, 50, 0).unwrap();
        let peer = PeerAnnounce {
            addr: addr(2),
            left: 5,
            event: AnnounceEvent::Started,
        };
        let mut out = Vec::new();
        let choice = PeerChoice {
            want: 50,
            random: 0,
            same_family_only: true,
        };
        s.announce(0, H, peer, choice, &mut out).unwrap();
        assert_eq!(out, vec![addr(1)]);
    }

    #[test]
    fn completion_stop_and_expiry() {
        let mut s = Swarms::new(limits());
        go(&mut s, 0, H, addr(1), 10, AnnounceEvent::Started, 10, 0).unwrap();
        let (done, _) = go(&mut s, 1, H, addr(1), 0, AnnounceEvent::Completed, 10, 0).unwrap();
        assert!(done.completed);
        assert_eq!(
            s.scrape(&H),
            ScrapeStats {
                seeders: 1,
                completed: 1,
                leechers: 0
            }
        );
        go(&mut s, 2, H, addr(1), 0, AnnounceEvent::Stopped, 10, 0).unwrap();
        assert_eq!((s.swarm_count(), s.peer_count()), (0, 0));
        go(&mut s, 0, H, addr(2), 10, AnnounceEvent::Started, 10, 0).unwrap();
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
            assert_eq!(PeerKey::from(addr).is_ipv4(), addr.is_ipv4());
        }
        const { assert!(BYTES_PER_PEER < 64) };
    }

    #[test]
    fn one_address_cannot_fill_a_swarm() {
        let mut s = Swarms::new(Limits {
            max_peers_per_swarm: 100,
            max_peers_per_origin: 2,
            ..limits()
        });
        let v6 =
            |last: u16| -> SocketAddr { format!("[2001:db8:0:1::{last:x}]:6881").parse().unwrap() };
        for i in 0..2 {
            go(&mut s, 0, H, addr(i), 10, AnnounceEvent::Started, 5, 0).unwrap();
            go(&mut s, 0, H, v6(i + 1), 10, AnnounceEvent::Started, 5, 0).unwrap();
        }
        assert_eq!(
            go(&mut s, 0, H, addr(2), 10, AnnounceEvent::Started, 5, 0).map(|_| ()),
            Err(SwarmFull::TooManyFromOrigin)
        );
        // The same /64 with another interface id is the same origin; another /64 is not.
        assert_eq!(
            go(&mut s, 0, H, v6(99), 10, AnnounceEvent::Started, 5, 0).map(|_| ()),
            Err(SwarmFull::TooManyFromOrigin)
        );
        let elsewhere: SocketAddr = "[2001:db8:0:2::1]:6881".parse().unwrap();
        assert!(go(&mut s, 0, H, elsewhere, 10, AnnounceEvent::Started, 5, 0).is_ok());
        // Known peers keep announcing, and a stop frees a slot.
        assert!(go(&mut s, 1, H, addr(0), 0, AnnounceEvent::Completed, 5, 0).is_ok());
        go(&mut s, 1, H, addr(1), 10, AnnounceEvent::Stopped, 5, 0).unwrap();
        assert!(go(&mut s, 1, H, addr(2), 10, AnnounceEvent::Started, 5, 0).is_ok());
        // So does expiry.
        assert!(go(&mut s, 500, H, addr(3), 10, AnnounceEvent::Started, 5, 0).is_ok());
    }

    #[test]
    fn limits_hold() {
        let mut s = Swarms::new(limits());
        for i in 0..3 {
            go(&mut s, 0, H, addr(i), 10, AnnounceEvent::Started, 10, 0).unwrap();
        }
        assert_eq!(
            go(&mut s, 0, H, addr(3), 10, AnnounceEvent::Started, 10, 0).map(|_| ()),
            Err(SwarmFull::TooManyPeers)
        );
        // Expired peers make room.
        assert!(go(&mut s, 150, H, addr(3), 10, AnnounceEvent::Started, 10, 0).is_ok());
        for i in 0..3u8 {
            let hash = InfoHash([10 + i; 20]);
            go(
                &mut s,
                150,
                hash,
                addr(1),
                10,
                AnnounceEvent::Started,
                10,
                0,
            )
            .unwrap();
        }
        let hash = InfoHash([50; 20]);
        assert_eq!(
            go(
                &mut s,
                150,
                hash,
                addr(1),
                10,
                AnnounceEvent::Started,
                10,
                0
            )
            .map(|_| ()),
            Err(SwarmFull::TooManySwarms)
        );
    }

    proptest! {
        /// Counts and the index always match the peers held, whatever the sequence of
        /// announces, and answers hold no one twice, never the asker, never the dead.
        #[test]
        fn counts_stay_consistent(ops in proptest::collection::vec((0u8..3, 0u16..6, any::<bool>(), 0u8..4, 0u64..300, 0usize..6), 1..200)) {
            let mut s = Swarms::new(Limits { max_swarms: 2, max_peers_per_swarm: 4, max_peers_per_origin: 2, peer_ttl: 50 });
            for (hash, peer, seeder, event, now, want) in ops {
                let peer = peer % 6;
                let event = [AnnounceEvent::None, AnnounceEvent::Completed, AnnounceEvent::Started, AnnounceEvent::Stopped][event as usize];
                // Peers 0-2 share 127.0.0.1, 3-5 share 127.0.0.2 (the cap is 2 per address).
                let from = SocketAddr::from(([127, 0, 0, 1 + (peer / 3) as u8], 7000 + peer));
                if let Ok((_, peers)) = go(&mut s, now, InfoHash([hash; 20]), from, u64::from(!seeder), event, want, now) {
                    prop_assert!(peers.len() <= want);
                    prop_assert!(!peers.contains(&from));
                    let unique: std::collections::HashSet<_> = peers.iter().collect();
                    prop_assert_eq!(unique.len(), peers.len());
                }
                let held: usize = s.swarms.values().map(Swarm::len).sum();
                prop_assert_eq!(held, s.peer_count());
                for swarm in s.swarms.values() {
                    prop_assert!(swarm.len() <= 4);
                    prop_assert_eq!(swarm.index.len(), swarm.len());
                    let counted: u32 = swarm.origins.values().sum();
                    prop_assert_eq!(counted as usize, swarm.len());
                    prop_assert!(swarm.origins.values().all(|n| (1..=2).contains(n)));
                    for (seeder, group) in [(true, &swarm.seeders), (false, &swarm.leechers)] {
                        for (at, p) in group.iter().enumerate() {
                            prop_assert_eq!(swarm.index.get(&p.key), Some(&Slot::new(seeder, at)));
                        }
                    }
                }
                prop_assert!(s.swarm_count() <= 2);
            }
        }
    }
}
