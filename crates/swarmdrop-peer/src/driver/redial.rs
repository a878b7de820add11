//! Which peer addresses to dial again, sans IO.
//!
//! A download must not stall because the peers it knew of went away once: a connection
//! that closes (the peer restarted, choked and dropped us, or we closed it over a protocol
//! error) or that never opened is tried again after a delay that doubles with each
//! short-lived attempt — 5 s, 10 s, 20 s… up to two minutes — and resets once a
//! connection has lasted a while. Banned peers (bad data) are never dialed again.
//! Addresses come from `--peer` and from trackers; a tracker naming an address again
//! does not jump its queue.
//!
//! Time is the caller's, in milliseconds.

use std::collections::HashMap;
use std::net::SocketAddr;

use swarmdrop_wire::picker::PeerKey;

/// The first delay before dialing an address again.
pub(crate) const FIRST_DELAY_MS: u64 = 5_000;
/// The longest delay between attempts.
pub(crate) const MAX_DELAY_MS: u64 = 120_000;
/// A connection that lasted this long was a good one: the next delay starts over.
pub(crate) const HEALTHY_MS: u64 = 60_000;
/// Addresses remembered; further ones are ignored (trackers hand out bounded lists, so
/// only a hostile source reaches this).
pub(crate) const MAX_ADDRESSES: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A dial is under way.
    Dialing,
    /// Connected, since this time.
    Connected(PeerKey, u64),
    /// Waiting to be dialed at this time.
    Waiting(u64),
    /// Sent bad data: never again.
    Banned,
}

#[derive(Debug, Clone, Copy)]
struct Address {
    state: State,
    /// Short-lived attempts in a row.
    failures: u32,
}

/// Addresses we dial, and when to dial them again.
#[derive(Debug, Default, Clone)]
pub(crate) struct Redial {
    addresses: HashMap<SocketAddr, Address>,
    /// Connections we dialed, to their address.
    keys: HashMap<PeerKey, SocketAddr>,
}

impl Redial {
    /// An address was named (by `--peer` or a tracker): true when it is new, and then
    /// it counts as being dialed.
    pub(crate) fn learn(&mut self, addr: SocketAddr) -> bool {
        if self.addresses.contains_key(&addr) || self.addresses.len() >= MAX_ADDRESSES {
            return false;
        }
        self.addresses.insert(
            addr,
            Address {
                state: State::Dialing,
                failures: 0,
            },
        );
        true
    }

    /// A connection we dialed reached BitTorrent.
    pub(crate) fn opened(&mut self, addr: SocketAddr, key: PeerKey, now: u64) {
        if let Some(a) = self.addresses.get_mut(&addr) {
            if a.state != State::Banned {
                a.state = State::Connected(key, now);
                self.keys.insert(key, addr);
            }
        }
    }

    /// A dial to `addr` failed before BitTorrent began.
    pub(crate) fn unreachable(&mut self, addr: SocketAddr, now: u64) {
        if let Some(a) = self.addresses.get_mut(&addr) {
            if a.state == State::Dialing {
                a.failures = a.failures.saturating_add(1);
                a.state = State::Waiting(now.saturating_add(delay(a.failures)));
            }
        }
    }

    /// A connection ended (any connection: those we did not dial are ignored).
    pub(crate) fn closed(&mut self, key: PeerKey, now: u64) {
        let Some(addr) = self.keys.remove(&key) else {
            return;
        };
        if let Some(a) = self.addresses.get_mut(&addr) {
            if let State::Connected(_, since) = a.state {
                a.failures = if now.saturating_sub(since) >= HEALTHY_MS {
                    1
                } else {
                    a.failures.saturating_add(1)
                };
                a.state = State::Waiting(now.saturating_add(delay(a.failures)));
            }
        }
    }

    /// A connection sent bad data: its address is never dialed again.
    pub(crate) fn banned(&mut self, key: PeerKey) {
        if let Some(addr) = self.keys.remove(&key) {
            if let Some(a) = self.addresses.get_mut(&addr) {
                a.state = State::Banned;
            }
        }
    }

    /// Addresses whose time has come, now counted as being dialed, in address order (so
    /// that the same state gives the same dials).
    pub(crate) fn due(&mut self, now: u64) -> Vec<SocketAddr> {
        let mut due: Vec<SocketAddr> = self
            .addresses
            .iter()
            .filter(|(_, a)| matches!(a.state, State::Waiting(at) if at <= now))
            .map(|(addr, _)| *addr)
            .collect();
        due.sort_unstable();
        for addr in &due {
            if let Some(a) = self.addresses.get_mut(addr) {
                a.state = State::Dialing;
            }
        }
        due
    }
}

