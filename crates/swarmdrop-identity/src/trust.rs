//! Adaptive trust: signals about a client become a risk score, and the score with the
//! rate limiter's answer becomes one decision per request (allow, throttle, challenge,
//! deny) with a reason code that labels the metric and the event.
//!
//! Signals decay: every `half_life` the counts halve, so a client that misbehaved an
//! hour ago is not punished forever, while a burst of failures now is. The table of
//! clients is bounded like the rate limiter's.

use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;
use swarmdrop_manifest::UtcTime;

use crate::gcra::RetryAfter;

/// What we have seen of one client (an address or an identity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Signatures that did not verify.
    pub failed_signatures: u32,
    /// Attempts to reuse a nonce or challenge.
    pub replays: u32,
    /// Requests refused by the rate limiter.
    pub rate_limited: u32,
    /// Proof-of-work challenges solved.
    pub pow_solved: u32,
    /// On the drop's allowlist.
    pub allowlisted: bool,
}

/// Risk from 0 (none) to 100.
pub fn risk_score(signals: &Signals) -> u32 {
    let bad = 15 * signals.failed_signatures + 30 * signals.replays + 5 * signals.rate_limited;
    let good = 10 * signals.pow_solved.min(3) + if signals.allowlisted { 40 } else { 0 };
    bad.saturating_sub(good).min(100)
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Serve it.
    Allow,
    /// Refuse for now (HTTP 429 with `Retry-After`).
    Throttle {
        /// Seconds to wait.
        retry_after_seconds: u64,
    },
    /// Serve only after proof-of-work (anonymous paths) or refuse sign-in until solved.
    Challenge {
        /// Leading zero bits to ask for.
        difficulty: u32,
    },
    /// Refuse outright.
    Deny,
}

impl Decision {
    /// The snake_case action name.
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Throttle { .. } => "throttle",
            Decision::Challenge { .. } => "challenge",
            Decision::Deny => "deny",
        }
    }
}

/// Score thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustPolicy {
    /// From this score on, ask for proof-of-work.
    pub challenge_at: u32,
    /// From this score on, refuse.
    pub deny_at: u32,
    /// Base proof-of-work difficulty.
    pub base_difficulty: u32,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            challenge_at: 30,
            deny_at: 90,
            base_difficulty: 12,
        }
    }
}

impl TrustPolicy {
    /// The decision for a request from a client with `score`, given the rate
    /// limiter's answer and the load factor (current ÷ nominal request rate).
    pub fn decide(
        &self,
        score: u32,
        rate: Result<(), RetryAfter>,
        load: f64,
    ) -> (Decision, &'static str) {
        if let Err(retry) = rate {
            return (
                Decision::Throttle {
                    retry_after_seconds: retry.seconds(),
                },
                "rate_limited",
            );
        }
        if score >= self.deny_at {
            return (Decision::Deny, "risk_deny");
        }
        if score >= self.challenge_at {
            return (
                Decision::Challenge {
                    difficulty: crate::pow::difficulty(self.base_difficulty, load, score),
                },
                "risk_challenge",
            );
        }
        (Decision::Allow, "ok")
    }
}

/// A typed record of one identity decision, for hooks and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityEvent {
    /// When.
    pub at: UtcTime,
    /// Which endpoint (`siwe`, `anonymous`, `refresh`, `nonce`, …).
    pub endpoint: &'static str,
    /// The client's address.
    pub client: String,
    /// The subject, once known.
    pub subject: Option<String>,
    /// `allow`, `throttle`, `challenge`, `deny`, or `refuse` (a check failed).
    pub action: &'static str,
    /// The reason code (`ok`, `nonce_reused`, `rate_limited`, …).
    pub reason: &'static str,
}

/// Bounded, decaying per-client signals.
#[derive(Debug, Clone)]
pub struct RiskTable<K> {
    entries: HashMap<K, (Signals, u64)>,
    half_life: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> RiskTable<K> {
    /// A table remembering `capacity` clients whose counts halve every `half_life` ns.
    pub fn new(half_life: u64, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            half_life: half_life.max(1),
            capacity: capacity.max(1),
        }
    }

    fn decayed(&self, signals: Signals, since: u64, now: u64) -> Signals {
        let halvings = (now.saturating_sub(since) / self.half_life).min(31) as u32;
        Signals {
            failed_signatures: signals.failed_signatures >> halvings,
            replays: signals.replays >> halvings,
            rate_limited: signals.rate_limited >> halvings,
            pow_solved: signals.pow_solved >> halvings,
            allowlisted: signals.allowlisted,
        }
    }

    /// The client's signals now.
    pub fn signals(&self, key: &K, now: u64) -> Signals {
        self.entries
            .get(key)
            .map(|(s, since)| self.decayed(*s, *since, now))
            .unwrap_or_default()
    }

    /// Updates the client's signals.
    pub fn record(&mut self, key: &K, now: u64, update: impl FnOnce(&mut Signals)) {
        let mut signals = self.signals(key, now);
        update(&mut signals);
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            let stale: Vec<K> = self
                .entries
                .keys()
                .take((self.capacity / 8).max(1))
                .cloned()
                .collect();
            for k in stale {
                self.entries.remove(&k);
            }
        }
        // Stored decayed to `now`, so halvings are counted from here on.
        self.entries.insert(key.clone(), (signals, now));
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn decisions_follow_score_and_rate() {
        let policy = TrustPolicy::default();
        assert_eq!(policy.decide(0, Ok(()), 1.0), (Decision::Allow, "ok"));
        assert_eq!(
            policy.decide(0, Err(RetryAfter { nanos: 1 }), 1.0),
            (
                Decision::Throttle {
                    retry_after_seconds: 1
                },
                "rate_limited"
            )
        );
        assert!(matches!(
            policy.decide(45, Ok(()), 1.0),
            (Decision::Challenge { difficulty: 14 }, "risk_challenge")
        ));
        assert_eq!(
            policy.decide(95, Ok(()), 1.0),
            (Decision::Deny, "risk_deny")
        );
    }

    #[test]
    fn signals_raise_and_decay() {
        let mut table = RiskTable::new(60 * S, 16);
        table.record(&"ip", 0, |s| s.failed_signatures += 2);
        table.record(&"ip", 0, |s| s.replays += 1);
        assert_eq!(risk_score(&table.signals(&"ip", 0)), 60);
        assert_eq!(risk_score(&table.signals(&"ip", 120 * S)), 0);
        let allowlisted = Signals {
            failed_signatures: 2,
            allowlisted: true,
            ..Signals::default()
        };
        assert_eq!(risk_score(&allowlisted), 0);
        for i in 0..1000u32 {
            table.record(&"x", 0, |_| {});
            let mut t = RiskTable::new(S, 16);
            t.record(&i, 0, |_| {});
            assert!(t.len() <= 16);
        }
    }

    proptest! {
        #[test]
        fn score_is_bounded(f in 0u32..1000, r in 0u32..1000, l in 0u32..1000, p in 0u32..10, a in any::<bool>()) {
            let s = risk_score(&Signals { failed_signatures: f, replays: r, rate_limited: l, pow_solved: p, allowlisted: a });
            prop_assert!(s <= 100);
        }
    }
}
