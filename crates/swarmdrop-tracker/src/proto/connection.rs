//! Stateless UDP connection ids.
//!
//! The keyed hash is SipHash-2-4, a PRF designed for short inputs and 64-bit tags: the
//! id is checked on every UDP request, so it has to be cheap as well as unforgeable.
//!
//! BEP 15's connect step exists so a tracker only answers announces from addresses
//! that can receive packets: spoofing a victim's address gets the attacker nothing,
//! because the connection id went to the victim. Keeping a table of ids would let a
//! flood of connects fill memory, so the id is instead a keyed hash of the client's
//! address and a one-minute time window: nothing is stored, and an id is accepted in its
//! window and the next, so it lives at most two minutes, as BEP 15 advises.

use std::net::{IpAddr, SocketAddr};

use std::hash::Hasher as _;

use siphasher::sip::SipHasher24;

const WINDOW_SECONDS: u64 = 60;

/// Makes and checks connection ids with a secret key.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 16],
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionIds { key: <secret> }")
    }
}

impl ConnectionIds {
    /// Ids keyed by `key` (random per tracker process).
    pub fn new(key: [u8; 16]) -> Self {
        Self { key }
    }

    fn id(&self, addr: &SocketAddr, window: u64) -> u64 {
        let mut hasher = SipHasher24::new_with_key(&self.key);
        hasher.write(&window.to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => hasher.write(&ip.octets()),
            IpAddr::V6(ip) => hasher.write(&ip.octets()),
        }
        hasher.write(&addr.port().to_be_bytes());
        hasher.finish()
    }

    /// The id for `addr` at `now` (Unix seconds).
    pub fn make(&self, addr: &SocketAddr, now: u64) -> u64 {
        self.id(addr, now / WINDOW_SECONDS)
    }

    /// True when `id` was made for `addr` in this window or the one before.
    pub fn check(&self, id: u64, addr: &SocketAddr, now: u64) -> bool {
        let window = now / WINDOW_SECONDS;
        id == self.id(addr, window) || (window > 0 && id == self.id(addr, window - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_bind_address_and_expire() {
        let ids = ConnectionIds::new([1; 16]);
        let a: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let id = ids.make(&a, 1_000_000);
        assert!(ids.check(id, &a, 1_000_000));
        assert!(ids.check(id, &a, 1_000_000 + 60));
        assert!(!ids.check(id, &a, 1_000_000 + 180));
        assert!(!ids.check(id, &b, 1_000_000));
        assert!(!ConnectionIds::new([2; 16]).check(id, &a, 1_000_000));
    }
}