/// The wait after `failures` short-lived attempts in a row (at least one).
fn delay(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_DELAY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 6881))
    }

    #[test]
    fn a_closed_connection_is_dialed_again_after_a_growing_delay() {
        let mut r = Redial::default();
        assert!(r.learn(addr(1)));
        assert!(!r.learn(addr(1)), "a known address is not dialed twice");
        r.opened(addr(1), 7, 0);
        assert!(r.due(1_000_000).is_empty(), "connected: nothing to dial");
        r.closed(7, 1_000);
        assert!(r.due(5_999).is_empty());
        assert_eq!(r.due(6_000), vec![addr(1)]);
        assert!(r.due(6_000).is_empty(), "dialing already");
        r.opened(addr(1), 8, 6_100);
        r.closed(8, 6_200);
        assert!(r.due(6_200 + 9_999).is_empty(), "second short try: 10 s");
        assert_eq!(r.due(6_200 + 10_000), vec![addr(1)]);
    }

    #[test]
    fn a_long_connection_resets_the_delay() {
        let mut r = Redial::default();
        r.learn(addr(1));
        for (key, at) in [(1, 0), (2, 10_000), (3, 40_000)] {
            r.opened(addr(1), key, at);
            r.closed(key, at + 1);
            r.due(u64::MAX);
        }
        r.opened(addr(1), 4, 200_000);
        r.closed(4, 200_000 + HEALTHY_MS);
        let back = 200_000 + HEALTHY_MS + FIRST_DELAY_MS;
        assert_eq!(r.due(back), vec![addr(1)]);
    }

    #[test]
    fn unreachable_addresses_back_off_and_banned_ones_are_dropped() {
        let mut r = Redial::default();
        r.learn(addr(1));
        r.learn(addr(2));
        r.unreachable(addr(1), 0);
        r.opened(addr(2), 5, 0);
        r.banned(5);
        r.closed(5, 1);
        assert_eq!(r.due(u64::MAX), vec![addr(1)]);
        r.unreachable(addr(1), 10);
        assert!(r.due(10 + 9_999).is_empty());
        assert_eq!(r.due(10 + 10_000), vec![addr(1)]);
        r.closed(99, 0);
        assert!(r.due(u64::MAX).is_empty(), "an unknown key changes nothing");
    }

    #[test]
    fn the_delay_is_capped() {
        assert_eq!(delay(1), FIRST_DELAY_MS);
        assert_eq!(delay(2), 2 * FIRST_DELAY_MS);
        assert_eq!(delay(u32::MAX), MAX_DELAY_MS);
    }

    proptest! {
        /// Whatever happens to connections, an address is never dialed while dialing or
        /// connected, a banned one never again, no wait exceeds the cap, and every other
        /// address comes due once its connection is gone.
        #[test]
        fn addresses_come_back_unless_banned(
            script in proptest::collection::vec((0u8..4, 0u8..5, 0u64..200_000), 1..200),
        ) {
            let mut r = Redial::default();
            let mut now = 0u64;
            let mut live: HashMap<SocketAddr, PeerKey> = HashMap::new();
            let mut dialing: Vec<SocketAddr> = Vec::new();
            let mut banned: Vec<SocketAddr> = Vec::new();
            let mut next_key = 0;
            for (n, action, step) in script {
                now += step % 20_000;
                let a = addr(n);
                match action {
                    0 if r.learn(a) => dialing.push(a),
                    1 if dialing.contains(&a) => {
                        next_key += 1;
                        r.opened(a, next_key, now);
                        live.insert(a, next_key);
                        dialing.retain(|d| *d != a);
                    }
                    2 if dialing.contains(&a) => {
                        r.unreachable(a, now);
                        dialing.retain(|d| *d != a);
                    }
                    3 if live.contains_key(&a) => {
                        let key = live.remove(&a).unwrap_or_default();
                        r.closed(key, now);
                    }
                    4 if live.contains_key(&a) => {
                        let key = live.remove(&a).unwrap_or_default();
                        r.banned(key);
                        r.closed(key, now);
                        banned.push(a);
                    }
                    _ => {}
                }
                for d in r.due(now) {
                    prop_assert!(!dialing.contains(&d) && !live.contains_key(&d) && !banned.contains(&d));
                    dialing.push(d);
                }
            }
            for d in r.due(now + MAX_DELAY_MS) {
                prop_assert!(!dialing.contains(&d) && !live.contains_key(&d) && !banned.contains(&d));
                dialing.push(d);
            }
            for n in 0..4 {
                let a = addr(n);
                let known = dialing.contains(&a) || live.contains_key(&a) || banned.contains(&a);
                prop_assert!(!r.addresses.contains_key(&a) || known, "{a} was forgotten");
            }
        }
    }
}
