//! Stateless UDP connection ids.
//!
//! BEP 15's connect step exists so a tracker only answers announces from addresses
//! that can receive packets: spoofing a victim's address gets the attacker nothing,
//! because the connection id went to the victim. Keeping a table of ids would let a
//! flood of connects fill memory, so the id is instead a keyed hash of the client's
//! address and a one-minute time window: nothing is stored, and an id is accepted in its
//! window and the next, so it lives at most two minutes, as BEP 15 advises.

use std::net::{IpAddr, SocketAddr};

use sha2::{Digest as _, Sha256};

const WINDOW_SECONDS: u64 = 60;

/// Makes and checks connection ids with a secret key.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 32],
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionIds { key: <secret> }")
    }
}

impl ConnectionIds {
    /// Ids keyed by `key` (random per tracker process).
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn id(&self, addr: &SocketAddr, window: u64) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(window.to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => hasher.update(ip.octets()),
            IpAddr::V6(ip) => hasher.update(ip.octets()),
        }
        hasher.update(addr.port().to_be_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(id)
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
        let ids = ConnectionIds::new([1; 32]);
        let a: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let id = ids.make(&a, 1_000_000);
        assert!(ids.check(id, &a, 1_000_000));
        assert!(ids.check(id, &a, 1_000_000 + 60));
        assert!(!ids.check(id, &a, 1_000_000 + 180));
        assert!(!ids.check(id, &b, 1_000_000));
        assert!(!ConnectionIds::new([2; 32]).check(id, &a, 1_000_000));
    }
}
