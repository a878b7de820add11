//! `swarmdrop bench wire`: one asset over loopback from one seeder, three ways in one run:
//! (a) `swarmdrop get` from `swarmdrop seed`, (b) libtorrent from `swarmdrop seed`, (c)
//! libtorrent from a libtorrent seeder. libtorrent runs through its Python bindings with
//! uTP off on both ends (swarmdrop speaks TCP; libtorrent's loopback uTP is a few MB/s).
//! A small Python helper measures each downloader's CPU time and peak RSS.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use swarmdrop_manifest::tuf::release::Expiries;
use swarmdrop_publish::pack::{pack, Clock, LinkMode, NoProgress, PackOptions};

use crate::child::{start_swarmdrop, Running};
use crate::pack::{io, write_random};
use crate::{round3, BenchError, BenchReport};

/// Options of the wire benchmark.
#[derive(Debug, Clone)]
pub struct WireBenchOptions {
    /// Asset size in bytes.
    pub size: u64,
    /// The Python with libtorrent.
    pub python: String,
    /// Rounds of the three downloads; ratios use each one's median round.
    pub rounds: u32,
}

const HELPER: &str = include_str!("wire_helper.py");

const POLICY: &str = r#"[drop]
name = "bench-wire"
opens_at = "2026-12-01T18:00:00Z"
closes_at = "2026-12-01T19:00:00Z"

[[class]]
name = "bulk"
budget_ms = 60000
paths = ["p2p", "origin"]

[[assets]]
glob = "**"
class = "bulk"
"#;

/// One download's figures.
#[derive(Debug, Clone, Copy)]
struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss: f64,
}

fn json_line(line: &str, what: &str) -> Result<serde_json::Value, BenchError> {
    let value: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| BenchError::Baseline {
            tool: what.into(),
            problem: format!("unreadable output {line:?}: {e}"),
        })?;
    if let Some(error) = value.get("error") {
        return Err(BenchError::Baseline {
            tool: what.into(),
            problem: error.to_string(),
        });
    }
    Ok(value)
}

fn measured(value: &serde_json::Value) -> Measured {
    let f = |k: &str| {
        value
            .get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    Measured {
        seconds: f("seconds"),
        cpu_seconds: f("cpu_seconds"),
        peak_rss: f("peak_rss"),
    }
}

fn run_helper(
    python: &str,
    helper: &Path,
    args: &[&str],
    what: &str,
) -> Result<Measured, BenchError> {
    let output = Command::new(python)
        .arg(helper)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(io(format!("running {python}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    Ok(measured(&json_line(line, what)?))
}

/// Publishes one random asset as a p2p torrent; returns (torrent, data file).
fn publish(work: &Path, size: u64) -> Result<(PathBuf, PathBuf), BenchError> {
    let assets = work.join("assets");
    std::fs::create_dir_all(&assets).map_err(io("creating assets/"))?;
    write_random(&assets.join("asset.bin"), size, 99)?;
    let policy = work.join("drop.toml");
    std::fs::write(&policy, POLICY).map_err(io(policy.display().to_string()))?;
    let keys = work.join("keys");
    swarmdrop_publish::keyset::generate(&keys, 1, 1, true)?;
    let out = work.join("published");
    pack(
        &PackOptions {
            assets_dir: assets.clone(),
            policy_file: policy,
            keys_dir: keys,
            out_dir: out.clone(),
            trackers: vec![],
            webseeds: vec![],
            expiries: Expiries::default(),
            link: LinkMode::Hardlink,
        },
        Clock::System,
        &NoProgress,
    )?;
    let torrents = out.join("torrents");
    let torrent = std::fs::read_dir(&torrents)
        .map_err(io(torrents.display().to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "torrent"))
        .ok_or_else(|| BenchError::Usage("pack wrote no torrent".into()))?;
    Ok((torrent, assets.join("asset.bin")))
}

fn start_our_seed(torrent: &Path, data: &Path) -> Result<(Running, String), BenchError> {
    start_swarmdrop(
        &[
            "seed".as_ref(),
            torrent.as_os_str(),
            "--data".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            "127.0.0.71:0".as_ref(),
            "--no-trackers".as_ref(),
        ],
        "seed",
    )
}

fn start_lt_seed(
    python: &str,
    helper: &Path,
    torrent: &Path,
    dir: &Path,
) -> Result<(Running, String), BenchError> {
    let mut child = Command::new(python)
        .arg(helper)
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .arg("127.0.0.72")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(io("starting the libtorrent seeder"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Usage("no stdout from the libtorrent seeder".into()))?;
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(io("reading the libtorrent seeder's output"))?;
    let port = json_line(&line, "libtorrent seeder")?
        .get("port")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Ok((running, format!("127.0.0.72:{port}")))
}

/// The fastest run (reported beside the median).
fn best(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|x, y| x.seconds.total_cmp(&y.seconds));
    sorted[0]
}

/// The run with the median time.
fn median(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|x, y| x.seconds.total_cmp(&y.seconds));
    sorted[sorted.len() / 2]
}

/// Empties `dir` for the next download, and writes back what the last one left dirty in
/// the page cache, so no run pays for its predecessor's writeback.
fn fresh_dir(dir: &Path, data: &Path) -> Result<(), BenchError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir.display().to_string()))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    let _ = Command::new("sync").status();
    // Where allowed (root), start each download from the same memory state: the page
    // cache emptied, then only the seeded asset read back in.
    if std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok() {
        let mut file = std::fs::File::open(data).map_err(io(data.display().to_string()))?;
        std::io::copy(&mut file, &mut std::io::sink()).map_err(io(data.display().to_string()))?;
    }
    Ok(())
}

