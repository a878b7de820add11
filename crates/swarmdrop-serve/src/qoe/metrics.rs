//! The QoE counters on the gateway listener's `/metrics`: reports, assets by class and
//! budget outcome, bytes by path kind, an arrival-time histogram per class, and the
//! clients' planner decisions by reason.
//!
//! Class names come from reports, so the label set is bounded: the first `max_classes`
//! distinct classes get labels of their own, later ones count as `other`. (Class names
//! are [`ClassName`](swarmdrop_manifest::ClassName)s, `[a-z0-9._-]{1,64}`: nothing in
//! them needs escaping in a label.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use swarmdrop_manifest::qoe::{QoeReport, DECISION_REASONS};

/// Upper bounds of the arrival histogram's buckets, in seconds (`+Inf` follows).
pub const BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// The label further classes share once the cap is reached.
pub const OTHER: &str = "other";

#[derive(Debug, Default, Clone)]
struct ClassStats {
    within: u64,
    late: u64,
    /// Per bucket (not cumulative), then `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum_ms: u64,
}

#[derive(Debug, Default)]
struct Totals {
    reports: u64,
    refused: BTreeMap<&'static str, u64>,
    bytes: [u64; 3],
    classes: BTreeMap<String, ClassStats>,
    /// Per entry of [`DECISION_REASONS`].
    decisions: [u64; DECISION_REASONS.len()],
}

/// The counters, shared by the handler and the `/metrics` hook.
#[derive(Debug, Default)]
pub struct QoeMetrics {
    max_classes: usize,
    totals: Mutex<Totals>,
}

fn bucket_of(ms: u64) -> usize {
    let seconds = ms as f64 / 1e3;
    BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(BUCKETS.len())
}

impl QoeMetrics {
    /// Counters with at most `max_classes` class labels (besides `other`).
    pub fn new(max_classes: usize) -> Self {
        Self {
            max_classes,
            totals: Mutex::default(),
        }
    }

    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an accepted report.
    pub fn observe(&self, report: &QoeReport) {
        let mut totals = self.totals();
        totals.reports += 1;
        let b = report.bytes_by_path;
        for (slot, n) in totals.bytes.iter_mut().zip([b.p2p, b.edge, b.origin]) {
            *slot = slot.saturating_add(n);
        }
        for asset in &report.assets {
            let class = asset.class.as_str();
            let label =
                if totals.classes.contains_key(class) || totals.classes.len() < self.max_classes {
                    class
                } else {
                    OTHER
                };
            let stats = totals.classes.entry(label.to_owned()).or_default();
            if asset.within_budget {
                stats.within += 1;
            } else {
                stats.late += 1;
            }
            stats.buckets[bucket_of(asset.arrival_ms)] += 1;
            stats.sum_ms = stats.sum_ms.saturating_add(asset.arrival_ms);
        }
        for (reason, n) in &report.decisions {
            // A parsed report names only known reasons; anything else is not counted.
            if let Some(k) = DECISION_REASONS.iter().position(|r| r == reason) {
                totals.decisions[k] = totals.decisions[k].saturating_add(*n);
            }
        }
    }

    /// Counts a refused report by its reason code.
    pub fn refused(&self, code: &'static str) {
        *self.totals().refused.entry(code).or_default() += 1;
    }

