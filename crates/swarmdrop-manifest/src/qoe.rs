//! The quality-of-experience report a client sends once every asset of a run is
//! verified (`POST /qoe` on `swarmdrop serve`'s gateway listener): per asset its class,
//! budget and arrival; bytes by path kind; the run's wall time; and (from version 2) how
//! many decisions the client's planner took for each reason.
//!
//! One type for both ends: the client serialises it, the server reads it with
//! [`QoeReport::parse`]. The report comes from anyone holding a token (anonymous ones
//! included), so parsing is strict: unknown fields are refused, numbers are unsigned,
//! names go through the model's validated newtypes (a class is a [`ClassName`], so it is
//! safe as a metrics label), counts and sizes are capped, and every refusal names the
//! field (`assets[3].class: …`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ClassName, DropPath};

/// The report format this build writes. It also reads version 1, which has no
/// `decisions`.
pub const VERSION: u32 = 2;
/// The oldest report format this build reads.
pub const OLDEST_VERSION: u32 = 1;
/// The planner's reasons (`swarmdrop_plan::Reason`, snake_case) a report may count
/// decisions under. A fixed list, so that a report cannot add metrics labels.
pub const DECISION_REASONS: [&str; 13] = [
    "meets_deadline",
    "only_origin_meets_deadline",
    "others_failed",
    "no_path_meets_deadline",
    "budget_blown",
    "hedge",
    "endgame",
    "spare_capacity",
    "lost_race",
    "path_failed",
    "stalled",
    "path_banned",
    "at_risk",
];
/// Largest decision count a report may state for one reason.
pub const MAX_DECISIONS: u64 = 1 << 40;
/// Largest report body accepted.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;
/// Most assets in one report.
pub const MAX_ASSETS: usize = 10_000;
/// Longest client id.
pub const MAX_CLIENT_ID: usize = 64;
/// Largest time a report may state, in milliseconds (a week: anything longer is not a
/// live drop's run, and keeps sums far from overflow).
pub const MAX_MS: u64 = 7 * 24 * 3600 * 1000;
/// Largest byte count a report may state (1 PiB).
pub const MAX_BYTES: u64 = 1 << 50;

/// Bytes that arrived over each path kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathBytes {
    /// From BitTorrent peers.
    pub p2p: u64,
    /// From edge caches.
    pub edge: u64,
    /// From the origin.
    pub origin: u64,
}

/// One asset of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QoeAsset {
    /// Its drop path.
    pub path: DropPath,
    /// Its class.
    pub class: ClassName,
    /// Its length.
    pub bytes: u64,
    /// The class's budget.
    pub budget_ms: u64,
    /// When it was verified, counted from when it was needed.
    pub arrival_ms: u64,
    /// `arrival_ms <= budget_ms`.
    pub within_budget: bool,
}

/// A whole run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QoeReport {
    /// [`OLDEST_VERSION`] to [`VERSION`].
    pub version: u32,
    /// A random id the client picked for this run (hex, or `[A-Za-z0-9_-]`).
    pub client_id: String,
    /// Wall time of the run.
    pub wall_ms: u64,
    /// Verified bytes by path kind, all classes.
    pub bytes_by_path: PathBytes,
    /// Every asset fetched.
    pub assets: Vec<QoeAsset>,
    /// Decisions the planner took, by reason (one of [`DECISION_REASONS`]); absent in
    /// version 1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decisions: BTreeMap<String, u64>,
}

/// The nearest-rank percentile `p` (0–1) of `sorted` (0 when empty): what the client's
/// report and the server's summary both state.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Why a report was refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QoeError(pub String);

fn field_error(field: &str, detail: impl std::fmt::Display) -> QoeError {
    QoeError(format!("{field}: {detail}"))
}