/// Runs the wire benchmark.
pub fn run_wire_bench(
    options: &WireBenchOptions,
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    let check = Command::new(&options.python)
        .args(["-c", "import libtorrent"])
        .status()
        .map_err(io(format!("running {}", options.python)))?;
    if !check.success() {
        return Err(BenchError::Baseline {
            tool: "libtorrent".into(),
            problem: format!(
                "{} cannot import libtorrent; `pip install libtorrent` (tests/interop/requirements.txt) or pass --python",
                options.python
            ),
        });
    }
    let temp = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let work = temp.path();
    let helper = work.join("wire_helper.py");
    std::fs::write(&helper, HELPER).map_err(io(helper.display().to_string()))?;
    log(&format!("publishing a {} MiB asset", options.size >> 20));
    let (torrent, data) = publish(work, options.size)?;
    let data_dir = data
        .parent()
        .ok_or_else(|| BenchError::Usage("data has no directory".into()))?
        .to_path_buf();
    let exe = std::env::current_exe().map_err(io("locating the swarmdrop binary"))?;
    let exe = exe.display().to_string();
    let (t, python) = (torrent.display().to_string(), options.python.as_str());

    let (seed, addr) = start_our_seed(&torrent, &data)?;
    let (lt_seed, lt_addr) = start_lt_seed(python, &helper, &torrent, &data_dir)?;
    let out = work.join("out");
    let out_arg = out.display().to_string();
    let (mut runs_a, mut runs_b, mut runs_c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=options.rounds.max(1) {
        log(&format!(
            "round {round}/{}: (a) swarmdrop get from swarmdrop seed",
            options.rounds
        ));
        fresh_dir(&out, &data)?;
        runs_a.push(run_helper(
            python,
            &helper,
            &[
                "measure",
                "--",
                &exe,
                "get",
                "--p2p-only",
                &t,
                "--out",
                &out_arg,
                "--peer",
                &addr,
                "--no-trackers",
                "--listen",
                "127.0.0.73:0",
            ],
            "swarmdrop get",
        )?);
        log(&format!(
            "round {round}/{}: (b) libtorrent from swarmdrop seed",
            options.rounds
        ));
        fresh_dir(&out, &data)?;
        runs_b.push(run_helper(
            python,
            &helper,
            &["get", &t, &out_arg, "127.0.0.74", &addr],
            "libtorrent get",
        )?);
        log(&format!(
            "round {round}/{}: (c) libtorrent from a libtorrent seeder",
            options.rounds
        ));
        fresh_dir(&out, &data)?;
        runs_c.push(run_helper(
            python,
            &helper,
            &["get", &t, &out_arg, "127.0.0.75", &lt_addr],
            "libtorrent get",
        )?);
    }
    drop(seed);
    drop(lt_seed);
    for (label, runs) in [("a", &runs_a), ("b", &runs_b), ("c", &runs_c)] {
        let each: Vec<String> = runs
            .iter()
            .map(|m| {
                format!(
                    "{:.0} MB/s ({:.2} s, {:.2} CPU s)",
                    options.size as f64 / 1e6 / m.seconds.max(1e-9),
                    m.seconds,
                    m.cpu_seconds
                )
            })
            .collect();
        log(&format!("({label}) {}", each.join(", ")));
    }
    let (a, b, c) = (median(&runs_a), median(&runs_b), median(&runs_c));
    let (ba, bb, bc) = (best(&runs_a), best(&runs_b), best(&runs_c));

    let mb = options.size as f64 / 1e6;
    let rate = |m: &Measured| mb / m.seconds.max(1e-9);
    let mut figures = BTreeMap::new();
    for (label, median, best) in [
        ("a_ours_from_ours", &a, &ba),
        ("b_lt_from_ours", &b, &bb),
        ("c_lt_from_lt", &c, &bc),
    ] {
        figures.insert(format!("{label}_mb_per_s"), round3(rate(median)));
        figures.insert(format!("{label}_best_mb_per_s"), round3(rate(best)));
        figures.insert(format!("{label}_cpu_seconds"), round3(median.cpu_seconds));
        figures.insert(format!("{label}_peak_rss_bytes"), median.peak_rss);
    }
    let mut ratios = BTreeMap::new();
    ratios.insert("ours_vs_libtorrent".into(), round3(rate(&a) / rate(&c)));
    ratios.insert(
        "our_seed_serves_libtorrent_vs_libtorrent_seed".into(),
        round3(rate(&b) / rate(&c)),
    );
    ratios.insert(
        "client_memory_vs_libtorrent".into(),
        round3(a.peak_rss / c.peak_rss.max(1.0)),
    );
    ratios.insert(
        "ours_vs_libtorrent_by_best".into(),
        round3(rate(&ba) / rate(&bc)),
    );
    ratios.insert(
        "our_seed_serves_libtorrent_by_best".into(),
        round3(rate(&bb) / rate(&bc)),
    );
    let mut targets = BTreeMap::new();
    targets.insert("ours_vs_libtorrent".into(), ">= 1.0".into());
    targets.insert(
        "our_seed_serves_libtorrent_vs_libtorrent_seed".into(),
        ">= 1.0".into(),
    );
    targets.insert(
        "client_memory_vs_libtorrent".into(),
        "<= 1.0 (lower is better)".into(),
    );
    Ok(BenchReport {
        name: "wire".into(),
        figures,
        ratios,
        targets,
        notes: vec![
            format!("one {} MiB asset over loopback from one seeder, TCP only (uTP off on both ends); median of {} interleaved rounds (best rounds as *_best_*, *_by_best); before each download the page cache is written back and, where allowed (root), dropped and refilled with the asset alone: without that, downloads here land bimodally at full speed or ~2.5x slower, whichever program runs", options.size >> 20, options.rounds.max(1)),
            "libtorrent opens connections with MSE (its default); swarmdrop seed answers MSE and both sides then select plaintext".into(),
            "CPU seconds and peak RSS are the downloader's; libtorrent's include its Python interpreter (about 15 MB)".into(),
        ],
    })
}
