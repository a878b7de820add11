//! `swarmdrop demo`: a whole live drop on one machine. It packs a generated drop (a
//! checkout page, keyframes, one bulk asset), starts `serve` (origin, tracker, gateway),
//! two edges and two seeders as their own processes, then N viewers, each a full client
//! (its own token, its own TUF walk, its own peer listener and files), joining within two
//! seconds. The origin and the edges sit behind emulated links (a round trip, an upload
//! cap), seeders and viewers cap their uploads, so peers matter. It prints, per class, the
//! share within budget and p50/p99 arrival; origin egress as a multiple of the drop; the
//! peers' share of bytes; and bulk completion against the Kumar–Ross lower bound.

mod bound;
mod liar;
mod processes;
mod report;
mod shaper;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use swarmdrop_client::{ClientOptions, Identity, Progress, Report};
use swarmdrop_peer::ratelimit::RateLimit;
use swarmdrop_plan::PathKind;
use swarmdrop_procstat::{CpuTimes, CpuTrace};

use processes::Services;
use report::{print_report, summarize, DemoReport};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Viewers (each a full client in this process, sharing nothing but the network).
    #[arg(long, default_value_t = 50)]
    viewers: usize,
    /// Size of the bulk asset (fetched over peers first).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = byte_size)]
    bulk_size: u64,
    /// Keyframes, needed one per --keyframe-interval.
    #[arg(long, default_value_t = 120)]
    keyframes: usize,
    /// Size of each keyframe.
    #[arg(long, value_name = "SIZE", default_value = "200KiB", value_parser = byte_size)]
    keyframe_size: u64,
    /// A viewer needs keyframe k at k times this (a player's frame schedule).
    #[arg(long, value_name = "MS", default_value_t = 250)]
    keyframe_interval: u64,
    /// The origin's upload cap (per second, all clients and edges together).
    #[arg(long, value_name = "RATE", default_value = "8MiB", value_parser = byte_size)]
    origin_upload: u64,
    /// Each edge's upload cap (keyframes alone need viewers × keyframe size ÷ interval).
    #[arg(long, value_name = "RATE", default_value = "64MiB", value_parser = byte_size)]
    edge_upload: u64,
    /// Each seeder's upload cap.
    #[arg(long, value_name = "RATE", default_value = "8MiB", value_parser = byte_size)]
    seeder_upload: u64,
    /// Each viewer's upload cap (to its peers).
    #[arg(long, value_name = "RATE", default_value = "2MiB", value_parser = byte_size)]
    viewer_upload: u64,
    /// Multiplies every emulated upload cap above (origin, edges, seeders, viewers) and
    /// the keyframe size, from 0.1 to 16: the servers and the peers in the same
    /// proportion and the keyframes the same share of the edges, at a pace a smaller
    /// machine can carry (below 1 the bulk budget stretches by 1/F). The Kumar-Ross bound
    /// follows the scaled caps. When the report finds the CPUs saturated, its ratio says
    /// more about this machine than about the protocol; 0.5 halves the load per second.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    scale: f64,
    /// Round trip to the edges.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    edge_rtt: u64,
    /// Round trip to the origin.
    #[arg(long, value_name = "MS", default_value_t = 60)]
    origin_rtt: u64,
    /// Paths the viewers may use (comma-separated: p2p,edge,origin); `edge,origin` shows
    /// the same drop without peers.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "p2p,edge,origin"
    )]
    paths: Vec<String>,
    /// Kill one edge and one seeder halfway through the keyframe schedule; every viewer
    /// must still complete with every asset verified.
    #[arg(long)]
    chaos: bool,
    /// Add a lying edge and a lying peer that serve corrupted assets; a viewer that takes
    /// bytes from either bans it, and every viewer writes no corrupted byte and still
    /// completes (the report counts who banned which).
    #[arg(long)]
    liar: bool,
    /// Run the same drop a second time without peers (`--paths edge,origin`, fresh
    /// services) and print both, side by side.
    #[arg(long, conflicts_with_all = ["keep", "paths"])]
    compare: bool,
    /// Keep everything running after the report (until interrupted).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// A size or rate on the command line ("64MiB", "10MB", "4096"), in bytes.
