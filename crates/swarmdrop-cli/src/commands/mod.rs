//! The subcommands.

mod bench;
mod demo;
mod edge;
mod fetch;
mod gateway;
mod inspect;
mod keygen;
mod pack;
mod peer;
mod serve;
mod token;
mod tracker;
mod tuf_client;
mod verify;
mod wallet;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use swarmdrop_manifest::UtcTime;
use swarmdrop_publish::pack::Clock;

/// swarmdrop ships live drops over BitTorrent peers, edge caches and an origin at
/// once, every byte verified against signed TUF manifests.
#[derive(Debug, Parser)]
#[command(name = "swarmdrop", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate ed25519 keys for the TUF roles (root, targets, snapshot, timestamp) and receipts.
    Keygen(keygen::Args),
    /// Publish a drop directory: TUF metadata, hash-named targets, torrents, provenance.
    Pack(pack::Args),
    /// Verify a published directory as a client would: metadata chain, every asset, torrents, provenance.
    Verify(verify::Args),
    /// Show a .torrent, a TUF metadata file or a DSSE envelope.
    Inspect(inspect::Args),
    /// Run the edge identity gateway: wallet sign-in (SIWE), anonymous proof-of-work, tokens.
    Gateway(gateway::Args),
    /// Run the BitTorrent tracker (HTTP and UDP), token-gated for private drops.
    Tracker(tracker::Args),
    /// Run an edge cache: serves a published drop from memory and disk, pulls through
    /// verified from the origin, doubles as a BEP 19 webseed.
    Edge(edge::Args),
    /// Serve a published drop: origin HTTP, the tracker and the gateway in one process,
    /// state in an embedded SQLite file.
    Serve(serve::Args),
    /// Seed an asset to BitTorrent peers (libtorrent, qBittorrent, aria2, swarmdrop).
    Seed(peer::SeedArgs),
    /// Download a drop: every signed asset, verified, over edges and the origin by each
    /// class's latency budget; `--p2p-only` fetches one asset from BitTorrent peers.
    Get(peer::GetArgs),
    /// A whole live drop on this machine: serve, two edges, two seeders and N viewers
    /// over emulated links; prints budgets met, origin egress, peer share, bulk time.
    Demo(demo::DemoArgs),
    /// A TUF client with a metadata directory (init, refresh, download), as the TUF
    /// conformance suite drives clients; the same workflow `get` uses.
    TufClient(tuf_client::Args),
    /// Ethereum wallet key files for `get --wallet` (`wallet new --out FILE`).
    #[command(subcommand)]
    Wallet(wallet::Wallet),
    /// Work with gateway tokens offline.
    #[command(subcommand)]
    Token(token::Token),
    /// Run a benchmark against a baseline in the same run and print ratios.
    #[command(subcommand)]
    Bench(bench::Bench),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen(args) => keygen::run(&args),
        Command::Pack(args) => pack::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::TufClient(args) => tuf_client::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Token(token) => token::run(&token),
        Command::Wallet(wallet) => wallet::run(&wallet),
        Command::Tracker(args) => tracker::run(&args),
        Command::Edge(args) => edge::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Seed(args) => peer::seed(&args),
        Command::Get(args) => peer::get(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(bench) => bench::run(&bench),
    }
}

/// The clock for signing: `SOURCE_DATE_EPOCH` when set (reproducible output), else now.
pub(crate) fn clock_from_env() -> anyhow::Result<Clock> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => {
            let seconds: i64 = text.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={text:?} is not a whole number of seconds")
            })?;
            let time = UtcTime::from_unix(seconds)
                .with_context(|| format!("SOURCE_DATE_EPOCH={text:?}"))?;
            Ok(Clock::Fixed(time))
        }
        Err(std::env::VarError::NotPresent) => Ok(Clock::System),
        Err(e) => Err(e).context("SOURCE_DATE_EPOCH"),
    }
}

/// Prints a value as one line of JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string(value).context("serialising output")?
    );
    Ok(())
}

/// `--config FILE` and `--print-config`, as every server takes them.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigFile {
    /// Configuration file (TOML; `--print-config` shows every field and its default).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Print the default configuration, documented, and exit.
    #[arg(long)]
    print_config: bool,
}

impl ConfigFile {
    /// With `--print-config`, prints `defaults` and returns `None` (the caller exits).
    /// Otherwise the file's text (empty without `--config`) and its name for errors.
    pub(crate) fn load(&self, defaults: &str) -> anyhow::Result<Option<(String, String)>> {
        use anyhow::Context as _;
        if self.print_config {
            print!("{defaults}");
            return Ok(None);
        }
        Ok(Some(match &self.config {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (String::new(), "(defaults)".to_owned()),
        }))
    }
}