impl QoeReport {
    /// Reads and checks a report body.
    pub fn parse(bytes: &[u8]) -> Result<Self, QoeError> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(QoeError(format!(
                "the report is {} bytes; at most {MAX_REPORT_BYTES} are accepted",
                bytes.len()
            )));
        }
        let mut reader = serde_json::Deserializer::from_slice(bytes);
        let report: Self = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                QoeError(format!("the report: {inner}"))
            } else {
                field_error(&path, inner)
            }
        })?;
        reader
            .end()
            .map_err(|e| QoeError(format!("the report: {e}")))?;
        report.check()?;
        Ok(report)
    }

    /// The bounds serde cannot state.
    pub fn check(&self) -> Result<(), QoeError> {
        if !(OLDEST_VERSION..=VERSION).contains(&self.version) {
            return Err(field_error(
                "version",
                format!(
                    "{} is not a version this server reads ({OLDEST_VERSION} to {VERSION})",
                    self.version
                ),
            ));
        }
        if self.version < 2 && !self.decisions.is_empty() {
            return Err(field_error(
                "decisions",
                "version 1 reports have no decisions; send version 2",
            ));
        }
        for (reason, n) in &self.decisions {
            if !DECISION_REASONS.contains(&reason.as_str()) {
                // Not echoed whole: it came from the client and may be anything.
                let shown: String = reason.chars().take(40).collect();
                return Err(field_error(
                    &format!("decisions.{shown}"),
                    format!(
                        "not a decision reason (one of {})",
                        DECISION_REASONS.join(", ")
                    ),
                ));
            }
            if *n > MAX_DECISIONS {
                return Err(field_error(
                    &format!("decisions.{reason}"),
                    format!("more than {MAX_DECISIONS}"),
                ));
            }
        }
        let id_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.client_id.is_empty()
            || self.client_id.len() > MAX_CLIENT_ID
            || !self.client_id.chars().all(id_ok)
        {
            return Err(field_error(
                "client_id",
                format!("1 to {MAX_CLIENT_ID} characters of A-Z, a-z, 0-9, - and _"),
            ));
        }
        if self.wall_ms > MAX_MS {
            return Err(field_error("wall_ms", format!("more than {MAX_MS}")));
        }
        let paths = self.bytes_by_path;
        for (name, n) in [
            ("p2p", paths.p2p),
            ("edge", paths.edge),
            ("origin", paths.origin),
        ] {
            if n > MAX_BYTES {
                return Err(field_error(
                    &format!("bytes_by_path.{name}"),
                    format!("more than {MAX_BYTES}"),
                ));
            }
        }
        if self.assets.len() > MAX_ASSETS {
            return Err(field_error(
                "assets",
                format!("{} assets; at most {MAX_ASSETS}", self.assets.len()),
            ));
        }
        for (i, asset) in self.assets.iter().enumerate() {
            let at = |name: &str| format!("assets[{i}].{name}");
            if asset.bytes > MAX_BYTES {
                return Err(field_error(&at("bytes"), format!("more than {MAX_BYTES}")));
            }
            for (name, ms) in [
                ("budget_ms", asset.budget_ms),
                ("arrival_ms", asset.arrival_ms),
            ] {
                if ms > MAX_MS {
                    return Err(field_error(&at(name), format!("more than {MAX_MS}")));
                }
            }
            if asset.within_budget != (asset.arrival_ms <= asset.budget_ms) {
                return Err(field_error(
                    &at("within_budget"),
                    format!(
                        "{} contradicts arrival_ms {} and budget_ms {}",
                        asset.within_budget, asset.arrival_ms, asset.budget_ms
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "client_id": "0123abcd",
            "wall_ms": 1500,
            "bytes_by_path": { "p2p": 10, "edge": 20, "origin": 0 },
            "assets": [
                { "path": "frames/0001.png", "class": "keyframe", "bytes": 30,
                  "budget_ms": 500, "arrival_ms": 120, "within_budget": true }
            ]
        })
    }

    fn refused(value: &serde_json::Value) -> String {
        QoeReport::parse(value.to_string().as_bytes())
            .unwrap_err()
            .0
    }

    #[test]
    fn a_good_report_round_trips() {
        let report = QoeReport::parse(sample().to_string().as_bytes()).unwrap();
        assert_eq!(report.assets[0].class.as_str(), "keyframe");
        let again = QoeReport::parse(&serde_json::to_vec(&report).unwrap()).unwrap();
        assert_eq!(again, report);
    }

    #[test]
    fn unknown_fields_and_negative_numbers_are_refused_by_name() {
        let mut v = sample();
        v["extra"] = 1.into();
        assert!(refused(&v).contains("extra"), "{}", refused(&v));
        let mut v = sample();
        v["assets"][0]["colour"] = "red".into();
        let e = refused(&v);
        assert!(e.starts_with("assets[0]") && e.contains("colour"), "{e}");
        let mut v = sample();
        v["assets"][0]["arrival_ms"] = (-5).into();
        assert!(
            refused(&v).starts_with("assets[0].arrival_ms"),
            "{}",
            refused(&v)
        );
        let mut v = sample();
        v["bytes_by_path"]["edge"] = (-1).into();
        assert!(refused(&v).starts_with("bytes_by_path.edge"));
        let mut v = sample();
        v["wall_ms"] = 1.5.into();
        assert!(refused(&v).starts_with("wall_ms"));
        let mut v = sample();
        v.as_object_mut().unwrap().remove("client_id");
        assert!(refused(&v).contains("client_id"));
    }

    #[test]
    fn version_2_counts_decisions_by_a_known_reason() {
        let mut v = sample();
        v["version"] = 2.into();
        v["decisions"] = serde_json::json!({ "meets_deadline": 40, "hedge": 2 });
        let report = QoeReport::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(report.decisions["meets_deadline"], 40);
        let again = QoeReport::parse(&serde_json::to_vec(&report).unwrap()).unwrap();
        assert_eq!(again, report);
        // Version 1 (no decisions) still reads; it may not carry them.
        assert!(QoeReport::parse(sample().to_string().as_bytes()).is_ok());
        let mut old = sample();
        old["decisions"] = serde_json::json!({ "hedge": 1 });
        assert!(refused(&old).starts_with("decisions"), "{}", refused(&old));
        let mut v2 = v.clone();
        v2["decisions"] = serde_json::json!({ "made_up": 1 });
        let e = refused(&v2);
        assert!(
            e.starts_with("decisions.made_up: not a decision reason"),
            "{e}"
        );
        let mut v2 = v.clone();
        v2["decisions"] = serde_json::json!({ "x".repeat(500): 1 });
        assert!(
            refused(&v2).len() < 400,
            "the refusal echoes a long name whole"
        );
        let mut v2 = v.clone();
        v2["decisions"] = serde_json::json!({ "hedge": MAX_DECISIONS + 1 });
        assert!(refused(&v2).starts_with("decisions.hedge: more than"));
        let mut v2 = v;
        v2["decisions"] = serde_json::json!({ "hedge": -1 });
        assert!(refused(&v2).starts_with("decisions.hedge"));
    }

    #[test]
    fn names_and_bounds_are_checked() {
        let mut v = sample();
        v["assets"][0]["class"] = "Key Frame".into();
        assert!(refused(&v).starts_with("assets[0].class"));
        let mut v = sample();
        v["assets"][0]["class"] = "k".repeat(65).into();
        assert!(refused(&v).starts_with("assets[0].class"));
        let mut v = sample();
        v["assets"][0]["path"] = "/etc/passwd".into();
        assert!(refused(&v).starts_with("assets[0].path"));
        let mut v = sample();
        v["client_id"] = "a b".into();
        assert!(refused(&v).starts_with("client_id"));
        let mut v = sample();
        v["client_id"] = "a".repeat(65).into();
        assert!(refused(&v).starts_with("client_id"));
        let mut v = sample();
        v["version"] = 3.into();
        assert!(refused(&v).starts_with("version"));
        let mut v = sample();
        v["version"] = 0.into();
        assert!(refused(&v).starts_with("version"));
        let mut v = sample();
        v["assets"][0]["within_budget"] = false.into();
        assert!(refused(&v).starts_with("assets[0].within_budget"));
        let mut v = sample();
        v["assets"][0]["budget_ms"] = (MAX_MS + 1).into();
        assert!(refused(&v).starts_with("assets[0].budget_ms"));
        let mut v = sample();
        v["bytes_by_path"]["p2p"] = (MAX_BYTES + 1).into();
        assert!(refused(&v).starts_with("bytes_by_path.p2p"));
    }

    #[test]
    fn counts_and_sizes_are_capped() {
        let mut v = sample();
        let one = v["assets"][0].clone();
        v["assets"] = serde_json::Value::Array(vec![one; MAX_ASSETS + 1]);
        let text = v.to_string();
        assert!(text.len() > MAX_REPORT_BYTES);
        assert!(QoeReport::parse(text.as_bytes())
            .unwrap_err()
            .0
            .contains("bytes"));
        // Under the size cap, the count cap still holds.
        let mut report = QoeReport::parse(sample().to_string().as_bytes()).unwrap();
        let asset = report.assets[0].clone();
        report.assets = vec![asset; MAX_ASSETS + 1];
        assert!(report.check().unwrap_err().0.starts_with("assets:"));
        assert!(QoeReport::parse(b"{}{}").is_err());
        assert!(QoeReport::parse(b"[]")
            .unwrap_err()
            .0
            .starts_with("the report"));
    }
}
