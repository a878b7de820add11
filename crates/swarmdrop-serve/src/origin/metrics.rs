//! The origin's counters for `/metrics` (Prometheus text). Lock-free: one atomic per
//! status code the origin can answer, so the hot path never waits.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every status the origin answers with; anything else would be a bug, counted as `other`.
const STATUSES: [u16; 9] = [200, 206, 304, 400, 404, 405, 416, 500, 503];

/// Counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    by_status: [AtomicU64; STATUSES.len()],
    other_status: AtomicU64,
    /// Body bytes handed to connections.
    pub bytes_served: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections refused a slot at the cap (they wait in the kernel's queue).
    pub connection_waits: AtomicU64,
}

impl Metrics {
    /// Counts one answer.
    pub fn answered(&self, status: u16) {
        match STATUSES.iter().position(|s| *s == status) {
            Some(slot) => self.by_status[slot].fetch_add(1, Ordering::Relaxed),
            None => self.other_status.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Adds body bytes sent.
    pub fn served(&self, bytes: u64) {
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP swarmdrop_origin_requests_total Requests answered by the origin, by HTTP status.\n");
        out.push_str("# TYPE swarmdrop_origin_requests_total counter\n");
        for (status, count) in STATUSES.iter().zip(&self.by_status) {
            let _ = writeln!(
                out,
                "swarmdrop_origin_requests_total{{status=\"{status}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "swarmdrop_origin_requests_total{{status=\"other\"}} {}",
            self.other_status.load(Ordering::Relaxed)
        );
        for (name, kind, help, value) in [
            (
                "swarmdrop_origin_bytes_served_total",
                "counter",
                "Response body bytes the origin handed to connections.",
                &self.bytes_served,
            ),
            (
                "swarmdrop_origin_connections",
                "gauge",
                "Connections open now.",
                &self.connections,
            ),
            (
                "swarmdrop_origin_connection_waits_total",
                "counter",
                "Times the connection cap made an accept wait.",
                &self.connection_waits,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_status() {
        let metrics = Metrics::default();
        metrics.answered(200);
        metrics.answered(200);
        metrics.answered(416);
        metrics.answered(418);
        metrics.served(10);
        let text = metrics.render();
        assert!(text.contains("swarmdrop_origin_requests_total{status=\"200\"} 2\n"));
        assert!(text.contains("swarmdrop_origin_requests_total{status=\"416\"} 1\n"));
        assert!(text.contains("swarmdrop_origin_requests_total{status=\"other\"} 1\n"));
        assert!(text.contains("swarmdrop_origin_bytes_served_total 10\n"));
    }
}
