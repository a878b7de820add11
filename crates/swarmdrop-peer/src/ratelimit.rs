//! A token bucket shared by every connection of a run: `--upload-limit` caps what a
//! seeder or viewer sends in total, as a user on a metered link wants (and as the demo
//! uses to emulate home uplinks).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, with a burst of a tenth of a second (at least 64 KiB).
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1) as f64;
        let burst = (rate / 10.0).max(65_536.0);
        RateLimit {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// The limit, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.rate as u64
    }

    /// Takes `bytes` from the bucket; returns how long to wait before sending them.
    pub fn take(&self, bytes: usize, now: Instant) -> Duration {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst) - bytes as f64;
        *last = now;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*tokens / self.rate)
        }
    }

    /// Waits until `bytes` may be sent.
    pub async fn acquire(&self, bytes: usize) {
        let wait = self.take(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_sending_waits_for_the_rate() {
        let limit = RateLimit::new(1_000_000);
        let t = Instant::now();
        assert_eq!(limit.take(100_000, t), Duration::ZERO);
        // The bucket is empty: 500 kB more must wait half a second.
        let wait = limit.take(500_000, t);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Over a long run the average is the rate, whatever the chunk sizes.
        let limit = RateLimit::new(1_000_000);
        let mut at = t;
        let mut sent = 0u64;
        while sent < 5_000_000 {
            at += limit.take(16_384, at);
            sent += 16_384;
        }
        let seconds = at.duration_since(t).as_secs_f64();
        assert!((4.8..5.1).contains(&seconds), "{seconds}");
    }
}
