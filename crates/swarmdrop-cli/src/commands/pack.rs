//! `swarmdrop pack`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use swarmdrop_manifest::time::parse_duration;
use swarmdrop_manifest::tuf::release::Expiries;
use swarmdrop_publish::pack::{pack, Clock, LinkMode, PackOptions, PackOutcome, PackProgress};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The drop directory: every file under it is an asset.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The policy file (TOML): drop name, schedule, classes, asset globs.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The key directory written by `swarmdrop keygen`.
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The published directory to create, or to add a new version to.
    #[arg(long, value_name = "PUBLISHED")]
    out: PathBuf,
    /// Tracker announce URL for the torrents (repeat for more, in preference order).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// Base URL where PUBLISHED is served; torrents get its target URLs as webseeds (BEP 19).
    #[arg(long = "webseed", value_name = "URL")]
    webseeds: Vec<String>,
    /// Lifetime of root metadata (like 365d, 12h, 2w).
    #[arg(long, value_name = "DUR", default_value = "365d")]
    expires_root: String,
    /// Lifetime of targets metadata.
    #[arg(long, value_name = "DUR", default_value = "30d")]
    expires_targets: String,
    /// Lifetime of snapshot metadata.
    #[arg(long, value_name = "DUR", default_value = "7d")]
    expires_snapshot: String,
    /// Lifetime of timestamp metadata; short, so a frozen mirror is noticed.
    #[arg(long, value_name = "DUR", default_value = "1d")]
    expires_timestamp: String,
    /// How assets get into PUBLISHED/targets: `copy` (default; later edits to a source
    /// cannot touch the published file) or `hardlink` (no second copy on disk; copies
    /// across filesystems; never edit a packed source in place afterwards).
    #[arg(long, value_name = "MODE", default_value = "copy", value_parser = parse_link)]
    link: LinkMode,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_link(text: &str) -> Result<LinkMode, String> {
    match text {
        "copy" => Ok(LinkMode::Copy),
        "hardlink" => Ok(LinkMode::Hardlink),
        other => Err(format!("{other:?} is not a link mode (copy, hardlink)")),
    }
}

struct Bar(ProgressBar);

impl PackProgress for Bar {
    fn begin(&self, files: usize, bytes: u64) {
        self.0.set_length(bytes);
        self.0.set_message(format!("hashing {files} files"));
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn duration(flag: &str, text: &str) -> anyhow::Result<u64> {
    parse_duration(text).with_context(|| format!("--{flag}"))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let expiries = Expiries {
        root: duration("expires-root", &args.expires_root)?,
        targets: duration("expires-targets", &args.expires_targets)?,
        snapshot: duration("expires-snapshot", &args.expires_snapshot)?,
        timestamp: duration("expires-timestamp", &args.expires_timestamp)?,
    };
    let options = PackOptions {
        assets_dir: args.dir.clone(),
        policy_file: args.policy.clone(),
        keys_dir: args.keys.clone(),
        out_dir: args.out.clone(),
        trackers: args.trackers.clone(),
        webseeds: args.webseeds.clone(),
        expiries,
        link: args.link,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let clock = super::clock_from_env()?;
    let report = pack(&options, clock, &Bar(bar))
        .with_context(|| format!("packing {}", args.dir.display()))?;
    if report.timestamp_expires <= Clock::System.now() {
        eprintln!(
            "warning: timestamp.json expires at {}, which has passed (SOURCE_DATE_EPOCH in the past?); clients will refuse this release",
            report.timestamp_expires
        );
    }
    if args.json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let published = report.published.display();
    match report.outcome {
        PackOutcome::NewVersion => println!(
            "published version {} of {published} ({} assets, {} bytes)",
            report.version,
            report.assets.len(),
            report.total_bytes
        ),
        PackOutcome::Unchanged => println!("no asset changed; {published} stays at version {}", report.version),
        PackOutcome::TimestampRefreshed => println!(
            "no asset changed; re-signed timestamp.json of {published} (version {} now expires at {})",
            report.version, report.timestamp_expires
        ),
    }
    for asset in &report.assets {
        match &asset.p2p {
            Some(p2p) => println!(
                "  {:<40} {:<10} {:>12}  {}",
                asset.path, asset.class, asset.length, p2p.infohash
            ),
            None => println!(
                "  {:<40} {:<10} {:>12}",
                asset.path, asset.class, asset.length
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
