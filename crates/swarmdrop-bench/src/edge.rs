//! `swarmdrop bench edge`: our edge with a warm cache against nginx serving the same
//! published directory from disk, both under wrk with the same connections; then a cold
//! flash crowd: many clients asking a fresh edge for one large object at once.
//!
//! wrk and nginx are Debian packages; the bench installs them with apt-get when they
//! are missing and it runs as root, and otherwise says how to.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use swarmdrop_manifest::tuf::release::Expiries;
use swarmdrop_publish::pack::{pack, Clock, LinkMode, NoProgress, PackOptions};

use crate::child::{port_of, start_swarmdrop, Running};
use crate::pack::{io, write_random};
use crate::{round3, BenchError, BenchReport};

/// Options of the edge benchmark.
#[derive(Debug, Clone)]
pub struct EdgeBenchOptions {
    /// Seconds of wrk per measurement.
    pub seconds: u32,
    /// wrk connections.
    pub connections: u32,
    /// Clients in the cold flash crowd.
    pub cold_clients: u32,
    /// Size of the cold object.
    pub cold_size: u64,
}

const POLICY: &str = r#"[drop]
name = "bench-edge"
opens_at = "2026-12-01T18:00:00Z"
closes_at = "2026-12-01T19:00:00Z"

[[class]]
name = "keyframe"
budget_ms = 800
paths = ["edge", "origin"]

[[class]]
name = "bulk"
budget_ms = 60000
paths = ["edge", "origin"]

[[assets]]
glob = "small/**"
class = "keyframe"

[[assets]]
glob = "bulk/**"
class = "bulk"
"#;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_tools(log: &dyn Fn(&str)) -> Result<(), BenchError> {
    let missing: Vec<&str> = ["wrk", "nginx"].into_iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    log(&format!("installing {} with apt-get", missing.join(" ")));
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && missing.iter().all(|t| have(t)) {
        return Ok(());
    }
    Err(BenchError::Baseline {
        tool: missing.join(", "),
        problem: format!(
            "not installed and apt-get could not install it; run `sudo apt-get install {}`",
            missing.join(" ")
        ),
    })
}

fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

/// Publishes the bench drop: 64 small 4 KiB objects and one large one.
fn publish(work: &Path, cold_size: u64) -> Result<PathBuf, BenchError> {
    let assets = work.join("assets");
    fs::create_dir_all(assets.join("small")).map_err(io("creating small/"))?;
    fs::create_dir_all(assets.join("bulk")).map_err(io("creating bulk/"))?;
    for i in 0..64u64 {
        write_random(&assets.join(format!("small/s{i:03}.bin")), 4096, 100 + i)?;
    }
    write_random(&assets.join("bulk/large.bin"), cold_size, 7)?;
    let policy = work.join("drop.toml");
    fs::write(&policy, POLICY).map_err(io(policy.display().to_string()))?;
    let keys = work.join("keys");
    swarmdrop_publish::keyset::generate(&keys, 1, 1, true)?;
    let out = work.join("published");
    let options = PackOptions {
        assets_dir: assets,
        policy_file: policy,
        keys_dir: keys,
        out_dir: out.clone(),
        trackers: vec![],
        webseeds: vec![],
        expiries: Expiries::default(),
        link: LinkMode::Hardlink,
    };
    pack(&options, Clock::System, &NoProgress)?;
    Ok(out)
}

