//! Rate limits by GCRA (the generic cell rate algorithm): one timestamp per key, the
//! "theoretical arrival time", instead of a bucket and a refill timer.
//!
//! A request at `now` is allowed when the key's TAT is at most `burst` emission
//! intervals ahead of `now`; each allowed request moves the TAT one interval on. Time
//! is the caller's monotonic nanoseconds. The table is bounded: when full, keys whose
//! TAT has passed (indistinguishable from new keys) go first, then a batch of
//! arbitrary ones, so an attacker spraying addresses costs memory once, not forever.

use std::collections::HashMap;
use std::hash::Hash;

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Sustained requests per second (> 0).
    pub per_second: f64,
    /// Requests allowed at once (≥ 1).
    pub burst: u32,
}

/// Refused: come back after this many nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// Nanoseconds until a request would be allowed.
    pub nanos: u64,
}

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (the HTTP `Retry-After` value).
    pub fn seconds(self) -> u64 {
        self.nanos.div_ceil(1_000_000_000).max(1)
    }
}

/// A bounded table of per-key GCRA states.
#[derive(Debug, Clone)]
pub struct Limiter<K> {
    interval: u64,
    tolerance: u64,
    tat: HashMap<K, u64>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter for `quota` remembering at most `capacity` keys.
    pub fn new(quota: Quota, capacity: usize) -> Self {
        let per_second = if quota.per_second.is_finite() && quota.per_second > 0.0 {
            quota.per_second
        } else {
            1.0
        };
        let interval = ((1e9 / per_second) as u64).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(quota.burst.max(1))),
            tat: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Counts one request for `key` at `now` (monotonic nanoseconds).
    pub fn check(&mut self, key: &K, now: u64) -> Result<(), RetryAfter> {
        let tat = self.tat.get(key).copied().unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval);
        if next - now > self.tolerance {
            return Err(RetryAfter {
                nanos: next - now - self.tolerance,
            });
        }
        if !self.tat.contains_key(key) && self.tat.len() >= self.capacity {
            self.make_room(now);
        }
        self.tat.insert(key.clone(), next);
        Ok(())
    }

    fn make_room(&mut self, now: u64) {
        self.tat.retain(|_, tat| *tat > now);
        if self.tat.len() >= self.capacity {
            let batch = (self.capacity / 8).max(1);
            let victims: Vec<K> = self.tat.keys().take(batch).cloned().collect();
            for key in victims {
                self.tat.remove(&key);
            }
        }
    }

    /// Keys remembered now (for the gauge on /metrics).
    pub fn len(&self) -> usize {
        self.tat.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.tat.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_sustained_rate() {
        let mut limiter = Limiter::new(
            Quota {
                per_second: 2.0,
                burst: 3,
            },
            100,
        );
        for _ in 0..3 {
            assert!(limiter.check(&"a", 0).is_ok());
        }
        let refused = limiter.check(&"a", 0).unwrap_err();
        assert_eq!(refused.nanos, S / 2);
        assert_eq!(refused.seconds(), 1);
        // Another key is untouched.
        assert!(limiter.check(&"b", 0).is_ok());
        // Half a second later, one more.
        assert!(limiter.check(&"a", S / 2).is_ok());
        assert!(limiter.check(&"a", S / 2).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut limiter = Limiter::new(
            Quota {
                per_second: 1.0,
                burst: 1,
            },
            64,
        );
        for key in 0..10_000u32 {
            assert!(limiter.check(&key, 0).is_ok());
            assert!(limiter.len() <= 64);
        }
        // Keys whose time has passed are dropped first.
        assert!(limiter.check(&20_000u32, 10 * S).is_ok());
        assert_eq!(limiter.len(), 1);
    }

    proptest! {
        /// Over any window, allowed requests never exceed burst + rate × window.
        #[test]
        fn never_more_than_the_quota(gaps in proptest::collection::vec(0u64..300_000_000, 1..200), rate in 1u32..20, burst in 1u32..10) {
            let mut limiter = Limiter::new(Quota { per_second: f64::from(rate), burst }, 10);
            let mut now = 0u64;
            let mut allowed = 0u64;
            for gap in &gaps {
                now += gap;
                if limiter.check(&0u8, now).is_ok() {
                    allowed += 1;
                }
            }
            let bound = u64::from(burst) + now * u64::from(rate) / S + 1;
            prop_assert!(allowed <= bound, "{} allowed, bound {}", allowed, bound);
        }
    }
}
