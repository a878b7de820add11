//! `swarmdrop bench pack`: pack time against `openssl dgst` on the same files.
//!
//! Pack must hash everything with SHA-256 and SHA-1 pieces; the baseline is the slower
//! of `openssl dgst -sha256` and `openssl dgst -sha1` over the same files, each a
//! single pass at hardware speed. The ratio `pack ÷ that` (lower is better) says
//! whether pack overlaps its two hashes and its IO well: 1.0 means packing costs no
//! more than the slower hash alone.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use swarmdrop_manifest::tuf::release::Expiries;
use swarmdrop_manifest::UtcTime;
use swarmdrop_publish::pack::{pack, Clock, LinkMode, NoProgress, PackOptions};

use crate::{median_seconds, round3, BenchError, BenchReport};

/// Options of the pack benchmark.
#[derive(Debug, Clone)]
pub struct PackBenchOptions {
    /// Total drop size in bytes.
    pub size: u64,
    /// Runs of each command.
    pub runs: u32,
    /// Working directory, or a temporary one.
    pub dir: Option<PathBuf>,
}

const POLICY: &str = r#"[drop]
name = "bench"
opens_at = "2026-12-01T18:00:00Z"
closes_at = "2026-12-01T19:00:00Z"

[[class]]
name = "keyframe"
budget_ms = 800
paths = ["edge", "p2p", "origin"]

[[class]]
name = "bulk"
budget_ms = 60000
paths = ["p2p", "edge", "origin"]

[[assets]]
glob = "frames/**"
class = "keyframe"

[[assets]]
glob = "bulk/**"
class = "bulk"
"#;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Writes `length` pseudo-random bytes (xorshift: incompressible, fast to make).
pub fn write_random(path: &Path, length: u64, seed: u64) -> Result<(), BenchError> {
    let mut file = fs::File::create(path).map_err(io(path.display().to_string()))?;
    // Mixed first (splitmix64) so that every seed is its own stream: `seed | 1` made
    // seeds 2k and 2k+1 write the same bytes, and half the demo's keyframes were copies.
    let mut state = {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).max(1)
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut left = length;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        file.write_all(&buf[..n])
            .map_err(io(path.display().to_string()))?;
        left -= n as u64;
    }
    Ok(())
}

/// Makes the drop: eight 32 KiB keyframes and four bulk files sharing the rest.
fn generate(assets: &Path, size: u64) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    fs::create_dir_all(assets.join("frames")).map_err(io("creating frames/"))?;
    fs::create_dir_all(assets.join("bulk")).map_err(io("creating bulk/"))?;
    let frame = 32 * 1024;
    let frames = if size >= 16 * frame { 8 } else { 0 };
    for i in 0..frames {
        let path = assets.join(format!("frames/f{i:03}.jpg"));
        write_random(&path, frame, 1000 + i)?;
        files.push(path);
    }
    let bulk = size - frames * frame;
    for i in 0..4u64 {
        let length = bulk / 4 + u64::from(i < bulk % 4);
        let path = assets.join(format!("bulk/part-{i}.bin"));
        write_random(&path, length, 7 + i)?;
        files.push(path);
    }
    Ok(files)
}

fn warm(files: &[PathBuf]) -> Result<(), BenchError> {
    let mut buf = vec![0u8; 1 << 20];
    for path in files {
        let mut file = fs::File::open(path).map_err(io(path.display().to_string()))?;
        while file
            .read(&mut buf)
            .map_err(io(path.display().to_string()))?
            > 0
        {}
    }
    Ok(())
}

fn time_openssl(algorithm: &str, files: &[PathBuf]) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let status = Command::new("openssl")
        .arg("dgst")
        .arg(format!("-{algorithm}"))
        .args(files)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::Baseline {
            tool: "openssl".into(),
            problem: format!("cannot run it ({e}); install it with `apt-get install openssl`"),
        })?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(BenchError::Baseline {
            tool: format!("openssl dgst -{algorithm}"),
            problem: format!("exited with {status}"),
        });
    }
    Ok(elapsed)
}

