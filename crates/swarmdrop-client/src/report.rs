//! The end-of-run report: per class, the budget, arrival times (p50, p99), the share of
//! assets within budget and the bytes each path brought; refusals by path.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::assets::Asset;

/// One class's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// Its latency budget.
    pub budget_ms: u64,
    /// Assets fetched.
    pub assets: usize,
    /// Median arrival, from the start of the run.
    pub p50_ms: u64,
    /// 99th-percentile arrival.
    pub p99_ms: u64,
    /// Share of assets that arrived within the budget.
    pub within_budget: f64,
    /// Verified bytes by path (`edge0`, `origin`, …).
    pub bytes_by_path: BTreeMap<String, u64>,
    /// Every asset's arrival, sorted (for programs combining several runs).
    #[serde(skip)]
    pub arrivals_ms: Vec<u64>,
}

/// One asset's arrival, as the run recorded it.
#[derive(Debug, Clone)]
pub struct AssetArrival {
    /// Its drop path.
    pub path: String,
    /// Its class.
    pub class: String,
    /// Its length.
    pub bytes: u64,
    /// The class's budget.
    pub budget_ms: u64,
    /// When it was verified, counted from when it was needed.
    pub arrival_ms: u64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Wall time of the run.
    pub seconds: f64,
    /// By class.
    pub classes: BTreeMap<String, ClassReport>,
    /// Verified bytes by path, all classes.
    pub bytes_by_path: BTreeMap<String, u64>,
    /// Ranges refused (bad digest or length), by path; pieces refused from peers count
    /// under `p2p`.
    pub refused_by_path: BTreeMap<String, u64>,
    /// Mirrors banned for the rest of the run: they sent bytes that failed their signed
    /// digest.
    pub banned_mirrors: Vec<String>,
    /// Peers the engine banned for sending pieces that failed their hash.
    pub banned_peers: u64,
    /// The planner's decisions, by reason (`meets_deadline`, `hedge`, …): why the bytes
    /// went where they went.
    pub decisions: BTreeMap<String, u64>,
    /// Every asset, in the order they arrived (for the QoE report).
    #[serde(skip)]
    pub assets: Vec<AssetArrival>,
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    arrivals: BTreeMap<String, Vec<u64>>,
    assets: Vec<AssetArrival>,
    bytes: BTreeMap<String, BTreeMap<String, u64>>,
    refused: BTreeMap<String, u64>,
    banned_mirrors: Vec<String>,
    banned_peers: u64,
    decisions: BTreeMap<&'static str, u64>,
}

pub use swarmdrop_manifest::qoe::percentile;

/// Counts by reason as one line (`hedge 2, meets_deadline 40`), for terminals.
pub fn by_reason_line(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    parts.join(", ")
}

impl Recorder {
    pub(crate) fn arrived(&mut self, asset: &Asset, at_ms: u64) {
        self.arrivals
            .entry(asset.class.clone())
            .or_default()
            .push(at_ms);
        self.assets.push(AssetArrival {
            path: asset.path.clone(),
            class: asset.class.clone(),
            bytes: asset.length,
            budget_ms: asset.budget_ms,
            arrival_ms: at_ms,
        });
    }

    pub(crate) fn bytes(&mut self, class: &str, path: &str, bytes: u64) {
        *self
            .bytes
            .entry(class.to_owned())
            .or_default()
            .entry(path.to_owned())
            .or_default() += bytes;
    }

    pub(crate) fn refused(&mut self, path: &str) {
        *self.refused.entry(path.to_owned()).or_default() += 1;
    }

    pub(crate) fn banned_mirror(&mut self, path: &str) {
        if !self.banned_mirrors.iter().any(|m| m == path) {
            self.banned_mirrors.push(path.to_owned());
        }
    }

    pub(crate) fn decided(&mut self, reason: swarmdrop_plan::Reason) {
        *self.decisions.entry(reason.as_str()).or_default() += 1;
    }

    pub(crate) fn banned_peer(&mut self) {
        self.banned_peers += 1;
    }

    pub(crate) fn report(&self, assets: &[Asset], seconds: f64) -> Report {
        let mut classes = BTreeMap::new();
        let mut bytes_by_path: BTreeMap<String, u64> = BTreeMap::new();
        for (class, arrivals) in &self.arrivals {
            let budget_ms = assets
                .iter()
                .find(|a| &a.class == class)
                .map_or(0, |a| a.budget_ms);
            let mut sorted = arrivals.clone();
            sorted.sort_unstable();
            let within = sorted.iter().filter(|t| **t <= budget_ms).count();
            let by_path = self.bytes.get(class).cloned().unwrap_or_default();
            for (path, n) in &by_path {
                *bytes_by_path.entry(path.clone()).or_default() += n;
            }
            classes.insert(
                class.clone(),
                ClassReport {
                    budget_ms,
                    assets: sorted.len(),
                    p50_ms: percentile(&sorted, 0.5),
                    p99_ms: percentile(&sorted, 0.99),
                    within_budget: within as f64 / sorted.len().max(1) as f64,
                    bytes_by_path: by_path,
                    arrivals_ms: sorted,
                },
            );
        }
        Report {
            seconds,
            classes,
            bytes_by_path,
            refused_by_path: self.refused.clone(),
            banned_mirrors: self.banned_mirrors.clone(),
            banned_peers: self.banned_peers,
            decisions: self
                .decisions
                .iter()
                .map(|(reason, n)| ((*reason).to_owned(), *n))
                .collect(),
            assets: self.assets.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let xs: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&xs, 0.5), 50);
        assert_eq!(percentile(&xs, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
