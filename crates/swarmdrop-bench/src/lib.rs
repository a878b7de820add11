//! Benchmarks as commands: each runs swarmdrop and a baseline side by side in one run
//! on the same inputs and reports ratios, so a noisy machine moves both.
#![warn(missing_docs)]

pub mod child;
pub mod edge;
pub mod identity;
mod loopback_http;
pub mod pack;
pub mod tracker;
pub mod tuf;
pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// What every `swarmdrop bench PART --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Which benchmark.
    pub name: String,
    /// Measured figures.
    pub figures: BTreeMap<String, f64>,
    /// Ratios against the baselines.
    pub ratios: BTreeMap<String, f64>,
    /// The target for each ratio.
    pub targets: BTreeMap<String, String>,
    /// How to read the ratios.
    pub notes: Vec<String>,
}

/// A benchmark that could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad option.
    #[error("{0}")]
    Usage(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The baseline tool is missing or failed.
    #[error("baseline {tool}: {problem}")]
    Baseline {
        /// The tool.
        tool: String,
        /// What happened.
        problem: String,
    },
    /// swarmdrop itself failed.
    #[error(transparent)]
    Publish(#[from] swarmdrop_publish::PublishError),
}

/// Parses sizes like `1GiB`, `256MiB`, `64KiB`, `1GB`, `1000000`.
pub fn parse_size(text: &str) -> Result<u64, BenchError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits
        .parse()
        .map_err(|_| BenchError::Usage(format!("{text:?} is not a size like 1GiB")))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(BenchError::Usage(format!(
                "unknown size unit {other:?} (use KiB, MiB, GiB)"
            )))
        }
    };
    count
        .checked_mul(multiplier)
        .ok_or_else(|| BenchError::Usage(format!("{text:?} is too large")))
}

/// The median of some durations, in seconds.
pub fn median_seconds(samples: &[Duration]) -> f64 {
    let mut seconds: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    seconds.sort_by(f64::total_cmp);
    match seconds.len() {
        0 => 0.0,
        n if n % 2 == 1 => seconds[n / 2],
        n => (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0,
    }
}

/// Rounds for display: ratios to three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_medians() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("12").unwrap(), 12);
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("GiB").is_err());
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median_seconds(&[d(300), d(100), d(200)]), 0.2);
        assert!((median_seconds(&[d(100), d(200)]) - 0.15).abs() < 1e-9);
    }
}