/// Runs the benchmark; `log` receives progress lines.
pub fn run_pack_bench(
    options: &PackBenchOptions,
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    if options.size < 1 << 20 {
        return Err(BenchError::Usage("--size must be at least 1MiB".into()));
    }
    let temp;
    // Our own subdirectory, never DIR itself: DIR may hold real keys or a real drop.
    let work = match &options.dir {
        Some(dir) => dir.join("swarmdrop-bench-pack"),
        None => {
            temp = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
            temp.path().to_owned()
        }
    };
    let assets = work.join("assets");
    let keys = work.join("keys");
    let policy = work.join("drop.toml");
    log(&format!(
        "generating a {} MiB drop in {}",
        options.size >> 20,
        work.display()
    ));
    let _ = fs::remove_dir_all(&work);
    let files = generate(&assets, options.size)?;
    fs::write(&policy, POLICY).map_err(io(policy.display().to_string()))?;
    swarmdrop_publish::keyset::generate(&keys, 1, 1, true)?;
    warm(&files)?;

    let time_pack = |run: u32, link: LinkMode| -> Result<Duration, BenchError> {
        let out = work.join(format!("published-{run}"));
        let _ = fs::remove_dir_all(&out);
        let pack_options = PackOptions {
            assets_dir: assets.clone(),
            policy_file: policy.clone(),
            keys_dir: keys.clone(),
            out_dir: out.clone(),
            trackers: vec!["http://127.0.0.1:6969/announce".into()],
            webseeds: vec!["http://127.0.0.1:8080/".into()],
            expiries: Expiries::default(),
            link,
        };
        let clock = Clock::Fixed(UtcTime::saturating_from_unix(1_800_000_000));
        let started = Instant::now();
        pack(&pack_options, clock, &NoProgress)?;
        let elapsed = started.elapsed();
        fs::remove_dir_all(&out).map_err(io(out.display().to_string()))?;
        Ok(elapsed)
    };
    let (mut copied, mut linked, mut sha256, mut sha1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=options.runs {
        sha256.push(time_openssl("sha256", &files)?);
        sha1.push(time_openssl("sha1", &files)?);
        copied.push(time_pack(run, LinkMode::Copy)?);
        linked.push(time_pack(run, LinkMode::Hardlink)?);
        let last = |v: &Vec<Duration>| v.last().map_or(0.0, Duration::as_secs_f64);
        log(&format!(
            "run {run}/{}: pack {:.3}s, pack --link {:.3}s, openssl sha256 {:.3}s, sha1 {:.3}s",
            options.runs,
            last(&copied),
            last(&linked),
            last(&sha256),
            last(&sha1)
        ));
    }
    let (ours, linked) = (median_seconds(&copied), median_seconds(&linked));
    let (sha256, sha1) = (median_seconds(&sha256), median_seconds(&sha1));
    let baseline = sha256.max(sha1);
    let figures = BTreeMap::from([
        ("size_bytes".to_owned(), options.size as f64),
        ("files".to_owned(), files.len() as f64),
        ("runs".to_owned(), f64::from(options.runs)),
        ("pack_s".to_owned(), round3(ours)),
        ("pack_link_s".to_owned(), round3(linked)),
        ("openssl_sha256_s".to_owned(), round3(sha256)),
        ("openssl_sha1_s".to_owned(), round3(sha1)),
        (
            "pack_mib_per_s".to_owned(),
            round3(options.size as f64 / (1 << 20) as f64 / ours.max(1e-9)),
        ),
    ]);
    Ok(BenchReport {
        name: "pack".into(),
        figures,
        ratios: BTreeMap::from([
            ("vs_openssl".to_owned(), round3(ours / baseline.max(1e-9))),
            ("link_vs_openssl".to_owned(), round3(linked / baseline.max(1e-9))),
        ]),
        targets: BTreeMap::from([
            ("vs_openssl".to_owned(), "<= 1.2".to_owned()),
            ("link_vs_openssl".to_owned(), "<= 1.2".to_owned()),
        ]),
        notes: vec![
            "vs_openssl = pack time / max(openssl dgst -sha256, -sha1) on the same files, medians of the runs; lower is better".into(),
            "vs_openssl packs with the default --link copy: it also writes and syncs a copy of every byte, which the baseline does not".into(),
            "link_vs_openssl packs with --link hardlink: the same hashing, metadata, torrents and signing without the data copy".into(),
            "inputs are in the page cache; medians of the runs".into(),
        ],
    })
}

#[cfg(test)]
mod random_tests {
    use super::*;

    #[test]
    fn every_seed_writes_its_own_bytes_and_the_same_seed_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let read = |seed: u64, name: &str| {
            let path = dir.path().join(name);
            write_random(&path, 4096, seed).unwrap();
            fs::read(path).unwrap()
        };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            assert!(seen.insert(read(seed, "a")), "seed {seed} repeats another");
        }
        assert_eq!(read(100, "b"), read(100, "c"));
    }
}