    /// Appends the exposition text to `out`.
    pub fn render(&self, out: &mut String) {
        let totals = self.totals();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        };
        family(
            out,
            "swarmdrop_qoe_reports_total",
            "counter",
            "QoE reports accepted.",
        );
        let _ = writeln!(out, "swarmdrop_qoe_reports_total {}", totals.reports);
        family(
            out,
            "swarmdrop_qoe_refused_total",
            "counter",
            "QoE reports refused, by reason code.",
        );
        for (code, n) in &totals.refused {
            let _ = writeln!(out, "swarmdrop_qoe_refused_total{{reason=\"{code}\"}} {n}");
        }
        family(
            out,
            "swarmdrop_qoe_bytes_total",
            "counter",
            "Verified bytes clients reported, by path kind.",
        );
        for (path, n) in ["p2p", "edge", "origin"].iter().zip(totals.bytes) {
            let _ = writeln!(out, "swarmdrop_qoe_bytes_total{{path=\"{path}\"}} {n}");
        }
        family(
            out,
            "swarmdrop_qoe_assets_total",
            "counter",
            "Assets clients reported, by class and whether they arrived within budget.",
        );
        for (class, s) in &totals.classes {
            for (within, n) in [("true", s.within), ("false", s.late)] {
                let _ = writeln!(
                    out,
                    "swarmdrop_qoe_assets_total{{class=\"{class}\",within_budget=\"{within}\"}} {n}"
                );
            }
        }
        family(
            out,
            "swarmdrop_qoe_arrival_seconds",
            "histogram",
            "Asset arrival after it was needed, by class.",
        );
        for (class, s) in &totals.classes {
            let mut cumulative = 0;
            for (i, n) in s.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "swarmdrop_qoe_arrival_seconds_bucket{{class=\"{class}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "swarmdrop_qoe_arrival_seconds_sum{{class=\"{class}\"}} {}\nswarmdrop_qoe_arrival_seconds_count{{class=\"{class}\"}} {cumulative}",
                s.sum_ms as f64 / 1e3
            );
        }
        family(
            out,
            "swarmdrop_qoe_decisions_total",
            "counter",
            "Decisions the clients' planners took, by reason (from version 2 reports).",
        );
        for (reason, n) in DECISION_REASONS.iter().zip(totals.decisions) {
            let _ = writeln!(
                out,
                "swarmdrop_qoe_decisions_total{{reason=\"{reason}\"}} {n}"
            );
        }
        family(
            out,
            "swarmdrop_qoe_class_labels",
            "gauge",
            "Distinct class labels in use (bounded by [qoe] max_classes, plus \"other\").",
        );
        let _ = writeln!(out, "swarmdrop_qoe_class_labels {}", totals.classes.len());
    }
}

#[cfg(test)]
mod tests {
    use swarmdrop_manifest::qoe::{PathBytes, QoeAsset, VERSION};
    use swarmdrop_manifest::{ClassName, DropPath};

    use super::*;

    fn report(assets: &[(&str, u64)]) -> QoeReport {
        QoeReport {
            version: VERSION,
            client_id: "c".into(),
            wall_ms: 1,
            bytes_by_path: PathBytes {
                p2p: 5,
                edge: 6,
                origin: 7,
            },
            assets: assets
                .iter()
                .map(|(class, ms)| QoeAsset {
                    path: DropPath::new("x").unwrap(),
                    class: ClassName::new(class).unwrap(),
                    bytes: 1,
                    budget_ms: 100,
                    arrival_ms: *ms,
                    within_budget: *ms <= 100,
                })
                .collect(),
            decisions: [("meets_deadline".to_owned(), 3), ("hedge".to_owned(), 1)].into(),
        }
    }

    #[test]
    fn counters_and_histogram_follow_the_reports() {
        let m = QoeMetrics::new(32);
        m.observe(&report(&[
            ("keyframe", 40),
            ("keyframe", 200),
            ("bulk", 90_000),
        ]));
        m.observe(&report(&[]));
        m.refused("malformed_report");
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "swarmdrop_qoe_reports_total 2",
            "swarmdrop_qoe_bytes_total{path=\"edge\"} 12",
            "swarmdrop_qoe_assets_total{class=\"keyframe\",within_budget=\"true\"} 1",
            "swarmdrop_qoe_assets_total{class=\"keyframe\",within_budget=\"false\"} 1",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"keyframe\",le=\"0.025\"} 0",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"keyframe\",le=\"0.05\"} 1",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"keyframe\",le=\"0.25\"} 2",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"bulk\",le=\"60\"} 0",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"bulk\",le=\"300\"} 1",
            "swarmdrop_qoe_arrival_seconds_bucket{class=\"bulk\",le=\"+Inf\"} 1",
            "swarmdrop_qoe_arrival_seconds_count{class=\"keyframe\"} 2",
            "swarmdrop_qoe_arrival_seconds_sum{class=\"keyframe\"} 0.24",
            "swarmdrop_qoe_refused_total{reason=\"malformed_report\"} 1",
            "swarmdrop_qoe_decisions_total{reason=\"meets_deadline\"} 6",
            "swarmdrop_qoe_decisions_total{reason=\"hedge\"} 2",
            "swarmdrop_qoe_decisions_total{reason=\"spare_capacity\"} 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn class_labels_are_capped() {
        let m = QoeMetrics::new(2);
        m.observe(&report(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("a", 1)]));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("swarmdrop_qoe_assets_total{class=\"a\",within_budget=\"true\"} 2"));
        assert!(
            out.contains("swarmdrop_qoe_assets_total{class=\"other\",within_budget=\"true\"} 2")
        );
        assert!(!out.contains("class=\"c\""));
        assert!(out.contains("swarmdrop_qoe_class_labels 3"));
    }
}
