//! The gateway's shared state behind a small async trait: nonces, proof-of-work
//! challenges and revocations. The in-memory store serves one gateway; a Redis store
//! (a later issue) will let several gateways share it, which is why every operation
//! that must be atomic across gateways is one call here (`consume_*`), never a read
//! followed by a write in the caller.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use swarmdrop_manifest::UtcTime;

/// A boxed future, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store that cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Too many pending entries; refuse new ones until some expire.
    #[error("too many pending {0}; try again shortly")]
    Full(&'static str),
    /// This client holds its quota of pending entries.
    #[error("you hold too many unused {0}s; use or let one expire first")]
    ClientFull(&'static str),
    /// The backend failed.
    #[error("state store: {0}")]
    Backend(String),
}

/// Where a single-use value (nonce or challenge) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Issued, unused, not expired; with what was recorded at issue time.
    Ready(String),
    /// Already used.
    Used,
    /// Never issued, or expired.
    Unknown,
}

/// A single-use value to record.
#[derive(Debug, Clone)]
pub struct NewSingleUse {
    /// `nonce` or `challenge`.
    pub kind: &'static str,
    /// The value itself.
    pub value: String,
    /// What to remember with it.
    pub data: String,
    /// Who asked (see `state::client_key`): each holds at most a quota of pending values,
    /// so a few addresses cannot fill the store for everyone.
    pub owner: String,
    /// When it stops being usable.
    pub expires: UtcTime,
}