fn byte_size(text: &str) -> Result<u64, String> {
    swarmdrop_bench::parse_size(text).map_err(|e| e.to_string())
}

/// The smallest `--scale`: below it the demo runs for many minutes, and the peer engine's
/// 64 KiB minimum burst no longer scales with the viewers' caps.
pub(crate) const MIN_SCALE: f64 = 0.1;
/// The largest `--scale`: beyond it the emulated links outrun any one machine.
const MAX_SCALE: f64 = 16.0;

impl DemoArgs {
    /// These arguments with `--scale` applied: the upload caps and the keyframe size
    /// multiplied (rounded to whole bytes), so everything after reads plain sizes. Called
    /// once: `scale` is kept for the report and the bulk budget, so a second call would
    /// multiply again.
    fn scaled(&self) -> anyhow::Result<DemoArgs> {
        let factor = self.scale;
        if !(MIN_SCALE..=MAX_SCALE).contains(&factor) {
            bail!("--scale {factor} must be from {MIN_SCALE} to {MAX_SCALE}");
        }
        let scale = |bytes: u64, what: &str| -> anyhow::Result<u64> {
            let scaled = (bytes as f64 * factor).round();
            if scaled < 1.0 {
                bail!("--{what} {bytes} bytes times --scale {factor} is less than one byte");
            }
            if scaled >= u64::MAX as f64 {
                bail!("--{what} {bytes} bytes times --scale {factor} is too large");
            }
            Ok(scaled as u64)
        };
        Ok(DemoArgs {
            keyframe_size: scale(self.keyframe_size, "keyframe-size")?,
            origin_upload: scale(self.origin_upload, "origin-upload")?,
            edge_upload: scale(self.edge_upload, "edge-upload")?,
            seeder_upload: scale(self.seeder_upload, "seeder-upload")?,
            viewer_upload: scale(self.viewer_upload, "viewer-upload")?,
            ..self.clone()
        })
    }
}

/// The demo's policy, its bulk budget stretched by `--scale` below 1 (the bulk asset takes
/// 1/F as long at F times the caps; the latency classes' budgets are round trips and
/// small objects, which the scale does not slow).
pub(crate) fn policy(scale: f64) -> String {
    format!(
        r#"[drop]
name = "demo-drop"
opens_at = "2026-01-01T00:00:00Z"
closes_at = "2036-01-01T00:00:00Z"

[[class]]
name = "checkout"
budget_ms = 300
paths = ["edge", "origin"]

[[class]]
name = "keyframe"
budget_ms = 800
paths = ["edge", "origin"]

[[class]]
name = "bulk"
budget_ms = {bulk_budget_ms}
paths = ["p2p", "edge", "origin"]
spare_edges = true

[[assets]]
glob = "checkout/**"
class = "checkout"

[[assets]]
glob = "frames/**"
class = "keyframe"

[[assets]]
glob = "bulk/**"
class = "bulk"
"#,
        bulk_budget_ms = bulk_budget(scale).as_millis()
    )
}

/// The bulk class's budget at `scale`.
fn bulk_budget(scale: f64) -> Duration {
    Duration::from_secs_f64(60.0 / scale.min(1.0))
}

/// Writes the generated drop; returns its total size and the bulk size.
fn generate(dir: &Path, args: &DemoArgs) -> anyhow::Result<(u64, u64)> {
    let write = |path: &Path, len: u64, seed: u64| -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        swarmdrop_bench::pack::write_random(path, len, seed)
            .with_context(|| path.display().to_string())
    };
    let page = "<!doctype html><title>demo drop</title><h1>Mint opens now</h1><script src=mint.js></script>\n";
    std::fs::create_dir_all(dir.join("checkout")).context("checkout/")?;
    std::fs::write(dir.join("checkout/index.html"), page).context("index.html")?;
    write(&dir.join("checkout/mint.js"), 24 << 10, 1)?;
    let frame = args.keyframe_size;
    for k in 0..args.keyframes {
        write(
            &dir.join(format!("frames/f{k:04}.png")),
            frame,
            100 + k as u64,
        )?;
    }
    let bulk = args.bulk_size;
    write(&dir.join("bulk/patch.bin"), bulk, 7)?;
    Ok((
        page.len() as u64 + (24 << 10) + frame * args.keyframes as u64 + bulk,
        bulk,
    ))
}

