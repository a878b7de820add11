//! The tracker's counters, gauges and latency histogram, in Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const EVENTS: [&str; 4] = ["none", "completed", "started", "stopped"];
const BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 10],
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        match BUCKETS.iter().position(|b| seconds <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Everything the tracker counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By protocol (http, udp) and event (none, completed, started, stopped).
    announces: [[AtomicU64; 4]; 2],
    scrapes: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Latency of HTTP requests.
    pub http_latency: Histogram,
    /// Latency of UDP requests.
    pub udp_latency: Histogram,
    /// Events dropped because the queue was full.
    pub events_dropped: AtomicU64,
    /// Webhook deliveries that succeeded.
    pub webhook_delivered: AtomicU64,
    /// Webhook deliveries given up after every attempt.
    pub webhook_failed: AtomicU64,
    /// Revocation polls that failed.
    pub revocation_polls_failed: AtomicU64,
    /// Revoked token ids in force.
    pub revoked: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    if let Ok(mut map) = map.lock() {
        *map.entry(key).or_default() += 1;
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Swarms held.
    pub swarms: usize,
    /// Peers held.
    pub peers: usize,
    /// Estimated bytes per peer.
    pub bytes_per_peer: usize,
    /// Addresses in the rate limiter.
    pub limiter: usize,
}

impl Metrics {
    /// Counts an announce.
    pub fn announce(&self, protocol: &'static str, event: &'static str) {
        let p = usize::from(protocol == "udp");
        let e = EVENTS.iter().position(|x| *x == event).unwrap_or(0);
        self.announces[p][e].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a scrape.
    pub fn scrape(&self, protocol: &'static str) {
        bump(&self.scrapes, protocol);
    }

    /// Counts a refusal.
    pub fn refusal(&self, protocol: &'static str, reason: &'static str) {
        bump(&self.refusals, (protocol, reason));
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP swarmdrop_tracker_announces_total Announces by protocol and event.\n# TYPE swarmdrop_tracker_announces_total counter\n");
        for (p, protocol) in ["http", "udp"].iter().enumerate() {
            for (e, event) in EVENTS.iter().enumerate() {
                let n = self.announces[p][e].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "swarmdrop_tracker_announces_total{{protocol=\"{protocol}\",event=\"{event}\"}} {n}");
                }
            }
        }
        out.push_str("# HELP swarmdrop_tracker_scrapes_total Scrapes by protocol.\n# TYPE swarmdrop_tracker_scrapes_total counter\n");
        if let Ok(map) = self.scrapes.lock() {
            for (protocol, n) in map.iter() {
                let _ = writeln!(
                    out,
                    "swarmdrop_tracker_scrapes_total{{protocol=\"{protocol}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP swarmdrop_tracker_refusals_total Refused or malformed requests by protocol and reason.\n# TYPE swarmdrop_tracker_refusals_total counter\n");
        if let Ok(map) = self.refusals.lock() {
            for ((protocol, reason), n) in map.iter() {
                let _ = writeln!(out, "swarmdrop_tracker_refusals_total{{protocol=\"{protocol}\",reason=\"{reason}\"}} {n}");
            }
        }
        out.push_str("# HELP swarmdrop_tracker_request_seconds Time to answer a request.\n# TYPE swarmdrop_tracker_request_seconds histogram\n");
        self.http_latency.render(
            &mut out,
            "swarmdrop_tracker_request_seconds",
            "protocol=\"http\"",
        );
        self.udp_latency.render(
            &mut out,
            "swarmdrop_tracker_request_seconds",
            "protocol=\"udp\"",
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        };
        gauge(
            &mut out,
            "swarmdrop_tracker_swarms",
            "Swarms held.",
            g.swarms as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_tracker_peers",
            "Peers held.",
            g.peers as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_tracker_bytes_per_peer",
            "Estimated memory per peer (entry and index).",
            g.bytes_per_peer as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_tracker_peer_memory_bytes",
            "Estimated memory of all peers.",
            (g.peers * g.bytes_per_peer) as f64,
        );
        gauge(
            &mut out,
            "swarmdrop_tracker_rate_limiter_entries",
            "Client addresses tracked by the rate limiter.",
            g.limiter as f64,
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            &mut out,
            "swarmdrop_tracker_events_dropped_total",
            "Events dropped because the event queue was full.",
            self.events_dropped.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "swarmdrop_tracker_webhook_delivered_total",
            "Webhook deliveries that succeeded.",
            self.webhook_delivered.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "swarmdrop_tracker_webhook_failed_total",
            "Webhook deliveries given up.",
            self.webhook_failed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "swarmdrop_tracker_revocation_polls_failed_total",
            "Polls of the gateway's revocation list that failed (the last list stays in force).",
            self.revocation_polls_failed.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "swarmdrop_tracker_revoked_tokens",
            "Revoked token ids in force.",
            self.revoked.load(Ordering::Relaxed) as f64,
        );
        out
    }
}