/// The served path of the first target whose name starts with `prefix`.
fn served_path(published: &Path, prefix: &str) -> Result<String, BenchError> {
    let dir = published.join("targets").join(prefix);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(io(dir.display().to_string()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .first()
        .map(|n| format!("/targets/{prefix}/{n}"))
        .ok_or_else(|| BenchError::Usage(format!("nothing published under {}", dir.display())))
}

fn start_nginx(work: &Path, published: &Path, ports: [u16; 2]) -> Result<Running, BenchError> {
    let temp = work.join("nginx-temp");
    fs::create_dir_all(&temp).map_err(io(temp.display().to_string()))?;
    let servers: String = ports
        .iter()
        .map(|port| {
            format!(
                "  server {{ listen 127.0.0.1:{port}; root {}; }}\n",
                published.display()
            )
        })
        .collect();
    let config = format!(
        "daemon off;\nworker_processes 2;\npid {w}/nginx.pid;\nerror_log {w}/nginx-error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
         \x20 default_type application/octet-stream;\n\
         \x20 client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n\
         \x20 uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n{servers}}}\n",
        w = work.display(),
        t = temp.display(),
    );
    let path = work.join("nginx.conf");
    fs::write(&path, config).map_err(io(path.display().to_string()))?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting nginx"))?;
    let mut running = Running(child);
    for _ in 0..100 {
        if ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            return Ok(running);
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            let log = fs::read_to_string(work.join("nginx-error.log")).unwrap_or_default();
            return Err(BenchError::Baseline {
                tool: "nginx".into(),
                problem: format!("exited at start ({status}): {}", log.trim()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(BenchError::Baseline {
        tool: "nginx".into(),
        problem: "not listening after 5 s".into(),
    })
}

fn start_edge(
    work: &Path,
    name: &str,
    origin_port: u16,
    root: &Path,
) -> Result<(Running, u16), BenchError> {
    let cache = work.join(name);
    let _ = fs::remove_dir_all(&cache);
    let config = work.join(format!("{name}.toml"));
    // Tiers large enough for the whole drop: the warm runs measure serving, not eviction.
    fs::write(
        &config,
        "memory_bytes = 536870912\nverify_before_send = 4194304\n",
    )
    .map_err(io(config.display().to_string()))?;
    let origin = format!("http://127.0.0.1:{origin_port}/");
    let (running, addr) = start_swarmdrop(
        &[
            "edge".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--origin".as_ref(),
            origin.as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
        ],
        "edge",
    )?;
    Ok((running, port_of(&addr)?))
}

/// One GET, body read and dropped; returns (status, body bytes, header text).
async fn get(port: u16, path: &str, range: Option<&str>) -> std::io::Result<(u16, u64, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{range}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut body = 0u64;
    let mut in_head = true;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if in_head {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                body += (head.len() - end - 4) as u64;
                head.truncate(end);
                in_head = false;
            }
        } else {
            body += n as u64;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body, text))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn metrics(port: u16) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await;
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// What wrk reports.
struct WrkResult {
    requests_per_second: f64,
    bytes_per_second: f64,
    p99_seconds: f64,
}

fn parse_unit(text: &str, units: &[(&str, f64)]) -> Option<f64> {
    let text = text.trim();
    for (suffix, scale) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.trim().parse::<f64>().ok().map(|n| n * scale);
        }
    }
    text.parse().ok()
}

fn wrk(
    options: &EdgeBenchOptions,
    port: u16,
    path: &str,
    range: Option<&str>,
) -> Result<WrkResult, BenchError> {
    let mut command = Command::new("wrk");
    command
        .arg("-t1")
        .arg(format!("-c{}", options.connections))
        .arg(format!("-d{}s", options.seconds))
        .arg("--latency");
    if let Some(range) = range {
        command.arg("-H").arg(format!("Range: {range}"));
    }
    let output = command
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .map_err(io("running wrk"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |label: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let time_units = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    let byte_units = [
        ("GB", 1_073_741_824.0),
        ("MB", 1_048_576.0),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    let parsed = (|| {
        Some(WrkResult {
            requests_per_second: field("Requests/sec:")?.parse().ok()?,
            bytes_per_second: parse_unit(&field("Transfer/sec:")?, &byte_units)?,
            p99_seconds: parse_unit(&field("99%")?, &time_units)?,
        })
    })();
    parsed.ok_or_else(|| BenchError::Baseline {
        tool: "wrk".into(),
        problem: format!("unreadable output: {}", text.trim()),
    })
}

/// Runs the edge benchmark.
pub fn run_edge_bench(
    options: &EdgeBenchOptions,
    log: &dyn Fn(&str),
) -> Result<BenchReport, BenchError> {
    ensure_tools(log)?;
    let temp = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let work = temp.path();
    log(&format!(
        "publishing 64 × 4 KiB and one {} MiB object",
        options.cold_size >> 20
    ));
    let published = publish(work, options.cold_size)?;
    let root = published.join("metadata").join("1.root.json");
    let small = served_path(&published, "small")?;
    let large = served_path(&published, "bulk")?;
    let (origin_port, nginx_port) = (free_port()?, free_port()?);
    let _nginx = start_nginx(work, &published, [origin_port, nginx_port])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    let mut figures = BTreeMap::new();

    // Warm: one edge, every object fetched once through it.
    let (warm_edge, edge_port) = start_edge(work, "edge-warm", origin_port, &root)?;
    runtime.block_on(async {
        for path in [&small, &large] {
            for _ in 0..2 {
                let (status, _, head) = get(edge_port, path, None)
                    .await
                    .map_err(io("warming the edge"))?;
                if status != 200 {
                    return Err(BenchError::Usage(format!(
                        "warming {path}: HTTP {status}: {head}"
                    )));
                }
            }
        }
        Ok(())
    })?;
    let one_mib = "bytes=0-1048575";
    for (label, path, range) in [
        ("small", &small, None),
        ("range_1mib", &large, Some(one_mib)),
    ] {
        log(&format!(
            "wrk {label}: edge, then nginx ({} s each)",
            options.seconds
        ));
        let ours = wrk(options, edge_port, path, range)?;
        let theirs = wrk(options, nginx_port, path, range)?;
        figures.insert(
            format!("{label}_edge_rps"),
            ours.requests_per_second.round(),
        );
        figures.insert(
            format!("{label}_nginx_rps"),
            theirs.requests_per_second.round(),
        );
        figures.insert(
            format!("{label}_edge_bytes_per_s"),
            ours.bytes_per_second.round(),
        );
        figures.insert(
            format!("{label}_nginx_bytes_per_s"),
            theirs.bytes_per_second.round(),
        );
        figures.insert(
            format!("{label}_edge_p99_ms"),
            round3(ours.p99_seconds * 1e3),
        );
        figures.insert(
            format!("{label}_nginx_p99_ms"),
            round3(theirs.p99_seconds * 1e3),
        );
    }
    drop(warm_edge);

    // Cold: one client alone on a fresh edge, then the crowd on another fresh edge.
    log(&format!(
        "cold: one client, then {} at once, for the {} MiB object",
        options.cold_clients,
        options.cold_size >> 20
    ));
    let (alone_edge, alone_port) = start_edge(work, "edge-alone", origin_port, &root)?;
    let alone = runtime.block_on(async {
        let _ = get(alone_port, "/metadata/timestamp.json", None).await;
        let started = Instant::now();
        let (status, body, _) = get(alone_port, &large, None)
            .await
            .map_err(io("cold GET"))?;
        if status != 200 || body != options.cold_size {
            return Err(BenchError::Usage(format!(
                "cold GET: HTTP {status}, {body} bytes"
            )));
        }
        Ok(started.elapsed())
    })?;
    drop(alone_edge);
    let (crowd_edge, crowd_port) = start_edge(work, "edge-crowd", origin_port, &root)?;
    let (crowd, origin_bytes, complete) = runtime.block_on(async {
        let _ = get(crowd_port, "/metadata/timestamp.json", None).await;
        let before = metric(
            &metrics(crowd_port).await,
            "swarmdrop_edge_origin_bytes_total",
        );
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..options.cold_clients {
            let path = large.clone();
            tasks.spawn(async move { get(crowd_port, &path, None).await });
        }
        let mut complete = 0u64;
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Ok((200, body, _))) = joined {
                if body == options.cold_size {
                    complete += 1;
                }
            }
        }
        let elapsed = started.elapsed();
        let after = metric(
            &metrics(crowd_port).await,
            "swarmdrop_edge_origin_bytes_total",
        );
        (elapsed, after - before, complete)
    });
    drop(crowd_edge);
    figures.insert("cold_clients".into(), f64::from(options.cold_clients));
    figures.insert("cold_clients_complete".into(), complete as f64);
    figures.insert(
        "cold_one_client_seconds".into(),
        round3(alone.as_secs_f64()),
    );
    figures.insert(
        "cold_all_clients_seconds".into(),
        round3(crowd.as_secs_f64()),
    );
    figures.insert("cold_origin_bytes".into(), origin_bytes);

    let f = |k: &str| figures.get(k).copied().unwrap_or(0.0);
    let ratio = |a: f64, b: f64| if b > 0.0 { round3(a / b) } else { 0.0 };
    let mut ratios = BTreeMap::new();
    ratios.insert(
        "small_rps_vs_nginx".into(),
        ratio(f("small_edge_rps"), f("small_nginx_rps")),
    );
    ratios.insert(
        "small_p99_vs_nginx".into(),
        ratio(f("small_nginx_p99_ms"), f("small_edge_p99_ms")),
    );
    ratios.insert(
        "range_throughput_vs_nginx".into(),
        ratio(
            f("range_1mib_edge_bytes_per_s"),
            f("range_1mib_nginx_bytes_per_s"),
        ),
    );
    ratios.insert(
        "range_p99_vs_nginx".into(),
        ratio(f("range_1mib_nginx_p99_ms"), f("range_1mib_edge_p99_ms")),
    );
    ratios.insert(
        "cold_origin_copies".into(),
        ratio(origin_bytes, options.cold_size as f64),
    );
    ratios.insert(
        "cold_all_vs_one".into(),
        ratio(crowd.as_secs_f64(), alone.as_secs_f64()),
    );
    let mut targets = BTreeMap::new();
    for key in [
        "small_rps_vs_nginx",
        "small_p99_vs_nginx",
        "range_throughput_vs_nginx",
        "range_p99_vs_nginx",
    ] {
        targets.insert(
            key.into(),
            ">= 0.9 (goal 1.0; p99 ratios are nginx's p99 / ours, higher is better)".into(),
        );
    }
    targets.insert(
        "cold_origin_copies".into(),
        "== 1.0 (exactly one origin fetch)".into(),
    );
    targets.insert(
        "cold_all_vs_one".into(),
        "reported: time to the last byte for every client / for one client alone".into(),
    );
    Ok(BenchReport {
        name: "edge".into(),
        figures,
        ratios,
        targets,
        notes: vec![
            format!("wrk -t1 -c{} -d{}s against each server in turn; nginx 2 workers with sendfile, the edge with a thread per core; same files, same paths", options.connections, options.seconds),
            "small: one 4 KiB object; range_1mib: bytes=0-1048575 of the large object; the edge's cache was warm".into(),
            "cold: fresh edges (empty caches) in front of nginx as the origin; origin bytes from the edge's /metrics".into(),
        ],
    })
}
