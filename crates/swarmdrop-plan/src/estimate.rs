//! Live estimates of one path instance: round-trip time, throughput and error rate as
//! exponentially weighted moving averages, and a health state with back-off.

use serde::Serialize;

use crate::Millis;

/// What a caller knows of a path before measuring it, or tells the planner later.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// Throughput in bytes per millisecond (= kB/s).
    pub bytes_per_ms: f64,
}

/// Whether a path takes new fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathHealth {
    /// Takes fetches.
    Up,
    /// Failed repeatedly; not used before `until`.
    Down {
        /// When it may be tried again.
        until: Millis,
    },
    /// Sent bytes that failed their signed digest: a liar, not a flaky link, so it is
    /// never tried again in this run.
    Banned,
}

/// Weight of a new sample in an average.
const ALPHA: f64 = 0.3;
/// Throughput is sampled once the path has been busy this long (idle time between
/// fetches is not counted: a keyframe fetched in 30 ms every 250 ms is a fast path, not
/// a slow one).
const WINDOW_MS: Millis = 200;
/// Consecutive failures that take a path down.
const FAILURES_TO_DOWN: u32 = 2;
const FIRST_BACKOFF_MS: Millis = 1_000;
const MAX_BACKOFF_MS: Millis = 30_000;

/// One path instance's state.
#[derive(Debug, Clone)]
pub(crate) struct PathState {
    pub estimate: Estimate,
    /// Share of recent fetches that failed (EWMA of 0/1).
    pub error_rate: f64,
    pub health: PathHealth,
    consecutive_failures: u32,
    backoff_ms: Millis,
    /// Bytes received since the last sample.
    window_bytes: u64,
    /// Time with fetches in flight since the last sample.
    busy_ms: Millis,
    /// The last tick, and whether the path was busy from it on.
    last_tick: Option<(Millis, bool)>,
    /// Set once a throughput sample has replaced the caller's prior.
    measured: bool,
}

impl PathState {
    pub(crate) fn new(prior: Estimate) -> Self {
        PathState {
            estimate: prior,
            error_rate: 0.0,
            health: PathHealth::Up,
            consecutive_failures: 0,
            backoff_ms: FIRST_BACKOFF_MS,
            window_bytes: 0,
            busy_ms: 0,
            last_tick: None,
            measured: false,
        }
    }

    pub(crate) fn is_up(&self, now: Millis) -> bool {
        match self.health {
            PathHealth::Up => true,
            PathHealth::Down { until } => now >= until,
            PathHealth::Banned => false,
        }
    }

    pub(crate) fn rtt_sample(&mut self, rtt_ms: f64) {
        if rtt_ms.is_finite() && rtt_ms >= 0.0 {
            self.estimate.rtt_ms = (1.0 - ALPHA) * self.estimate.rtt_ms + ALPHA * rtt_ms;
        }
    }

    /// Bytes arrived while the path was busy.
    pub(crate) fn received(&mut self, bytes: u64, _now: Millis) {
        self.window_bytes += bytes;
    }

    /// Counts the time since the last tick as busy if fetches were in flight, and takes
    /// a throughput sample once the busy time is long enough; `busy` says whether the
    /// path has fetches in flight from `now` on (an idle path's rate says nothing).
    pub(crate) fn tick(&mut self, now: Millis, busy: bool) {
        if let Some((last, was_busy)) = self.last_tick.replace((now, busy)) {
            if was_busy {
                self.busy_ms += now.saturating_sub(last);
            }
        }
        if self.busy_ms < WINDOW_MS {
            return;
        }
        let sample = self.window_bytes as f64 / self.busy_ms as f64;
        self.estimate.bytes_per_ms = if self.measured {
            (1.0 - ALPHA) * self.estimate.bytes_per_ms + ALPHA * sample
        } else {
            sample
        };
        self.measured = true;
        self.window_bytes = 0;
        self.busy_ms = 0;
    }

    pub(crate) fn succeeded(&mut self) {
        self.error_rate *= 1.0 - ALPHA;
        self.consecutive_failures = 0;
        self.backoff_ms = FIRST_BACKOFF_MS;
        // A ban outlives fetches that were already under way when it came.
        if self.health != PathHealth::Banned {
            self.health = PathHealth::Up;
        }
    }

    /// Returns whether the path just went down.
    pub(crate) fn failed(&mut self, now: Millis) -> bool {
        if self.health == PathHealth::Banned {
            return false;
        }
        self.error_rate = (1.0 - ALPHA) * self.error_rate + ALPHA;
        self.consecutive_failures += 1;
        if self.consecutive_failures >= FAILURES_TO_DOWN {
            self.health = PathHealth::Down {
                until: now + self.backoff_ms,
            };
            self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
            self.consecutive_failures = 0;
            self.last_tick = None;
            self.busy_ms = 0;
            self.window_bytes = 0;
            return true;
        }
        false
    }

    /// When `bytes` more would be done if queued behind `queued` bytes on this path.
    pub(crate) fn eta(&self, now: Millis, queued: u64, bytes: u64) -> Millis {
        let rate = self.estimate.bytes_per_ms.max(1e-3);
        let ms = self.estimate.rtt_ms + (queued + bytes) as f64 / rate;
        now.saturating_add(ms.min(1e12) as Millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_window_replaces_the_prior_then_averages() {
        let mut p = PathState::new(Estimate {
            rtt_ms: 10.0,
            bytes_per_ms: 1.0,
        });
        p.tick(0, true);
        p.received(2_000, 100);
        p.tick(100, true);
        assert_eq!(p.estimate.bytes_per_ms, 1.0, "window too short to sample");
        p.received(2_000, 200);
        p.tick(200, true);
        assert_eq!(p.estimate.bytes_per_ms, 20.0);
        p.received(200, 400);
        p.tick(400, true);
        assert!((p.estimate.bytes_per_ms - (0.7 * 20.0 + 0.3 * 1.0)).abs() < 1e-9);
    }

    #[test]
    fn idle_time_between_fetches_is_not_counted() {
        let mut p = PathState::new(Estimate {
            rtt_ms: 10.0,
            bytes_per_ms: 1.0,
        });
        // 200 KB in 50 ms, then idle for 200 ms, four times over.
        for k in 0..4 {
            let t = k * 250;
            p.tick(t, true);
            p.received(200_000, t + 50);
            p.tick(t + 50, false);
        }
        p.tick(1_000, false);
        assert_eq!(p.estimate.bytes_per_ms, 4_000.0);
    }

    #[test]
    fn two_failures_take_a_path_down_with_growing_backoff() {
        let mut p = PathState::new(Estimate {
            rtt_ms: 10.0,
            bytes_per_ms: 1.0,
        });
        assert!(!p.failed(0));
        assert!(p.failed(0));
        assert!(!p.is_up(999) && p.is_up(1_000));
        p.failed(1_000);
        assert!(p.failed(1_000));
        assert_eq!(p.health, PathHealth::Down { until: 3_000 });
        p.succeeded();
        assert!(p.is_up(1_000));
    }

    #[test]
    fn eta_counts_the_queue_and_the_rtt() {
        let p = PathState::new(Estimate {
            rtt_ms: 50.0,
            bytes_per_ms: 100.0,
        });
        assert_eq!(p.eta(1_000, 10_000, 10_000), 1_000 + 50 + 200);
    }
}
