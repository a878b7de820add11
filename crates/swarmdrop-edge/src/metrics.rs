//! The edge's counters, gauges and histograms, in Prometheus text.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds: sub-millisecond hits to minute-long
/// bulk transfers.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 120.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let seconds = d.as_secs_f64();
        let at = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[at] += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, class: &str) {
        let mut cumulative = 0;
        for (at, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[at];
            let _ = writeln!(
                out,
                "{name}_bucket{{class=\"{class}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{class=\"{class}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "{name}_sum{{class=\"{class}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{class=\"{class}\"}} {cumulative}");
    }
}

/// How a request was answered from the cache's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheStatus {
    /// From the memory tier.
    HitMemory,
    /// From the disk tier.
    HitDisk,
    /// Filled from the origin for this request.
    Miss,
    /// Attached to a fill another request started.
    Coalesced,
    /// Past its freshness, served because the origin failed.
    Stale,
    /// Metadata or torrents the edge holds verified.
    Held,
}

impl CacheStatus {
    /// The header and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::HitMemory => "hit-memory",
            CacheStatus::HitDisk => "hit-disk",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
            CacheStatus::Stale => "stale",
            CacheStatus::Held => "held",
        }
    }
}

/// What is counted per class.
#[derive(Debug, Default, Clone)]
struct ClassStats {
    by_status: BTreeMap<CacheStatus, u64>,
    first_byte: Histogram,
    total: Histogram,
}

