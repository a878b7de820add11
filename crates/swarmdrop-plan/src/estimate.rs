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
/// Before its first sample, a busy window in which nothing arrived is sampled (as zero)
/// only once it is this long; shorter, it runs on into the first window with bytes. The
/// swarm reports a piece only when it verifies, so its first pieces take a connection,
/// an unchoke and a whole piece: a 200 ms zero sampled then replaced the prior with
/// nothing, and that viewer never asked its peers again (a path with no fetches in flight
/// takes no new samples). Once measured, a path's silence counts at once, as before: an
/// edge that stalls mid-run must lose its keyframes to a hedge within their budget.
const SILENT_WINDOW_MS: Millis = 2_000;
/// A measured rate below this share of the prior writes the path off.
const WRITTEN_OFF_SHARE: f64 = 0.01;
/// A path written off and then idle this long gets its prior back and is tried again,
/// rather than never; the wait doubles each time it is written off again (up to
/// `MAX_BACKOFF_MS`).
const REPROBE_AFTER_MS: Millis = 5_000;
/// Consecutive failures that take a path down.
const FAILURES_TO_DOWN: u32 = 2;
const FIRST_BACKOFF_MS: Millis = 1_000;
const MAX_BACKOFF_MS: Millis = 30_000;

/// One path instance's state.
#[derive(Debug, Clone)]
pub(crate) struct PathState {
    pub estimate: Estimate,
    /// What the caller knew before measuring (see `REPROBE_AFTER_MS`).
    prior: Estimate,
    /// When the path last had fetches in flight.
    last_busy: Millis,
    /// How long a written-off path idles before it is tried again.
    reprobe_after_ms: Millis,
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
            prior,
            last_busy: 0,
            reprobe_after_ms: REPROBE_AFTER_MS,
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
        if busy {
            self.last_busy = now;
        } else if self.written_off() && now.saturating_sub(self.last_busy) >= self.reprobe_after_ms
        {
            self.estimate.bytes_per_ms = self.prior.bytes_per_ms;
            self.measured = false;
            self.window_bytes = 0;
            self.busy_ms = 0;
            self.reprobe_after_ms = (self.reprobe_after_ms * 2).min(MAX_BACKOFF_MS);
        }
        let window = if self.window_bytes == 0 && !self.measured {
            SILENT_WINDOW_MS
        } else {
            WINDOW_MS
        };
        if self.busy_ms < window {
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
        if !self.written_off() {
            self.reprobe_after_ms = REPROBE_AFTER_MS;
        }
    }

    /// Measured at almost nothing: such a path wins no fetch and so takes no new sample.
    fn written_off(&self) -> bool {
        self.measured && self.estimate.bytes_per_ms < self.prior.bytes_per_ms * WRITTEN_OFF_SHARE
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

    /// A path with a prior of `bytes_per_ms`, busy and silent from 0 to `until`.
    fn silent_until(bytes_per_ms: f64, until: Millis) -> PathState {
        let mut p = PathState::new(Estimate {
            rtt_ms: 50.0,
            bytes_per_ms,
        });
        for t in (0..=until).step_by(100) {
            p.tick(t, true);
        }
        p
    }

    #[test]
    fn a_silent_start_runs_on_into_the_first_window_with_bytes() {
        // Asked at 0, nothing verified for 600 ms, then a 256 KiB piece.
        let mut p = silent_until(12_500.0, 600);
        assert_eq!(p.estimate.bytes_per_ms, 12_500.0, "the prior stands");
        p.received(262_144, 700);
        p.tick(700, true);
        // Averaged over all 700 ms busy, not over the last 100 only, nor zero.
        assert!((p.estimate.bytes_per_ms - 262_144.0 / 700.0).abs() < 1e-9);
    }

    #[test]
    fn a_path_silent_for_the_whole_long_window_measures_zero() {
        let p = silent_until(12_500.0, SILENT_WINDOW_MS);
        assert_eq!(p.estimate.bytes_per_ms, 0.0);
    }

    #[test]
    fn a_path_written_off_is_tried_again_after_idling_less_often_each_time() {
        let mut p = silent_until(1_000.0, SILENT_WINDOW_MS);
        let idle_from = SILENT_WINDOW_MS + 100;
        p.tick(idle_from, false);
        assert_eq!(p.estimate.bytes_per_ms, 0.0);
        p.tick(idle_from + REPROBE_AFTER_MS - 200, false);
        assert_eq!(p.estimate.bytes_per_ms, 0.0, "not idle long enough");
        p.tick(idle_from + REPROBE_AFTER_MS, false);
        assert_eq!(p.estimate.bytes_per_ms, 1_000.0, "the prior is back");
        // Silent again: written off again, and the next try waits twice as long.
        let again = 20_000;
        for t in (again..=again + SILENT_WINDOW_MS).step_by(100) {
            p.tick(t, true);
        }
        let idle_from = again + SILENT_WINDOW_MS + 100;
        p.tick(idle_from, false);
        assert_eq!(p.estimate.bytes_per_ms, 0.0);
        p.tick(idle_from + REPROBE_AFTER_MS, false);
        assert_eq!(p.estimate.bytes_per_ms, 0.0, "the wait has doubled");
        p.tick(idle_from + 2 * REPROBE_AFTER_MS, false);
        assert_eq!(p.estimate.bytes_per_ms, 1_000.0);
    }

    #[test]
    fn a_slow_path_is_not_written_off_and_a_measured_one_counts_silence_at_once() {
        let mut p = silent_until(1_000.0, 0);
        p.received(100_000, 200);
        p.tick(200, false);
        assert_eq!(p.estimate.bytes_per_ms, 500.0);
        // Below its prior but far from nothing: kept however long the path idles.
        p.tick(60_000, false);
        assert_eq!(p.estimate.bytes_per_ms, 500.0);
        // Measured, a silent 200 ms counts.
        p.tick(60_000, true);
        p.tick(60_200, true);
        assert!((p.estimate.bytes_per_ms - 350.0).abs() < 1e-9);
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