/// Nonces, challenges and revocations.
pub trait IdentityStore: Send + Sync {
    /// Records a new single-use value.
    fn issue(&self, new: NewSingleUse, now: UtcTime) -> StoreFuture<'_, ()>;
    /// Where `value` stands, without changing it.
    fn peek(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, Pending>;
    /// Marks `value` used if it is ready; true when this call used it.
    fn consume(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, bool>;
    /// Revokes a token id until `expires`; returns the new revocation-list version.
    fn revoke(&self, jti: String, expires: UtcTime) -> StoreFuture<'_, u64>;
    /// The revocation-list version and the revoked ids still unexpired at `now`.
    fn revocations(&self, now: UtcTime) -> StoreFuture<'_, (u64, Vec<String>)>;
    /// Pending single-use values (for the gauge).
    fn pending(&self) -> StoreFuture<'_, usize>;
}

#[derive(Debug)]
struct Entry {
    data: String,
    expires: UtcTime,
    used: bool,
}

#[derive(Debug, Default)]
struct Inner {
    single_use: HashMap<(&'static str, String), Entry>,
    /// Expiry times of each owner's values, pruned as they pass.
    by_owner: HashMap<String, Vec<UtcTime>>,
    revoked: BTreeMap<String, UtcTime>,
    version: u64,
}

/// The in-memory store: one process, bounded.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_pending: usize,
    max_per_owner: usize,
}

impl MemoryStore {
    /// A store holding at most `max_pending` single-use values, at most `max_per_owner`
    /// of them for any one owner.
    pub fn new(max_pending: usize, max_per_owner: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_pending: max_pending.max(1),
            max_per_owner: max_per_owner.max(1),
        }
    }

    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StoreError>,
    ) -> StoreFuture<'_, T> {
        let result = match self.inner.lock() {
            Ok(mut inner) => f(&mut inner),
            Err(_) => Err(StoreError::Backend(
                "a thread panicked while holding the store".into(),
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

impl IdentityStore for MemoryStore {
    fn issue(&self, new: NewSingleUse, now: UtcTime) -> StoreFuture<'_, ()> {
        let (max, per_owner) = (self.max_pending, self.max_per_owner);
        self.with(move |inner| {
            let owned = inner.by_owner.entry(new.owner.clone()).or_default();
            owned.retain(|expires| *expires > now);
            if owned.len() >= per_owner {
                return Err(StoreError::ClientFull(new.kind));
            }
            if inner.single_use.len() >= max {
                inner.single_use.retain(|_, e| e.expires > now);
                inner.by_owner.retain(|_, owned| {
                    owned.retain(|expires| *expires > now);
                    !owned.is_empty()
                });
            }
            if inner.single_use.len() >= max {
                return Err(StoreError::Full(new.kind));
            }
            inner
                .by_owner
                .entry(new.owner)
                .or_default()
                .push(new.expires);
            inner.single_use.insert(
                (new.kind, new.value),
                Entry {
                    data: new.data,
                    expires: new.expires,
                    used: false,
                },
            );
            Ok(())
        })
    }

    fn peek(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, Pending> {
        let key = (kind, value.to_owned());
        self.with(move |inner| {
            Ok(match inner.single_use.get(&key) {
                Some(e) if e.expires <= now => Pending::Unknown,
                Some(e) if e.used => Pending::Used,
                Some(e) => Pending::Ready(e.data.clone()),
                None => Pending::Unknown,
            })
        })
    }

    fn consume(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, bool> {
        let key = (kind, value.to_owned());
        self.with(move |inner| {
            Ok(match inner.single_use.get_mut(&key) {
                Some(e) if !e.used && e.expires > now => {
                    e.used = true;
                    true
                }
                _ => false,
            })
        })
    }

    fn revoke(&self, jti: String, expires: UtcTime) -> StoreFuture<'_, u64> {
        self.with(move |inner| {
            inner.revoked.insert(jti, expires);
            inner.version += 1;
            Ok(inner.version)
        })
    }

    fn revocations(&self, now: UtcTime) -> StoreFuture<'_, (u64, Vec<String>)> {
        self.with(move |inner| {
            inner.revoked.retain(|_, expires| *expires > now);
            Ok((inner.version, inner.revoked.keys().cloned().collect()))
        })
    }

    fn pending(&self) -> StoreFuture<'_, usize> {
        self.with(|inner| Ok(inner.single_use.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> UtcTime {
        UtcTime::from_unix(1_800_000_000 + s).unwrap()
    }

    fn single(value: &str, owner: &str, expires: i64) -> NewSingleUse {
        NewSingleUse {
            kind: "nonce",
            value: value.into(),
            data: String::new(),
            owner: owner.into(),
            expires: t(expires),
        }
    }

    #[tokio::test]
    async fn single_use_values_are_used_once() {
        let store = MemoryStore::new(2, 2);
        store
            .issue(single("n1", "10.0.0.1", 60), t(0))
            .await
            .unwrap();
        assert_eq!(
            store.peek("nonce", "n1", t(1)).await.unwrap(),
            Pending::Ready(String::new())
        );
        assert_eq!(
            store.peek("challenge", "n1", t(1)).await.unwrap(),
            Pending::Unknown
        );
        assert!(store.consume("nonce", "n1", t(1)).await.unwrap());
        assert!(!store.consume("nonce", "n1", t(1)).await.unwrap());
        assert_eq!(
            store.peek("nonce", "n1", t(2)).await.unwrap(),
            Pending::Used
        );
        assert_eq!(
            store.peek("nonce", "n1", t(61)).await.unwrap(),
            Pending::Unknown
        );
    }

    #[tokio::test]
    async fn the_store_is_bounded() {
        let store = MemoryStore::new(2, 10);
        store.issue(single("a", "x", 10), t(0)).await.unwrap();
        store.issue(single("b", "y", 10), t(0)).await.unwrap();
        assert_eq!(
            store.issue(single("c", "z", 10), t(0)).await,
            Err(StoreError::Full("nonce"))
        );
        // Expired entries make room.
        store.issue(single("c", "z", 30), t(20)).await.unwrap();
        assert_eq!(store.pending().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn one_client_cannot_fill_the_store() {
        let store = MemoryStore::new(100, 2);
        store.issue(single("a", "x", 10), t(0)).await.unwrap();
        store.issue(single("b", "x", 20), t(0)).await.unwrap();
        assert_eq!(
            store.issue(single("c", "x", 10), t(0)).await,
            Err(StoreError::ClientFull("nonce"))
        );
        // Others are unaffected, and the client's own values free its quota as they expire.
        store.issue(single("d", "y", 10), t(0)).await.unwrap();
        store.issue(single("e", "x", 30), t(10)).await.unwrap();
        assert_eq!(
            store.issue(single("f", "x", 30), t(10)).await,
            Err(StoreError::ClientFull("nonce"))
        );
    }

    #[tokio::test]
    async fn revocations_are_versioned_and_expire() {
        let store = MemoryStore::new(2, 2);
        assert_eq!(store.revoke("j1".into(), t(100)).await.unwrap(), 1);
        assert_eq!(
            store.revocations(t(0)).await.unwrap(),
            (1, vec!["j1".to_owned()])
        );
        assert_eq!(store.revocations(t(200)).await.unwrap(), (1, vec![]));
    }
}
