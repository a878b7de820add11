//! `swarmdrop verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use swarmdrop_manifest::UtcTime;
use swarmdrop_publish::pack::Clock;
use swarmdrop_publish::verify::{verify, VerifyOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The published directory.
    #[arg(value_name = "PUBLISHED")]
    published: PathBuf,
    /// The root metadata to trust (obtained out of band). Without it, PUBLISHED's own
    /// metadata/1.root.json is trusted on first use.
    #[arg(long, value_name = "ROOT.json")]
    root: Option<PathBuf>,
    /// Check only this asset (drop path, repeatable); default: every asset.
    #[arg(long = "asset", value_name = "PATH")]
    assets: Vec<String>,
    /// Reference time for expiry checks (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let now = match &args.at {
        Some(text) => UtcTime::parse(text).context("--at")?,
        None => Clock::System.now(),
    };
    let options = VerifyOptions {
        published: args.published.clone(),
        trusted_root: args.root.clone(),
        assets: args.assets.clone(),
        now,
    };
    let report = verify(&options, &|_| {})
        .with_context(|| format!("verification of {} failed", args.published.display()))?;
    if args.json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.trust_on_first_use {
        eprintln!("note: trusted {}/metadata/1.root.json itself; pass --root with a root obtained out of band to verify the publisher", args.published.display());
    }
    println!(
        "ok: root v{}, timestamp v{}, snapshot v{}, targets v{} at {}",
        report.root_version,
        report.timestamp_version,
        report.snapshot_version,
        report.targets_version,
        report.reference_time
    );
    let torrents = report.assets.iter().filter(|a| a.torrent_checked).count();
    let bytes: u64 = report.assets.iter().map(|a| a.length).sum();
    println!(
        "ok: {} assets ({bytes} bytes) match signed lengths and sha256; {torrents} torrents match their pieces; provenance covers {} subjects",
        report.assets.len(),
        report.provenance_subjects
    );
    Ok(ExitCode::SUCCESS)
}
