//! `swarmdrop bench tuf`: our TUF client workflow against python-tuf's ngclient, the
//! reference implementation, on the same repository in the same run.
//!
//! python-tuf builds the repository (consistent snapshots, top-level targets delegating
//! to hash-prefix bins that list the targets; ECDSA P-256 keys by default, the key type
//! the conformance suite uses) and times its own client. Both clients then do the same
//! work per round, from memory, with no network and no disk: trust only `1.root.json`,
//! refresh, and look up every target through the delegations (each bin fetched and
//! verified once). `vs_python_tuf` is python-tuf's median round time ÷ ours: above 1 we
//! are faster. Both sides verify with optimised code (OpenSSL under python-tuf,
//! RustCrypto here), so the ratio is mostly parsing, canonical JSON and the walk.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use swarmdrop_manifest::tuf::updater::{Request, Updater, UpdaterConfig};
use swarmdrop_manifest::UtcTime;

use crate::{median_seconds, round3, BenchError, BenchReport};

const HELPER: &str = include_str!("tuf_helper.py");

/// Options.
#[derive(Debug, Clone)]
pub struct TufBenchOptions {
    /// Python with python-tuf (`pip install tuf`).
    pub python: String,
    /// Target files in the repository.
    pub targets: usize,
    /// Hash-prefix bins the targets are delegated to.
    pub bins: usize,
    /// Rounds per client (the median is reported).
    pub rounds: usize,
    /// `ecdsa`, `ed25519` or `rsa`.
    pub keytype: String,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Runs the TUF client benchmark.
pub fn run_tuf_bench(
    options: &TufBenchOptions,
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    if !["ecdsa", "ed25519", "rsa"].contains(&options.keytype.as_str()) {
        return Err(BenchError::Usage(format!(
            "--keytype {:?}: expected ecdsa, ed25519 or rsa",
            options.keytype
        )));
    }
    let temp = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let helper = temp.path().join("tuf_helper.py");
    std::fs::write(&helper, HELPER).map_err(io(helper.display().to_string()))?;
    let repo = temp.path().join("repo");
    log(&format!(
        "python-tuf: building {} targets in {} bins ({} keys) and timing {} rounds",
        options.targets, options.bins, options.keytype, options.rounds
    ));
    let output = Command::new(&options.python)
        .arg(&helper)
        .args(["--out", &repo.display().to_string()])
        .args(["--targets", &options.targets.to_string()])
        .args(["--bins", &options.bins.to_string()])
        .args(["--rounds", &options.rounds.max(1).to_string()])
        .args(["--keytype", &options.keytype])
        .output()
        .map_err(io(format!("running {}", options.python)))?;
    let baseline = |problem: String| BenchError::Baseline {
        tool: "python-tuf".into(),
        problem,
    };
    if !output.status.success() {
        return Err(baseline(format!(
            "{}; is python-tuf installed (`pip install tuf`)?",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| baseline(format!("unreadable output: {e}")))?;
    let python: Vec<Duration> = answer["python_tuf_seconds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_f64())
                .map(Duration::from_secs_f64)
                .collect()
        })
        .unwrap_or_default();
    let targets: Vec<String> = answer["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if python.is_empty() || targets.len() != options.targets {
        return Err(baseline("no timings or targets in its output".into()));
    }
    let files = read_metadata(&repo.join("metadata"))?;
    log(&format!("swarmdrop: timing {} rounds", options.rounds));
    let mut ours = Vec::new();
    let mut roles = 0;
    for _ in 0..options.rounds.max(1) {
        let started = Instant::now();
        roles = walk(&files, &targets)?;
        ours.push(started.elapsed());
    }
    let (python_s, ours_s) = (median_seconds(&python), median_seconds(&ours));
    let mut report = BenchReport {
        name: "tuf".into(),
        figures: BTreeMap::new(),
        ratios: BTreeMap::new(),
        targets: BTreeMap::new(),
        notes: vec![
            "per round: trust 1.root.json, refresh, look up every target through hash-bin delegations; files from memory".into(),
            format!("vs_python_tuf = python-tuf median round ÷ swarmdrop median round ({} rounds each); above 1 is faster", options.rounds.max(1)),
        ],
    };
    report
        .figures
        .insert("targets".into(), targets.len() as f64);
    report
        .figures
        .insert("roles_verified_per_round".into(), roles as f64);
    report
        .figures
        .insert("python_tuf_ms".into(), round3(python_s * 1e3));
    report
        .figures
        .insert("swarmdrop_ms".into(), round3(ours_s * 1e3));
    report.ratios.insert(
        "vs_python_tuf".into(),
        round3(python_s / ours_s.max(f64::EPSILON)),
    );
    report.targets.insert(
        "vs_python_tuf".into(),
        "≥ 1 (at least as fast as the reference client)".into(),
    );
    Ok(report)
}

fn read_metadata(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, BenchError> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir.display().to_string()))? {
        let entry = entry.map_err(io(dir.display().to_string()))?;
        let bytes = std::fs::read(entry.path()).map_err(io(entry.path().display().to_string()))?;
        files.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
    }
    Ok(files)
}

/// One round: a fresh updater from `1.root.json`, every target found. Returns the
/// number of targets roles it verified.
fn walk(files: &BTreeMap<String, Vec<u8>>, targets: &[String]) -> Result<usize, BenchError> {
    let failed = |e: String| BenchError::Usage(format!("swarmdrop's updater failed: {e}"));
    let root = files
        .get("1.root.json")
        .ok_or_else(|| failed("the repository has no 1.root.json".into()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now = UtcTime::saturating_from_unix(i64::try_from(now).unwrap_or(i64::MAX));
    let mut updater =
        Updater::new(root, now, UpdaterConfig::default()).map_err(|e| failed(e.to_string()))?;
    let mut roles = 0;
    let mut drive = |updater: &mut Updater| -> Result<(), BenchError> {
        while let Some(request) = updater.next() {
            let bytes = match &request {
                Request::Remote { path, .. } => {
                    roles += usize::from(path.ends_with(".json") && path.contains(".bin-"));
                    files.get(path).map(Vec::as_slice)
                }
                Request::Local { .. } => None,
            };
            updater.supply(bytes).map_err(|e| failed(e.to_string()))?;
        }
        Ok(())
    };
    drive(&mut updater)?;
    for target in targets {
        updater
            .find_target(target)
            .map_err(|e| failed(e.to_string()))?;
        drive(&mut updater)?;
        if !matches!(updater.search_result(), Some(Ok(Some(_)))) {
            return Err(failed(format!("{target} was not found")));
        }
    }
    Ok(roles + 1)
}
