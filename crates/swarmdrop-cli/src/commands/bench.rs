//! `swarmdrop bench …`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use swarmdrop_bench::edge::{run_edge_bench, EdgeBenchOptions};
use swarmdrop_bench::identity::{run_identity_bench, IdentityBenchOptions};
use swarmdrop_bench::pack::{run_pack_bench, PackBenchOptions};
use swarmdrop_bench::parse_size;
use swarmdrop_bench::tracker::{run_tracker_bench, Protocol, TrackerBenchOptions};
use swarmdrop_bench::tuf::{run_tuf_bench, TufBenchOptions};
use swarmdrop_bench::wire::{run_wire_bench, WireBenchOptions};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Bench {
    /// Pack a generated drop and compare with `openssl dgst -sha256` / `-sha1` on the same files.
    Pack(PackArgs),
    /// Token and SIWE verification against raw ed25519 / secp256k1, and latency under a flood.
    Identity(IdentityArgs),
    /// Our UDP tracker against aquatic_udp under aquatic's load generator (built on first use).
    Tracker(TrackerArgs),
    /// The edge (warm) against nginx under wrk, and a cold flash crowd on one large object.
    Edge(EdgeArgs),
    /// Peer downloads over loopback: swarmdrop and libtorrent, each way.
    Wire(WireArgs),
    /// The TUF client workflow (refresh, every target through hash-bin delegations)
    /// against python-tuf's ngclient on the same repository.
    Tuf(TufArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct TufArgs {
    /// Python with python-tuf installed.
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    python: String,
    /// Target files in the generated repository.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    targets: usize,
    /// Hash-prefix bins the targets are delegated to.
    #[arg(long, value_name = "N", default_value_t = 64)]
    bins: usize,
    /// Rounds per client; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 5)]
    rounds: usize,
    /// Key type of every role: ecdsa (the conformance suite's default), ed25519, rsa.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa")]
    keytype: String,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WireArgs {
    /// Asset size (like 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    size: String,
    /// A Python with libtorrent's bindings.
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    python: String,
    /// Rounds of the three downloads (interleaved); ratios use each one's median round,
    /// best rounds are printed beside them.
    #[arg(long, value_name = "N", default_value_t = 5)]
    rounds: u32,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EdgeArgs {
    /// Seconds of wrk per measurement.
    #[arg(long, value_name = "S", default_value_t = 10)]
    seconds: u32,
    /// wrk connections.
    #[arg(long, value_name = "N", default_value_t = 64)]
    connections: u32,
    /// Clients in the cold flash crowd.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    cold_clients: u32,
    /// Size of the cold object (like 64MiB).
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    cold_size: String,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrackerArgs {
    /// Seconds of load per tracker.
    #[arg(long, value_name = "S", default_value_t = 30)]
    seconds: u32,
    /// Simulated peers.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    peers: u32,
    /// Simulated swarms.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    swarms: u32,
    /// Protocols to measure: udp, http or both.
    #[arg(long, value_name = "P", default_value = "both")]
    protocol: String,
    /// Where aquatic's binaries live (built into DIR/bin on first use).
    #[arg(long, value_name = "DIR", default_value = "target/bench-tools")]
    tools: PathBuf,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct IdentityArgs {
    /// Seconds per throughput measurement.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    seconds: f64,
    /// Seconds of flood for the latency measurement.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    flood_seconds: f64,
    /// Concurrent flooding connections from 127.0.0.1.
    #[arg(long, value_name = "N", default_value_t = 8)]
    flood_connections: usize,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PackArgs {
    /// Total drop size (like 1GiB, 256MiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    size: String,
    /// Runs of each command; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    runs: u32,
    /// Where to put the generated drop (in DIR/swarmdrop-bench-pack/, which is replaced);
    /// default: a temporary directory, removed afterwards.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(bench: &Bench) -> anyhow::Result<ExitCode> {
    match bench {
        Bench::Pack(args) => {
            let size = parse_size(&args.size).with_context(|| format!("--size {:?}", args.size))?;
            let options = PackBenchOptions {
                size,
                runs: args.runs.max(1),
                dir: args.dir.clone(),
            };
            let report =
                run_pack_bench(&options, &|line| eprintln!("{line}")).context("bench pack")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Tracker(args) => {
            let options = TrackerBenchOptions {
                seconds: args.seconds.clamp(10, 600),
                tools: args.tools.clone(),
                peers: args.peers.max(1),
                swarms: args.swarms.max(1),
            };
            let protocols = match args.protocol.as_str() {
                "udp" => vec![Protocol::Udp],
                "http" => vec![Protocol::Http],
                "both" => vec![Protocol::Udp, Protocol::Http],
                other => anyhow::bail!("--protocol {other:?}: expected udp, http or both"),
            };
            let report = run_tracker_bench(&options, &protocols, &|line| eprintln!("{line}"))
                .context("bench tracker")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Wire(args) => {
            let size = parse_size(&args.size).with_context(|| format!("--size {:?}", args.size))?;
            let options = WireBenchOptions {
                size: size.max(1 << 20),
                python: args.python.clone(),
                rounds: args.rounds.max(1),
            };
            let report =
                run_wire_bench(&options, &|line| eprintln!("{line}")).context("bench wire")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Edge(args) => {
            let cold_size = parse_size(&args.cold_size)
                .with_context(|| format!("--cold-size {:?}", args.cold_size))?;
            let options = EdgeBenchOptions {
                seconds: args.seconds.clamp(1, 600),
                connections: args.connections.clamp(1, 10_000),
                cold_clients: args.cold_clients.clamp(1, 10_000),
                cold_size: cold_size.max(1 << 20),
            };
            let report =
                run_edge_bench(&options, &|line| eprintln!("{line}")).context("bench edge")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Tuf(args) => {
            let options = TufBenchOptions {
                python: args.python.clone(),
                targets: args.targets.clamp(1, 1_000_000),
                bins: args.bins.clamp(1, 4096),
                rounds: args.rounds.clamp(1, 100),
                keytype: args.keytype.clone(),
            };
            let report =
                run_tuf_bench(&options, &|line| eprintln!("{line}")).context("bench tuf")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Bench::Identity(args) => {
            let options = IdentityBenchOptions {
                seconds: args.seconds.clamp(0.1, 60.0),
                flood_seconds: args.flood_seconds.clamp(0.5, 60.0),
                flood_connections: args.flood_connections.clamp(1, 256),
            };
            let report = run_identity_bench(&options, &|line| eprintln!("{line}"))
                .context("bench identity")?;
            if args.json {
                super::print_json(&report)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