/// Everything the edge counts.
#[derive(Debug, Default)]
pub struct Metrics {
    classes: Mutex<HashMap<String, ClassStats>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests made to the origin.
    pub origin_requests: AtomicU64,
    /// Bytes received from the origin.
    pub origin_bytes: AtomicU64,
    /// Origin calls that failed (connection, status, length, timeout).
    pub origin_failures: AtomicU64,
    /// Objects whose digest did not match the signed metadata.
    pub verification_failures: AtomicU64,
    /// Body bytes sent to clients.
    pub bytes_served: AtomicU64,
    /// Metadata refreshes that failed.
    pub metadata_failures: AtomicU64,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Bytes in the memory tier.
    pub memory_bytes: u64,
    /// Entries in the memory tier.
    pub memory_entries: u64,
    /// Bytes in the disk tier.
    pub disk_bytes: u64,
    /// Entries in the disk tier.
    pub disk_entries: u64,
    /// Evictions from memory.
    pub memory_evictions: u64,
    /// Evictions from disk.
    pub disk_evictions: u64,
    /// Fills running.
    pub fills: u64,
    /// Targets version served.
    pub targets_version: u64,
    /// With upload pacing: bytes sent and seconds waited, by urgency.
    pub paced: Option<[(u64, f64); crate::pacing::URGENCIES]>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sorted<V>(map: &HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

impl Metrics {
    /// Counts a request of `class` answered with `status`, its time to the response
    /// head, and (when the body is already complete) its total time: one lock.
    pub fn answered(
        &self,
        class: &str,
        status: CacheStatus,
        first_byte: Duration,
        total: Option<Duration>,
    ) {
        self.with_class(class, |stats| {
            *stats.by_status.entry(status).or_default() += 1;
            stats.first_byte.observe(first_byte);
            if let Some(total) = total {
                stats.total.observe(total);
            }
        });
    }

    /// Time until the last byte was handed to the connection.
    pub fn total(&self, class: &str, d: Duration) {
        self.with_class(class, |stats| stats.total.observe(d));
    }

    /// Counts a refusal.
    pub fn refusal(&self, code: &'static str) {
        *lock(&self.refusals).entry(code).or_default() += 1;
    }

    /// Runs `f` on `class`'s stats, allocating the label only the first time.
    fn with_class(&self, class: &str, f: impl FnOnce(&mut ClassStats)) {
        let mut classes = lock(&self.classes);
        match classes.get_mut(class) {
            Some(stats) => f(stats),
            None => {
                let mut stats = ClassStats::default();
                f(&mut stats);
                classes.insert(class.to_owned(), stats);
            }
        }
    }

    /// Prometheus text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let classes: Vec<(String, ClassStats)> = sorted(&lock(&self.classes))
            .into_iter()
            .map(|(class, stats)| (class.clone(), stats.clone()))
            .collect();
        let requests: Vec<(&String, CacheStatus, u64)> = classes
            .iter()
            .flat_map(|(class, stats)| stats.by_status.iter().map(move |(s, n)| (class, *s, *n)))
            .collect();
        let status_total = |wanted: &[CacheStatus]| -> u64 {
            requests
                .iter()
                .filter(|(_, s, _)| wanted.contains(s))
                .map(|(_, _, n)| n)
                .sum()
        };
        out.push_str("# HELP swarmdrop_edge_requests_total Object requests by class and cache status.\n# TYPE swarmdrop_edge_requests_total counter\n");
        for (class, status, n) in &requests {
            let _ = writeln!(
                out,
                "swarmdrop_edge_requests_total{{class=\"{class}\",cache=\"{}\"}} {n}",
                status.as_str()
            );
        }
        let counters: [(&str, &str, u64); 10] = [
            (
                "swarmdrop_edge_hits_total",
                "Requests answered from a tier (memory or disk).",
                status_total(&[CacheStatus::HitMemory, CacheStatus::HitDisk]),
            ),
            (
                "swarmdrop_edge_misses_total",
                "Requests that started a fill from the origin.",
                status_total(&[CacheStatus::Miss]),
            ),
            (
                "swarmdrop_edge_coalesced_total",
                "Requests that waited on a fill another request started.",
                status_total(&[CacheStatus::Coalesced]),
            ),
            (
                "swarmdrop_edge_stale_served_total",
                "Stale copies served because the origin failed.",
                status_total(&[CacheStatus::Stale]),
            ),
            (
                "swarmdrop_edge_origin_requests_total",
                "Requests made to the origin.",
                self.origin_requests.load(Ordering::Relaxed),
            ),
            (
                "swarmdrop_edge_origin_bytes_total",
                "Bytes received from the origin.",
                self.origin_bytes.load(Ordering::Relaxed),
            ),
            (
                "swarmdrop_edge_origin_failures_total",
                "Origin calls that failed.",
                self.origin_failures.load(Ordering::Relaxed),
            ),
            (
                "swarmdrop_edge_verification_failures_total",
                "Objects whose digest or length did not match the signed metadata (never cached).",
                self.verification_failures.load(Ordering::Relaxed),
            ),
            (
                "swarmdrop_edge_served_bytes_total",
                "Body bytes sent to clients.",
                self.bytes_served.load(Ordering::Relaxed),
            ),
            (
                "swarmdrop_edge_metadata_failures_total",
                "Metadata refreshes that failed (the last verified index stays).",
                self.metadata_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        }
        out.push_str("# HELP swarmdrop_edge_evictions_total Entries evicted (size or lifetime) by tier.\n# TYPE swarmdrop_edge_evictions_total counter\n");
        let _ = writeln!(
            out,
            "swarmdrop_edge_evictions_total{{tier=\"memory\"}} {}",
            g.memory_evictions
        );
        let _ = writeln!(
            out,
            "swarmdrop_edge_evictions_total{{tier=\"disk\"}} {}",
            g.disk_evictions
        );
        out.push_str("# HELP swarmdrop_edge_tier_bytes Bytes held by tier.\n# TYPE swarmdrop_edge_tier_bytes gauge\n");
        let _ = writeln!(
            out,
            "swarmdrop_edge_tier_bytes{{tier=\"memory\"}} {}",
            g.memory_bytes
        );
        let _ = writeln!(
            out,
            "swarmdrop_edge_tier_bytes{{tier=\"disk\"}} {}",
            g.disk_bytes
        );
        out.push_str("# HELP swarmdrop_edge_tier_entries Entries held by tier.\n# TYPE swarmdrop_edge_tier_entries gauge\n");
        let _ = writeln!(
            out,
            "swarmdrop_edge_tier_entries{{tier=\"memory\"}} {}",
            g.memory_entries
        );
        let _ = writeln!(
            out,
            "swarmdrop_edge_tier_entries{{tier=\"disk\"}} {}",
            g.disk_entries
        );
        let _ = write!(out, "# HELP swarmdrop_edge_fills_running Origin fills in flight.\n# TYPE swarmdrop_edge_fills_running gauge\nswarmdrop_edge_fills_running {}\n", g.fills);
        let _ = write!(out, "# HELP swarmdrop_edge_targets_version Version of the signed targets metadata served.\n# TYPE swarmdrop_edge_targets_version gauge\nswarmdrop_edge_targets_version {}\n", g.targets_version);
        if let Some(paced) = &g.paced {
            out.push_str("# HELP swarmdrop_edge_paced_bytes_total Bytes sent through upload pacing, by RFC 9218 urgency.\n# TYPE swarmdrop_edge_paced_bytes_total counter\n");
            for (urgency, (bytes, _)) in paced.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "swarmdrop_edge_paced_bytes_total{{urgency=\"{urgency}\"}} {bytes}"
                );
            }
            out.push_str("# HELP swarmdrop_edge_paced_wait_seconds_total Time responses waited for upload pacing, by RFC 9218 urgency.\n# TYPE swarmdrop_edge_paced_wait_seconds_total counter\n");
            for (urgency, (_, waited)) in paced.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "swarmdrop_edge_paced_wait_seconds_total{{urgency=\"{urgency}\"}} {waited}"
                );
            }
        }
        out.push_str("# HELP swarmdrop_edge_refusals_total Refused requests by reason.\n# TYPE swarmdrop_edge_refusals_total counter\n");
        for (code, n) in lock(&self.refusals).iter() {
            let _ = writeln!(
                out,
                "swarmdrop_edge_refusals_total{{reason=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP swarmdrop_edge_first_byte_seconds Time to the response head, by class.\n# TYPE swarmdrop_edge_first_byte_seconds histogram\n");
        for (class, stats) in &classes {
            stats
                .first_byte
                .render(&mut out, "swarmdrop_edge_first_byte_seconds", class);
        }
        out.push_str("# HELP swarmdrop_edge_request_seconds Time to the last byte, by class.\n# TYPE swarmdrop_edge_request_seconds histogram\n");
        for (class, stats) in &classes {
            stats
                .total
                .render(&mut out, "swarmdrop_edge_request_seconds", class);
        }
        out
    }
}