fn only_paths(names: &[String]) -> anyhow::Result<Vec<PathKind>> {
    names
        .iter()
        .map(|n| {
            PathKind::parse(n.trim())
                .with_context(|| format!("--paths: {n:?} is not p2p, edge or origin"))
        })
        .collect()
}

/// A viewer's progress: it counts on the shared bar when its download is complete.
struct Viewer(indicatif::ProgressBar);

impl Progress for Viewer {
    fn class_total(&self, _: &str, _: u64) {}
    fn advanced(&self, _: &str, _: u64) {}
    fn note(&self, _: &str) {}
    fn downloaded(&self) {
        self.0.inc(1);
    }
}

/// How long the viewers have to finish: five times the bulk budget (60 s, stretched by a
/// `--scale` below 1).
fn give_up(scale: f64) -> Duration {
    bulk_budget(scale) * 5
}

/// Runs the viewers and waits for all; each joins at its offset in the first two seconds.
async fn run_viewers(
    args: &DemoArgs,
    services: &Services,
    work: &Path,
    only: Vec<PathKind>,
) -> anyhow::Result<Viewers> {
    let upload = args.viewer_upload;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let bar = indicatif::ProgressBar::new(args.viewers as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "viewers {bar:40} {pos}/{len} done {elapsed_precise}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let first = Instant::now();
    let cpu = tokio::spawn(trace_cpu(first, stop_rx.clone()));
    let mut tasks = Vec::new();
    let mut chaos = None;
    for k in 0..args.viewers {
        let join_at = Duration::from_millis((2000 * k / args.viewers.max(1)) as u64);
        let options = ClientOptions {
            origin: format!("http://{}/", services.origin),
            // The lying edge comes last: the client ranks mirrors by its own probes.
            edges: services
                .edges
                .iter()
                .chain(services.liars.as_ref().map(|(edge, _)| edge))
                .map(|e| format!("http://{e}/"))
                .collect(),
            out_dir: work.join("viewers").join(format!("v{k:03}")),
            root: Some(services.root_json.clone()),
            gateway: Some(format!("http://{}/", services.gateway)),
            identity: Some(Identity::Anonymous),
            // Each viewer reports its QoE to serve, as a deployed player would.
            qoe: Some(format!("http://{}/qoe", services.gateway)),
            only_paths: Some(only.clone()),
            listen: Some(format!("127.0.{}.{}:0", 1 + k / 250, 1 + k % 250).parse()?),
            use_trackers: true,
            seed_after: true,
            stop_seeding: Some(stop_rx.clone()),
            upload_limit: Some(std::sync::Arc::new(RateLimit::new(upload))),
            schedule: Some(("keyframe".into(), args.keyframe_interval)),
            // Each viewer's decisions, for whoever wants to see why (with --keep).
            events: Some(work.join("viewers").join(format!("v{k:03}.events.jsonl"))),
            // The client's default, said here because it matters on one machine: each
            // viewer's finished bulk file leaves the shared page cache once flushed, as
            // it would leave each real viewer's own.
            keep_page_cache: false,
            ..ClientOptions::default()
        };
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((first + join_at).into()).await;
            let started = Instant::now();
            let progress = Viewer(bar.clone());
            let report = swarmdrop_client::run(&options, &progress)
                .await
                .map_err(|e| e.to_string());
            if report.is_err() {
                bar.inc(1);
            }
            (started.duration_since(first), report)
        }));
    }
    if args.chaos {
        let at = Duration::from_millis(args.keyframe_interval * args.keyframes as u64 / 2);
        tokio::time::sleep(at).await;
        let killed: Vec<&str> = ["edge0", "seed0"]
            .into_iter()
            .filter(|n| services.kill(n))
            .collect();
        let line = format!(
            "chaos: killed {} at {:.1} s",
            killed.join(" and "),
            at.as_secs_f64()
        );
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(&line);
        }
        chaos = Some(line);
    }
    // A viewer's report comes back only after seeding ends, and seeding ends when every
    // viewer has its files: so count completions as they happen, then release them all.
    // A demo never hangs: a viewer still downloading after `give_up` is reported as failed.
    let mut results = Vec::new();
    let total = tasks.len();
    let give_up = give_up(args.scale);
    while bar.position() < total as u64 && first.elapsed() < give_up {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    for (k, mut task) in tasks.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(30), &mut task).await {
            Ok(result) => results.push(result.context("a viewer task")?),
            Err(_) => {
                task.abort();
                results.push((
                    Duration::ZERO,
                    Err(format!(
                        "viewer v{k:03} did not finish within {} s",
                        give_up.as_secs()
                    )),
                ));
            }
        }
    }
    bar.finish();
    Ok(Viewers {
        results,
        chaos,
        cpu: cpu.await.unwrap_or_default(),
    })
}

