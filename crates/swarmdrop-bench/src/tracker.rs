//! `swarmdrop bench tracker`: our UDP tracker and aquatic_udp under the same load from
//! aquatic's own load generator, one tracker worker against one generator worker, one
//! after the other in the same run. The load is the memory scenario: a million
//! simulated peers across 10,000 swarms.
//!
//! The aquatic tools are built from crates.io on first use into `--tools DIR` (minutes
//! on two cores); `.ci/run` does not build them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::child::{port_of, start_swarmdrop, Running};
use crate::{round3, BenchError, BenchReport};

/// Options.
#[derive(Debug, Clone)]
pub struct TrackerBenchOptions {
    /// Seconds of load per tracker.
    pub seconds: u32,
    /// Where the aquatic binaries are (installed into `DIR/bin` when missing).
    pub tools: PathBuf,
    /// Simulated peers.
    pub peers: u32,
    /// Simulated swarms.
    pub swarms: u32,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

fn ensure_tool(
    tools: &Path,
    name: &str,
    locked: bool,
    log: &dyn Fn(&str),
) -> Result<PathBuf, BenchError> {
    let path = tools.join("bin").join(name);
    if path.exists() {
        return Ok(path);
    }
    log(&format!(
        "building {name} from crates.io into {} (a few minutes, once)",
        tools.display()
    ));
    let mut command = Command::new("cargo");
    command
        .args(["install", "--quiet", name, "--root"])
        .arg(tools);
    if locked {
        command.arg("--locked");
    }
    let status = command.status().map_err(|e| BenchError::Baseline {
        tool: name.into(),
        problem: format!("cannot run cargo install: {e}"),
    })?;
    if !status.success() || !path.exists() {
        return Err(BenchError::Baseline {
            tool: name.into(),
            problem: format!("cargo install {name} failed ({status})"),
        });
    }
    Ok(path)
}

fn free_udp_port() -> Result<u16, BenchError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io("finding a free UDP port"))?;
    Ok(socket
        .local_addr()
        .map_err(io("finding a free UDP port"))?
        .port())
}

/// Peak resident memory of a process, from /proc (kB → bytes).
fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// Which tracker protocol a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// BEP 15.
    Udp,
    /// BEP 3 over HTTP/1.1 (keep-alive, no TLS).
    Http,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Http => "http",
        }
    }
}

fn start_ours(work: &Path, protocol: Protocol) -> Result<(Running, u16), BenchError> {
    let config = work.join("swarmdrop-tracker.toml");
    let (http, udp) = match protocol {
        Protocol::Udp => ("", "127.0.0.1:0"),
        Protocol::Http => ("127.0.0.1:0", ""),
    };
    std::fs::write(
        &config,
        format!(
            "http = \"{http}\"\nudp = \"{udp}\"\nopen = true\nmax_swarms = 4000000\nmax_peers_per_swarm = 4000000\nmax_peers_per_address = 0\nnumwant_max = 30\n\
             [rate_limit]\nper_ip_per_second = 1e12\nper_ip_burst = 4000000000\nmax_tracked = 1000\n"
        ),
    )
    .map_err(io(config.display().to_string()))?;
    let (running, addr) = start_swarmdrop(
        &["tracker".as_ref(), "--config".as_ref(), config.as_os_str()],
        &format!("tracker-{}", protocol.name()),
    )?;
    Ok((running, port_of(&addr)?))
}

fn start_aquatic(
    binary: &Path,
    work: &Path,
    protocol: Protocol,
) -> Result<(Running, u16), BenchError> {
    let port = free_udp_port()?;
    let p = protocol.name();
    let config = work.join(format!("aquatic_{p}.toml"));
    let text = match protocol {
        Protocol::Udp => format!("socket_workers = 1\n[network]\naddress = \"127.0.0.1:{port}\"\n"),
        Protocol::Http => format!(
            "socket_workers = 1\n[network]\naddress = \"127.0.0.1:{port}\"\nenable_tls = false\n"
        ),
    };
    std::fs::write(&config, text).map_err(io(config.display().to_string()))?;
    let log = work.join(format!("aquatic_{p}.log"));
    let log_file = std::fs::File::create(&log).map_err(io(log.display().to_string()))?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(io(format!("starting aquatic_{p}")))?;
    let mut running = Running(child);
    // aquatic prints nothing when ready; give it a moment to bind, and make sure it lives.
    std::thread::sleep(Duration::from_millis(500));
    if let Ok(Some(status)) = running.0.try_wait() {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(BenchError::Baseline {
            tool: format!("aquatic_{p}"),
            problem: format!("exited at start ({status}): {}", output.trim()),
        });
    }
    Ok((running, port))
}