/// What [`run_viewers`] brings back.
struct Viewers {
    /// Each viewer's join time since the first and its report.
    results: Vec<(Duration, Result<Report, String>)>,
    /// With `--chaos`: what was killed when.
    chaos: Option<String>,
    /// The machine's CPU times from the first viewer's start until the viewers stop.
    cpu: CpuTrace,
}

/// Samples the machine's CPU times every 100 ms from `first` until `stop`.
async fn trace_cpu(first: Instant, mut stop: tokio::sync::watch::Receiver<bool>) -> CpuTrace {
    let mut trace = CpuTrace::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !*stop.borrow() {
        match CpuTimes::now() {
            Ok(times) => trace.push(first.elapsed(), times),
            // No /proc/stat (not Linux), or not one we understand: the report leaves
            // the machine's load out rather than guess.
            Err(_) => return CpuTrace::default(),
        }
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => {
                // The viewers' side is gone without a word (an error): stop too.
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    if let Ok(times) = CpuTimes::now() {
        trace.push(first.elapsed(), times);
    }
    trace
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if args.viewers == 0 {
        bail!("--viewers must be at least 1");
    }
    let args = &args.scaled()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("the async runtime")?;
    let report = one_drop(args, only_paths(&args.paths)?, &runtime)?;
    let mut good =
        report.completed == report.viewers && report.corrupted_bytes_written.unwrap_or(0) == 0;
    if args.compare {
        eprintln!("the same drop again, without peers (--paths edge,origin)");
        let without = one_drop(args, vec![PathKind::Edge, PathKind::Origin], &runtime)?;
        good &= without.completed == without.viewers;
        let comparison = report::Comparison::of(report, without);
        if args.json {
            super::print_json(&comparison)?;
        } else {
            comparison.print();
        }
    } else if args.keep {
        // Printed before the wait.
    } else if args.json {
        super::print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One whole drop: generate, pack, start the services, run the viewers, report.
fn one_drop(
    args: &DemoArgs,
    only: Vec<PathKind>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<DemoReport> {
    let temp = tempfile::Builder::new()
        .prefix("swarmdrop-demo-")
        .tempdir()
        .context("a work directory")?;
    let work = temp.path().to_path_buf();
    eprintln!("generating the drop in {}", work.display());
    let (drop_bytes, bulk_bytes) = generate(&work.join("drop"), args)?;
    let services = runtime.block_on(processes::start(&work, args))?;
    eprintln!(
        "origin {} (behind {}), gateway {}, tracker {}, edges {}, seeders {}",
        services.origin_direct,
        services.origin,
        services.gateway,
        services.tracker,
        services
            .edges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        services.seeders.join(" ")
    );
    let paths: Vec<&str> = only.iter().map(|k| k.as_str()).collect();
    let started = Instant::now();
    let Viewers {
        results,
        chaos,
        cpu,
    } = runtime.block_on(run_viewers(args, &services, &work, only.clone()))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = summarize(
        args, &services, &results, drop_bytes, bulk_bytes, seconds, &cpu,
    )?;
    report.paths = paths.join(",");
    report.notes.extend(chaos);
    if args.liar || args.chaos {
        eprintln!("comparing every viewer's files with the drop");
        let mut differing = 0;
        for (k, (_, result)) in results.iter().enumerate() {
            if result.is_ok() {
                differing += liar::corrupted_bytes(
                    &work.join("drop"),
                    &work.join("viewers").join(format!("v{k:03}")),
                )?;
            }
        }
        report.corrupted_bytes_written = Some(differing);
    }
    if args.keep {
        if args.json {
            super::print_json(&report)?;
        } else {
            print_report(&report);
        }
        eprintln!(
            "--keep: everything stays up in {} until interrupted; the viewers' QoE reports: http://{}/qoe/summary",
            work.display(),
            services.gateway
        );
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    drop(services);
    Ok(report)
}

/// Where the drop is published in the work directory.
pub(crate) fn published(work: &Path) -> PathBuf {
    work.join("published")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    fn args(flags: &[&str]) -> DemoArgs {
        Cli::try_parse_from(std::iter::once("demo").chain(flags.iter().copied()))
            .unwrap()
            .demo
    }

    #[test]
    fn scale_multiplies_every_upload_cap_and_the_keyframe_size_only() {
        let half = args(&["--scale", "0.5", "--edge-upload", "10MB"])
            .scaled()
            .unwrap();
        assert_eq!(half.origin_upload, 4 << 20);
        assert_eq!(half.edge_upload, 5_000_000);
        assert_eq!(half.seeder_upload, 4 << 20);
        assert_eq!(half.viewer_upload, 1 << 20);
        assert_eq!(half.keyframe_size, 100 << 10);
        // The drop's other sizes, counts and the round trips are the problem's shape.
        assert_eq!(half.bulk_size, 64 << 20);
        assert_eq!((half.viewers, half.keyframes, half.edge_rtt), (50, 120, 10));
        // The scale is kept for the report and the bulk budget, which stretches below 1.
        assert_eq!(half.scale, 0.5);
        assert_eq!(policy(half.scale).matches("budget_ms = 120000").count(), 1);
        assert_eq!(policy(1.0).matches("budget_ms = 60000").count(), 1);
        assert_eq!(policy(2.0), policy(1.0));
        assert_eq!(give_up(0.5), Duration::from_secs(600));
    }

    #[test]
    fn a_scale_out_of_range_or_below_a_byte_is_refused_by_name() {
        for bad in ["0", "0.05", "-1", "NaN", "inf", "17"] {
            let flag = format!("--scale={bad}");
            let e = args(&[&flag]).scaled().unwrap_err().to_string();
            assert!(e.contains("--scale"), "{bad}: {e}");
        }
        let e = args(&["--scale", "0.1", "--keyframe-size", "4B"])
            .scaled()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--keyframe-size") && e.contains("less than one byte"),
            "{e}"
        );
        let e = Cli::try_parse_from(["demo", "--origin-upload", "8 parsecs"]).unwrap_err();
        assert!(e.to_string().contains("--origin-upload"), "{e}");
    }

    #[tokio::test]
    async fn the_cpu_trace_ends_when_told_and_when_the_sender_is_gone() {
        let (stop, watch) = tokio::sync::watch::channel(false);
        let trace = tokio::spawn(trace_cpu(Instant::now(), watch));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = stop.send(true);
        let trace = tokio::time::timeout(Duration::from_secs(5), trace)
            .await
            .expect("stopped")
            .unwrap();
        if cfg!(target_os = "linux") {
            assert!(trace
                .share_between(Duration::ZERO, Duration::from_secs(1))
                .is_some());
        }

        let (stop, watch) = tokio::sync::watch::channel(false);
        let trace = tokio::spawn(trace_cpu(Instant::now(), watch));
        drop(stop);
        let ended = tokio::time::timeout(Duration::from_secs(5), trace).await;
        assert!(ended.is_ok(), "a dropped sender ends the trace");
    }
}