/// Runs the load generator against `port`; returns responses per second.
fn load(
    generator: &Path,
    work: &Path,
    port: u16,
    options: &TrackerBenchOptions,
    protocol: Protocol,
) -> Result<f64, BenchError> {
    let config = work.join(format!("load-{port}.toml"));
    let summarize = options.seconds.saturating_sub(5).max(5);
    let text = match protocol {
        Protocol::Http => format!(
            "server_address = \"127.0.0.1:{port}\"\nnum_workers = 1\nnum_connections = 128\nduration = {}\nkeep_alive = true\nenable_tls = false\n\
             [torrents]\nnumber_of_torrents = {}\n",
            options.seconds, options.swarms
        ),
        Protocol::Udp => format!(
            "server_address = \"127.0.0.1:{port}\"\nworkers = 1\nduration = {}\nsummarize_last = {summarize}\nextra_statistics = false\n\
             [requests]\nnumber_of_torrents = {}\nnumber_of_peers = {}\n",
            options.seconds.max(summarize),
            options.swarms,
            options.peers
        ),
    };
    std::fs::write(&config, text).map_err(io(config.display().to_string()))?;
    let tool = format!("aquatic_{}_load_test", protocol.name());
    let output = Command::new(generator)
        .arg("-c")
        .arg(&config)
        .stderr(Stdio::inherit())
        .output()
        .map_err(io(format!("running {tool}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Average responses per second: "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| BenchError::Baseline {
            tool,
            problem: format!("no summary in its output ({})", output.status),
        })
}

fn measure(
    protocol: Protocol,
    options: &TrackerBenchOptions,
    work: &Path,
    log: &dyn Fn(&str),
    figures: &mut BTreeMap<String, f64>,
) -> Result<(), BenchError> {
    let p = protocol.name();
    let generator = ensure_tool(&options.tools, &format!("aquatic_{p}_load_test"), true, log)?;
    // aquatic's trackers' locked dependencies no longer build on current Rust; build unlocked.
    let aquatic = ensure_tool(&options.tools, &format!("aquatic_{p}"), false, log)?;
    for name in ["ours", "aquatic"] {
        let (running, port) = if name == "ours" {
            start_ours(work, protocol)?
        } else {
            start_aquatic(&aquatic, work, protocol)?
        };
        log(&format!(
            "{p} {name}: {} s of load on 127.0.0.1:{port}",
            options.seconds
        ));
        let rate = load(&generator, work, port, options, protocol)?;
        if rate < 1.0 {
            return Err(BenchError::Baseline {
                tool: format!("{name} ({p})"),
                problem: "answered no requests under load".into(),
            });
        }
        let memory = peak_memory(running.0.id()).unwrap_or(0);
        log(&format!(
            "{p} {name}: {rate:.0} responses/s, peak memory {} MiB",
            memory >> 20
        ));
        figures.insert(format!("{p}_{name}_resp_per_s"), rate.round());
        figures.insert(format!("{p}_{name}_peak_memory_bytes"), memory as f64);
    }
    Ok(())
}

/// Runs the benchmark for the given protocols.
pub fn run_tracker_bench(
    options: &TrackerBenchOptions,
    protocols: &[Protocol],
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    let work = tempfile::tempdir().map_err(io("temporary directory"))?;
    let mut figures = BTreeMap::new();
    for protocol in protocols {
        measure(*protocol, options, work.path(), log, &mut figures)?;
    }
    let get = |key: &str| figures.get(key).copied().unwrap_or(0.0);
    let mut ratios = BTreeMap::new();
    let mut targets = BTreeMap::new();
    if protocols.contains(&Protocol::Udp) {
        ratios.insert(
            "vs_aquatic".to_owned(),
            round3(get("udp_ours_resp_per_s") / get("udp_aquatic_resp_per_s").max(1.0)),
        );
        ratios.insert(
            "memory_vs_aquatic".to_owned(),
            round3(
                get("udp_ours_peak_memory_bytes") / get("udp_aquatic_peak_memory_bytes").max(1.0),
            ),
        );
        targets.insert("vs_aquatic".to_owned(), ">= 1.0".to_owned());
        targets.insert(
            "memory_vs_aquatic".to_owned(),
            "<= 1.0 (lower is better), and ours <= 128 MiB".to_owned(),
        );
    }
    if protocols.contains(&Protocol::Http) {
        ratios.insert(
            "http_vs_aquatic".to_owned(),
            round3(get("http_ours_resp_per_s") / get("http_aquatic_resp_per_s").max(1.0)),
        );
        targets.insert("http_vs_aquatic".to_owned(), ">= 1.0".to_owned());
    }
    Ok(BenchReport {
        name: "tracker".into(),
        figures,
        ratios,
        targets,
        notes: vec![
            "responses per second from the aquatic load testers' summaries (one worker), the same config for both trackers".into(),
            "UDP load: the given peers across the given swarms; HTTP load: 128 keep-alive connections over the given swarms".into(),
            "peak memory is VmHWM of the tracker process after the run".into(),
        ],
    })
}
